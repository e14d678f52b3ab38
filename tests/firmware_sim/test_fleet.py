"""Fleet: one scheduler for many devices; per-device truth survives the batching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware_sim.device import VirtualDevice
from firmware_sim.faults import LOST_KINDS, FaultConfig
from firmware_sim.fleet import Fleet
from firmware_sim.profiles import get_profile
from firmware_sim.source import ArraySource
from firmware_sim.transports.loopback import LoopbackHub, MessageKind
from protocol.ble_frame import decode_frame, quantize
from protocol.polar_pmd import decode_pmd_ecg


def _sources(n: int, seconds: float, fs: int = 250, leads: tuple[str, ...] = ("II", "V1", "V5")) -> list[ArraySource]:
    rng = np.random.default_rng(42)
    return [ArraySource(rng.normal(0, 1, size=(int(seconds * fs), len(leads))), fs, leads, loop=True) for _ in range(n)]


async def test_each_devices_gaps_match_its_own_ground_truth():
    hub = LoopbackHub()
    sub = hub.subscribe()
    fleet = Fleet.on_loopback(hub, _sources(20, 5), "ecgstream-250", faults=FaultConfig(seed=100, loss_p=0.05))
    stats = await fleet.run(30.0, pace=math.inf)
    seqs: dict[str, set[int]] = {}
    for device_id, data, kind in sub.drain():
        if kind is MessageKind.FRAME:
            seqs.setdefault(device_id, set()).add(decode_frame(data).seq)
    lost_patterns = set()
    for device in fleet.devices:
        missing = set(range(device.stats.frames_generated)) - seqs[device.device_id]
        assert missing == {e.seq for e in device.events if e.kind in LOST_KINDS}
        lost_patterns.add(frozenset(missing))
    assert len(lost_patterns) == 20  # per-device seeds: devices fail independently
    assert stats.frames_lost == sum(d.faults.stats.frames_lost for d in fleet.devices) > 0
    assert stats.frames_sent + stats.frames_lost == stats.frames_generated


async def test_devices_of_different_profiles_share_a_fleet():
    hub = LoopbackHub()
    sub = hub.subscribe()
    devices, signals = [], {}
    for name in ("ecgstream-250", "ecgstream-500", "polar-h10"):
        profile = get_profile(name)
        signals[name] = np.random.default_rng(7).normal(0, 1, size=(profile.fs_hz * 4, profile.n_leads))
        source = ArraySource(signals[name], profile.fs_hz, profile.leads)
        devices.append(VirtualDevice(name, profile, source, hub.transport(name, wire=profile.wire)))
    await Fleet(devices).run(3.0, pace=math.inf)
    got = {d.device_id: [] for d in devices}
    for device_id, data, kind in sub.drain():
        if kind is MessageKind.FRAME:
            got[device_id].append(decode_frame(data).samples)
        elif kind is MessageKind.PMD:
            got[device_id].append(decode_pmd_ecg(data).samples_uv[:, None])
    for device in devices:
        profile = device.profile
        samples = np.concatenate(got[device.device_id])
        expected = quantize(signals[device.device_id][: len(samples)], profile.lsb_nv, profile.sample_format)
        np.testing.assert_array_equal(samples, expected)
        assert len(samples) == math.floor(3.0 * profile.fs_hz / profile.samples_per_frame) * profile.samples_per_frame


async def test_a_realtime_fleet_delivers_everything_and_reports_its_load():
    hub = LoopbackHub()
    sub = hub.subscribe()
    fleet = Fleet.on_loopback(hub, _sources(30, 2), "ecgstream-250")
    stats = await fleet.run(2.0, pace=10.0)
    frames = [m for m in sub.drain() if m.kind is MessageKind.FRAME]
    assert len(frames) == stats.frames_sent == stats.frames_generated == 30 * math.floor(2.0 * 250 / 36)
    assert stats.devices == 30 and stats.ticks > 0 and stats.wall_s > 0
    assert stats.max_lateness_s >= 0 and stats.cpu_fraction >= 0


def test_device_ids_in_a_fleet_must_be_unique():
    hub = LoopbackHub()
    devices = [VirtualDevice("same", "ecgstream-250", s, hub.transport("same")) for s in _sources(2, 1)]
    with pytest.raises(ValueError, match="unique"):
        Fleet(devices)
