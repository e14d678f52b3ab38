"""Per-device stream state: frames in, contiguous blocks, explicit gaps and model-rate samples out.

:meth:`StreamState.push` takes a decoded frame and its gateway arrival time.

**ecgstream frames** (u32 ``seq``) go through a
:class:`~edge.stream.reorder.ReorderBuffer`: duplicates and late frames are
dropped (counted), the rest released in order. Sample indices follow the
sequence numbers: a hole of ``k`` frames is ``k × n`` samples, ``n`` being the
samples per lead of the frame before it. The device timestamps are a cross-
check: if they disagree with the sequence numbers by more than half a frame
(or ``timestamp_tolerance_s``), a ``TIMESTAMP_JUMP`` event is reported (the
device clock was reset), the sequence numbers are trusted, and the clock fit
restarts. A frame further behind than the reorder history is late if its
timestamp agrees with its seq; otherwise it starts a sequence restart (see the
reorder buffer): a ``DEVICE_RESET`` gap, sized from the timestamps when they still advance, else from arrival
times.

**Restarts.** A device that reboots starts its sequence numbers and usually its clock again. The
arrival times decide what a frame far from the stream's order is: one more than the reorder history
behind whose seq and timestamp agree is a late frame only if it left the device (by the clock fit) at
most ``restart_slack_s`` before it arrived, else the first of a restarted stream (a device that reset
seq and clock together looks like a very old frame otherwise, and its whole new run would be dropped as
late); a seq further ahead than the time since the last frame explains (by ``restart_slack_s``) is a
restart too, not a gap of hours. On a restart the clock fit starts again (unless the timestamps still
agree with the arrivals), the gap is sized from arrival times, and sample indices go on from there, so
stream time and gateway times stay right across any number of reboots.

**Polar PMD frames** carry no sequence number: a frame's position comes from
its first-sample timestamp relative to the end of the previous frame (drift-
corrected). More than half a frame ahead is a ``TIMESTAMP_GAP``; more than half
a frame behind is a duplicate (same stamp as a recent frame) or late frame,
dropped; more than ``reorder_window`` frames behind is a device reset.
BLE delivers notifications in order, so there is no reorder buffer here.

**Gaps** of at most ``interpolate_max_s`` are filled linearly between the
samples on either side and emitted as an ``interpolated`` block (and a
:class:`~edge.stream.records.Gap` with ``interpolated=True``); longer gaps are
never bridged: a gap record, and the sample index jumps by its length so time
stays aligned. Gaps of at least ``disconnect_s`` are reported as disconnects.
A gap after the last received frame cannot be seen until a later frame arrives.

**Clock**: each received frame adds (device time of its last sample, arrival)
to a :class:`~edge.stream.clock.ClockEstimator`; blocks carry gateway times
from the estimate at the time they are emitted.

**Runs.** Consecutive received frames with the same lead-off flags are emitted
as one :class:`~edge.stream.records.SampleBlock` (one quality, resampler and
caller step per run instead of per 36-sample frame): a run is emitted when it
completes a quality window (so quality reports come with the frame that
completes them, as if each frame were emitted at once), before a gap, when the
lead-off flags change, and at every :meth:`StreamState.poll` and
:meth:`StreamState.flush`.

**Quality** (:class:`~edge.stream.quality.QualityTracker`) runs on received
samples; **model rate**: every contiguous segment (received + interpolated
samples) goes through a :class:`~edge.stream.resampling.StreamingResampler`,
one run (or interpolated fill) at a time, flushed at each non-interpolated gap
and at :meth:`StreamState.flush`.

A frame whose rate or leads differ from the stream's first frame raises
:class:`StreamFormatError` and changes nothing: the caller counts it and, if
the device really was reconfigured, starts a new state.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge.errors import EdgeError
from edge.stream.clock import ClockEstimator
from edge.stream.quality import QualityTracker, leads_off
from edge.stream.records import (
    EventKind,
    Gap,
    GapReason,
    ModelBlock,
    SampleBlock,
    StreamCounters,
    StreamEvent,
    StreamOutput,
)
from edge.stream.reorder import Delivered, ReorderBuffer, Restarted, Skipped, seq_diff
from edge.stream.resampling import DEFAULT_MODEL_FS, StreamingResampler
from protocol.ble_frame import EcgFrame
from protocol.polar_pmd import PolarEcgFrame

POLAR_LEADS: tuple[str, ...] = ("I",)
"""The Polar H10's chest lead, labelled as the closest standard lead (as the simulator does)."""


