"""The running gateway (``edge.runtime.run_gateway``) fed over BLE: simulated wearables as bumble GATT
servers on an emulated radio, the gateway's ``BleIngest`` as central, alerts into the outbox.

Devices stream ``PACE`` times faster than real time, and the gateway runs on a clock at the same pace
(``run_gateway(clock=…)``), so device and gateway clocks agree and every alarm delay is in seconds of
signal; nothing here asserts wall-clock time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from edge.agent import EdgeAgent
from edge.ble.bumble_backend import BumbleBackend
from edge.config.schema import (
    BleDeviceConfig,
    EdgeConfig,
    IngestConfig,
    MqttIngestConfig,
    ObservabilityConfig,
    ProcessingConfig,
    UplinkConfig,
)
from edge.runtime import run_gateway
from edge.uplink.outbox import Kind, Outbox
from firmware_sim.profiles import DeviceProfile
from firmware_sim.scenario import parse_scenario
from firmware_sim.transports.ble import BlePeripheralTransport
from firmware_sim.transports.ble_emulated import EmulatedLink
from firmware_sim.ward import build_ward
from protocol.messages import Alert, AlertCategory, Priority, decode_message
from tests.ble_support import emulated_central

PACE = 4.0
WAIT_S = 30.0  # wall-clock bound on the whole run, so a broken link fails instead of hanging

WARD = """
name = "agent-ble"
duration_s = 45
seed = 21

[[patient]]
id = "p-vt"
device = "d-vt"
heart_rate = 70
rhythm = [ { at = 0, name = "sinus" }, { at = 12, name = "vt", heart_rate = 180 }, { at = 20, name = "sinus" } ]
events = [ { at = 24, until = 45, kind = "disconnect" } ]

[[patient]]
id = "p-ok"
device = "d-ok"
heart_rate = 75
rhythm = [ { at = 0, name = "sinus" } ]
"""


def _config(tmp_path: Path) -> EdgeConfig:
    ble = tuple(BleDeviceConfig(patient=p, name=d, device_id=d, backend="bumble") for p, d in
                (("p-vt", "d-vt"), ("p-ok", "d-ok")))
    return EdgeConfig(
        gateway_id="edge-ble-test",
        ingest=IngestConfig(mqtt=MqttIngestConfig(enabled=False), ble=ble),
        processing=ProcessingConfig(backend="onnxruntime-cpu", max_batch=8, latency_deadline_ms=20.0),
        uplink=UplinkConfig(outbox_path=tmp_path / "outbox.sqlite"),
        observability=ObservabilityConfig(status_file=tmp_path / "status.json"),
    )


def _outbox_alerts(path: Path) -> list[Alert]:
    outbox = Outbox(path)
    try:
        return [decode_message(m.payload, Alert) for m in outbox.peek(100_000) if m.kind is Kind.ALERT]
    finally:
        outbox.close()


def _raised(alerts: list[Alert], alert_type: str) -> list[Alert]:
    return [a for a in alerts if a.alert_type == alert_type and a.details["event"] == "raised"]


async def test_vt_and_disconnect_over_bumble_reach_the_outbox_for_the_right_patient(tmp_path: Path) -> None:
    config = _config(tmp_path)
    link = EmulatedLink()

    def transport(device_id: str, profile: DeviceProfile) -> BlePeripheralTransport:
        return BlePeripheralTransport(device_id, link, leads=profile.leads, fs_hz=profile.fs_hz,
                                      sample_format=profile.sample_format)

    def central(kind: str, hci: str | None) -> BumbleBackend:
        assert (kind, hci) == ("bumble", None)
        return emulated_central(link)

    m0, t0 = time.monotonic(), 1_700_000_000.0

    def paced() -> float:
        return t0 + PACE * (time.monotonic() - m0)

    scenario = parse_scenario(WARD)
    beds = build_ward(scenario, transport)
    stop = asyncio.Event()
    ready: asyncio.Future[EdgeAgent] = asyncio.get_running_loop().create_future()
    gateway = asyncio.create_task(run_gateway(config, ingest=None, uplink=None, stop=stop, tick_s=0.1,
                                              on_ready=ready.set_result, ble_backend_factory=central, clock=paced))
    devices = [asyncio.create_task(bed.device.run(scenario.duration_s, pace=PACE)) for bed in beds]
    try:
        agent = await asyncio.wait_for(ready, WAIT_S)

        def alerts_of(device_id: str) -> list[str]:
            s = agent.sessions.get(device_id)
            return [] if s is None else list(s.engine.active)

        async def until_disconnected() -> None:
            while "device_disconnected" not in alerts_of("d-vt"):
                if gateway.done():
                    await gateway  # surfaces the gateway's exception
                await asyncio.sleep(0.05)

        await asyncio.wait_for(until_disconnected(), WAIT_S)
        assert "device_disconnected" not in alerts_of("d-ok")          # the other wearable still streams
        assert agent.sessions["d-ok"].link_up and not agent.sessions["d-vt"].link_up
        assert agent.ble.stats["d-vt"].disconnects >= 1 and agent.ble.stats["d-ok"].disconnects == 0
        assert agent.sessions["d-vt"].counters.link_drops >= 1
        assert {s.transport for s in agent.sessions.values()} == {"ble"}
    finally:
        stop.set()
        for d in devices:
            d.cancel()
        await asyncio.gather(*devices, return_exceptions=True)
        with contextlib.suppress(asyncio.CancelledError):
            agent = await asyncio.wait_for(gateway, WAIT_S)

    alerts = _outbox_alerts(config.uplink.outbox_path)                 # what the uplink would send
    vt = _raised(alerts, "vt")
    assert [(a.patient_id, a.device_id) for a in vt] == [("p-vt", "d-vt")], vt
    assert vt[0].priority is Priority.HIGH and 12.0 <= vt[0].details["onset_s"] <= vt[0].details["at_s"] <= 20.0
    assert [a for a in alerts if a.patient_id == "p-ok" and a.category is AlertCategory.CLINICAL] == []
    gone = _raised(alerts, "device_disconnected")
    assert [(a.patient_id, a.device_id) for a in gone] == [("p-vt", "d-vt")], gone
    g = gone[0]
    assert g.category is AlertCategory.TECHNICAL and g.priority is Priority.MEDIUM
    assert 22.0 <= g.details["onset_s"] <= 25.0, g.details                # data ended at the scripted drop (24 s)
    assert g.details["at_s"] - g.details["onset_s"] >= 10.0 - 0.5          # after its persistence (disconnect_s)
    assert agent.counters.rejected == {}


def test_bumble_without_a_transport_spec_or_factory_is_a_clear_error(tmp_path: Path) -> None:
    """``backend = "bumble"`` with no ``hci`` needs an emulated link only a simulator process has."""
    from edge.ble import BleError

    stop = asyncio.Event()
    with pytest.raises(BleError, match="transport spec"):
        asyncio.run(run_gateway(_config(tmp_path), ingest=None, uplink=None, stop=stop))
