"""The command line: the contract later checks rely on, help everywhere, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
import wfdb

from ecgstream.cli import cli, main
from protocol.leads import STANDARD_LEADS


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ecgstream", *args], capture_output=True, text=True, timeout=120)


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", _all_commands(cli), ids=lambda p: " ".join(p) or "ecgstream")
def test_every_command_has_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*path, "--help"]) == 0
    assert "Usage: ecgstream" in capsys.readouterr().out


def test_synth_writes_a_12_lead_record_in_mv_with_ground_truth(tmp_path: Path) -> None:
    out = tmp_path / "rec" / "vt1"
    result = _run("sim", "synth", "--rhythm", "vt", "--seconds", "8", "--fs", "250", "--seed", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = wfdb.rdrecord(str(out))
    assert tuple(record.sig_name) == STANDARD_LEADS
    assert set(record.units) == {"mV"}
    assert record.fs == 250 and record.sig_len == 2000
    signals = record.p_signal
    i, ii, iii = signals[:, 0], signals[:, 1], signals[:, 2]
    assert np.max(np.abs(iii - (ii - i))) <= 0.0021  # Einthoven, to the rounding of three 1 µV values
    truth = json.loads(out.with_suffix(".json").read_text())
    assert truth["rhythm"] == "vt"
    assert any(e["label"] == "vt" for e in truth["events"])
    assert all(b["label"] == "V" for b in truth["beats"])


def test_same_seed_same_record_different_seed_different_patient(tmp_path: Path) -> None:
    paths = []
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        assert main(["sim", "synth", "--rhythm", "sinus", "--seconds", "4", "--seed", seed, "--out", str(tmp_path / name)]) == 0
        paths.append(wfdb.rdrecord(str(tmp_path / name), physical=False).d_signal)
    assert np.array_equal(paths[0], paths[1])
    assert not np.array_equal(paths[0], paths[2])


def test_rhythms_lists_every_catalogue_name() -> None:
    result = _run("sim", "rhythms")
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"sinus", "afib", "vt", "vf", "lbbb", "rbbb", "asystole", "wenckebach", "stemi_anterior"} <= listed


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("sim", "synth", "--rhythm", "tachy-ish", "--out", "x"), "unknown rhythm 'tachy-ish'; valid rhythms are: sinus"),
        (("sim", "replay", "/nonexistent/rec"), "no record at /nonexistent/rec"),
    ],
)
def test_user_errors_are_one_clear_line_without_traceback(args: tuple[str, ...], expected: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- bad files and bad models: one line, exit 2 -------------------------------------------------------


def _one_line_error(capsys: pytest.CaptureFixture[str], status: int, expected: str) -> None:
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("ecgstream: error: ") and expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def _one_lead_record(folder: Path, header: str) -> Path:
    signal = (np.sin(np.arange(2500) / 20.0)).reshape(-1, 1)
    wfdb.wrsamp("rec", fs=250, units=["mV"], sig_name=["II"], p_signal=signal, fmt=["16"], adc_gain=[1000.0],
                baseline=[0], write_dir=str(folder))
    (folder / "rec.hea").write_text(header)
    return folder / "rec.hea"


def test_a_wfdb_header_with_an_unknown_format_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header = _one_lead_record(tmp_path, "rec 1 250 2500\nrec.dat 999 1000/mV 16 0 0 0 0 II\n")
    status = main(["plot", str(header), "--out", str(tmp_path / "rec.png")])
    _one_line_error(capsys, status, "has format 999, which is not a WFDB signal format")


def test_a_record_read_with_a_change_says_so_in_one_warning_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header = _one_lead_record(tmp_path, "rec 1 250 1000\nrec.dat 16 1000/mV 16 0 0 0 0 II\n")
    assert main(["plot", str(header), "--out", str(tmp_path / "rec.png")]) == 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"ecgstream: warning: WFDB header {header} says 1000 samples, rec.dat holds "
                                        "2500; read 1000"]


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    """A 12 s, 12-lead synthetic reference ECG (WFDB)."""
    out = tmp_path / "ref" / "sinus"
    assert main(["sim", "synth", "--rhythm", "sinus", "--seconds", "12", "--seed", "2", "--out", str(out)]) == 0
    return out.with_suffix(".hea")


def test_models_calibrate_refuses_a_reference_with_a_text_cell(
    reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = wfdb.rdrecord(str(reference.with_suffix("")))
    cells = [[f"{v:.4f}" for v in row] for row in rec.p_signal]
    cells[700][3] = "oops"  # line 703 of the file, lead aVR
    rows = [",".join(row) for row in cells]
    csv = tmp_path / "ref.csv"
    csv.write_text(f"# fs={rec.fs}\n" + ",".join(rec.sig_name) + "\n" + "\n".join(rows) + "\n")
    capsys.readouterr()
    status = main(["models", "calibrate", "reconstruction", "--reference", str(csv), "--patient", "p1",
                   "--out", str(tmp_path / "cal")])
    _one_line_error(capsys, status, "line 703, column aVR: 'oops' is not a number")
    assert not (tmp_path / "cal" / "p1.json").exists()


@pytest.mark.parametrize(
    "command",
    [
        ("models", "calibrate", "reconstruction", "--reference", "{reference}", "--patient", "p1", "--out", "{tmp}/cal"),
        ("models", "eval", "reconstruction", "--data", "{tmp}/ref", "--json", "{tmp}/r.json",
         "--baseline", "models/artifacts/reconstruction_linear.json"),
        ("models", "eval", "classifier", "--data", "{tmp}/ref", "--json", "{tmp}/r.json"),
    ],
    ids=lambda c: " ".join(c[:3]),
)
def test_models_commands_report_a_file_that_is_not_a_model_in_one_line(
    command: tuple[str, ...], reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model\n")
    args = [a.format(reference=reference, tmp=tmp_path) for a in command] + ["--model", str(bad)]
    capsys.readouterr()
    _one_line_error(capsys, main(args), "ONNX Runtime cannot use the model")


def test_models_calibrate_exits_2_with_one_error_line(tmp_path: Path) -> None:
    result = _run("models", "calibrate", "reconstruction", "--reference", str(_one_lead_record(
        tmp_path, "rec 1 250 2500\nrec.dat 16 0/mV 16 0 0 0 0 II\n")), "--patient", "p1", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("ecgstream: error: ") and "uncalibrated signal" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_models_eval_names_a_baseline_that_is_not_json(
    reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_text("x = [\n")
    capsys.readouterr()
    status = main(["models", "eval", "reconstruction", "--data", str(reference.parent), "--json",
                   str(tmp_path / "r.json"), "--baseline", str(baseline)])
    _one_line_error(capsys, status, f"linear baseline {baseline} is not JSON")
