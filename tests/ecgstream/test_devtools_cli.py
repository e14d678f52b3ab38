"""The developer tools on the command line: annotated synthetic records, replay of 1-2-lead
records with a channel map and progress, and every error as one line with exit status 2."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgstream.cli import main
from ecgstream.streaming import BrokerAddress, Medium, stream
from ecgstream.ward_view import WardView
from firmware_sim.records import read_record
from firmware_sim.scenario import parse_scenario
from firmware_sim.ward import build_ward
from tests.conftest import MqttBroker

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ecgstream", *args], capture_output=True, text=True, timeout=120,
                          env=env, input=stdin, cwd=REPO)


def _one_line_error(code: int, err: str, *expected: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("ecgstream: error: ")
    for text in expected:
        assert text in lines[0]


def _csv(path: Path, *, rate: bool) -> Path:
    t = np.arange(2500) / 250.0
    rows = "\n".join(f"{np.sin(2 * np.pi * x):.4f},{0.5 * np.sin(2 * np.pi * x):.4f}" for x in t)
    path.write_text(("# fs=250\n" if rate else "") + "II,V5\n" + rows + "\n")
    return path


# --- sim synth: annotations -----------------------------------------------------------------------


def test_synth_writes_beat_and_rhythm_annotations_that_match_the_ground_truth(tmp_path: Path) -> None:
    out = tmp_path / "af"
    assert main(["sim", "synth", "--rhythm", "afib", "--seconds", "12", "--fs", "250", "--seed", "1",
                 "--out", str(out)]) == 0
    truth = json.loads(out.with_suffix(".json").read_text())
    ann = wfdb.rdann(str(out), "atr")
    beats = [(int(s), sym) for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym != "+"]
    assert beats == [(b["sample"], b["label"]) for b in truth["beats"]]
    changes = [(int(s), aux) for s, sym, aux in zip(ann.sample, ann.symbol, ann.aux_note, strict=True) if sym == "+"]
    assert changes == [(0, "(AFIB")]
    assert ann.fs == 250


def test_synth_annotates_ventricular_beats_as_v(tmp_path: Path) -> None:
    out = tmp_path / "vt"
    assert main(["sim", "synth", "--rhythm", "vt", "--seconds", "6", "--fs", "250", "--out", str(out)]) == 0
    ann = wfdb.rdann(str(out), "atr")
    assert set(ann.symbol) == {"+", "V"} and ann.aux_note[0] == "(VT"


# --- sim replay: channel maps and progress --------------------------------------------------------


@pytest.mark.shared_data
def test_replay_of_a_two_lead_record_without_leads_suggests_them(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", "replay", str(data / "mitdb/100"), "--transport", "loopback", "--pace", "0", "--no-live"])
    _one_line_error(code, capsys.readouterr().err, "has no lead V1 (it has II, V5)", "--leads II=II,V5=V5")


@pytest.mark.shared_data
def test_replay_of_mitdb_with_a_channel_map_streams_and_says_what_is_missing_once(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sim", "replay", str(data / "mitdb/100"), "--leads", "II=MLII,V5=V5", "--transport", "loopback",
                 "--pace", "0", "--seconds", "20", "--no-live"])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.err.count("has no channel for V1") == 1
    assert "flagged lead-off (electrodes V1)" in captured.err
    progress = [line for line in captured.err.splitlines() if line.startswith("replay of mitdb/100: ")]
    assert progress and all("of 20.0 s" in line and "of stream time sent" in line for line in progress)
    assert "0 missing by sequence number" in captured.out and "0 rejected" in captured.out


def test_replay_of_a_csv_needs_its_rate_and_takes_it_from_fs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _csv(tmp_path / "two.csv", rate=False)
    code = main(["sim", "replay", str(csv), "--leads", "II,V5", "--transport", "loopback", "--pace", "0", "--no-live"])
    _one_line_error(code, capsys.readouterr().err, "states no sampling rate", "--fs <Hz>")
    code = main(["sim", "replay", str(csv), "--fs", "250", "--leads", "II,V5", "--transport", "loopback", "--pace",
                 "0", "--no-live"])
    assert code == 0
    captured = capsys.readouterr()
    assert "10.0 s of 10.0 s (100 %)" in captured.err and "received" in captured.out


def test_a_channel_map_naming_a_lead_the_device_lacks_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _csv(tmp_path / "two.csv", rate=True)
    code = main(["sim", "replay", str(csv), "--leads", "V6=II", "--transport", "loopback", "--no-live"])
    _one_line_error(code, capsys.readouterr().err, "cannot map channels to V6")
    code = main(["sim", "replay", str(csv), "--leads", "II=", "--transport", "loopback", "--no-live"])
    _one_line_error(code, capsys.readouterr().err, "'II=' is not LEAD=CHANNEL")


# --- one-line errors, exit status 2 ---------------------------------------------------------------


def test_plot_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plot"])
    _one_line_error(code, capsys.readouterr().err, "give one of RECORD, --rhythm, --alert or --window")
    code = main(["plot", "--rhythm", "sinus", "--out", str(tmp_path / "x.jpg")])
    _one_line_error(code, capsys.readouterr().err, "name it .png or .pdf")
    code = main(["plot", str(_csv(tmp_path / "norate.csv", rate=False))])
    _one_line_error(code, capsys.readouterr().err, "--fs <Hz>")
    code = main(["plot", "--alert", "x"])
    _one_line_error(code, capsys.readouterr().err, "--db URL")
    code = main(["plot", "--rhythm", "sinus", "--leads", "II,V9", "--out", str(tmp_path / "x.png")])
    _one_line_error(code, capsys.readouterr().err, "not II, V9")


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", "replay", "--no-such-option"])
    _one_line_error(code, capsys.readouterr().err, "No such option '--no-such-option' (see", "ecgstream sim replay --help")
    code = main(["sim", "synth"])
    _one_line_error(code, capsys.readouterr().err, "Missing option '--rhythm'")


def test_adding_an_existing_user_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECGSTREAM_CLOUD__")}
    env |= {"ECGSTREAM_CLOUD__DATABASE__URL": f"sqlite:///{tmp_path / 'cloud.db'}",
            "ECGSTREAM_CLOUD__ACCOUNTS__ARGON2_MEMORY_KIB": "8", "ECGSTREAM_CLOUD__ACCOUNTS__ARGON2_TIME_COST": "1"}
    assert _run("cloud", "init-db", env=env).returncode == 0
    first = _run("cloud", "users", "add", "kim", "--password-stdin", env=env, stdin="a-long-password-1\n")
    assert first.returncode == 0, first.stderr
    again = _run("cloud", "users", "add", "kim", "--password-stdin", env=env, stdin="a-long-password-2\n")
    _one_line_error(again.returncode, again.stderr, "already exists")


def test_recording_from_a_broker_that_is_not_there_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ecgstream.commands.edge import edge

    if "record" not in edge.commands:
        pytest.skip("ecgstream edge record is not registered yet")
    code = main(["edge", "record", "--device", "dev-1", "--out", str(tmp_path), "--broker", "127.0.0.1:1",
                 "--seconds", "1"])
    _one_line_error(code, capsys.readouterr().err, "cannot record from the MQTT broker at 127.0.0.1:1")


RECORD_CMD = "from ecgstream.commands.edge_record import record; record(prog_name='ecgstream edge record')"
"""The `edge record` command on its own (the lead registers it under `ecgstream edge`)."""


@pytest.mark.mosquitto
def test_edge_record_writes_what_a_live_device_sends_and_it_replays(
    tmp_path: Path, mqtt_broker: MqttBroker, unique_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    device = f"{unique_id}d"
    scenario = parse_scenario(RECORDED_WARD.format(device=device))
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORD_CMD, "--device", device, "--out", str(tmp_path), "--name", "rec",
         "--broker", f"{mqtt_broker.host}:{mqtt_broker.port}", "--seconds", "12", "--idle-timeout", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith(f"recording {device} from")  # subscribed: safe to stream
        asyncio.run(stream(lambda transport: [bed.device for bed in build_ward(scenario, transport)],
                           Medium("mqtt", BrokerAddress(mqtt_broker.host, mqtt_broker.port)), pace=float("inf"),
                           duration_s=12.0, view=WardView({device: "p"}), live=False))
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"wrote {tmp_path / 'rec.hea'}" in out and "0 samples per lead lost" in out
    recorded = read_record(tmp_path / "rec")
    assert recorded.lead_names == ("II", "V1", "V5") and recorded.fs == 250.0
    assert recorded.duration_s == pytest.approx(12.0, abs=0.2) and not np.isnan(recorded.signals).any()
    assert main(["sim", "replay", str(tmp_path / "rec"), "--transport", "loopback", "--pace", "0", "--no-live"]) == 0
    assert "0 missing by sequence number" in capsys.readouterr().out


RECORDED_WARD = """
name = "to-record"
duration_s = 12
seed = 3
[[patient]]
id = "p"
device = "{device}"
rhythm = [ {{ at = 0, name = "sinus" }} ]
"""
