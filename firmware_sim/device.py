"""A virtual wearable: a signal source, a profile, faults and a transport, streaming in (scaled) real time.

Time inside a device is *stream time*: seconds since its first sample. Frame
*j* is due when its last sample has been taken, at ``(j + 1) · n / fs``. A
:class:`Timebase` maps stream time onto the event loop's clock at a ``pace``
(1.0 real time, 10.0 ten times faster, ``inf`` as fast as possible); every
wake-up is computed from one anchor, so sleeping never accumulates drift.

A device's work is split in two so that :class:`~firmware_sim.fleet.Fleet` can
batch a thousand devices per tick: :meth:`VirtualDevice.prepare` reads the
source and cuts the frames due by now; :func:`build_payloads` quantises and
encodes the frames of many devices at once; :meth:`VirtualDevice.complete`
applies link faults, sends, releases delayed frames, handles link drops,
status reports and battery. :meth:`VirtualDevice.run` drives one device alone.

Frame size: ``samples_per_frame`` if given, else the transport's
``samples_per_message`` if it chooses one (MQTT), else the profile's (one BLE
notification); never more than the transport's ``max_samples_per_message``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

from firmware_sim.faults import FaultConfig, FaultEvent, FaultInjector, FaultKind
from firmware_sim.packetizer import DeviceClock, FrameBlock, Packetizer, encode_for_wire, quantize_blocks
from firmware_sim.profiles import DeviceProfile, WireFormat, get_profile
from firmware_sim.source import SignalSource
from firmware_sim.transports.base import DeviceTransport, TransportError
from protocol.ble_frame import EcgFrame
from protocol.leads import electrodes_from_mask
from protocol.messages import DeviceStatus
from protocol.topics import validate_id

log = logging.getLogger(__name__)

Payload = bytes | EcgFrame
"""A frame as a transport takes it: encoded for an :class:`EncodedFrameSink`, else an EcgFrame."""

BATTERY_LOW_PCT = 20
_EPS = 1e-6


@runtime_checkable
class EncodedFrameSink(Protocol):
    """A transport that takes frames already encoded in its :attr:`wire` format (no await)."""

    wire: WireFormat

    def send_encoded(self, data: bytes) -> None:
        """Send one encoded notification; raises TransportError when the link is down."""
        ...


@runtime_checkable
class ChoosesMessageSize(Protocol):
    """A transport that sets the frame size itself (MQTT: samples per message)."""

    samples_per_message: int


@dataclass(frozen=True)
class Timebase:
    """Stream time ↔ event-loop time: stream second ``t`` happens at ``anchor + t / pace``."""

    anchor: float
    pace: float

    def __post_init__(self) -> None:
        if not self.pace > 0:
            raise ValueError(f"pace must be > 0 (inf for as fast as possible), got {self.pace}")

    @property
    def realtime(self) -> bool:
        """False when running as fast as possible."""
        return math.isfinite(self.pace)

    def loop_at(self, t_s: float) -> float:
        """Loop time at which stream time ``t_s`` is due."""
        return self.anchor + t_s / self.pace

    def stream_at(self, loop_time: float) -> float:
        """Stream time at loop time ``loop_time``."""
        return (loop_time - self.anchor) * self.pace


@dataclass
class DeviceStats:
    """What a device did. Lateness is real seconds between a frame's due time and its sending."""

    frames_generated: int = 0
    frames_sent: int = 0
    frames_failed: int = 0
    statuses_sent: int = 0
    statuses_failed: int = 0
    max_lateness_s: float = 0.0
    stop_reason: str = ""


