"""A virtual device streams at its pace, never early, reports status, and stops cleanly."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from firmware_sim.device import VirtualDevice
from firmware_sim.source import ArraySource
from firmware_sim.transports.loopback import LoopbackHub, MessageKind
from protocol.ble_frame import decode_frame, quantize
from protocol.leads import WEARABLE_LEADS
from protocol.messages import DeviceStatus, decode_message


def _source(seconds: float = 10, fs: int = 250, loop: bool = True) -> ArraySource:
    signal = np.random.default_rng(0).normal(0, 1, size=(int(seconds * fs), 3))
    return ArraySource(signal, fs, WEARABLE_LEADS, loop=loop)


def test_a_source_at_another_rate_is_refused_not_resampled():
    with pytest.raises(ValueError, match="360.0 Hz.*250 Hz.*resample"):
        VirtualDevice("d", "ecgstream-250", _source(fs=360), LoopbackHub().transport("d"))


def test_a_source_with_other_leads_is_refused():
    source = ArraySource(np.zeros((10, 2)), 250, ("I", "II"))
    with pytest.raises(ValueError, match="leads"):
        VirtualDevice("d", "ecgstream-250", source, LoopbackHub().transport("d"))


def test_a_frame_larger_than_a_ble_notification_is_refused():
    with pytest.raises(ValueError, match="exceed"):
        VirtualDevice("d", "ecgstream-250", _source(), LoopbackHub().transport("d"), samples_per_frame=50)


async def test_frames_are_never_sent_before_their_last_sample_is_due():
    hub = LoopbackHub()
    sub = hub.subscribe()
    loop = asyncio.get_running_loop()
    arrivals: list[tuple[float, int]] = []

    async def receive() -> None:
        async for m in sub:
            if m.kind is MessageKind.FRAME:
                arrivals.append((loop.time(), decode_frame(m.data).seq))

    receiver = asyncio.create_task(receive())
    start = loop.time()
    device = VirtualDevice("d", "ecgstream-250", _source(), hub.transport("d"))
    await device.run(2.0, pace=20.0)
    await asyncio.sleep(0)
    sub.close()
    await receiver
    assert [s for _, s in arrivals] == list(range(device.stats.frames_generated))
    assert device.stats.frames_generated == math.floor(2.0 * 250 / 36)
    # frame s is due (s + 1) * 36 / 250 stream seconds after the start, i.e. 20x sooner in loop time
    assert all(t >= start + (s + 1) * 36 / 250 / 20.0 for t, s in arrivals)
    assert device.stats.max_lateness_s >= 0


async def test_periodic_status_reports_carry_battery_profile_and_device_time():
    hub = LoopbackHub()
    sub = hub.subscribe()
    device = VirtualDevice("d", "ecgstream-250", _source(), hub.transport("d"))
    await device.run(12.0, pace=math.inf)
    statuses = [decode_message(m.data, DeviceStatus) for m in sub.drain() if m.kind is MessageKind.STATUS]
    assert [s.t_device_us for s in statuses[:3]] == [0, 5_000_000, 10_000_000]
    assert all(s.profile == "ecgstream-250" and s.battery_pct == 100 for s in statuses)
    assert [s.connected for s in statuses] == [True, True, True, False]


async def test_a_source_that_ends_stops_the_device_after_its_last_short_frame():
    hub = LoopbackHub()
    sub = hub.subscribe()
    source = _source(seconds=1.0, loop=False)  # 250 samples: 6 frames of 36 and one of 34
    device = VirtualDevice("d", "ecgstream-250", source, hub.transport("d"))
    stats = await device.run(None, pace=math.inf)
    frames = [decode_frame(m.data) for m in sub.drain() if m.kind is MessageKind.FRAME]
    assert stats.stop_reason == "source ended"
    assert [f.n_samples for f in frames] == [36] * 6 + [34] and frames[-1].seq == 6


async def test_cancelling_a_running_device_disconnects_it_cleanly():
    hub = LoopbackHub()
    sub = hub.subscribe()
    device = VirtualDevice("d", "ecgstream-250", _source(), hub.transport("d"))
    task = asyncio.create_task(device.run(None, pace=10.0))
    while device.stats.frames_sent < 5:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not device.transport.connected and hub.connected_devices == frozenset()
    last = sub.drain()[-1]
    assert last.kind is MessageKind.STATUS and decode_message(last.data, DeviceStatus).connected is False


async def test_samples_reach_the_receiver_unchanged_at_accelerated_pace():
    hub = LoopbackHub()
    sub = hub.subscribe()
    signal = np.random.default_rng(5).normal(0, 1, size=(500, 3))
    device = VirtualDevice("d", "ecgstream-250", ArraySource(signal, 250, WEARABLE_LEADS), hub.transport("d"))
    await device.run(None, pace=50.0)
    frames = [decode_frame(m.data) for m in sub.drain() if m.kind is MessageKind.FRAME]
    np.testing.assert_array_equal(np.concatenate([f.samples for f in frames]), quantize(signal, 1000, frames[0].sample_format))


async def test_frames_shrink_to_what_the_transport_takes():
    hub = LoopbackHub()
    sub = hub.subscribe()
    transport = hub.transport("d")
    transport.max_samples_per_message = 20  # as a link with a smaller MTU would declare
    device = VirtualDevice("d", "ecgstream-250", _source(), transport)
    await device.run(1.0, pace=math.inf)
    assert {decode_frame(m.data).n_samples for m in sub.drain() if m.kind is MessageKind.FRAME} == {20}
