"""One device's session on the gateway: decoded frames in; alarm evidence, windows and alerts out.

A :class:`DeviceSession` owns, for one device worn by one patient:

- a :class:`~edge.stream.state.StreamState` (order, gaps, clock, quality, 125 Hz blocks);
- the arrhythmia analysis of lead II at the device rate: :class:`~edge.signal.filters.EcgFilter`
  (0.5–40 Hz), :class:`~edge.signal.qrs.QrsDetector`, :class:`~edge.alarms.features.QrsWidthMeter`;
- a :class:`~edge.inference.windowing.Windower` (streams carrying II, V1 and V5);
- an :class:`~edge.alarms.engine.AlarmEngine`.

**Order rule.** The engine must get a span's quality no later than its beats. Quality reports
cover consecutive windows of received samples (``StreamConfig.quality_window_s``, 2 s), so the
session holds the samples of lead II back until the quality report covering them has been given
to the engine, then filters them and runs the detector on them. Clinical alarms therefore wait up
to one quality window (2 s) plus the detector's look-ahead (≈ 0.25 s); asystole needs 4 s and VT
six beats anyway.

**Stream time.** Everything given to the engine is in stream seconds: sample index / fs, plus an
offset that grows when the device is reconfigured mid-stream (a frame of another rate or lead set:
:class:`~edge.stream.state.StreamFormatError`). Then the old stream is flushed, a new
``StreamState`` starts, its stream time continues after the old one (the arrival-time difference
between the two is reported to the engine as a data gap), and ``format_restarts`` counts it.

**Device restarts.** A device that reboots (sequence numbers and clock from 0, or numbers far ahead)
or comes back after a disconnection is re-anchored by its ``StreamState`` (see "Restarts" in
:mod:`edge.stream.state`): the clock fit starts again, the gap is sized from arrival times and
stream time goes on, so alert onsets and window times after it are dated by the new clock. The
technical alarms of the silence (device disconnected, data gap) resolve as data flows again;
statuses reported for the device stay newer than before (:meth:`DeviceSession.status_device_us`).

**Gateway restarts.** A gateway restarted after a crash (kill -9) restores the session's saved
state (:meth:`DeviceSession.restore_state`, :mod:`edge.persistence`): open and latched alarm episodes
go on under their ids, stream time goes on after the old one (placed by the device clock) and the
window grid continues with the same window ids, slots already uplinked not cut again.

**Gaps.** Non-interpolated gaps are fed to the detector as a held (flat) value, so its sample
clock stays aligned; a gap longer than ``max_fill_s`` restarts the filter and detector instead
(their learning period then reports no silence). RR intervals that span a gap are never counted
(heart rate and irregularity come from the session's own :class:`~edge.signal.rr.RrStats`), so a
lost beat cannot look like atrial fibrillation. Gaps of at least ``engine_gap_min_s`` go to the
engine as :class:`~edge.alarms.evidence.GapEvent` (clinical persistence restarts after them and
the data-gap alarm sees them); shorter ones (one lost BLE frame) do not, or random loss of 1–2 %
would keep AF from ever persisting its 30 s.

**Other leads.** The analysed lead is ``AlarmConfig.analysis_lead`` (II) when the stream has it,
else the first of :data:`ANALYSIS_LEAD_FALLBACK` it has (the Polar H10: lead I), so such a device
gets heart rate, beats and rhythm alarms too (:attr:`DeviceSession.analysis_lead`; the engine's
evidence follows it). Only a stream with none of them gets technical alarms only (the samples not
analysed are counted in ``analysis_skipped_samples``). Every stream is windowed, with the leads it
has; streams without II, V1 and V5 cannot be reconstructed and ship their measured leads
(``windows_unsupported`` = 1 marks them).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.alarms import (
    AlarmConfig,
    AlarmEngine,
    BeatEvidence,
    GapEvent,
    LeadQuality,
    QrsWidthMeter,
    StMeasurement,
    TechnicalState,
    WindowEvidence,
)
from edge.inference.windowing import Window, WindowConfig, Windower
from edge.signal.filters import EcgFilter, FilterSpec
from edge.signal.pacing import PACE_MIN_FS_HZ, PacePulseDetector
from edge.signal.qrs import QrsDetector
from edge.signal.rr import RrStats
from edge.signal.st import StConfig, StResult, measure_st
from edge.stream.quality import QualityReport
from edge.stream.records import StreamOutput
from edge.stream.state import StreamConfig, StreamFormatError, StreamState
from protocol.ble_frame import EcgFrame
from protocol.leads import WEARABLE_LEADS
from protocol.messages import Alert, DeviceStatus
from protocol.polar_pmd import PolarEcgFrame

log = logging.getLogger(__name__)

ANALYSIS_LEAD_FALLBACK = ("II", "I", "V5", "V6", "V4", "aVF", "III", "V3", "V2", "V1", "aVL", "aVR")
"""Leads tried, in order, when the stream lacks the configured analysis lead (tall R first)."""

_BEATS_KEPT = 512
"""R peaks remembered for ST measurement (minutes at any heart rate: windows return within seconds)."""


@dataclass(frozen=True)
class SessionConfig:
    """How each device's stream is analysed (see the module docstring)."""

    stream: StreamConfig = field(default_factory=StreamConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    alarms: AlarmConfig = field(default_factory=AlarmConfig)
    filter: FilterSpec = field(default_factory=lambda: FilterSpec(notch_hz=None, lowpass_hz=40.0))
    """Filter of the analysed lead before QRS detection and width (the alarm rules were set on 0.5–40 Hz)."""
    engine_gap_min_s: float = 0.25
    """Shortest non-interpolated gap reported to the alarm engine."""
    max_fill_s: float = 60.0
    """Longest gap fed to the detector as a held value; longer gaps restart the analysis."""
    st: StConfig = field(default_factory=StConfig)
    """ST measurement on each window's leads (:mod:`edge.signal.st`)."""


@dataclass
class SessionCounters:
    """What one session counted (frames unless said otherwise). The stream's own are in ``stream.counters``."""

    frames: int = 0
    """Decoded frames pushed into the stream."""
    decode_errors: int = 0
    """Payloads of this device that failed to decode (the agent caught the ProtocolError)."""
    format_restarts: int = 0
    """Times the device changed rate or leads mid-stream (a new StreamState)."""
    statuses: int = 0
    analysis_skipped_samples: int = 0
    """Samples not analysed for arrhythmia because the stream has no analysis lead."""
    detector_resets: int = 0
    """Gaps longer than ``max_fill_s``: the detector restarted."""
    windows: int = 0
    """Windows cut (sent to inference)."""
    windows_unsupported: int = 0
    """1 when the stream lacks the leads the reconstruction needs (its windows carry its measured leads only)."""
    alerts: int = 0
    gaps: dict[str, int] = field(default_factory=dict)
    """Gaps by reason (interpolated ones included), summed over restarts."""
    internal_errors: int = 0
    """Exceptions caught while processing this device's data (a bug: logged with its traceback)."""
    link_drops: int = 0
    """Times the transport reported the link down (BLE disconnections)."""
    st_windows: int = 0
    """Windows whose leads were given for ST measurement."""
    st_measured: int = 0
    """Of those, windows with an ST measurement (enough normal beats, narrow QRS)."""
    paced_beats: int = 0
    """Beats with a pace pulse next to them (left out of the ventricular analysis; see edge.signal.pacing)."""


@dataclass
class SessionOutput:
    """What one call produced: alert messages (in order) and windows for inference."""

    alerts: list[Alert] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)

    def extend(self, other: SessionOutput) -> None:
        self.alerts += other.alerts
        self.windows += other.windows