class StreamFormatError(EdgeError, ValueError):
    """A frame's rate or leads differ from the stream's."""


@dataclass(frozen=True)
class StreamConfig:
    """Tuning of one stream. Times in seconds (stream or gateway time as said), windows in frames."""

    reorder_window: int = 8
    """Frames a late frame may lag the newest one and still be put in order."""
    max_hold_s: float = 1.0
    """Gateway seconds a frame waits for a missing predecessor before the hole is declared a gap."""
    interpolate_max_s: float = 0.15
    """Longest gap (stream s) filled by linear interpolation; longer gaps are never bridged.

    150 ms bridges one lost frame of the 250 Hz wearable (36 samples, 144 ms) but never two:
    with the 1-2 % frame loss of a real BLE link, a smaller limit would drop most 10 s windows."""
    disconnect_s: float = 1.0
    """Gaps at least this long (stream s) are reported as disconnects."""
    timestamp_tolerance_s: float = 0.05
    """Disagreement between timestamps and sequence numbers tolerated (besides half a frame)."""
    restart_slack_s: float = 5.0
    """How far sequence numbers or timestamps may disagree with arrival times (s) before the device counts
    as restarted (see "Restarts" in the module docstring)."""
    quality_window_s: float = 2.0
    """Received samples per quality report (stream s)."""
    clock_bucket_s: float = 10.0
    """Device seconds per clock-fit bucket."""
    model_fs: float = DEFAULT_MODEL_FS
    """Rate of the model-rate blocks (Hz): the models' input rate, from their artifacts' metadata
    (:func:`edge.stream.resampling.model_fs_from_metadata`) where the agent has them, else 125 Hz."""

    def __post_init__(self) -> None:
        for name in ("max_hold_s", "interpolate_max_s", "disconnect_s", "timestamp_tolerance_s", "restart_slack_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"StreamConfig.{name} must be >= 0")
        if self.reorder_window < 1 or self.quality_window_s <= 0 or self.clock_bucket_s <= 0 or self.model_fs <= 0:
            raise ValueError("reorder_window, quality_window_s, clock_bucket_s and model_fs must be positive")


@dataclass
class _Last:
    """The last received frame: device time of its first sample (µs), length, last row (mV), arrival (s)."""

    t0_us: float
    n: int
    row: np.ndarray
    arrival_s: float
    seq: int | None


class StreamState:
    """Order, gaps, clock, lead-off, quality and model-rate resampling of one device's stream."""

    def __init__(self, config: StreamConfig | None = None) -> None:
        self.config = config or StreamConfig()
        self.counters = StreamCounters()
        self.clock = ClockEstimator(bucket_s=self.config.clock_bucket_s)
        self.fs: float | None = None
        self.leads: tuple[str, ...] = ()
        self._reorder: ReorderBuffer[EcgFrame] = ReorderBuffer(self.config.reorder_window, self.config.max_hold_s)
        self._polar_stamps: deque[int] = deque(maxlen=self._reorder.history)
        self._polar_duplicates = 0
        self._polar_late = 0
        self._stale_late = 0
        self._quality: QualityTracker | None = None
        self._resampler: StreamingResampler | None = None
        self._run: list[np.ndarray] = []          # received frames not yet emitted (one run, see the docstring)
        self._run_n = 0
        self._run_start = 0
        self._run_t0_us = 0.0
        self._run_off = np.zeros(0, dtype=bool)
        self._segment_start = 0
        self._segment_t0_us = 0.0
        self._next_index = 0
        self._last: _Last | None = None
        self._skipped = 0
        self._restart = False
        self._electrodes_off: frozenset[str] = frozenset()

    @property
    def next_index(self) -> int:
        """Sample index of the next sample to be emitted."""
        return self._next_index

    def push(self, frame: EcgFrame | PolarEcgFrame, arrival_s: float) -> StreamOutput:
        """Add one decoded frame that arrived at gateway time ``arrival_s`` (s); returns what it releases."""
        out = StreamOutput()
        if isinstance(frame, PolarEcgFrame):
            self._bind(frame.fs_hz, POLAR_LEADS, None)
            self.counters.frames += 1
            self._push_polar(frame, arrival_s, out)
        else:
            self._bind(frame.fs_hz, frame.leads, frame.sample_format.limits[1] * frame.lsb_nv * 1e-6)
            self.counters.frames += 1
            if self._stale(frame, arrival_s):
                self._stale_late += 1
            else:
                if self._jumped_ahead(frame, arrival_s):
                    self._handle(self._reorder.restart(frame.seq), out)
                self._handle(self._reorder.push(frame.seq, frame, arrival_s), out)
        self._sync()
        return out

    def poll(self, now_s: float) -> StreamOutput:
        """Release frames held past the hold time at gateway time ``now_s`` (call periodically)."""
        out = StreamOutput()
        self._handle(self._reorder.poll(now_s), out)
        self._emit_run(out)
        self._sync()
        return out

    def flush(self) -> StreamOutput:
        """End of stream (or of a connection): release everything held and flush the resampler."""
        out = StreamOutput()
        self._handle(self._reorder.flush(), out)
        self._end_segment(out)
        self._sync()
        return out

    def decode_error(self) -> None:
        """Count a frame of this device that failed to decode (the caller caught the ProtocolError)."""
        self.counters.decode_errors += 1

    # -- frames -------------------------------------------------------------------------------------

    def _bind(self, fs: float, leads: tuple[str, ...], full_scale_mv: float | None) -> None:
        if self.fs is None:
            self.fs, self.leads = float(fs), tuple(leads)
            self._quality = QualityTracker(self.fs, len(leads), self.config.quality_window_s, full_scale_mv)
        elif fs != self.fs or tuple(leads) != self.leads:
            raise StreamFormatError(f"frame at {fs} Hz with leads {leads} on a stream at {self.fs} Hz with {self.leads}")

    def _handle(self, releases: list[Delivered[EcgFrame] | Skipped | Restarted], out: StreamOutput) -> None:
        for r in releases:
            if isinstance(r, Skipped):
                self._skipped += r.n_frames
            elif isinstance(r, Restarted):
                self._restart = True
            else:
                f = r.item
                gap, reason = self._gap_before_seq(f.t0_us, f.n_samples, r.arrival_s, out)
                self._emit(f.millivolts().astype(np.float32), f.t0_us, r.arrival_s, f.lead_off, gap, reason, out)
                assert self._last is not None
                self._last.seq = r.seq

    def _stale(self, frame: EcgFrame, arrival_s: float) -> bool:
        """True for a frame too far behind for the reorder buffer whose timestamp agrees with its seq and
        whose arrival agrees with both (it left the device less than ``restart_slack_s`` before it came).

        Such a frame is very late (network), not the first of a device restart. A restart that reset seq
        and clock together also has them agree, but its frame maps to a gateway time long past (the old
        run's start): the arrival time tells the two apart.
        """
        last, head = self._last, self._reorder.next_seq
        if last is None or last.seq is None or head is None or seq_diff(frame.seq, head) >= -self._reorder.history:
            return False
        d = seq_diff(frame.seq, last.seq)
        by_time = self._timestamp_gap(frame.t0_us) + last.n
        if abs(by_time - d * last.n) > self._tolerance(d * last.n):
            return False
        try:
            sent_s = self.clock.to_gateway(frame.t0_us + frame.n_samples * self._us_per_sample)
        except ValueError:          # no clock pairs (cannot happen after a frame; kept safe)
            return True
        return arrival_s - sent_s <= self.config.restart_slack_s

    def _jumped_ahead(self, frame: EcgFrame, arrival_s: float) -> bool:
        """True when the frame's seq is further ahead of the stream than the time since the last frame
        could explain (by more than ``restart_slack_s``): the device restarted with other numbers."""
        last, head = self._last, self._reorder.next_seq
        if last is None or head is None:
            return False
        d = seq_diff(frame.seq, head)
        if d < self._reorder.window:
            return False
        return d * last.n / self._fs > max(0.0, arrival_s - last.arrival_s) + self.config.restart_slack_s

    def _gap_before_seq(self, t0_us: float, n: int, arrival_s: float, out: StreamOutput) -> tuple[int, GapReason]:
        """Samples missing before a frame released by the reorder buffer, and why."""
        skipped, restart = self._skipped, self._restart
        self._skipped, self._restart = 0, False
        last = self._last
        if last is None:
            return 0, GapReason.LOST_FRAMES
        fs = self._fs
        ts_gap = self._timestamp_gap(t0_us)
        if restart:
            self.counters.device_resets += 1
            out.events.append(StreamEvent(self._next_index, EventKind.DEVICE_RESET, "sequence numbers restarted"))
            by_arrival = max(round((arrival_s - last.arrival_s) * fs) - n, 0)
            if ts_gap < -self._tolerance(0) or ts_gap > by_arrival + self.config.restart_slack_s * fs:
                self.clock.reset()          # the device clock restarted too (or jumped): re-anchor on arrivals
                ts_gap = by_arrival
            return max(ts_gap, 0), GapReason.DEVICE_RESET
        seq_gap = skipped * last.n
        if abs(ts_gap - seq_gap) > self._tolerance(seq_gap):
            self.counters.timestamp_jumps += 1
            out.events.append(StreamEvent(
                self._next_index, EventKind.TIMESTAMP_JUMP,
                f"timestamps say {ts_gap} samples missing, sequence numbers {seq_gap}",
            ))
            self.clock.reset()
        return seq_gap, GapReason.DISCONNECT if seq_gap >= self.config.disconnect_s * fs else GapReason.LOST_FRAMES

    def _push_polar(self, frame: PolarEcgFrame, arrival_s: float, out: StreamOutput) -> None:
        n = len(frame.samples_uv)
        t0_us = frame.first_sample_ns() / 1000.0
        if frame.timestamp_ns in self._polar_stamps:
            self._polar_duplicates += 1
            return
        gap, reason = 0, GapReason.TIMESTAMP_GAP
        if self._last is not None:
            delta = self._timestamp_gap(t0_us)
            if delta < -self.config.reorder_window * n:
                self.counters.device_resets += 1
                out.events.append(StreamEvent(self._next_index, EventKind.DEVICE_RESET, "timestamps went back"))
                self.clock.reset()
                gap, reason = max(round((arrival_s - self._last.arrival_s) * self._fs) - n, 0), GapReason.DEVICE_RESET
            elif delta < -(n // 2):
                self._polar_late += 1
                return
            elif delta > n // 2 and delta / self._fs > max(0.0, arrival_s - self._last.arrival_s) + \
                    self.config.restart_slack_s:
                self.counters.device_resets += 1     # the clock jumped ahead further than the time since: a restart
                out.events.append(StreamEvent(self._next_index, EventKind.DEVICE_RESET, "timestamps jumped ahead"))
                self.clock.reset()
                gap, reason = max(round((arrival_s - self._last.arrival_s) * self._fs) - n, 0), GapReason.DEVICE_RESET
            elif delta > n // 2:
                gap = delta
                if gap >= self.config.disconnect_s * self._fs:
                    reason = GapReason.DISCONNECT
        self._polar_stamps.append(frame.timestamp_ns)
        self._emit(frame.millivolts().astype(np.float32)[:, None], t0_us, arrival_s, (), gap, reason, out)

    # -- output -------------------------------------------------------------------------------------

    def _emit(
        self, mv: np.ndarray, t0_us: float, arrival_s: float, electrodes: tuple[str, ...], gap: int,
        reason: GapReason, out: StreamOutput,
    ) -> None:
        """Emit the gap before a received frame (if any), then the frame's samples."""
        off = leads_off(electrodes, self.leads)
        n = len(mv)
        self.clock.update(t0_us + n * 1e6 / self._fs, arrival_s)
        detached = frozenset(electrodes)
        if gap > 0 or detached != self._electrodes_off:
            self._emit_run(out)
        if gap > 0:
            self._emit_gap(gap, reason, mv[0], off, tuple(sorted(detached)), out)
        if self._resampler is None:
            self._start_segment(t0_us)
        if detached - self._electrodes_off:
            self.counters.lead_off_intervals += 1
        self._electrodes_off = detached
        if not self._run_n:
            self._run_start, self._run_t0_us, self._run_off = self._next_index, float(t0_us), off
        self._run.append(mv)
        self._run_n += n
        self._next_index += n
        self.counters.samples += n
        self._last = _Last(float(t0_us), n, mv[-1], arrival_s, None)
        assert self._quality is not None
        if self._run_n >= self._quality.remaining:
            self._emit_run(out)

    def _emit_run(self, out: StreamOutput) -> None:
        """Emit the received frames held as one block: quality, then the resampler."""
        if not self._run_n:
            return
        mv = self._run[0] if len(self._run) == 1 else np.concatenate(self._run)
        block = SampleBlock(self._run_start, mv, self._run_t0_us, self.clock.to_gateway(self._run_t0_us), False,
                            self._run_off, tuple(sorted(self._electrodes_off)))
        self._run, self._run_n = [], 0
        out.blocks.append(block)
        assert self._quality is not None
        out.quality += self._quality.push(block.start, mv, block.lead_off)
        self._resample(mv, out)

    def _emit_gap(self, length: int, reason: GapReason, next_row: np.ndarray, off: np.ndarray,
                  electrodes: tuple[str, ...], out: StreamOutput) -> None:
        assert self._last is not None
        last = self._last
        t_dev = last.t0_us + last.n * self._us_per_sample
        t_gw = self.clock.to_gateway(t_dev)
        interpolated = length <= math.floor(self.config.interpolate_max_s * self._fs + 1e-9)
        if interpolated:
            frac = (np.arange(1, length + 1) / (length + 1))[:, None]
            fill = (last.row + (next_row - last.row) * frac).astype(np.float32)
            out.blocks.append(SampleBlock(self._next_index, fill, t_dev, t_gw, True, off, electrodes))
            self._resample(fill, out)
            self.counters.samples_interpolated += length
        else:
            self._end_segment(out)
        out.gaps.append(Gap(self._next_index, length, reason, interpolated, t_dev, t_gw))
        self.counters.gaps += 1
        self.counters.samples_lost += length
        self._next_index += length

    def _start_segment(self, t0_us: float) -> None:
        self._resampler = StreamingResampler(self._fs, len(self.leads), self.config.model_fs)
        self._segment_start = self._next_index
        self._segment_t0_us = float(t0_us)

    def _end_segment(self, out: StreamOutput) -> None:
        self._emit_run(out)
        if self._resampler is not None:
            self._model_block(self._resampler.flush(), out)
            self._resampler = None

    def _resample(self, x: np.ndarray, out: StreamOutput) -> None:
        assert self._resampler is not None
        self._model_block(self._resampler.push(x), out)

    def _model_block(self, y: np.ndarray, out: StreamOutput) -> None:
        if not len(y):
            return
        assert self._resampler is not None
        offset = self._resampler.n_out - len(y)
        t_dev = self._segment_t0_us + offset / self.config.model_fs * 1e6 * self._rate
        out.model_blocks.append(ModelBlock(
            self._segment_start, offset, y.astype(np.float32), self.config.model_fs, self.clock.to_gateway(t_dev),
        ))

    # -- helpers ------------------------------------------------------------------------------------

    @property
    def _fs(self) -> float:
        assert self.fs is not None
        return self.fs

    @property
    def _rate(self) -> float:
        """Device-clock seconds per stream second (1 + estimated drift)."""
        return 1.0 + self.clock.drift_ppm * 1e-6

    @property
    def _us_per_sample(self) -> float:
        """Device µs between consecutive samples."""
        return 1e6 / self._fs * self._rate

    def _timestamp_gap(self, t0_us: float) -> int:
        """Samples between the end of the last frame and ``t0_us`` by the device timestamps."""
        assert self._last is not None
        expected = self._last.t0_us + self._last.n * self._us_per_sample
        return round((t0_us - expected) / self._us_per_sample)

    def _tolerance(self, gap: int) -> float:
        """Samples by which timestamps may disagree with sequence numbers (half a frame, config, drift)."""
        assert self._last is not None
        return max(self._last.n / 2, self.config.timestamp_tolerance_s * self._fs) + 2e-4 * abs(gap)

    def _sync(self) -> None:
        stats = self._reorder.stats
        self.counters.duplicates = stats.duplicates + self._polar_duplicates
        self.counters.late = stats.late + self._polar_late + self._stale_late
        self.counters.reordered = stats.reordered
