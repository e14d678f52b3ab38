"""Many virtual wearables in one process, driven by one scheduler task.

A thousand devices each waking up for every frame would cost a thousand
asyncio tasks and seven thousand wake-ups a second. A :class:`Fleet` instead
wakes at most every ``tick_s`` (loop seconds), collects every device with
something due, and packetises all their frames together: one
:func:`~protocol.quantize` and one frame encoding per profile per tick (see
:func:`~firmware_sim.device.build_payloads`). A frame therefore leaves at most
about ``tick_s`` plus the tick's own work after its due time; the run reports
the worst case as ``max_lateness_s``.

With ``stagger`` (the default) device *i* starts ``i / N`` of a frame period
after the first, as independently powered devices would; that also spreads
the work evenly over each frame period. Devices are sent to one after another
within a tick, so a slow transport (an MQTT publish waiting for its PUBACK)
delays the devices after it; the loopback transport never waits.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from firmware_sim.device import Timebase, VirtualDevice, build_payloads
from firmware_sim.faults import FaultConfig
from firmware_sim.profiles import DeviceProfile, get_profile
from firmware_sim.source import SignalSource
from firmware_sim.transports.loopback import LoopbackHub


@dataclass
class FleetStats:
    """Totals over a fleet run. Times are seconds; lateness is real (loop) time."""

    devices: int = 0
    frames_generated: int = 0
    frames_sent: int = 0
    frames_failed: int = 0
    frames_lost: int = 0
    """Frames lost to injected faults."""
    statuses_sent: int = 0
    max_lateness_s: float = 0.0
    ticks: int = 0
    simulated_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0

    @property
    def cpu_fraction(self) -> float:
        """Process CPU time over wall time during the run (1.0 = one core busy)."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def frames_per_s(self) -> float:
        """Frames handed to transports per wall second."""
        return self.frames_sent / self.wall_s if self.wall_s > 0 else 0.0


class Fleet:
    """N devices ticked together by one task."""

    def __init__(self, devices: Sequence[VirtualDevice], *, tick_s: float = 0.01, stagger: bool = True) -> None:
        if not devices:
            raise ValueError("a fleet needs at least one device")
        ids = [d.device_id for d in devices]
        if len(set(ids)) != len(ids):
            raise ValueError("device ids in a fleet must be unique")
        if tick_s <= 0:
            raise ValueError(f"tick_s must be positive, got {tick_s}")
        self.devices = list(devices)
        self.tick_s = tick_s
        n = len(self.devices)
        self._offsets = np.array(
            [i / n * d.samples_per_frame / d.profile.fs_hz if stagger else 0.0 for i, d in enumerate(self.devices)]
        )
        self._run = FleetStats(devices=n)

    @classmethod
    def on_loopback(
        cls,
        hub: LoopbackHub,
        sources: Sequence[SignalSource],
        profile: DeviceProfile | str,
        *,
        id_prefix: str = "sim",
        faults: FaultConfig | Callable[[int], FaultConfig | None] | None = None,
        tick_s: float = 0.01,
        stagger: bool = True,
    ) -> Fleet:
        """One device per source on ``hub``, ids ``{id_prefix}-0000``…

        A single :class:`FaultConfig` applies to every device with seed
        ``faults.seed + i``, so devices fail independently but reproducibly.
        """
        profile = get_profile(profile) if isinstance(profile, str) else profile
        devices = []
        for i, source in enumerate(sources):
            device_id = f"{id_prefix}-{i:04d}"
            if isinstance(faults, FaultConfig):
                config: FaultConfig | None = replace(faults, seed=faults.seed + i)
            else:
                config = faults(i) if faults is not None else None
            devices.append(
                VirtualDevice(device_id, profile, source, hub.transport(device_id, wire=profile.wire), faults=config)
            )
        return cls(devices, tick_s=tick_s, stagger=stagger)

    async def run(self, duration_s: float | None = None, pace: float = 1.0) -> FleetStats:
        """Stream every device for ``duration_s`` of its stream time (None: until all end or cancelled)."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(d.start(duration_s) for d in self.devices))
        timebase = Timebase(loop.time(), pace)
        for device, offset in zip(self.devices, self._offsets, strict=True):
            device.set_timebase(Timebase(timebase.anchor + offset / pace, pace))
        offsets = self._offsets
        next_at = offsets + np.array([d.next_event_s() for d in self.devices])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        last_wake = loop.time()
        now = 0.0
        try:
            while math.isfinite(t_min := float(next_at.min())):
                if timebase.realtime:
                    wake = max(timebase.loop_at(t_min), last_wake + self.tick_s)
                    await asyncio.sleep(max(0.0, wake - loop.time()))
                    last_wake = loop.time()
                    now = timebase.stream_at(last_wake)
                else:
                    await asyncio.sleep(0)
                    now = t_min + self.tick_s
                await self._tick(now, next_at)
        finally:
            self._run.wall_s += time.perf_counter() - wall0
            self._run.cpu_s += time.process_time() - cpu0
            self._run.simulated_s += now
            await asyncio.gather(*(d.stop() for d in self.devices))
        return self.stats()

    async def _tick(self, now: float, next_at: np.ndarray) -> None:
        due = np.flatnonzero(next_at <= now)
        prepared = [(i, self.devices[i].prepare(now - self._offsets[i])) for i in due.tolist()]
        payloads = iter(build_payloads([(self.devices[i], b) for i, blocks in prepared for b in blocks]))
        for i, blocks in prepared:
            device = self.devices[i]
            await device.complete(now - self._offsets[i], [(b, next(payloads)) for b in blocks])
            next_at[i] = self._offsets[i] + device.next_event_s()
        self._run.ticks += 1

    def stats(self) -> FleetStats:
        """Totals so far over every device."""
        out = replace(self._run)
        for d in self.devices:
            out.frames_generated += d.stats.frames_generated
            out.frames_sent += d.stats.frames_sent
            out.frames_failed += d.stats.frames_failed
            out.frames_lost += d.faults.stats.frames_lost
            out.statuses_sent += d.stats.statuses_sent
            out.max_lateness_s = max(out.max_lateness_s, d.stats.max_lateness_s)
        return out
