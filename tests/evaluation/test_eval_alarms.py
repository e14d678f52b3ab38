"""``ecgstream eval alarms``: records replayed through the edge agent, alarms scored against references.

Synthetic records are written in the real databases' layouts (CPSC 2021: I + II at 200 Hz with a
class comment and rhythm aux notes; PhysioNet/CinC 2015: II, V, PLETH with the alarm in the header);
the real records in ../shared/data are only replayed and reported, never tuned on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgstream.cli import main
from evaluation.alarms import evaluate
from evaluation.references import af_episodes, find_records
from evaluation.replay import ReplayConfig, fill_short_gaps, frames, read_record, replay
from firmware_sim.records import Recording
from firmware_sim.synthesis import RhythmSegment, synthesize, synthesize_timeline

AF_START_S, AF_END_S, SECONDS = 50.0, 140.0, 230.0


def _write_cpsc2021(folder: Path, name: str = "data_1_1", seed: int = 3) -> None:
    """Sinus → AF → sinus at 200 Hz, leads I and II with a DC offset, in CPSC 2021's layout."""
    syn = synthesize_timeline([RhythmSegment(0.0, "sinus"), RhythmSegment(AF_START_S, "afib"),
                               RhythmSegment(AF_END_S, "sinus")], seconds=SECONDS, fs=200.0, seed=seed)
    signal = np.column_stack([syn.lead("I"), syn.lead("II")]) + np.array([4.0, -6.0])  # DC offsets, as in CPSC
    wfdb.wrsamp(name, fs=200, units=["mV", "mV"], sig_name=["I", "II"], p_signal=signal, fmt=["16", "16"],
                comments=["paroxysmal atrial fibrillation"], write_dir=str(folder))
    fs = 200
    on, off = int(AF_START_S * fs), int(AF_END_S * fs)
    marks = [(0, "+", "(N"), (on, "+", "(AFIB"), (off, "+", "(N")]
    beats = [(int(b), "N", "") for b in syn.beats]
    ann = sorted(marks + beats, key=lambda a: (a[0], a[1] != "+"))
    wfdb.wrann(name, "atr", np.array([a[0] for a in ann]), [a[1] for a in ann], aux_note=[a[2] for a in ann],
               write_dir=str(folder))


def _write_challenge2015(folder: Path, name: str = "a999l") -> None:
    """Sinus at 250 Hz with II, V, PLETH (a few invalid samples in II) labelled as a false asystole alarm."""
    syn = synthesize("sinus", seconds=60, fs=250.0, seed=4)
    ii = syn.lead("II").copy()
    ii[[1000, 5000, 5001]] = np.nan                     # short runs: interpolated
    pleth = np.sin(np.arange(ii.size) / 250.0 * 2 * np.pi * 1.2)
    wfdb.wrsamp(name, fs=250, units=["mV", "mV", "NU"], sig_name=["II", "V", "PLETH"],
                p_signal=np.column_stack([ii, syn.lead("V1"), pleth]), fmt=["16", "16", "16"],
                comments=["Asystole", "False alarm"], write_dir=str(folder))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("alarms")
    (folder / "cpsc2021").mkdir()
    (folder / "challenge2015").mkdir()
    _write_cpsc2021(folder / "cpsc2021")
    _write_challenge2015(folder / "challenge2015")
    return folder


def test_short_nan_runs_are_filled_long_ones_kept() -> None:
    x = np.arange(20.0)[:, None].repeat(2, axis=1)
    x[3, 0] = np.nan
    x[8:14, 1] = np.nan
    rec, filled, unfilled = fill_short_gaps(Recording(x, 250.0, ("I", "II"), "r"), 2)
    y = rec.signals
    assert y[3, 0] == 3.0 and filled == 1
    assert np.isnan(y[8:14, 1]).all() and unfilled == 6


def test_long_invalid_runs_become_gaps_the_edge_counts(synthetic: Path) -> None:
    rec = read_record(synthetic / "challenge2015" / "a999l")
    assert rec.leads == ("II",) and rec.ignored_channels == ("V", "PLETH") and rec.nan_filled == 3
    rec.signal[2500:3000] = np.nan                      # 2 s of invalid samples: frames withheld
    sent, withheld = frames(rec)
    assert withheld >= 4
    result = replay(rec)
    s = result.stream
    assert s["frames_withheld"] == withheld and s["samples_lost"] >= 500
    assert s["windows_unsupported"] == 1 and s["internal_errors"] == 0 and not s["rejected_payloads"]


def test_reference_af_episodes_and_record_discovery(synthetic: Path) -> None:
    eps = af_episodes(synthetic / "cpsc2021" / "data_1_1", 200.0, int(SECONDS * 200))
    assert [(e.start_s, e.end_s) for e in eps] == [(AF_START_S, AF_END_S)]
    # an episode still open at the end runs to the end of the record
    wfdb.wrann("open", "atr", np.array([0, 4000]), ["+", "+"], aux_note=["(N", "(AFIB"],
               write_dir=str(synthetic))
    assert [(e.start_s, e.end_s) for e in af_episodes(synthetic / "open", 200.0, 6000)] == [(20.0, 30.0)]
    (synthetic / "open.atr").unlink()
    found = {f.name: f.kind for f in find_records(synthetic)}
    assert found == {"cpsc2021/data_1_1": "af", "challenge2015/a999l": "alarm"}
    assert {f.name for f in find_records(synthetic / "cpsc2021")} == {"data_1_1"}


