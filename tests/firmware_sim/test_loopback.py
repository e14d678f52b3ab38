"""Loopback hub: complete, ordered delivery for a fleet; counted drops for a slow receiver."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from firmware_sim.device import VirtualDevice
from firmware_sim.fleet import Fleet
from firmware_sim.profiles import get_profile
from firmware_sim.source import ArraySource
from firmware_sim.transports.base import TransportError
from firmware_sim.transports.loopback import LoopbackHub, MessageKind, Overflow
from protocol.ble_frame import EcgFrame, decode_frame, quantize
from protocol.leads import WEARABLE_LEADS
from protocol.messages import DeviceStatus, decode_message
from protocol.polar_pmd import decode_pmd_ecg


async def test_fleet_of_50_devices_delivers_every_frame_in_order():
    hub = LoopbackHub()
    sub = hub.subscribe()
    rng = np.random.default_rng(0)
    signals = [rng.normal(0, 1, size=(250 * 3, 3)) for _ in range(50)]
    fleet = Fleet.on_loopback(hub, [ArraySource(s, 250, WEARABLE_LEADS) for s in signals], "ecgstream-250")
    stats = await fleet.run(None, pace=math.inf)

    per_device: dict[str, list[EcgFrame]] = {}
    for device_id, data, kind in sub.drain():
        if kind is MessageKind.FRAME:
            per_device.setdefault(device_id, []).append(decode_frame(data))
    assert len(per_device) == 50
    for i, signal in enumerate(signals):
        frames = per_device[f"sim-{i:04d}"]
        assert [f.seq for f in frames] == list(range(len(frames)))
        np.testing.assert_array_equal(np.concatenate([f.samples for f in frames]), quantize(signal, 1000, frames[0].sample_format))
    assert stats.frames_sent == stats.frames_generated == sum(len(f) for f in per_device.values())
    assert sub.dropped == 0 and stats.frames_failed == 0


@pytest.mark.parametrize(("overflow", "kept"), [(Overflow.DROP_OLDEST, range(15, 25)), (Overflow.DROP_NEWEST, range(10))])
def test_a_slow_subscriber_loses_counted_messages_under_its_policy(overflow, kept):
    hub = LoopbackHub()
    slow = hub.subscribe(maxsize=10, overflow=overflow)
    fast = hub.subscribe()
    for i in range(25):
        hub.publish("dev", bytes([i]))
    assert slow.dropped == 15 and hub.dropped == 15
    assert [m.data[0] for m in slow.drain()] == list(kept)
    assert len(fast.drain()) == 25 and fast.dropped == 0


def test_a_subscriber_gets_only_the_devices_it_asked_for():
    hub = LoopbackHub()
    sub = hub.subscribe(["a", "c"])
    for device_id in "abcab":
        hub.publish(device_id, b"x")
    assert [m.device_id for m in sub.drain()] == ["a", "c", "a"]


async def test_async_iteration_waits_for_messages_and_ends_when_closed():
    hub = LoopbackHub()
    sub = hub.subscribe()

    async def receive() -> list[bytes]:
        return [m.data async for m in sub]

    task = asyncio.create_task(receive())
    await asyncio.sleep(0)
    hub.publish("dev", b"1")
    hub.publish("dev", b"2")
    await asyncio.sleep(0)
    sub.close()
    assert await asyncio.wait_for(task, 5) == [b"1", b"2"]
    hub.publish("dev", b"3")
    assert len(sub) == 0


async def test_a_dropped_link_announces_itself_and_refuses_frames():
    hub = LoopbackHub()
    sub = hub.subscribe()
    transport = hub.transport("dev-7")
    async with transport:
        assert hub.connected_devices == {"dev-7"}
        await transport.send_status(DeviceStatus("dev-7", t_device_us=123, battery_pct=80))
    assert hub.connected_devices == frozenset()
    with pytest.raises(TransportError):
        transport.send_encoded(b"frame")
    statuses = [decode_message(m.data, DeviceStatus) for m in sub.drain()]
    assert [(s.connected, s.battery_pct, s.t_device_us) for s in statuses] == [(True, 80, 123), (False, 80, 123)]


async def test_a_polar_device_sends_pmd_notifications():
    hub = LoopbackHub()
    sub = hub.subscribe()
    signal = np.random.default_rng(2).normal(0, 1, size=(130 * 3, 1))
    profile = get_profile("polar-h10")
    transport = hub.transport("h10", wire=profile.wire)
    await VirtualDevice("h10", profile, ArraySource(signal, 130, ("I",)), transport).run(None, pace=math.inf)
    notes = [decode_pmd_ecg(m.data) for m in sub.drain() if m.kind is MessageKind.PMD]
    assert [len(n.samples_uv) for n in notes] == [73] * 5 + [390 - 5 * 73]
    np.testing.assert_array_equal(np.concatenate([n.samples_uv for n in notes]), np.rint(signal[:, 0] * 1000))
