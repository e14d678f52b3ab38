"""``ecgstream eval qrs``: the report's schema on made-up records, and the detector on the real ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import wfdb
from scipy.io import savemat

from ecgstream.cli import main
from evaluation.qrs import Record, evaluate, find_records, score
from firmware_sim.synthesis import synthesize

KEYS = {"se", "ppv", "tp", "fp", "fn"}


def _check_schema(report: dict, records: int) -> None:
    assert report["records"] == records == len(report["per_record"])
    assert 0.0 <= report["se"] <= 1.0 and 0.0 <= report["ppv"] <= 1.0
    for entry in report["per_record"].values():
        assert set(entry) >= KEYS


def test_score_counts_matches_within_150_ms() -> None:
    record = Record("r", np.zeros(10_000), 250.0, np.array([100, 400, 700, 1000]))
    s = score(record, np.array([110, 400 + 37, 705, 2000]))      # 37 samples = 148 ms: a match
    assert (s.tp, s.fp, s.fn) == (3, 1, 1)
    assert score(record, np.array([], dtype=np.int64)).fn == 4


def test_reads_wfdb_beats_only_and_cpsc2019_pairs(tmp_path: Path) -> None:
    syn = synthesize("sinus", seconds=20, fs=250.0, seed=0)
    wfdb.wrsamp("rec", fs=250, units=["mV"], sig_name=["II"], p_signal=syn.lead("II")[:, None], fmt=["16"],
                write_dir=str(tmp_path))
    symbols = ["+"] + ["N"] * syn.beats.size + ["~"]
    samples = np.r_[0, syn.beats, syn.beats[-1] + 5]
    wfdb.wrann("rec", "atr", samples, symbols, write_dir=str(tmp_path))
    (tmp_path / "c" / "data").mkdir(parents=True)
    (tmp_path / "c" / "ref").mkdir()
    syn500 = synthesize("afib", seconds=10, fs=500.0, seed=1)
    savemat(tmp_path / "c" / "data" / "data_00001.mat", {"ecg": syn500.lead("II")[:, None]})
    savemat(tmp_path / "c" / "ref" / "R_00001.mat", {"R_peak": syn500.beats[None, :]})
    records = {r.name: r for r in find_records(tmp_path)}
    assert set(records) == {"rec", "c/data/data_00001"}
    assert records["rec"].reference.size == syn.beats.size
    report = evaluate(tmp_path)
    _check_schema(report, 2)
    assert report["se"] > 0.95 and report["ppv"] > 0.95


def test_cli_errors_without_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "qrs", "--data", str(tmp_path), "--json", str(tmp_path / "o.json")]) == 2
    assert "no annotated records" in capsys.readouterr().err


def _link(data: Path, tmp: Path, names: list[str]) -> Path:
    for name in names:
        for f in (data / name).parent.glob(Path(name).name + ".*"):
            (tmp / f.name).symlink_to(f)
    return tmp


@pytest.fixture(scope="module")
def goal_report(tmp_path_factory: pytest.TempPathFactory, data: Path) -> dict:
    """The CLI on mitdb 100, 208 and svdb 800 (the issue's goal records)."""
    folder = _link(data, tmp_path_factory.mktemp("goal"), ["mitdb/100", "mitdb/208", "svdb/800"])
    out = folder / "report.json"
    assert main(["eval", "qrs", "--data", str(folder), "--json", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.shared_data
def test_cli_reports_se_and_ppv_on_real_records(goal_report: dict) -> None:
    _check_schema(goal_report, 3)
    assert set(goal_report["per_record"]) == {"100", "208", "800"}


@pytest.mark.slow
@pytest.mark.shared_data
def test_issue_goal_se_and_ppv_at_least_99_5_percent(goal_report: dict) -> None:
    """Reached without tuning on these records (the detector was designed and checked on synthetic ECG)."""
    for name, entry in goal_report["per_record"].items():
        assert entry["se"] >= 0.995 and entry["ppv"] >= 0.995, (name, entry)


@pytest.mark.shared_data
def test_cli_on_cpsc2019(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cpsc.json"
    assert main(["eval", "qrs", "--data", str(data / "cpsc2019"), "--json", str(out)]) == 0
    _check_schema(json.loads(out.read_text()), 50)
    assert "gross (50 records)" in capsys.readouterr().out
