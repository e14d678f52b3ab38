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
