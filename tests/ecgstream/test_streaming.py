"""Scenarios and recordings streamed end to end over each medium, counted on arrival."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecgstream.cli import main
from ecgstream.streaming import BrokerAddress, Medium
from ecgstream.ward_runner import replay_record, run_scenario
from firmware_sim.scenario import parse_scenario
from tests.conftest import MqttBroker

LOSSY_WARD = """
name = "lossy"
duration_s = 30
seed = 11
[[patient]]
id = "p-loss"
device = "d-loss"
rhythm = [ { at = 0, name = "sinus" }, { at = 12, name = "afib" } ]
events = [ { at = 20, until = 24, kind = "disconnect" } ]
[patient.faults]
loss = 0.05
burst_loss = 0.01
[[patient]]
id = "p-clean"
device = "d-clean"
profile = "ecgstream-500"
rhythm = [ { at = 0, name = "sinus_brady" } ]
[[patient]]
id = "p-polar"
device = "d-polar"
profile = "polar-h10"
rhythm = [ { at = 0, name = "sinus" } ]
"""


def test_every_injected_loss_is_seen_as_a_gap_and_nothing_else_is(tmp_path: Path) -> None:
    truth_path = tmp_path / "truth.json"
    stats, view = run_scenario(parse_scenario(LOSSY_WARD), Medium("loopback"), pace=float("inf"),
                               truth=truth_path, live=False)
    truth = json.loads(truth_path.read_text())["patients"]
    lossy, clean = view.streams["d-loss"], view.streams["d-clean"]
    injected = truth["p-loss"]["fault_counts"]
    assert injected["lost_random"] > 0 and injected["lost_burst"] > 0 and injected["lost_disconnect"] > 0
    lost_total = injected["lost_random"] + injected["lost_burst"] + injected["lost_disconnect"]
    assert lossy.lost_frames == lost_total
    assert lossy.frames + lossy.lost_frames == truth["p-loss"]["device"]["frames_generated"]
    assert clean.lost_frames == 0 and clean.frames == truth["p-clean"]["device"]["frames_generated"]
    assert view.streams["d-polar"].frames == truth["p-polar"]["device"]["frames_generated"]
    assert stats.frames_lost == lost_total


def test_ground_truth_records_rhythms_beats_and_device_events(tmp_path: Path) -> None:
    truth_path = tmp_path / "truth.json"
    run_scenario(parse_scenario(LOSSY_WARD), Medium("loopback"), pace=float("inf"), truth=truth_path, live=False)
    p = json.loads(truth_path.read_text())["patients"]["p-loss"]
    rhythms = [(e["onset_s"], e["offset_s"], e["label"]) for e in p["events"] if e["kind"] == "rhythm"]
    assert rhythms == [(0.0, 12.0, "sinus"), (12.0, 30.0, "afib")]
    assert {"onset_s": 20.0, "offset_s": 24.0, "kind": "disconnect", "label": "disconnect"} in p["events"]
    assert 25 <= len(p["beats"]) <= 70 and all(0 <= b["t_s"] < 30 for b in p["beats"])
    disconnect_losses = [f for f in p["faults"] if f["kind"] == "disconnect_loss"]
    assert disconnect_losses and all(20 <= f["t_s"] < 24.2 for f in disconnect_losses)


def test_a_scenario_with_an_unknown_rhythm_fails_before_streaming() -> None:
    bad = LOSSY_WARD.replace('name = "afib"', 'name = "afibb"')
    with pytest.raises(ValueError, match="patient 'p-loss' at 12 s: unknown rhythm 'afibb'"):
        run_scenario(parse_scenario(bad), Medium("loopback"), pace=float("inf"), live=False)


@pytest.mark.shared_data
@pytest.mark.parametrize("transport", ["loopback", "ble"])
def test_replay_delivers_every_frame_in_process(data: Path, transport: str) -> None:
    stats, view = replay_record(data / "cinc2021" / "E07509", Medium(transport), profile="ecgstream-250",
                                device_id="rep-1", pace=float("inf"), seconds=None, loop=False, live=False)
    got = view.streams["rep-1"]
    assert stats.frames_sent == got.frames == 70  # 10 s at 250 Hz: 69 frames of 36 samples and one of 16
    assert got.samples == 2500 and got.lost_frames == 0 and got.rejected == 0


@pytest.mark.shared_data
def test_replay_over_the_embedded_broker(data: Path) -> None:
    stats, view = replay_record(data / "cinc2021" / "JS20000", Medium("mqtt"), profile="ecgstream-500",
                                device_id="rep-emb", pace=float("inf"), seconds=None, loop=False, live=False)
    got = view.streams["rep-emb"]
    assert got.samples == 5000 and got.frames == stats.frames_sent and got.lost_frames == 0


@pytest.mark.mosquitto
@pytest.mark.shared_data
def test_replay_over_mosquitto_with_looping(data: Path, mqtt_broker: MqttBroker, unique_id: str) -> None:
    medium = Medium("mqtt", BrokerAddress(mqtt_broker.host, mqtt_broker.port))
    stats, view = replay_record(data / "cinc2021" / "HR06000", medium, profile="ecgstream-250",
                                device_id=unique_id, pace=float("inf"), seconds=25, loop=True, live=False)
    got = view.streams[unique_id]
    assert got.samples == 25 * 250 and got.lost_frames == 0 and got.frames == stats.frames_sent


def test_cli_run_writes_truth_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "ward.toml"
    scenario.write_text(LOSSY_WARD)
    code = main(["sim", "run", str(scenario), "--transport", "loopback", "--pace", "0", "--seconds", "5",
                 "--truth", str(tmp_path / "t.json"), "--no-live"])
    assert code == 0
    out = capsys.readouterr().out
    assert "received" in out and (tmp_path / "t.json").exists()
    assert json.loads((tmp_path / "t.json").read_text())["patients"]["p-clean"]["device"]["frames_generated"] == 5 * 500 // 24


def test_cli_refuses_a_real_adapter_for_a_whole_ward(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", "run", "--transport", "ble", "--hci", "usb:0", "--pace", "0", "--seconds", "1", "--no-live"])
    assert code == 2
    assert "a real BLE adapter serves one virtual wearable" in capsys.readouterr().err


def test_the_demo_runs_with_no_services_and_writes_its_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = tmp_path / "demo.json"
    out = tmp_path / "edge"
    assert main(["demo", "--pace", "0", "--seconds", "4", "--no-live", "--truth", str(truth), "--out", str(out)]) == 0
    patients = json.loads(truth.read_text())["patients"]
    assert len(patients) == 8 and all(p["device"]["frames_sent"] > 0 for p in patients.values())
    captured = capsys.readouterr()
    assert "embedded MQTT broker on 127.0.0.1:" in captured.err
    assert "the edge agent took" in captured.out and (out / "edge" / "outbox.sqlite").exists()  # the demo's edge files: --out/edge