class VirtualDevice:
    """One wearable. The source must already be at the profile's rate and leads."""

    def __init__(
        self,
        device_id: str,
        profile: DeviceProfile | str,
        source: SignalSource,
        transport: DeviceTransport,
        *,
        faults: FaultConfig | None = None,
        samples_per_frame: int | None = None,
        first_seq: int = 0,
    ) -> None:
        self.device_id = validate_id(device_id, "device id")
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        if abs(source.fs - self.profile.fs_hz) > 1e-9:
            raise ValueError(
                f"source of {device_id} runs at {source.fs} Hz but profile {self.profile.name} needs "
                f"{self.profile.fs_hz} Hz; resample the source first (a device resamples nothing)"
            )
        if tuple(source.lead_names) != self.profile.leads:
            raise ValueError(
                f"source of {device_id} has leads {tuple(source.lead_names)} but profile "
                f"{self.profile.name} streams {self.profile.leads}"
            )
        self.source = source
        self.transport = transport
        self.config = faults or FaultConfig()
        self._sink = transport if isinstance(transport, EncodedFrameSink) else None
        spf = samples_per_frame or (
            transport.samples_per_message if isinstance(transport, ChoosesMessageSize) else self.profile.samples_per_frame
        )
        limit = transport.max_samples_per_message
        if self._sink is not None and self._sink.wire is WireFormat.ECGSTREAM:
            limit = min(limit or 255, self.profile.max_ble_samples_per_frame)
        if limit is not None and spf > limit:
            if samples_per_frame:
                raise ValueError(f"{spf} samples per frame exceed the {limit} the transport of {device_id} takes")
            spf = limit
        self.packetizer = Packetizer(
            self.profile, samples_per_frame=spf, first_seq=first_seq,
            clock=DeviceClock(self.config.clock_offset_us, self.config.clock_drift_ppm),
        )
        self.faults: FaultInjector[Payload] = FaultInjector(self.config, spf / self.profile.fs_hz)
        self.stats = DeviceStats()
        battery = self.profile.battery
        if self.config.battery_start_pct is not None:
            battery = replace(battery, start_pct=self.config.battery_start_pct)
        self._battery = battery
        self._battery_empty_s = battery.empty_at_s(self.config.battery_drain_speedup)
        self._battery_low_s = self._battery_empty_s * (1 - BATTERY_LOW_PCT / max(battery.start_pct, 1e-9))
        self._battery_low_logged = battery.start_pct <= BATTERY_LOW_PCT
        self._timebase = Timebase(0.0, math.inf)
        self._end_s = math.inf
        self._pending: list[tuple[float, int, int, Payload]] = []
        self._order = itertools.count()
        self._next_status_s = 0.0
        self._next_link_s = self.faults.next_link_change(-math.inf)
        self._lead_off_mask = 0
        self._source_ended = False
        self.done = False

    @property
    def samples_per_frame(self) -> int:
        return self.packetizer.samples_per_frame

    @property
    def wire(self) -> WireFormat | None:
        """The wire format frames are encoded in before sending, or None if the transport encodes."""
        return None if self._sink is None else self._sink.wire

    @property
    def events(self) -> list[FaultEvent]:
        """Ground-truth fault log (:class:`~firmware_sim.faults.FaultEvent` s)."""
        return self.faults.events

    def battery_pct(self, t_s: float) -> int:
        """Battery level reported at stream time ``t_s`` (0 only once empty)."""
        return math.ceil(self._battery.pct_at(t_s, self.config.battery_drain_speedup) - 1e-9)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self, duration_s: float | None = None) -> None:
        """Connect the transport; the device will stream ``duration_s`` seconds (None: until stopped)."""
        if duration_s is not None and duration_s < 0:
            raise ValueError(f"duration must be >= 0 s, got {duration_s}")
        self._end_s = math.inf if duration_s is None else duration_s
        if not self.transport.connected:
            await self.transport.connect()

    def set_timebase(self, timebase: Timebase) -> None:
        """Anchor stream time on the loop clock (used for lateness)."""
        self._timebase = timebase

    async def stop(self) -> None:
        """Send frames still held back, then close the link."""
        self._finish(self.stats.stop_reason or "stopped")
        await self._release(math.inf)
        if self.transport.connected:
            await self.transport.disconnect()

    async def run(self, duration_s: float | None = None, pace: float = 1.0) -> DeviceStats:
        """Stream for ``duration_s`` stream seconds (None: until the source ends or cancelled)."""
        loop = asyncio.get_running_loop()
        await self.start(duration_s)
        timebase = Timebase(loop.time(), pace)
        self.set_timebase(timebase)
        try:
            while not self.done:
                t_next = self.next_event_s()
                if timebase.realtime:
                    await asyncio.sleep(max(0.0, timebase.loop_at(t_next) - loop.time()))
                    now = max(t_next, timebase.stream_at(loop.time()))
                else:
                    await asyncio.sleep(0)
                    now = t_next
                blocks = self.prepare(now)
                await self.complete(now, list(zip(blocks, build_payloads([(self, b) for b in blocks]), strict=True)))
        finally:
            await self.stop()
        return self.stats

    # -- one step -----------------------------------------------------------------------------------

    def next_event_s(self) -> float:
        """Stream time of this device's next action (``inf`` once done)."""
        if self.done:
            return math.inf
        next_frame = (self.packetizer.next_sample + self.samples_per_frame) / self.profile.fs_hz
        pending = self._pending[0][0] if self._pending else math.inf
        return min(next_frame, pending, self._next_status_s, self._next_link_s)

    def prepare(self, now_s: float) -> list[FrameBlock]:
        """Read and frame the samples of every frame due by ``now_s`` (and before the next link change)."""
        if self.done or self._source_ended:
            return []
        fs = self.profile.fs_hz
        last = min(
            math.floor(min(now_s, self._end_s, self._battery_empty_s) * fs + _EPS),
            math.ceil(self._next_link_s * fs - _EPS) - 1 if math.isfinite(self._next_link_s) else math.inf,
        )
        first = self.packetizer.next_sample
        k = int((last - first) // self.samples_per_frame) if math.isfinite(last) else 0
        if k <= 0:
            return []
        block = self.source.read(k * self.samples_per_frame)
        if len(block) < k * self.samples_per_frame:
            self._source_ended = True
            if len(block) == 0:
                return []
        mask: np.ndarray | int = 0
        if self.config.lead_off:
            block, mask = self.faults.apply_lead_off(block, first / fs, fs, self.profile.leads, self.profile.full_scale_mv)
        blocks = self.packetizer.frame_blocks(block, lead_off=mask, battery_pct=self.battery_pct(first / fs))
        self._lead_off_mask = int(blocks[-1].lead_off[-1])
        if self.config.lead_off:
            self.faults.stats.lead_off_frames += sum(int(np.count_nonzero(b.lead_off)) for b in blocks)
        return blocks

    async def complete(self, now_s: float, produced: Sequence[tuple[FrameBlock, Sequence[Payload]]]) -> None:
        """Route and send prepared frames, then do what else is due by ``now_s``."""
        fs = self.profile.fs_hz
        for block, payloads in produced:
            k, spf = block.n_frames, block.samples_per_frame
            first_due = (block.first_sample + spf) / fs
            if self._timebase.realtime:
                late = asyncio.get_running_loop().time() - self._timebase.loop_at(first_due)
                self.stats.max_lateness_s = max(self.stats.max_lateness_s, late)
            if not self.config.has_link_faults:
                for j in range(k):  # counted one by one so a cancel leaves the accounting whole
                    self.stats.frames_generated += 1
                    await self._send(payloads[j], int(block.seq[j]), first_due + j * spf / fs)
                continue
            self.stats.frames_generated += k
            due = first_due + np.arange(k) * (spf / fs)
            for d in self.faults.route(payloads, due, block.seq, spf):
                if d.release_s <= now_s:
                    await self._send(d.payload, d.seq, d.release_s)
                else:
                    heapq.heappush(self._pending, (d.release_s, next(self._order), d.seq, d.payload))
        await self._release(min(now_s, self._next_link_s))
        if self._next_link_s <= now_s:
            await self._link_change(self._next_link_s)
        if self._next_status_s <= now_s and not self.done:
            await self._send_status(now_s)
        self._check_battery(now_s)
        self._check_end()

    async def _send(self, payload: Payload, seq: int, t_s: float) -> None:
        try:
            if self._sink is not None and isinstance(payload, bytes):
                self._sink.send_encoded(payload)
            else:
                await self.transport.send_frame(payload)  # type: ignore[arg-type]
            self.stats.frames_sent += 1
        except TransportError as exc:
            self.stats.frames_failed += 1
            self.faults.log(t_s, FaultKind.SEND_FAILED, seq, self.samples_per_frame, detail=str(exc))
        except asyncio.CancelledError:  # stopped mid-send: the frame may not have left; say so
            self.stats.frames_failed += 1
            self.faults.log(t_s, FaultKind.SEND_FAILED, seq, self.samples_per_frame, detail="cancelled while sending")
            raise

    async def _release(self, until_s: float) -> None:
        while self._pending and self._pending[0][0] <= until_s:
            release_s, _, seq, payload = heapq.heappop(self._pending)
            await self._send(payload, seq, release_s)

    async def _link_change(self, t_s: float) -> None:
        up, buffered = self.faults.link_change(t_s)
        self._next_link_s = self.faults.next_link_change(t_s)
        try:
            if not up:
                await self.transport.disconnect()
                return
            await self.transport.connect()
        except TransportError as exc:
            log.warning("%s: link change at %.3f s failed: %s", self.device_id, t_s, exc)
        for d in buffered:
            await self._send(d.payload, d.seq, t_s)
        await self._send_status(t_s)

    async def _send_status(self, t_s: float) -> None:
        """Send a status report unless the link is down (a device reports nothing then)."""
        interval = self.profile.status_interval_s
        self._next_status_s = max(self._next_status_s + interval, t_s + interval - _EPS)
        if not self.transport.connected:
            return
        status = DeviceStatus(
            device_id=self.device_id, t_device_us=int(self.packetizer.clock.stamp_us(t_s)),
            battery_pct=self.battery_pct(t_s), connected=True,
            lead_off=electrodes_from_mask(self._lead_off_mask), profile=self.profile.name, firmware=self.profile.firmware,
        )
        try:
            await self.transport.send_status(status)
            self.stats.statuses_sent += 1
        except TransportError:
            self.stats.statuses_failed += 1

    def _check_battery(self, now_s: float) -> None:
        if now_s >= self._battery_low_s and not self._battery_low_logged:
            self._battery_low_logged = True
            self.faults.log(now_s, FaultKind.BATTERY_LOW, detail=f"{self.battery_pct(now_s)} %")

    def _check_end(self) -> None:
        next_due = (self.packetizer.next_sample + self.samples_per_frame) / self.profile.fs_hz
        if self._source_ended:
            self._finish("source ended")
        elif next_due > min(self._end_s, self._battery_empty_s) + _EPS:
            self._finish("battery empty" if self._battery_empty_s < self._end_s else "duration reached")

    def _finish(self, reason: str) -> None:
        if self.done:
            return
        self.done = True
        self.stats.stop_reason = reason
        if reason == "battery empty":
            self.faults.stats.battery_empty = True
            self.faults.log(self._battery_empty_s, FaultKind.BATTERY_EMPTY)
        log.debug("%s stopped: %s", self.device_id, reason)


def build_payloads(jobs: Sequence[tuple[VirtualDevice, FrameBlock]]) -> list[Sequence[Payload]]:
    """Quantise and encode the frames of many devices at once; one payload list per job.

    Jobs are grouped by profile, frame length and wire format, and each group is
    one :func:`~firmware_sim.packetizer.quantize_blocks` call and (for encoded
    sinks) one :func:`~firmware_sim.packetizer.encode_for_wire` call.
    """
    groups: dict[tuple[DeviceProfile, int, WireFormat | None], list[int]] = {}
    for i, (device, block) in enumerate(jobs):
        groups.setdefault((device.profile, block.samples_per_frame, device.wire), []).append(i)
    out: list[Sequence[Payload]] = [()] * len(jobs)
    for (profile, _, wire), members in groups.items():
        batch = quantize_blocks(profile, [jobs[i][1] for i in members])
        payloads: list[Payload] = (
            list(encode_for_wire(batch, wire)) if wire is not None else [batch.frame(j) for j in range(len(batch))]
        )
        start = 0
        for i in members:
            k = jobs[i][1].n_frames
            out[i] = payloads[start : start + k]
            start += k
    return out
