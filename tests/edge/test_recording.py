"""Recording a live device's stream to WFDB: lost frames stay lost (NaN), and a recording replays
through the gateway into the same alerts as the live stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgstream.streaming import (
    BrokerAddress,
    DeviceBuilder,
    EdgeSettings,
    Medium,
    TransportFactory,
    stream,
    stream_to_edge,
)
from ecgstream.ward_view import AlertLogEntry, EdgeWardView, WardView
from edge.recording import StreamRecorder, record_from_broker
from firmware_sim.device import VirtualDevice
from firmware_sim.profiles import get_profile
from firmware_sim.records import read_record
from firmware_sim.replay import ReplaySource
from firmware_sim.scenario import parse_scenario
from firmware_sim.ward import build_ward
from protocol.ble_frame import EcgFrame
from protocol.leads import WEARABLE_LEADS
from tests.conftest import MqttBroker

SPF = 36


def _frame(seq: int, fs: int = 250) -> EcgFrame:
    """Frame ``seq`` of a ramp: sample i of lead j is (i * 3 + j) µV, so any misplacement shows."""
    first = seq * SPF
    counts = (np.arange(first, first + SPF)[:, None] * 3 + np.arange(3)[None, :]).astype(np.int32)
    return EcgFrame(seq=seq, t0_us=round(first * 1e6 / fs), fs_hz=fs, leads=WEARABLE_LEADS, samples=counts)


def test_lost_frames_are_nan_in_the_record_and_noted_in_its_header(tmp_path: Path) -> None:
    recorder = StreamRecorder("dev-1")
    for seq in (0, 1, 2, 5, 4, 6, 7, 8, 9):  # 3 lost, 4 late
        recorder.push(_frame(seq), arrival_s=0.1 * seq)
    recorder.flush()
    header = recorder.write(tmp_path / "rec")

    back = read_record(header)
    assert back.lead_names == WEARABLE_LEADS and back.fs == 250.0
    assert back.n_samples == 10 * SPF
    lost = np.isnan(back.signals)
    assert lost[3 * SPF:4 * SPF].all() and lost.sum() == SPF * 3
    expected = (np.arange(10 * SPF)[:, None] * 3 + np.arange(3)[None, :]) * 1e-3
    np.testing.assert_allclose(back.signals[~lost], expected[~lost], atol=1e-9)
    comments = wfdb.rdheader(str(tmp_path / "rec")).comments
    assert any("36 per lead in 1 gaps" in c for c in comments)
    assert any(c.startswith("gap at 0.432 s for 0.144 s") for c in comments)


def test_a_recorder_that_got_nothing_says_so(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing recorded from device dev-2"):
        StreamRecorder("dev-2").write(tmp_path / "empty")


VT_SCENARIO = """
name = "vt-to-record"
duration_s = 40
seed = 7
[[patient]]
id = "{patient}"
device = "{device}"
rhythm = [ {{ at = 0, name = "sinus" }}, {{ at = 18, name = "vt" }} ]
"""


def _raised(view: EdgeWardView) -> list[AlertLogEntry]:
    return [a for a in view.alerts if a.event == "raised"]


def _through_edge(build: DeviceBuilder, device: str, patient: str, out: Path) -> list[AlertLogEntry]:
    view = EdgeWardView({device: patient})
    asyncio.run(stream_to_edge(build, Medium("loopback"), pace=float("inf"), duration_s=40.0,
                               view=view, settings=EdgeSettings(out_dir=out, patients={device: patient}),
                               live=False))
    return _raised(view)


@pytest.mark.mosquitto
@pytest.mark.slow
def test_a_recorded_vt_stream_replays_into_the_same_alerts(
    tmp_path: Path, mqtt_broker: MqttBroker, unique_id: str
) -> None:
    device, patient = f"{unique_id}d", f"{unique_id}p"
    scenario = parse_scenario(VT_SCENARIO.format(device=device, patient=patient))

    def live(transport: TransportFactory) -> list[VirtualDevice]:
        return [bed.device for bed in build_ward(scenario, transport)]

    recorder = StreamRecorder(device)

    async def record_while_streaming() -> None:
        subscribed = asyncio.Event()
        task = asyncio.create_task(record_from_broker(recorder, hostname=mqtt_broker.host, port=mqtt_broker.port,
                                                      seconds=40.0, subscribed=subscribed, idle_timeout_s=5.0))
        await asyncio.wait_for(subscribed.wait(), 10.0)
        await stream(live, Medium("mqtt", BrokerAddress(mqtt_broker.host, mqtt_broker.port)), pace=float("inf"),
                     duration_s=40.0, view=WardView({device: patient}), live=False)
        await asyncio.wait_for(task, 30.0)

    asyncio.run(record_while_streaming())
    header = recorder.write(tmp_path / "recorded")
    assert recorder.duration_s == pytest.approx(40.0, abs=0.2)
    assert recorder.lost_samples == 0

    profile = get_profile("ecgstream-250")

    def replayed(transport: TransportFactory) -> list[VirtualDevice]:
        source = ReplaySource(header, leads=profile.leads, fs=profile.fs_hz)
        return [VirtualDevice(device, profile, source, transport(device, profile))]

    original = _through_edge(live, device, patient, tmp_path / "live")
    again = _through_edge(replayed, device, patient, tmp_path / "replay")
    assert any(a.alert_type == "vt" and 18.0 <= a.at_s <= 30.0 for a in original)
    assert sorted(a.alert_type for a in again) == sorted(a.alert_type for a in original)
    for a in original:
        match = [b for b in again if b.alert_type == a.alert_type]
        assert min(abs(b.at_s - a.at_s) for b in match) <= 1.0, (a, match)