def test_an_episode_closed_on_the_last_sample_covers_the_record(tmp_path: Path) -> None:
    """CPSC 2021's persistent-AF records close their one episode on the last sample: all of it is AF."""
    wfdb.wrann("pers", "atr", np.array([0, 5999]), ["+", "+"], aux_note=["(AFIB", "(N"], write_dir=str(tmp_path))
    assert [(e.start_s, e.end_s) for e in af_episodes(tmp_path / "pers", 200.0, 6000)] == [(0.0, 30.0)]


def test_scorer_finds_the_af_episode_without_false_alarms(synthetic: Path) -> None:
    report = evaluate(synthetic)
    af = report["af"]
    assert report["records"] == 2 and af["records"] == 1
    assert (af["episodes"], af["detected"], af["false_alarms"]) == (1, 1, 0)
    assert af["sensitivity"] == 1.0 and af["false_alarms_per_hour"] == 0.0
    long_episode = AF_END_S - AF_START_S >= 30.0
    assert (af["episodes_30s"], af["detected_30s"]) == ((1, 1) if long_episode else (0, 0))
    rec = af["per_record"]["cpsc2021/data_1_1"]
    assert rec["class"] == "paroxysmal AF"
    klass = af["by_class"]["paroxysmal AF"]
    assert (klass["episodes_30s"], klass["detected_30s"]) == (af["episodes_30s"], af["detected_30s"])
    assert af["delay_s"]["median"] == af["delay_s"]["max"] == rec["reference_episodes"][0]["delay_s"]
    assert rec["non_af_s"] == pytest.approx(SECONDS - (AF_END_S - AF_START_S), abs=0.01)
    alarm = rec["af_alarms"][0]
    # raised after its persistence: 30 s of AF, or (rules v4) the first 40 beats of fast AF, which take
    # at least 15 s below 160 beats/min
    assert AF_START_S <= alarm["onset_s"] <= AF_END_S and alarm["at_s"] >= alarm["onset_s"] + 15.0
    assert rec["reference_episodes"][0]["delay_s"] > 0
    fa = report["false_alarm_records"]["challenge2015/a999l"]
    assert fa["must_not_raise"] == "asystole" and fa["ok"] is True
    assert fa["stream"]["nan_samples_filled"] == 3 and fa["stream"]["ignored_channels"] == ["V", "PLETH"]


def test_native_rate_replay_gives_the_same_verdict(synthetic: Path) -> None:
    report = evaluate(synthetic / "cpsc2021", ReplayConfig(fs_hz=None))
    rec = report["af"]["per_record"]["data_1_1"]
    assert rec["stream"]["fs_hz"] == 200.0
    assert (rec["detected"], rec["false_alarms"]) == (1, 0)


def test_cli_writes_report_and_table(synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "alarms.json"
    assert main(["eval", "alarms", "--data", str(synthetic), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["af"]["detected"] == 1
    text = capsys.readouterr().out
    assert "data_1_1" in text and "a999l" in text and "OK" in text


def test_cli_errors_without_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "alarms", "--data", str(tmp_path), "--json", str(tmp_path / "o.json")]) == 2
    assert "no CPSC 2021" in capsys.readouterr().err
    assert main(["eval", "alarms", "--data", str(tmp_path), "--json", str(tmp_path / "o.json"), "--fs", "x"]) == 2


AF_KEYS = {"episodes", "detected", "sensitivity", "false_alarms", "non_af_hours", "false_alarms_per_hour",
           "per_record"}


@pytest.mark.slow
@pytest.mark.shared_data
def test_cli_on_real_records(data: Path, tmp_path: Path) -> None:
    """The report's schema on ../shared/data; the figures are reported, not asserted (no tuning)."""
    out = tmp_path / "alarms.json"
    assert main(["eval", "alarms", "--data", str(data), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["records"] == 20
    af = report["af"]
    assert set(af) >= AF_KEYS and len(af["per_record"]) == 18
    assert af["episodes"] == sum(r["episodes"] for r in af["per_record"].values()) > 0
    assert {r["class"] for r in af["per_record"].values()} == {"non AF", "paroxysmal AF", "persistent AF"}
    fa = report["false_alarm_records"]
    assert set(fa) == {"challenge2015/a103l", "challenge2015/v102s"}
    assert fa["challenge2015/a103l"]["must_not_raise"] == "asystole"
    assert fa["challenge2015/v102s"]["must_not_raise"] == "vt"
    for r in fa.values():
        assert isinstance(r["ok"], bool) and r["stream"]["windows_unsupported"] == 1
    # holds without tuning: the edge does not raise asystole on a103l (v102s's VT is reported, not asserted)
    assert fa["challenge2015/a103l"]["ok"] is True
