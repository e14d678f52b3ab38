"""A fleet of virtual wearables on the loopback transport, in real time, on one core.

1,000 ``ecgstream-250`` devices (3 leads, 250 Hz, 36 samples per frame: ~6,900
frames/s in all) stream ``--seconds`` of simulated time at pace 1.0 to a
loopback hub drained by one receiver task, as a gateway would. Reported: CPU
time over wall time (1.0 = one core saturated), the worst lateness of a frame
behind its due time, frames/s, and CPU per frame, each against a baseline fleet
of 100 devices run the same way in the same process. The signal is a shared
pre-computed bank looped with a per-device offset, since synthesis is not what
is measured. The process is pinned to one CPU. Run: ``python -m bench.bench_fleet``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence

import numpy as np

from firmware_sim.fleet import Fleet, FleetStats
from firmware_sim.profiles import get_profile
from firmware_sim.source import ArraySource
from firmware_sim.transports.loopback import LoopbackHub


def signal_bank(fs: int, seconds: float = 4.0) -> np.ndarray:
    """A cheap ECG-like 3-lead signal (narrow periodic spikes on a slow wave), mV, shape (n, 3)."""
    t = np.arange(int(fs * seconds)) / fs
    beat = np.exp(-(((t % 0.8) - 0.3) ** 2) / (2 * 0.012**2))
    wave = 0.2 * np.sin(2 * np.pi * 1.25 * t)
    return np.stack([1.2 * beat + wave, -0.6 * beat + wave, 1.5 * beat + 0.5 * wave], axis=1)


async def run_fleet(n_devices: int, seconds: float, tick_s: float) -> tuple[FleetStats, int]:
    """Run ``n_devices`` for ``seconds`` at pace 1.0; returns the stats and the frames the receiver got."""
    profile = get_profile("ecgstream-250")
    bank = signal_bank(profile.fs_hz)
    sources = [ArraySource(np.roll(bank, 37 * i, axis=0), profile.fs_hz, profile.leads, loop=True) for i in range(n_devices)]
    hub = LoopbackHub()
    received = 0

    async def receiver() -> None:
        nonlocal received
        with hub.subscribe() as sub:
            while True:
                await asyncio.sleep(0.05)
                received += len(sub.drain())

    task = asyncio.create_task(receiver())
    try:
        stats = await Fleet.on_loopback(hub, sources, profile, tick_s=tick_s).run(seconds, pace=1.0)
        await asyncio.sleep(0.06)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return stats, received


def report(label: str, stats: FleetStats, received: int, base: FleetStats | None) -> None:
    us_per_frame = stats.cpu_s / max(stats.frames_sent, 1) * 1e6
    print(f"  {label}: {stats.devices} devices, {stats.frames_sent} frames sent, {received} messages received")
    print(f"    CPU fraction   {stats.cpu_fraction:6.3f} of one core")
    print(f"    max lateness   {stats.max_lateness_s * 1e3:6.1f} ms behind due time")
    print(f"    throughput     {stats.frames_per_s:8.0f} frames/s   ({us_per_frame:.1f} µs CPU per frame, {stats.ticks} ticks)")
    if base is not None:
        base_us = base.cpu_s / max(base.frames_sent, 1) * 1e6
        print(
            f"    vs baseline    x{stats.frames_per_s / base.frames_per_s:.1f} frames/s, "
            f"x{stats.cpu_fraction / base.cpu_fraction:.1f} CPU, x{us_per_frame / base_us:.2f} CPU per frame"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Run with ``argv`` options (defaults when None, as ``python -m bench`` calls it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--baseline-devices", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--tick", type=float, default=0.01, help="fleet tick, seconds")
    args = parser.parse_args(list(argv or []))
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"Fleet on loopback, pace 1.0, {args.seconds:g} s simulated, tick {args.tick * 1e3:g} ms, one core")
    base, base_rx = asyncio.run(run_fleet(args.baseline_devices, args.seconds, args.tick))
    report("baseline", base, base_rx, None)
    stats, rx = asyncio.run(run_fleet(args.devices, args.seconds, args.tick))
    report("fleet", stats, rx, base)


if __name__ == "__main__":
    main(sys.argv[1:])
