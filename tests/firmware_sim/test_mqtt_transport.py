"""MQTT transport against a real Mosquitto: payloads, status, last will, broker restart."""

from __future__ import annotations

import asyncio
import math
import sys
import textwrap
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from firmware_sim.device import VirtualDevice
from firmware_sim.faults import FaultKind
from firmware_sim.source import ArraySource
from firmware_sim.transports.base import TransportError
from firmware_sim.transports.mqtt import MqttDeviceTransport
from protocol.ble_frame import quantize
from protocol.leads import WEARABLE_LEADS
from protocol.messages import DeviceStatus, decode_message
from protocol.samples_payload import decode_samples_payload
from protocol.topics import device_status_topic, samples_topic
from tests.conftest import free_port

pytestmark = pytest.mark.mosquitto
REPO = Path(__file__).resolve().parents[2]


async def _receive(client: aiomqtt.Client, count: int, timeout_s: float = 15.0) -> list[aiomqtt.Message]:
    out = []
    async with asyncio.timeout(timeout_s):
        async for message in client.messages:
            out.append(message)
            if len(out) == count:
                return out
    return out


async def _until(condition, timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


async def test_samples_and_status_arrive_and_decode_to_the_source(mqtt_broker, unique_id):
    signal = np.random.default_rng(3).normal(0, 1, size=(750, 3))
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"{unique_id}-rx") as rx:
        await rx.subscribe(f"ecgstream/v1/device/{unique_id}/#", qos=1)
        transport = MqttDeviceTransport(
            unique_id, hostname=mqtt_broker.host, port=mqtt_broker.port, retain_status=False, samples_per_message=50
        )
        device = VirtualDevice(unique_id, "ecgstream-250", ArraySource(signal, 250, WEARABLE_LEADS), transport)
        await device.run(None, pace=math.inf)
        messages = await _receive(rx, 15 + 2)

    frames = [decode_samples_payload(m.payload) for m in messages if m.topic.matches(samples_topic(unique_id))]
    statuses = [decode_message(m.payload, DeviceStatus) for m in messages if m.topic.matches(device_status_topic(unique_id))]
    assert [f.seq for f in frames] == list(range(15)) and {f.n_samples for f in frames} == {50}
    np.testing.assert_array_equal(np.concatenate([f.samples for f in frames]), quantize(signal, 1000, frames[0].sample_format))
    assert [s.connected for s in statuses] == [True, False] and statuses[0].profile == "ecgstream-250"
    assert transport.messages_published == 17 and device.stats.frames_failed == 0


async def test_the_broker_publishes_the_last_will_when_a_device_dies(mqtt_broker, unique_id):
    script = textwrap.dedent(f"""
        import asyncio
        from firmware_sim.transports.mqtt import MqttDeviceTransport
        async def main():
            t = MqttDeviceTransport({unique_id!r}, hostname={mqtt_broker.host!r}, port={mqtt_broker.port},
                                    retain_status=False)
            await t.connect()
            print("connected", flush=True)
            await asyncio.sleep(120)
        asyncio.run(main())
    """)
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"{unique_id}-rx") as rx:
        await rx.subscribe(device_status_topic(unique_id), qos=1)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=REPO, stdout=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(30):
                assert (await proc.stdout.readline()).strip() == b"connected"
        finally:
            proc.kill()
            await proc.wait()
        (will,) = await _receive(rx, 1)
    status = decode_message(will.payload, DeviceStatus)
    assert status.device_id == unique_id and status.connected is False


async def test_the_transport_reconnects_after_a_broker_restart_and_counts_what_it_lost(mosquitto_process, unique_id):
    broker = mosquitto_process
    transport = MqttDeviceTransport(
        unique_id, hostname=broker.host, port=broker.port, retain_status=False, reconnect_min_s=0.1, reconnect_max_s=0.5
    )
    signal = np.random.default_rng(4).normal(0, 1, size=(2500, 3))
    device = VirtualDevice(unique_id, "ecgstream-250", ArraySource(signal, 250, WEARABLE_LEADS, loop=True), transport)
    task = asyncio.create_task(device.run(None, pace=5.0))
    try:
        await _until(lambda: device.stats.frames_sent >= 5)
        broker.stop()
        await _until(lambda: transport.drops == 1 and device.stats.frames_failed >= 3)
        sent_before_restart = device.stats.frames_generated
        await asyncio.to_thread(broker.start)
        await _until(lambda: transport.reconnects == 1)
        async with aiomqtt.Client(broker.host, broker.port, identifier=f"{unique_id}-rx") as rx:
            await rx.subscribe(samples_topic(unique_id), qos=1)
            frames = [decode_samples_payload(m.payload) for m in await _receive(rx, 3)]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert all(f.seq >= sent_before_restart for f in frames)
    assert [f.seq for f in frames] == list(range(frames[0].seq, frames[0].seq + 3))
    failed = [e for e in device.events if e.kind is FaultKind.SEND_FAILED]
    assert len(failed) == device.stats.frames_failed
    assert device.stats.frames_sent + device.stats.frames_failed == device.stats.frames_generated


async def test_an_unreachable_broker_is_a_clear_transport_error(unique_id):
    port = free_port()
    transport = MqttDeviceTransport(unique_id, port=port)
    with pytest.raises(TransportError, match=f"cannot connect {unique_id} to MQTT broker 127.0.0.1:{port}"):
        await transport.connect()
    with pytest.raises(TransportError, match="down"):
        await transport.send_status(DeviceStatus(unique_id, t_device_us=0))
