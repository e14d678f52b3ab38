"""Each injected fault does what it says, is counted, and is logged as ground truth."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from firmware_sim.device import VirtualDevice
from firmware_sim.faults import (
    LOST_KINDS,
    DisconnectPolicy,
    FaultConfig,
    FaultInjector,
    FaultKind,
    GilbertElliott,
    Interval,
    LeadOff,
    LeadOffMode,
)
from firmware_sim.profiles import get_profile
from firmware_sim.source import ArraySource
from firmware_sim.transports.loopback import LoopbackHub, MessageKind
from protocol.ble_frame import decode_frame, quantize
from protocol.leads import WEARABLE_LEADS
from protocol.messages import DeviceStatus, decode_message

PERIOD = 36 / 250


def _route(config: FaultConfig, n: int, chunk: int = 1000) -> tuple[FaultInjector[int], list[int]]:
    """Route frames 0..n-1 due every PERIOD; returns the injector and seqs in arrival order."""
    inj: FaultInjector[int] = FaultInjector(config, PERIOD)
    arrivals = []
    for start in range(0, n, chunk):
        seqs = np.arange(start, min(n, start + chunk))
        arrivals += inj.route(list(seqs), (seqs + 1) * PERIOD, seqs, 36)
    order = sorted(range(len(arrivals)), key=lambda i: (arrivals[i].release_s, i))
    return inj, [arrivals[i].payload for i in order]


def _lost_seqs(inj: FaultInjector) -> list[int]:
    return sorted(e.seq for e in inj.events if e.kind in LOST_KINDS)


def test_random_loss_rate_is_near_p_and_every_loss_is_logged():
    inj, arrived = _route(FaultConfig(seed=3, loss_p=0.1), 20_000)
    assert inj.stats.lost_random / 20_000 == pytest.approx(0.1, abs=0.01)
    assert sorted(set(range(20_000)) - set(arrived)) == _lost_seqs(inj)
    assert inj.stats.samples_lost == 36 * inj.stats.lost_random
    assert arrived == sorted(arrived)


def test_gilbert_elliott_losses_come_in_bursts_of_the_configured_mean_length():
    channel = GilbertElliott(p_enter_bad=0.02, p_leave_bad=0.25)
    inj, arrived = _route(FaultConfig(seed=5, burst=channel), 50_000)
    lost = np.array(_lost_seqs(inj))
    runs = np.split(lost, np.flatnonzero(np.diff(lost) != 1) + 1)
    assert inj.stats.lost_burst == len(lost) == 50_000 - len(arrived)
    assert len(lost) / 50_000 == pytest.approx(channel.loss_rate, rel=0.15)
    assert np.mean([len(r) for r in runs]) == pytest.approx(channel.mean_burst_frames, rel=0.15)
    assert inj.stats.bursts == pytest.approx(len(runs), rel=0.05)


def test_duplicates_arrive_twice_and_are_counted():
    inj, arrived = _route(FaultConfig(seed=7, duplicate_p=0.05), 10_000)
    twice = sorted(s for s, c in Counter(arrived).items() if c == 2)
    assert len(twice) == inj.stats.duplicated
    assert inj.stats.duplicated / 10_000 == pytest.approx(0.05, abs=0.01)
    assert twice == sorted(e.seq for e in inj.events if e.kind is FaultKind.DUPLICATE)
    assert set(arrived) == set(range(10_000))


def test_reordered_frames_arrive_after_their_successor():
    inj, arrived = _route(FaultConfig(seed=11, reorder_p=0.03), 10_000)
    held = {e.seq for e in inj.events if e.kind is FaultKind.REORDER}
    assert len(held) == inj.stats.reordered
    assert inj.stats.reordered / 10_000 == pytest.approx(0.03, abs=0.01)
    position = {s: i for i, s in enumerate(arrived)}
    isolated = [s for s in held if s + 1 < 10_000 and s + 1 not in held]
    assert isolated and all(position[s] > position[s + 1] for s in isolated)
    assert sorted(arrived) == list(range(10_000))


def test_jitter_delays_frames_but_keeps_their_order():
    inj, arrived = _route(FaultConfig(seed=2, jitter_mean_s=0.05, jitter_max_s=0.3), 5_000)
    assert arrived == list(range(5_000))
    assert inj.stats.delayed > 4_000
    assert 0 < inj.stats.max_delay_s <= 0.3


def test_outcome_depends_on_the_seed_only_not_on_batching():
    config = FaultConfig(seed=9, loss_p=0.05, duplicate_p=0.02, reorder_p=0.02, burst=GilbertElliott(0.01, 0.3))
    one_by_one = _route(config, 3_000, chunk=1)
    all_at_once = _route(config, 3_000, chunk=3_000)
    assert one_by_one[1] == all_at_once[1]
    assert one_by_one[0].events == all_at_once[0].events
    assert _route(FaultConfig(seed=10, loss_p=0.05), 3_000)[1] != _route(config, 3_000)[1]


# -- through a device on the loopback hub ---------------------------------------------------------


async def _stream(config: FaultConfig, seconds: float, signal: np.ndarray | None = None):
    hub = LoopbackHub()
    sub = hub.subscribe()
    profile = get_profile("ecgstream-250")
    if signal is None:
        signal = np.random.default_rng(0).normal(0, 1, size=(250 * 10, 3))
    device = VirtualDevice("dev-1", profile, ArraySource(signal, 250, WEARABLE_LEADS, loop=True), hub.transport("dev-1"), faults=config)
    await device.run(seconds, pace=math.inf)
    messages = sub.drain()
    frames = [decode_frame(m.data) for m in messages if m.kind is MessageKind.FRAME]
    statuses = [decode_message(m.data, DeviceStatus) for m in messages if m.kind is MessageKind.STATUS]
    return device, frames, statuses


async def test_receiver_gap_count_matches_the_ground_truth_log():
    device, frames, _ = await _stream(FaultConfig(seed=4, loss_p=0.08, burst=GilbertElliott(0.01, 0.3)), 120)
    seqs = [f.seq for f in frames]
    missing = sorted(set(range(device.stats.frames_generated)) - set(seqs))
    assert missing == sorted(e.seq for e in device.events if e.kind in LOST_KINDS)
    assert device.faults.stats.frames_lost == len(missing) > 0


async def test_disconnect_drop_loses_exactly_the_frames_due_while_down():
    config = FaultConfig(disconnects=(Interval(2.0, 4.0),))
    device, frames, statuses = await _stream(config, 6)
    due = {f.seq: (f.seq + 1) * PERIOD for f in frames}
    lost = _lost_seqs(device.faults)
    assert lost == [s for s in range(device.stats.frames_generated) if 2.0 <= (s + 1) * PERIOD < 4.0]
    assert all(not 2.0 <= t < 4.0 for t in due.values())
    assert device.faults.stats.disconnects == 1 and device.faults.stats.lost_disconnect == len(lost)
    kinds = [e.kind for e in device.events if e.kind in (FaultKind.DISCONNECT_START, FaultKind.DISCONNECT_END)]
    assert kinds == [FaultKind.DISCONNECT_START, FaultKind.DISCONNECT_END]
    assert [s.connected for s in statuses] == [True, False, True, False]  # start, link lost, back, shut down


async def test_disconnect_buffer_keeps_the_newest_frames_and_sends_them_on_reconnect():
    config = FaultConfig(disconnects=(Interval(2.0, 4.0),), disconnect_policy=DisconnectPolicy.BUFFER, buffer_frames=5)
    device, frames, _ = await _stream(config, 6)
    down = [s for s in range(device.stats.frames_generated) if 2.0 <= (s + 1) * PERIOD < 4.0]
    assert _lost_seqs(device.faults) == down[:-5]
    assert device.faults.stats.lost_buffer_overflow == len(down) - 5 and device.faults.stats.buffered == 5
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and set(down[-5:]) <= set(seqs)


@pytest.mark.parametrize("mode", list(LeadOffMode))
async def test_lead_off_flags_frames_and_flattens_or_rails_the_affected_leads(mode):
    signal = np.random.default_rng(1).normal(0, 1, size=(250 * 4, 3))
    config = FaultConfig(lead_off=(LeadOff(1.0, 2.0, ("V1",), mode),))
    device, frames, _ = await _stream(config, 4, signal)
    samples = np.concatenate([f.samples for f in frames])
    expected = quantize(signal[: len(samples)], 1000, get_profile("ecgstream-250").sample_format)
    off = slice(250, 500)
    assert (samples[off, 1] == (32767 if mode is LeadOffMode.RAIL else 0)).all()  # V1
    np.testing.assert_array_equal(samples[:, [0, 2]], expected[:, [0, 2]])  # II and V5 untouched
    np.testing.assert_array_equal(np.delete(samples[:, 1], np.r_[off]), np.delete(expected[:, 1], np.r_[off]))
    flagged = [i for i, f in enumerate(frames) if f.lead_off == ("V1",)]
    assert flagged == [i for i in range(len(frames)) if i * 36 < 500 and (i + 1) * 36 > 250]
    assert device.faults.stats.lead_off_frames == len(flagged) and device.faults.stats.lead_off_intervals == 1
    assert [e.kind for e in device.events] == [FaultKind.LEAD_OFF_START, FaultKind.LEAD_OFF_END]


async def test_a_detached_limb_electrode_hits_every_lead():
    config = FaultConfig(lead_off=(LeadOff(0.0, 1.0, ("RA",)),))
    _, frames, _ = await _stream(config, 2)
    assert (np.concatenate([f.samples for f in frames])[:250] == 0).all()


async def test_battery_drains_to_empty_and_the_device_stops():
    config = FaultConfig(battery_start_pct=30, battery_drain_speedup=20_000)  # 80 h battery: 30 % in ~4.3 s
    device, frames, _ = await _stream(config, 60)
    levels = [f.battery_pct for f in frames]
    assert levels == sorted(levels, reverse=True) and levels[0] == 30 and levels[-1] <= 1
    assert device.stats.stop_reason == "battery empty" and device.faults.stats.battery_empty
    kinds = [e.kind for e in device.events]
    assert kinds == [FaultKind.BATTERY_LOW, FaultKind.BATTERY_EMPTY]
    assert frames[-1].seq + 1 == device.stats.frames_generated < 60 / PERIOD
