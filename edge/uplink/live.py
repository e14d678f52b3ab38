"""The live display stream: each patient's ECG in ~1 s chunks and their vitals every second, for the ward.

The cloud's ward shows every bed as a tile with a scrolling ECG, heart rate, signal quality, battery
and connection (issue 14). That is display data: it must be recent, not complete. So unlike alerts
and windows it never enters the outbox: :class:`LiveFeed` keeps at most ``max_buffer_s`` of each
device's signal in memory, and the uplink publishes what is there every ``period_s`` at QoS 0 while it
is connected (:meth:`edge.uplink.Uplink.run`); what piles up while it is not is dropped (counted) and
the next chunk carries the *gap before* flag, so the tile breaks its trace.

**Signal.** A tap sees each device's stream output as the session hands it to its windower: model
rate blocks (125 Hz by default, the leads already in standard order) and the gaps the stream state
found. It keeps the configured ``leads`` the device has (II, V1, V5 by default), decimates by an
integer factor to about ``rate_hz`` (boxcar-averaged, so nothing aliases; a factor of 1 at the
default rate), and cuts what each period finds into equal chunks of about ``chunk_s`` (:class:`protocol.live_payload.LiveChunk`,
int16 µV). A new segment (a gap, a format restart) starts a new chunk flagged *gap before*.

**Vitals.** Each period the uplink also publishes the gateway status (minor version 1) with every
patient's :class:`protocol.messages.PatientVitals`: heart rate and SQI of the analysis lead from the
session, battery, whether data arrives, and its age.

**How the tap attaches.** The session has no listener for its stream output yet, so the feed wraps
each session's ``windower.push`` (the one call that receives every :class:`StreamOutput`) when it
first sees the session, and again after a format restart gives the session a new windower. That is
the interim seam; a ``DeviceSession`` stream listener would replace it without changing this module's
interface.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edge.stream.records import StreamOutput
from protocol.leads import STANDARD_LEADS
from protocol.live_payload import LiveChunk, quantize_uv
from protocol.messages import PatientVitals

log = logging.getLogger(__name__)

_TAPPED = "_ecgstream_live_tap"
"""Attribute marking a windower whose ``push`` already feeds a tap."""


@dataclass(frozen=True)
class LiveSettings:
    """``[uplink] live`` and its companions: whether and what the gateway streams for display."""

    enabled: bool = True
    leads: tuple[str, ...] = ("II", "V1", "V5")
    """Leads streamed (those the device has, in standard order); the ward shows II by default."""
    rate_hz: float = 125.0
    """Target rate: the model-rate signal is decimated by the nearest integer factor (1 at 125 Hz)."""
    chunk_s: float = 1.0
    """Chunk length aimed at (each period's samples are cut into equal chunks of 0.5-1.5 of it)."""
    period_s: float = 1.0
    """How often chunks and vitals are published."""
    max_buffer_s: float = 10.0
    """Most signal held per device between two publishes (the uplink away, or a demo faster than real
    time); older samples are dropped (counted) and the trace breaks there."""

    def __post_init__(self) -> None:
        if not self.leads or any(lead not in STANDARD_LEADS for lead in self.leads):
            raise ValueError(f"live leads must be standard lead names, got {self.leads}")
        if not (self.rate_hz > 0 and self.chunk_s > 0 and self.period_s > 0 and self.max_buffer_s >= self.chunk_s):
            raise ValueError("live rate_hz, chunk_s and period_s must be positive and max_buffer_s >= chunk_s")

    @classmethod
    def from_uplink(cls, uplink: object) -> LiveSettings:
        """From an ``[uplink]`` table: ``live``, ``live_leads``, ``live_rate_hz`` when it has them (the
        defaults otherwise, so a config schema without the keys streams with the defaults)."""
        d = cls()
        leads = getattr(uplink, "live_leads", d.leads)
        return cls(enabled=bool(getattr(uplink, "live", d.enabled)), leads=tuple(leads),
                   rate_hz=float(getattr(uplink, "live_rate_hz", d.rate_hz)))


@dataclass
class LiveCounters:
    """What the live feed did since it started."""

    chunks: int = 0
    """Chunks cut (handed to the uplink)."""
    samples: int = 0
    """Samples per lead in those chunks."""
    samples_dropped: int = 0
    """Samples per lead dropped because the uplink did not take them within ``max_buffer_s``."""
    taps: int = 0
    """Sessions (and windowers after a format restart) tapped."""


class _Windower(Protocol):
    leads: tuple[str, ...]

    def push(self, out: StreamOutput) -> Any: ...


class _Session(Protocol):
    """What the feed reads of an :class:`edge.ingest.session.DeviceSession`."""

    device_id: str
    patient_id: str
    windower: Any
    battery_pct: float | None
    last_arrival_s: float | None
    leads_off: tuple[str, ...]
    sqi: float | None
    analysis_lead: str | None

    @property
    def heart_rate_bpm(self) -> float: ...


class _Agent(Protocol):
    """What the feed reads of an :class:`edge.agent.EdgeAgent`."""

    @property
    def sessions(self) -> Mapping[str, Any]: ...

    def clock(self) -> float: ...

    def connected(self, s: Any, now_s: float) -> bool: ...


@dataclass
class _Run:
    """Contiguous pending samples: gateway time of the first, whether samples are missing before it."""

    t0_s: float
    gap_before: bool
    parts: list[np.ndarray]
    n: int = 0


class LiveTap:
    """One device's display signal: stream output in, :class:`LiveChunk` out (module docstring)."""

    def __init__(self, patient_id: str, device_id: str, settings: LiveSettings) -> None:
        self.patient_id, self.device_id = patient_id, device_id
        self.settings = settings
        self.counters = LiveCounters()
        self._seq = 0
        self._cols: list[int] = []
        self._leads: tuple[str, ...] = ()
        self._fs_in = 0.0
        self._step = 1
        self._carry = np.zeros((0, 0), dtype=np.float32)   # model-rate samples not yet a whole decimation step
        self._runs: list[_Run] = []                         # pending, oldest first; only the last one grows
        self._gap = True                                    # the next run follows missing samples
        self._expect: tuple[int, int] | None = None         # (segment_start, next offset) of the model stream

    @property
    def fs_hz(self) -> float:
        """The rate of the chunks (model rate over the decimation factor)."""
        return self._fs_in / self._step if self._fs_in else self.settings.rate_hz

    def bind(self, stream_leads: Iterable[str]) -> None:
        """The device's leads (a new windower): keep the configured ones it has; a break in the trace."""
        names = tuple(stream_leads)
        self._leads = tuple(lead for lead in self.settings.leads if lead in names)
        self._cols = [names.index(lead) for lead in self._leads]
        self._break()

    def take(self, out: StreamOutput) -> None:
        """One stream output (the session's, as its windower gets it)."""
        if not self._cols:
            return
        if any(not g.interpolated for g in out.gaps):
            self._break()
        for block in out.model_blocks:
            if self._expect != (block.segment_start, block.offset) or block.fs != self._fs_in:
                self._break()
                self._fs_in = float(block.fs)
                self._step = max(1, round(block.fs / self.settings.rate_hz))
            n = int(block.samples_mv.shape[0])
            self._expect = (block.segment_start, block.offset + n)
            if n == 0:
                continue
            x = np.asarray(block.samples_mv, dtype=np.float32)[:, self._cols]
            t0 = block.t_gateway_s - len(self._carry) / self._fs_in   # gateway time of x's first row
            x = np.concatenate([self._carry, x]) if len(self._carry) else x
            whole = len(x) // self._step * self._step
            self._carry = x[whole:]
            if not whole:
                continue
            y = x[:whole].reshape(-1, self._step, x.shape[1]).mean(axis=1) if self._step > 1 else x
            if self._gap or not self._runs:
                self._runs.append(_Run(t0, self._gap, []))
                self._gap = False
            run = self._runs[-1]
            run.parts.append(y)
            run.n += len(y)
        self._trim()

    def chunks(self) -> list[LiveChunk]:
        """Everything pending, in equal chunks of about ``chunk_s`` (0.5 to 1.5 ``chunk_s``; shorter only when
        less is pending), so a period's small surplus does not make a chunk of its own."""
        out: list[LiveChunk] = []
        fs = self.fs_hz
        size = max(1, int(round(self.settings.chunk_s * fs)))
        for run in self._runs:
            if not run.n:
                continue
            counts = quantize_uv((np.concatenate(run.parts) if len(run.parts) > 1 else run.parts[0]).T)
            pieces = max(1, round(run.n / size))     # equal pieces of about chunk_s (at most 1.5 chunk_s)
            bounds = np.linspace(0, run.n, pieces + 1).round().astype(int)
            for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
                out.append(LiveChunk(
                    patient_id=self.patient_id, device_id=self.device_id, seq=self._seq & 0xFFFFFFFF,
                    t0_us=max(0, int(round((run.t0_s + start / fs) * 1e6))), fs_hz=fs, leads=self._leads,
                    samples=np.ascontiguousarray(counts[:, start:stop]), gap_before=run.gap_before and start == 0))
                self._seq += 1
            self.counters.samples += run.n
        self.counters.chunks += len(out)
        if self._runs and not self._gap:      # the trace goes on: the last run continues in the next period
            last = self._runs[-1]
            self._runs = [_Run(last.t0_s + last.n / fs, False, [])]
        else:
            self._runs = []
        return out

    def _break(self) -> None:
        """Samples are missing before what comes next: the next samples start a new run, flagged."""
        self._gap = True
        self._carry = np.zeros((0, len(self._cols)), dtype=np.float32)
        self._expect = None

    def _trim(self) -> None:
        """Keep at most ``max_buffer_s`` pending (the uplink is away): the oldest samples go, counted."""
        keep = int(self.settings.max_buffer_s * self.fs_hz)
        pending = sum(r.n for r in self._runs)
        while pending > keep and self._runs:
            run = self._runs[0]
            drop = min(run.n, pending - keep)
            x = np.concatenate(run.parts) if run.parts else np.zeros((0, len(self._cols)), np.float32)
            run.parts, run.n = [x[drop:]], run.n - drop
            run.t0_s += drop / self.fs_hz
            run.gap_before = True
            pending -= drop
            self.counters.samples_dropped += drop
            if not run.n and len(self._runs) > 1:
                self._runs.pop(0)


class LiveFeed:
    """Every session's tap and vitals, collected for the uplink each period (module docstring)."""

    def __init__(self, agent: _Agent, settings: LiveSettings | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.agent = agent
        self.settings = settings or LiveSettings()
        self._clock = clock or agent.clock
        self.taps: dict[str, LiveTap] = {}

    def attach(self) -> None:
        """Tap the sessions not tapped yet (new devices, new windowers after a format restart)."""
        for session in list(self.agent.sessions.values()):
            windower = getattr(session, "windower", None)
            if windower is None or getattr(windower, _TAPPED, None) is not None:
                continue
            tap = self.taps.get(session.device_id)
            if tap is None or tap.patient_id != session.patient_id:
                tap = self.taps[session.device_id] = LiveTap(session.patient_id, session.device_id, self.settings)
            tap.bind(windower.leads)
            tap.counters.taps += 1
            inner = windower.push

            def push(out: StreamOutput, _inner: Callable[[StreamOutput], Any] = inner, _tap: LiveTap = tap) -> Any:
                try:
                    _tap.take(out)
                except Exception:  # noqa: BLE001 - the display stream must never break the analysis
                    log.exception("live_tap_failed device_id=%s", _tap.device_id)
                return _inner(out)

            setattr(windower, "push", push)   # noqa: B010 - the interim seam (module docstring)
            setattr(windower, _TAPPED, tap)   # noqa: B010

    def chunks(self) -> list[LiveChunk]:
        """Every device's pending chunks (taps of devices gone are forgotten once empty)."""
        self.attach()
        out: list[LiveChunk] = []
        for device_id, tap in list(self.taps.items()):
            out += tap.chunks()
            if device_id not in self.agent.sessions:
                del self.taps[device_id]
        return out

    def vitals(self, now_s: float | None = None) -> list[PatientVitals]:
        """Each session's vitals now."""
        now = self._clock() if now_s is None else now_s
        out = []
        for s in list(self.agent.sessions.values()):
            battery = None if s.battery_pct is None else int(round(min(100.0, max(0.0, s.battery_pct))))
            age = None if s.last_arrival_s is None else round(max(0.0, now - s.last_arrival_s), 3)
            lead = s.analysis_lead if s.analysis_lead in STANDARD_LEADS else None
            out.append(PatientVitals(
                patient_id=s.patient_id, device_id=s.device_id, heart_rate_bpm=_finite(s.heart_rate_bpm, 0, 1000),
                sqi=_finite(s.sqi, 0, 1), analysis_lead=lead, battery_pct=battery,
                connected=bool(self.agent.connected(s, now)), last_data_age_s=age, lead_off=tuple(s.leads_off)))
        return out

    @property
    def counters(self) -> LiveCounters:
        """Summed over the taps there are now."""
        total = LiveCounters()
        for tap in self.taps.values():
            c = tap.counters
            total.chunks += c.chunks
            total.samples += c.samples
            total.samples_dropped += c.samples_dropped
            total.taps += c.taps
        return total


def _finite(value: float | None, lo: float, hi: float) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(min(hi, max(lo, float(value))), 3)
