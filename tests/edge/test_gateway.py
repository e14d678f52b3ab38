"""The gateway as one object (``async with Gateway(config, ...)``) on a real Mosquitto.

A simulated wearable publishes its frames over MQTT; the gateway's MQTT ingest takes them, the agent
raises an alert, the outbox stores it and the uplink delivers it to a subscriber on the patient's
alert topic. Leaving the ``async with`` stops everything cleanly: no status file is left behind and
nothing is left in the outbox. Each test has its own gateway id, device and patient (``unique_id``),
so runs never see each other's messages on the shared broker.

The wearable streams ``PACE`` times faster than real time and the gateway's clock runs at the same
pace, so alarm delays are in seconds of signal; nothing here asserts wall-clock time.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiomqtt
import pytest

from edge.config import parse_config
from edge.config.schema import EdgeConfig
from edge.gateway import Endpoint, Gateway, GatewayError
from edge.ingest.mqtt import PayloadSink
from edge.uplink.outbox import Outbox
from firmware_sim.scenario import parse_scenario
from firmware_sim.transports.mqtt import MqttDeviceTransport
from firmware_sim.ward import build_ward, run_ward
from protocol.messages import Alert, decode_message
from tests.conftest import MqttBroker

PACE = 4.0
WAIT_S = 60.0  # wall-clock bound, so a broken path fails instead of hanging


def _ward(device: str) -> str:
    return f"""
name = "gateway-test"
duration_s = 20
seed = 4
[[patient]]
id = "{device}"
device = "{device}"
rhythm = [ {{ at = 0, name = "sinus" }}, {{ at = 8, name = "asystole" }} ]
"""


def _config(broker: MqttBroker, gateway_id: str, tmp_path: Path, metrics_port: int = 0) -> EdgeConfig:
    return parse_config(f"""
gateway_id = "{gateway_id}"
[ingest.mqtt]
host = "{broker.host}"
port = {broker.port}
[uplink]
host = "{broker.host}"
port = {broker.port}
receipts = false          # no cloud in this test: delivered means acknowledged by the broker
outbox_path = "{tmp_path / 'outbox.sqlite'}"
[observability]
status_file = "{tmp_path / 'status.json'}"
status_interval_s = 0.2
metrics_port = {metrics_port}
""")


async def test_a_wearables_frames_in_an_alert_out_through_outbox_and_uplink_and_a_clean_stop(
    mqtt_broker: MqttBroker, unique_id: str, tmp_path: Path
) -> None:
    config = _config(mqtt_broker, f"{unique_id}-gw", tmp_path)
    broker = Endpoint(mqtt_broker.host, mqtt_broker.port)
    m0, t0 = time.monotonic(), 1_700_000_000.0

    def paced() -> float:
        return t0 + PACE * (time.monotonic() - m0)

    alerts: list[Alert] = []
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"{unique_id}-cloud") as cloud:
        await cloud.subscribe(f"ecgstream/v1/patient/{unique_id}/alert", qos=1)

        async def asystole_alert() -> None:
            async for m in cloud.messages:
                assert isinstance(m.payload, bytes)
                alerts.append(decode_message(m.payload, Alert))
                if any(a.alert_type in ("pause", "asystole") for a in alerts):
                    return

        async with Gateway(config, ingest=broker, uplink=broker, clock=paced) as gateway:
            await gateway.ready()
            stop = asyncio.Event()
            ticking = asyncio.create_task(gateway.run_until(stop, tick_s=0.1 / PACE))
            beds = build_ward(parse_scenario(_ward(unique_id)),
                              lambda d, p: MqttDeviceTransport(d, hostname=mqtt_broker.host, port=mqtt_broker.port))
            wearable = asyncio.create_task(run_ward(beds, pace=PACE))
            try:
                await asyncio.wait_for(asystole_alert(), WAIT_S)
                assert (tmp_path / "status.json").exists()       # written while it runs
            finally:
                await wearable
                stop.set()
                await ticking
            await gateway.drain(flush_sessions=True)
            assert await gateway.delivered(WAIT_S)
            agent = gateway.agent

    asys = [a for a in alerts if a.alert_type in ("pause", "asystole")]
    assert (asys[0].patient_id, asys[0].device_id) == (unique_id, unique_id)
    assert 8.0 < asys[0].details["at_s"] < 14.0
    # the shared broker may hold other tests' retained device statuses: those ids only meet the
    # gateway's limit on new devices; nothing of this wearable is refused
    refused = {r: n for r, n in agent.counters.rejected.items() if r != "new_device_rate"}
    assert refused == {} and unique_id in agent.sessions and agent.counters.alerts >= 1
    assert {s.transport for s in agent.sessions.values()} == {"mqtt"}
    assert not (tmp_path / "status.json").exists()             # removed on a clean stop
    outbox = Outbox(config.uplink.outbox_path)
    try:
        assert outbox.total_depth == 0                          # everything stored was delivered
    finally:
        outbox.close()


async def test_a_feed_hands_payloads_in_process_and_bad_ones_are_counted_not_raised(
    mqtt_broker: MqttBroker, unique_id: str, tmp_path: Path
) -> None:
    """An in-process source (as the demo's loopback hub) feeds the same agent as the brokers do."""
    config = _config(mqtt_broker, f"{unique_id}-gw", tmp_path)
    fed = asyncio.Event()

    async def garbage(sink: PayloadSink) -> None:
        sink.feed(unique_id, b"\x00not a frame", "frame", transport="loopback")
        fed.set()

    async with Gateway(config, feeds=[garbage], mode="sync") as gateway:
        await asyncio.wait_for(fed.wait(), WAIT_S)
        gateway.tick()
        assert gateway.agent.counters.rejected == {"decode": 1}
        assert gateway.agent.sessions[unique_id].transport == "loopback"
        assert (tmp_path / "status.json").exists()
    assert not (tmp_path / "status.json").exists()


async def test_a_metrics_port_in_use_is_one_error_naming_the_key_and_opens_nothing(
    mqtt_broker: MqttBroker, unique_id: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(mqtt_broker, f"{unique_id}-gw", tmp_path, metrics_port=port)
        with pytest.raises(GatewayError) as caught:
            async with Gateway(config, ingest=Endpoint(mqtt_broker.host, mqtt_broker.port)):
                pytest.fail("the gateway started on a port in use")
    message = str(caught.value)
    assert "observability.metrics_port" in message and str(port) in message and "\n" not in message
    assert not (tmp_path / "outbox.sqlite").exists()