class _SessionClock:
    """Stream time (s) → device and gateway clocks (µs) for the alarm engine's onset fields."""

    def __init__(self, session: DeviceSession) -> None:
        self._s = session

    def device_us(self, t_s: float) -> int:
        s = self._s
        if s._anchor is None or s.stream.fs is None:
            return 0
        t_anchor, dev_us = s._anchor
        rate = 1.0 + s.stream.clock.drift_ppm * 1e-6
        return max(0, round(dev_us + (t_s - t_anchor) * 1e6 * rate))

    def gateway_us(self, t_s: float) -> int:
        try:
            return max(0, round(self._s.stream.clock.to_gateway(self.device_us(t_s)) * 1e6))
        except ValueError:
            return 0


class _Analysis:
    """Filter, detector and width meter of the analysed lead from stream index ``offset`` on."""

    def __init__(self, fs: float, offset: int, spec: FilterSpec, *, restarted: bool) -> None:
        nyquist = fs / 2.0
        if spec.lowpass_hz is not None and spec.lowpass_hz >= nyquist:
            spec = FilterSpec(spec.baseline_hz, None if (spec.notch_hz or 0) >= nyquist else spec.notch_hz, None)
        self.filter = EcgFilter(fs, 1, spec)
        self.detector = QrsDetector(fs)
        self.width = QrsWidthMeter(fs)
        self.pace = PacePulseDetector(fs) if fs >= PACE_MIN_FS_HZ else None
        self.offset = offset
        self.restarted = restarted
        self.learn_samples = round((self.detector.config.learn_s + self.detector.config.lookahead_s) * fs)
        self.last_raw = 0.0


class DeviceSession:
    """The gateway's view of one device: see the module docstring. Not thread-safe (one event loop)."""

    def __init__(self, device_id: str, patient_id: str, *, transport: str = "loopback",
                 config: SessionConfig | None = None) -> None:
        self.device_id = device_id
        self.patient_id = patient_id
        self.transport = transport
        self.config = c = config or SessionConfig()
        self.counters = SessionCounters()
        self.stream = StreamState(c.stream)
        self._clock_map = _SessionClock(self)
        self.engine = AlarmEngine(patient_id, device_id, self._clock_map, c.alarms)
        self.windower: Windower | None = None
        self.battery_pct: float | None = None
        self.last_arrival_s: float | None = None
        self.link_up = True
        self.leads_off: tuple[str, ...] = ()
        self.sqi: float | None = None
        self._base_s = 0.0                      # stream time of index 0 of the current StreamState
        self._anchor: tuple[float, float] | None = None   # (stream time, device µs) of the last received block
        self._an: _Analysis | None = None
        self._ii: int | None = None             # column of the analysis lead
        self.analysis_lead: str | None = None   # its name (None: no lead to analyse, or not bound yet)
        self._bound = False
        self._pending: deque[tuple[int, np.ndarray | int]] = deque()   # (start, samples) or (start, gap length)
        self._window_electrodes: set[str] = set()
        self._engine_gaps: list[GapEvent] = []
        self._rr = RrStats()                     # 8 RR for the rate, 32 for the irregularity (edge.signal.rr)
        self._rr_breaks: deque[tuple[int, int]] = deque(maxlen=64)
        self._last_beat: int | None = None
        self._beat_times: deque[float] = deque(maxlen=_BEATS_KEPT)   # stream time of recent R peaks
        self.last_st: StResult | None = None
        self._until_s = 0.0
        self._restarted = False                 # a format restart: the next analysis learns without silence
        self._status_us: int | None = None      # device time of the last status report (status_device_us)
        self._status_offset_us = 0
        self._uplinked_slot: int | None = None  # highest window slot handed to the sink (add_window)
        self._resume: dict[str, Any] | None = None   # restored grid, placed at the first output (restore_state)

    @property
    def last_device_us(self) -> int | None:
        """Device time (µs) just after the latest sample received (the device clock extrapolated from the
        last block the stream state emitted, which may hold several frames), or None before the first."""
        return None if self._anchor is None else self._clock_map.device_us(self.stream_now_s)

    def status_device_us(self, now_s: float) -> int | None:
        """Device time (µs) for a status report made at gateway time ``now_s``: the device clock extrapolated
        to now, shifted once the device clock restarts (a reboot) so that every report is newer than the one
        before (the cloud keeps the newest); None before the first sample."""
        anchor = self.last_device_us
        if anchor is None or self.last_arrival_s is None:
            return None
        t = anchor + max(0, round((now_s - self.last_arrival_s) * 1e6)) + self._status_offset_us
        if self._status_us is not None and t <= self._status_us:
            self._status_offset_us += self._status_us + 1 - t
            t = self._status_us + 1
        self._status_us = t
        return t

    # -- input ----------------------------------------------------------------------------------

    def push_frame(self, frame: EcgFrame | PolarEcgFrame, arrival_s: float) -> SessionOutput:
        """One decoded frame that arrived at gateway time ``arrival_s`` (s)."""
        out = SessionOutput()
        previous_arrival = self.last_arrival_s
        self.counters.frames += 1
        self.last_arrival_s = arrival_s
        self.link_up = True
        if isinstance(frame, EcgFrame):
            if frame.battery_pct is not None:
                self.battery_pct = float(frame.battery_pct)
            self.leads_off = tuple(frame.lead_off)
        try:
            so = self.stream.push(frame, arrival_s)
        except StreamFormatError as exc:
            self._restart(str(exc), arrival_s, previous_arrival, out)
            so = self.stream.push(frame, arrival_s)
        self._process(so, out)
        return out

    def push_status(self, status: DeviceStatus) -> SessionOutput:
        """A device status report (battery, link, lead-off)."""
        self.counters.statuses += 1
        if status.battery_pct is not None:
            self.battery_pct = float(status.battery_pct)
        self.link_up = status.connected
        self.leads_off = tuple(status.lead_off)
        return SessionOutput()

    def decode_error(self) -> None:
        """Count a payload of this device that failed to decode."""
        self.counters.decode_errors += 1
        self.stream.decode_error()

    def poll(self, now_s: float) -> SessionOutput:
        """Periodic tick at gateway time ``now_s``: release held frames, let the engine see silence."""
        out = SessionOutput()
        if self.stream.fs is not None:
            self._process(self.stream.poll(now_s), out)
        idle = 0.0 if self.last_arrival_s is None else max(0.0, now_s - self.last_arrival_s)
        out.alerts += self._engine(self.stream_now_s + idle)
        return out

    def flush(self) -> SessionOutput:
        """End of the stream (replay end, shutdown): release and analyse everything held."""
        out = SessionOutput()
        if self.stream.fs is not None:
            self._process(self.stream.flush(), out)
            self._analyse(None, out)
        if self.windower is not None:
            self.windower.close()
        return out

    def add_window(self, window: Window, model_versions: dict[str, str], *,
                   probabilities: dict[str, float] | None = None, leads: np.ndarray | None = None,
                   lead_names: tuple[str, ...] | None = None, uncertainty: np.ndarray | None = None,
                   reconstructed: tuple[str, ...] = (), thresholds: dict[str, float] | None = None) -> list[Alert]:
        """Evidence of a window that went through inference (its id is what alerts point at); ``thresholds``:
        the classifier's shipped operating threshold per class.

        ``leads`` (``(len(lead_names), n)`` band-passed mV on the window's grid: the 12 leads of the
        reconstruction, or the measured ones in rules-only mode), with ``uncertainty`` of the same
        shape and the names of the ``reconstructed`` leads, are measured for ST deviation
        (:func:`edge.signal.st.measure_st`) at the R peaks this session's detector found in the window.
        """
        if self._uplinked_slot is None or window.slot > self._uplinked_slot:
            self._uplinked_slot = window.slot
        start = self._base_s + window.t_stream_s
        st = {}
        if leads is not None:
            st = self._measure_st(window, start, leads, lead_names or window.leads, uncertainty, reconstructed)
        ev = WindowEvidence(window.window_id, start, start + window.n_samples / window.fs,
                            probabilities=probabilities or {}, st=st, model_versions=model_versions,
                            thresholds=thresholds or {})
        return self._engine(self.engine.state.now_s, windows=[ev])

    def window_beats(self, start_s: float, n_samples: int, fs: float) -> np.ndarray:
        """R peaks found so far in ``[start_s, start_s + n_samples / fs)`` as sample indices of that grid."""
        end_s = start_s + n_samples / fs
        t = np.fromiter((b for b in self._beat_times if start_s <= b < end_s), dtype=np.float64)
        return np.clip(np.rint((t - start_s) * fs).astype(np.int64), 0, n_samples - 1)

    def _measure_st(self, window: Window, start_s: float, leads: np.ndarray, lead_names: tuple[str, ...],
                    uncertainty: np.ndarray | None, reconstructed: tuple[str, ...]) -> dict[str, StMeasurement]:
        self.counters.st_windows += 1
        beats = self.window_beats(start_s, window.n_samples, window.fs)
        result = measure_st(leads, window.fs, beats, lead_names=lead_names, uncertainty=uncertainty,
                            reconstructed=reconstructed, config=self.config.st)
        self.last_st = result
        if result.measured:
            self.counters.st_measured += 1
        return result.st

    def evidence_window_ids(self, start_s: float, end_s: float) -> list[str]:
        """Ids of the windows of this stream's grid covering ``[start_s, end_s]`` (stream time), known
        before they are cut (:meth:`~edge.inference.windowing.Windower.window_ids_covering`)."""
        if self.windower is None or self._resume is not None:   # a restored grid is placed at the first data
            return []
        return self.windower.window_ids_covering(start_s - self._base_s, end_s - self._base_s)

    # -- restart safety (edge.persistence) --------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """What a restarted gateway needs to go on with this device (JSON-able): the engine's open and
        latched episodes, the window grid (stream key, next slot not yet uplinked) and where stream time
        stood on the device clock."""
        grid: dict[str, Any] | None = None
        if self.windower is not None and self._resume is None:
            nxt = None if self._uplinked_slot is None else self._uplinked_slot + 1
            grid = {"stream_key": str(self.windower.stream_key), "next_slot": nxt, "fs": self.windower.config.fs}
        elif self._resume is not None:
            grid = self._resume.get("grid")
        return {"engine": self.engine.export_state(), "grid": grid, "stream_now_s": self.stream_now_s,
                "anchor": None if self._anchor is None else [self._anchor[0], self._anchor[1]]}

    def restore_state(self, data: dict[str, Any], age_s: float) -> int:
        """Go on from :meth:`export_state` of this device's session before a gateway restart, ``age_s``
        (wall clock) ago; call it before the first frame. Stream time continues after the old one (placed
        by the device clock at the first output when it runs on, else by the wall clock), so restored
        episodes keep their onsets and the grid its slots. Returns the number of episodes restored."""
        n = self.engine.import_state(dict(data.get("engine", {})))
        saved_now = float(data.get("stream_now_s", 0.0))
        self._base_s = saved_now + max(0.0, age_s)
        self._resume = {**data, "age_s": max(0.0, age_s)}
        st = self.engine.state          # the engine's clock goes on from where it stood (no silence since 0)
        st.now_s = st.data_until_s = st.beats_until_s = max(st.now_s, saved_now)
        st.unusable_until_s = max(st.unusable_until_s, saved_now)
        self._restarted = True          # the analysis learns afresh, as after a format restart: no silence meanwhile
        return n

    def _place_resumed(self, so: StreamOutput) -> None:
        """First output after :meth:`restore_state`: set stream time and continue the window grid."""
        resume, self._resume = self._resume, None
        assert resume is not None and self.stream.fs is not None
        saved_now = float(resume.get("stream_now_s", 0.0))
        anchor = resume.get("anchor")
        block = next((b for b in so.blocks if not b.interpolated), None)
        base = self._base_s
        if anchor is not None and block is not None:
            t = float(anchor[0]) + (block.t_device_us - float(anchor[1])) * 1e-6 - block.start / self.stream.fs
            elapsed = t + block.start / self.stream.fs - saved_now
            if -1.0 <= elapsed <= float(resume.get("age_s", 0.0)) + 60.0:   # the same device clock ran on
                base = t
        grid = resume.get("grid")
        fs = self.config.window.fs if grid is None else float(grid.get("fs", self.config.window.fs))
        origin = round(base * fs)
        self._base_s = origin / fs
        st = self.engine.state          # nothing persists across the down time, which was the gateway's silence,
        st.unusable_until_s = max(st.unusable_until_s, self._base_s)   # not the device's (no "disconnected")
        st.data_until_s = max(st.data_until_s, self._base_s)
        if grid is not None and self.windower is not None:
            self.windower.restore(uuid.UUID(str(grid["stream_key"])), origin,
                                  None if grid.get("next_slot") is None else int(grid["next_slot"]))
        log.info("session_restored device_id=%s stream_s=%.3f next_slot=%s", self.device_id, self._base_s,
                 None if grid is None else grid.get("next_slot"))

    # -- views ----------------------------------------------------------------------------------

    @property
    def stream_now_s(self) -> float:
        """Stream time just after the last sample received."""
        if self.stream.fs is None:
            return self._base_s
        return self._base_s + self.stream.next_index / self.stream.fs

    @property
    def heart_rate_bpm(self) -> float:
        return self._rr.heart_rate_bpm

    # -- internals ------------------------------------------------------------------------------

    def _t(self, index: int) -> float:
        assert self.stream.fs is not None
        return self._base_s + index / self.stream.fs

    def _engine(self, now_s: float, **evidence: object) -> list[Alert]:
        alerts = self.engine.update(now_s, **evidence)  # type: ignore[arg-type]
        self.counters.alerts += len(alerts)
        return alerts

    def _restart(self, reason: str, arrival_s: float, previous_arrival: float | None, out: SessionOutput) -> None:
        """The device changed rate or leads: finish the old stream and start a new one after it."""
        self.counters.format_restarts += 1
        log.warning("stream_format_changed device_id=%s: %s; starting a new stream", self.device_id, reason)
        out.extend(self.flush())
        end = self.stream_now_s
        idle = 0.0 if previous_arrival is None else max(0.0, arrival_s - previous_arrival)
        self._base_s = end + idle
        self._engine_gaps.append(GapEvent(end, self._base_s))
        self.stream = StreamState(self.config.stream)
        self.windower, self._an, self._ii, self._bound = None, None, None, False
        self._pending.clear()
        self._rr_breaks.clear()
        self._last_beat = None
        self._restarted = True

    def _bind(self) -> None:
        """First output of a stream: choose the analysis lead and the windower."""
        self._bound = True
        leads, fs = self.stream.leads, self.stream.fs
        assert fs is not None
        wanted = self.config.alarms.analysis_lead
        lead = next((name for name in (wanted, *ANALYSIS_LEAD_FALLBACK) if name in leads), None)
        self._ii = None if lead is None else leads.index(lead)
        self.analysis_lead = lead
        if lead is None:
            log.info("no_analysis_lead device_id=%s leads=%s: technical alarms only", self.device_id, leads)
        else:
            self.engine.state.analysis_lead = lead
            if lead != wanted:
                log.info("analysis_lead device_id=%s lead=%s (no %s)", self.device_id, lead, wanted)
        if leads:
            self.windower = Windower(self.patient_id, self.device_id, fs, self.config.window, leads=leads)
        if not set(WEARABLE_LEADS) <= set(leads):
            self.counters.windows_unsupported = 1

    def _process(self, so: StreamOutput, out: SessionOutput) -> None:
        if self.stream.fs is None:
            return
        if not self._bound:
            self._bind()
        if self._resume is not None and any(not b.interpolated for b in so.blocks):
            self._place_resumed(so)
        fs = self.stream.fs
        items: list[tuple[int, int, object]] = []
        for g in so.gaps:
            self.counters.gaps[str(g.reason)] = self.counters.gaps.get(str(g.reason), 0) + 1
            if g.interpolated:
                continue
            self._rr_breaks.append((g.start, g.stop))
            if g.length / fs >= self.config.engine_gap_min_s:
                self._engine_gaps.append(GapEvent(self._t(g.start), self._t(g.stop)))
            items.append((g.start, 0, g.length))
        for b in so.blocks:
            if not b.interpolated:
                self._window_electrodes.update(b.electrodes)
                self._anchor = (self._t(b.start), b.t_device_us)
            if self._ii is None:
                self.counters.analysis_skipped_samples += b.n
            else:
                items.append((b.start, 1, b.samples_mv[:, self._ii]))
        items.sort(key=lambda item: (item[0], item[1]))
        self._pending.extend((start, payload) for start, _, payload in items)  # type: ignore[misc]
        for q in so.quality:
            self._on_quality(q, out)
        if self.windower is not None:
            windows = self.windower.push(so)
            self.counters.windows += len(windows)
            out.windows += windows

    def _on_quality(self, q: QualityReport, out: SessionOutput) -> None:
        """Technical state of a quality window to the engine, then the beats of its samples."""
        chunks = self._filter_until(q.stop)
        leads: dict[str, LeadQuality] = {}
        for i, name in enumerate(self.stream.leads):
            rms = None
            if i == self._ii:
                received = [y for _, y, filled in chunks if not filled]
                rms = float(np.sqrt(np.mean(np.concatenate(received) ** 2))) if received else None
            leads[name] = LeadQuality(float(q.sqi[i]), bool(q.lead_off[i]), bool(q.flat[i]), bool(q.saturated[i]), rms)
        lead = self.analysis_lead
        self.sqi = leads[lead].sqi if lead is not None and lead in leads else float(np.min(q.sqi)) if len(q.sqi) else None
        tech = TechnicalState(self._t(q.start), self._t(q.stop), leads, tuple(sorted(self._window_electrodes)),
                              self.battery_pct, True, tuple(self._engine_gaps))
        self._window_electrodes.clear()
        self._engine_gaps = []
        out.alerts += self._engine(self._t(q.stop), technical=tech)
        self._detect(chunks, out)

    def _analyse(self, stop: int | None, out: SessionOutput) -> None:
        """Run what is held up to ``stop`` (None: everything) through the detector, without quality."""
        if self._engine_gaps and self.stream.fs is not None:
            end = max(g.end_s for g in self._engine_gaps)
            tech = TechnicalState(self._engine_gaps[0].start_s, end, connected=True, battery_pct=self.battery_pct,
                                  gaps=tuple(self._engine_gaps))
            self._engine_gaps = []
            out.alerts += self._engine(end, technical=tech)
        self._detect(self._filter_until(stop), out)

    def _filter_until(self, stop: int | None) -> list[tuple[_Analysis, np.ndarray, bool]]:
        """Filter the held samples before ``stop``; returns (analysis, filtered chunk, gap fill) in order."""
        chunks: list[tuple[_Analysis, np.ndarray, bool]] = []
        if self._ii is None or self.stream.fs is None:
            self._pending.clear()
            return chunks
        fs = self.stream.fs
        while self._pending and (stop is None or self._pending[0][0] < stop):
            start, payload = self._pending.popleft()
            if isinstance(payload, int):  # a gap
                if self._an is None:
                    continue
                if payload > self.config.max_fill_s * fs:
                    self.counters.detector_resets += 1
                    self._an = _Analysis(fs, start + payload, self.config.filter, restarted=True)
                    continue
                raw = np.full(payload, self._an.last_raw)
                filled = True
            else:
                raw = payload
                # one filter/detector call for a run of contiguous blocks instead of one per frame: the
                # filters and the detector are exactly streaming, so the beats are the same
                run = [raw]
                end = start + len(raw)
                while (self._pending and not isinstance(self._pending[0][1], int) and self._pending[0][0] == end
                       and (stop is None or end < stop)):
                    nxt = self._pending.popleft()[1]
                    assert not isinstance(nxt, int)
                    run.append(nxt)
                    end += len(nxt)
                if len(run) > 1:
                    raw = np.concatenate(run)
                if stop is not None and start + len(raw) > stop:
                    self._pending.appendleft((stop, raw[stop - start :]))
                    raw = raw[: stop - start]
                filled = False
            if self._an is None:
                self._an = _Analysis(fs, start, self.config.filter, restarted=self._restarted)
            if len(raw):
                self._an.last_raw = float(raw[-1])
                if self._an.pace is not None:
                    self._an.pace.push(raw)
                chunks.append((self._an, self._an.filter.process(np.asarray(raw, dtype=np.float64)), filled))
        return chunks

    def _detect(self, chunks: list[tuple[_Analysis, np.ndarray, bool]], out: SessionOutput) -> None:
        assert self.stream.fs is not None or not chunks
        for an, y, _ in chunks:
            fs = an.detector.fs
            r = an.detector.process(y)
            an.width.push(y)
            widths = an.width.widths(r.beats) if len(r.beats) else []
            paced = an.pace.paced(r.beats) if an.pace is not None else []
            self.counters.paced_beats += sum(paced)
            times: list[float] = []
            for beat in (r.beats + an.offset).tolist():
                last = self._last_beat
                if last is not None and beat > last and not any(a < beat and b > last for a, b in self._rr_breaks):
                    self._rr.add((beat - last) / fs)
                if self._last_beat is None or beat > self._last_beat:
                    self._last_beat = beat
                times.append(self._t(beat))
                self._beat_times.append(times[-1])
            seen = an.offset + an.detector.samples_seen
            if not (an.restarted and an.detector.samples_seen < an.learn_samples):
                self._until_s = max(self._until_s, self._t(seen))
            ev = BeatEvidence(self._until_s, tuple(times), tuple(widths), self._rr.heart_rate_bpm,
                              self._rr.irregularity, paced=tuple(paced))
            out.alerts += self._engine(self._until_s, beats=ev)


def finite_or_none(x: float | None) -> float | None:
    """``x`` when it is a finite number, else None (for status snapshots)."""
    return None if x is None or not math.isfinite(x) else float(x)
