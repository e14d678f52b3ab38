"""Model windows from one stream's model-rate blocks: a window every hop, never across a gap.

A :class:`Windower` per stream consumes what :class:`~edge.stream.state.StreamState`
emits (:class:`~edge.stream.records.ModelBlock` at 125 Hz and
:class:`~edge.stream.records.Gap` records) and emits :class:`Window` objects.

**The grid.** Windows sit on one grid per stream, in stream time (seconds from
the stream's first sample, which sample indices measure, so the grid does not
move with the gateway clock): slot ``k`` has its context (the window plus
``margin_s`` either side) starting at ``k × hop``, its content at
``k × hop + margin``. A slot's first sample is the model-rate sample nearest
to that time (within half a sample, 4 ms at 125 Hz, when a gap left the
segment off the model-rate grid). Every slot from the first one that fits the
stream's first segment on is either **emitted** once, or **dropped and
counted** by reason (:attr:`WindowerCounters.dropped`):

- a slot whose context spans a non-interpolated gap longer than
  ``mask_max_gap_s`` (or whose content is mostly masked) is dropped with the gap's reason
  (:class:`~edge.stream.records.GapReason` value: ``lost_frames``,
  ``disconnect``, ``timestamp_gap``, ``device_reset``), or ``segment_break``
  when the caller did not pass the gap record;
- slots still open when :meth:`Windower.close` is called are dropped as
  ``stream_end``.

*Gaps are masked, not dropped* (issue 13: a device with 2 % frame loss must
show its ECG). A non-interpolated gap of at most ``WindowConfig.mask_max_gap_s``
inside a stream does not break the grid: the windower goes on, fills the gap for
the band-pass (linear between the samples either side) and marks it in
:attr:`Window.gaps` (``[start, end)`` sample ranges of the window), which the
uplink payload carries (:mod:`protocol.window_payload` v2) and the dashboard
draws as a gap; masked windows are counted in :attr:`WindowerCounters.with_gaps`.
The classifier was trained on contiguous windows, so the pipeline gives no
class probabilities for a masked window (:mod:`edge.inference.pipeline`). A window
whose content is more than ``mask_max_fraction`` masked, and any slot spanning a
longer gap, is dropped with the gap's reason as before. Short gaps
(``StreamConfig.interpolate_max_s``, 150 ms by default) are filled by the stream
state and stay inside a segment: windows over them are emitted, with the number
of interpolated device-rate samples in :attr:`Window.interpolated_samples`.

**Window ids.** A window's id is known before it is cut: ``uuid5(stream key,
slot)``, the stream key a random UUID per windower (so ids never repeat across
restarts or replays). A gateway restarted after a crash continues the grid of the same
device's stream (:meth:`Windower.restore`, :mod:`edge.persistence`): same key, the new
stream's samples placed on the old grid, slots already uplinked not cut again. An alarm raised before the windows covering its deciding
samples exist names them at once (:meth:`Windower.window_ids_covering`).

**Band-pass with margins.** The model saw, in training,
:func:`models.preprocessing.prepare_window` applied to 12 s of signal (10 s plus
1 s either side, ``models/data/synthetic.py``): band-pass over all of it, keep
the centre. A window here keeps the same context (``margin_s`` = 1 s either
side) and :meth:`Window.model_input` / :func:`prepare_batch` filter it the same
way, so the filter's edge effects fall in the margins as they did in training.
The one remaining difference: the stream resamples to 125 Hz with a streaming
polyphase filter over the whole segment rather than per 12 s window (the
difference is confined to the first and last few samples of a segment). The
cost of the margin is latency: a window is emitted ``margin_s`` after its last
sample arrives.

Windows do the cheap part on the event loop (slicing); the band-pass runs in
:func:`prepare_batch`, called by the pipeline in its worker thread, one
``sosfiltfilt`` call per batch.
"""

from __future__ import annotations

import bisect
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.stream.records import Gap, ModelBlock, StreamOutput
from models.preprocessing import MODEL_FS, bandpass
from protocol.leads import WEARABLE_LEADS

STREAM_END = "stream_end"
"""Drop reason of slots still open when the windower is closed."""
SEGMENT_BREAK = "segment_break"
"""Drop reason when a new segment starts without a gap record for it."""
GATEWAY_RESTART = "gateway_restart"
"""Drop reason of the slots a restarted gateway could not fill (:meth:`Windower.restore`)."""


@dataclass(frozen=True)
class WindowConfig:
    """Window geometry (seconds at the model rate ``fs``)."""

    window_s: float = 10.0
    hop_s: float = 5.0
    margin_s: float = 1.0
    """Context kept either side of the window for the band-pass (as in training)."""
    fs: float = MODEL_FS
    mask_max_gap_s: float = 4.0
    """Longest non-interpolated gap a window may span, masked (0: a gap always breaks the grid)."""
    mask_max_fraction: float = 0.5
    """Largest masked fraction of a window's content that is still sent."""

    def __post_init__(self) -> None:
        if self.fs <= 0 or self.window_s <= 0 or self.hop_s <= 0 or self.margin_s < 0:
            raise ValueError("WindowConfig: fs, window_s and hop_s must be positive and margin_s >= 0")
        if self.mask_max_gap_s < 0 or not 0.0 <= self.mask_max_fraction < 1.0:
            raise ValueError("WindowConfig: mask_max_gap_s must be >= 0 and mask_max_fraction in [0, 1)")
        for name in ("window_s", "hop_s", "margin_s"):
            n = getattr(self, name) * self.fs
            if abs(n - round(n)) > 1e-6:
                raise ValueError(f"WindowConfig.{name} = {getattr(self, name)} s is not a whole number of samples at {self.fs} Hz")
        if self.window_samples < 2:
            raise ValueError("a window needs at least 2 samples")

    @property
    def window_samples(self) -> int:
        return round(self.window_s * self.fs)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_s * self.fs)

    @property
    def margin_samples(self) -> int:
        return round(self.margin_s * self.fs)

    @property
    def context_samples(self) -> int:
        return self.window_samples + 2 * self.margin_samples


@dataclass(frozen=True, eq=False)
class Window:
    """One window of one stream, as cut (not yet filtered).

    ``context_mv``: float32 ``(context, leads)`` mV at ``fs``: the window plus
    ``margin`` samples either side, as resampled by the stream (not filtered).
    ``segment_start`` (device-rate index) and ``offset`` (model-rate index of the
    window's first sample in that segment) place it exactly; ``t_stream_s`` is
    the same place in stream seconds (device sample clock, from the stream's
    first sample); ``t_gateway_s`` the gateway time of the first sample.
    ``protected``: evidence for an alarm; the batcher never sheds it. ``gaps``: ``[start, end)``
    sample ranges of the window (0 … ``n_samples``) where no data came (filled linearly in
    ``context_mv`` for the band-pass only; see the module docstring).
    """

    window_id: str
    patient_id: str
    device_id: str
    slot: int
    segment_start: int
    offset: int
    t_stream_s: float
    t_gateway_s: float
    fs: float
    leads: tuple[str, ...]
    context_mv: np.ndarray
    margin: int
    interpolated_samples: int = 0
    """Device-rate samples inside the window that the stream state filled by interpolation."""
    protected: bool = False
    gaps: tuple[tuple[int, int], ...] = ()

    @property
    def masked_samples(self) -> int:
        """Samples of the window inside :attr:`gaps`."""
        return sum(b - a for a, b in self.gaps)

    @property
    def n_samples(self) -> int:
        return int(self.context_mv.shape[0]) - 2 * self.margin

    @property
    def samples_mv(self) -> np.ndarray:
        """The window's raw samples, float32 ``(leads, n)`` mV (a view)."""
        return self.context_mv[self.margin : self.margin + self.n_samples].T

    def model_input(self) -> np.ndarray:
        """Band-passed ``(leads, n)`` float32, as :func:`models.preprocessing.prepare_window` would give."""
        return prepare_batch([self])[0]


def prepare_batch(windows: Sequence[Window], leads: Sequence[str] | None = None) -> np.ndarray:
    """Band-pass many windows in one call → float32 ``(B, len(leads), n)``.

    ``leads``: which leads, in which order (default: each window's own). Every
    column is filtered independently, so the result equals filtering each
    window alone with :func:`models.preprocessing.bandpass` and keeping the
    centre (what ``prepare_window`` does with 1 s either side).
    """
    if not windows:
        return np.zeros((0, len(leads or ()), 0), dtype=np.float32)
    w0 = windows[0]
    n, m = w0.n_samples, w0.margin
    cols = []
    for w in windows:
        if w.context_mv.shape[0] != w0.context_mv.shape[0] or w.margin != m or w.fs != w0.fs:
            raise ValueError("windows of one batch must share geometry and rate")
        if leads is None:
            if w.leads != w0.leads:
                raise ValueError("windows of one batch must share leads (or pass leads=)")
            cols.append(w.context_mv)
        else:
            try:
                idx = [w.leads.index(name) for name in leads]
            except ValueError:
                raise ValueError(f"window of {w.patient_id} has leads {w.leads}, model needs {tuple(leads)}") from None
            cols.append(w.context_mv[:, idx])
    k = cols[0].shape[1]
    stacked = np.concatenate(cols, axis=1)  # (context, B*k)
    filtered = bandpass(stacked, w0.fs)[m : m + n]
    return np.ascontiguousarray(filtered.T.reshape(len(windows), k, n), dtype=np.float32)


@dataclass
class WindowerCounters:
    """What one windower emitted and dropped (slots of the grid)."""

    emitted: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    """Slots dropped, by reason (a gap reason, ``segment_break`` or ``stream_end``)."""
    with_interpolation: int = 0
    """Emitted windows that contain interpolated samples."""
    with_gaps: int = 0
    """Emitted windows with masked gaps (:attr:`Window.gaps`)."""

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class Windower:
    """Cuts one stream's model-rate blocks into :class:`Window` objects on a fixed grid.

    ``device_fs``: the stream's device rate (``StreamState.fs``), needed to place
    segments (whose starts are device-rate indices) on the grid. Feed it with
    :meth:`push` (a whole ``StreamOutput``) or :meth:`push_gap` / :meth:`push_block`
    (gaps before the blocks that follow them).
    """

    def __init__(
        self, patient_id: str, device_id: str, device_fs: float, config: WindowConfig | None = None, *,
        leads: Sequence[str] = WEARABLE_LEADS,
    ) -> None:
        if device_fs <= 0:
            raise ValueError("device_fs must be positive")
        self.patient_id = patient_id
        self.device_id = device_id
        self.device_fs = float(device_fs)
        self.config = config or WindowConfig()
        self.leads = tuple(leads)
        self.counters = WindowerCounters()
        self._ratio = self.config.fs / self.device_fs
        self.stream_key = uuid.uuid4()
        """Random per windower: window ids are ``uuid5(stream_key, slot)``."""
        self._segment: int | None = None  # device-rate start of the current chain of segments (joined over masked gaps)
        self._part: int | None = None  # device-rate start of the segment now arriving
        self._part_shift = 0  # chain offset (model rate) of that segment's first sample
        self._received = 0  # model-rate samples of the current chain received (masked gaps included)
        self._masked: list[tuple[int, int, str]] = []  # chain offsets [start, stop) of masked gaps, and their reason
        self._buf = np.zeros((0, len(self.leads)), dtype=np.float32)
        self._buf_start = 0  # segment offset of _buf[0]
        self._anchors: list[tuple[int, float]] = []  # (segment offset, gateway time) of received blocks
        self._next_slot: int | None = None
        self._gap_reasons: dict[int, str] = {}  # device index where a non-interpolated gap ends → reason
        self._interpolated: list[tuple[int, int]] = []  # device-rate [start, stop) filled by the stream state
        self._origin = 0  # grid position (model-rate samples) of this stream's sample 0 (restored grids)
        self._restored = False

    # -- restart safety (edge.persistence) --------------------------------------------------------------

    @property
    def next_slot(self) -> int | None:
        """The next slot of the grid to cut (None before the first segment)."""
        return self._next_slot

    def restore(self, stream_key: uuid.UUID, origin_samples: int, next_slot: int | None) -> None:
        """Continue the grid of a windower of the same stream before a gateway restart: same
        ``stream_key`` (same window ids), this stream's sample 0 at ``origin_samples`` model-rate
        samples of that grid, and no slot before ``next_slot`` cut again (those were uplinked). Slots
        between ``next_slot`` and the first this stream can fill are dropped as ``gateway_restart``.
        Call it before the first block."""
        if self._segment is not None:
            raise ValueError("Windower.restore: the windower has already started")
        self.stream_key = stream_key
        self._origin = int(origin_samples)
        self._next_slot = next_slot
        self._restored = True

    # -- input --------------------------------------------------------------------------------------

    def push(self, out: StreamOutput) -> list[Window]:
        """Consume one ``StreamState`` output (its gaps first, then its model blocks)."""
        for gap in out.gaps:
            self.push_gap(gap)
        windows: list[Window] = []
        for block in out.model_blocks:
            windows += self.push_block(block)
        return windows

    def push_gap(self, gap: Gap) -> None:
        """Record a gap: non-interpolated gaps name the reason for the slots they break."""
        if gap.interpolated:
            self._interpolated.append((gap.start, gap.stop))
        else:
            self._gap_reasons[gap.stop] = str(gap.reason)

    def push_block(self, block: ModelBlock) -> list[Window]:
        """Add a model-rate block; returns the windows it completes."""
        x = np.asarray(block.samples_mv, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.leads):
            raise ValueError(f"model block of shape {x.shape}, expected (n, {len(self.leads)})")
        if abs(block.fs - self.config.fs) > 1e-9:
            raise ValueError(f"model block at {block.fs} Hz, windows at {self.config.fs} Hz")
        if block.segment_start != self._part:
            if block.offset != 0:
                raise ValueError(f"block of segment {block.segment_start} starts at offset {block.offset}, not 0")
            if not self._join(block.segment_start):
                self._start_segment(block.segment_start)
        elif block.offset + self._part_shift != self._received:
            raise ValueError(f"block at offset {block.offset}, expected {self._received - self._part_shift} "
                             "(blocks out of order?)")
        if not len(x):
            return []
        self._buf = np.concatenate([self._buf, x]) if len(self._buf) else x
        self._anchors.append((self._part_shift + block.offset, block.t_gateway_s))
        self._received += len(x)
        return self._emit_ready()

    def close(self) -> int:
        """End of stream: slots whose context had begun are dropped as ``stream_end``; returns how many."""
        n = 0
        if self._segment is not None and self._next_slot is not None:
            while self._slot_offset(self._next_slot) < self._received:
                n += 1
                self._next_slot += 1
        if n:
            self._drop(STREAM_END, n)
        self._segment = self._part = None
        self._buf = self._buf[:0]
        self._anchors.clear()
        self._masked.clear()
        return n

    def window_id_for(self, slot: int) -> str:
        """The id the window of ``slot`` has (or will have) on this stream."""
        return str(uuid.uuid5(self.stream_key, str(slot)))

    def slots_covering(self, start_s: float, end_s: float) -> list[int]:
        """Grid slots whose window content overlaps ``[start_s, end_s]`` (seconds of this stream)."""
        cfg = self.config
        m, n, hop = cfg.margin_samples, cfg.window_samples, cfg.hop_samples
        a, b = start_s * cfg.fs + self._origin, max(start_s, end_s) * cfg.fs + self._origin
        lo = max(0, math.floor((a - m - n) / hop) + 1)
        hi = math.ceil((b - m) / hop)
        return [k for k in range(lo, hi + 1) if k * hop + m <= b and k * hop + m + n > a]

    def window_ids_covering(self, start_s: float, end_s: float) -> list[str]:
        """Ids of the windows of :meth:`slots_covering` (known before the windows are cut)."""
        return [self.window_id_for(k) for k in self.slots_covering(start_s, end_s)]

    # -- internals ----------------------------------------------------------------------------------

    def _slot_offset(self, k: int) -> int:
        """Offset in the current segment of slot ``k``'s context start (may be negative)."""
        assert self._segment is not None
        return round(k * self.config.hop_samples - self._segment * self._ratio - self._origin)

    def _join(self, start: int) -> bool:
        """A new segment after a short gap continues the chain, the gap masked; False if it cannot."""
        if self._segment is None or self.config.mask_max_gap_s <= 0:
            return False
        shift = round((start - self._segment) * self._ratio)
        missing = shift - self._received
        if not 0 <= missing <= self.config.mask_max_gap_s * self.config.fs:
            return False
        reason = self._gap_reasons.pop(start, SEGMENT_BREAK)
        self._gap_reasons = {k: v for k, v in self._gap_reasons.items() if k > start}
        if missing:
            pad = np.full((missing, len(self.leads)), np.nan, dtype=np.float32)
            self._buf = np.concatenate([self._buf, pad])
            self._masked.append((self._received, shift, reason))
            self._received = shift
        self._part, self._part_shift = start, shift
        return True

    def _start_segment(self, start: int) -> None:
        previous = self._segment
        self._segment = self._part = start
        self._part_shift = 0
        self._masked.clear()
        self._received = 0
        self._buf = np.zeros((0, len(self.leads)), dtype=np.float32)
        self._buf_start = 0
        self._anchors.clear()
        hop = self.config.hop_samples
        first = max(math.ceil((start * self._ratio + self._origin - 0.5) / hop) - 1, 0)
        while self._slot_offset(first) < 0:
            first += 1
        reason = self._gap_reasons.pop(start, SEGMENT_BREAK)
        self._gap_reasons = {k: v for k, v in self._gap_reasons.items() if k > start}
        if previous is not None and self._next_slot is not None and first > self._next_slot:
            self._drop(reason, first - self._next_slot)
        elif self._restored and self._next_slot is not None and first > self._next_slot:
            self._drop(GATEWAY_RESTART, first - self._next_slot)   # the slots of the gateway's down time
        self._restored = False
        if self._next_slot is None or first > self._next_slot:
            self._next_slot = first

    def _drop(self, reason: str, n: int) -> None:
        self.counters.dropped[reason] = self.counters.dropped.get(reason, 0) + n

    def _emit_ready(self) -> list[Window]:
        cfg = self.config
        ctx = cfg.context_samples
        out: list[Window] = []
        assert self._next_slot is not None and self._segment is not None
        while True:
            j = self._slot_offset(self._next_slot)
            if j + ctx > self._received:
                break
            w = self._window(self._next_slot, j)
            if w is not None:
                out.append(w)
            self._next_slot += 1
        keep_from = min(self._slot_offset(self._next_slot), self._received)
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :]
            self._buf_start = keep_from
            i = bisect.bisect_right(self._anchors, (keep_from, math.inf)) - 1
            if i > 0:
                del self._anchors[:i]
            self._masked = [g for g in self._masked if g[1] > keep_from]
        return out

    def _window(self, slot: int, j: int) -> Window | None:
        cfg = self.config
        assert self._segment is not None
        m, n = cfg.margin_samples, cfg.window_samples
        context = self._buf[j - self._buf_start : j - self._buf_start + cfg.context_samples].copy()
        first = j + m  # offset of the window's first sample
        gaps: tuple[tuple[int, int], ...] = ()
        holes = [g for g in self._masked if g[0] < j + cfg.context_samples and g[1] > j]
        if holes:
            gaps = tuple((max(a - first, 0), min(b - first, n)) for a, b, _ in holes if a < first + n and b > first)
            if sum(b - a for a, b in gaps) > cfg.mask_max_fraction * n:
                self._drop(holes[0][2], 1)
                return None
            _fill_linear(context)
        i = bisect.bisect_right(self._anchors, (first, math.inf)) - 1
        a_off, a_t = self._anchors[max(i, 0)]
        t_gw = a_t + (first - a_off) / cfg.fs
        d0 = self._segment + first / self._ratio
        d1 = self._segment + (first + n) / self._ratio
        interp = sum(max(0.0, min(d1, b) - max(d0, a)) for a, b in self._interpolated)
        self._interpolated = [(a, b) for a, b in self._interpolated if b > d0]
        interp_n = int(round(interp))
        self.counters.emitted += 1
        if interp_n:
            self.counters.with_interpolation += 1
        if gaps:
            self.counters.with_gaps += 1
        return Window(
            window_id=self.window_id_for(slot), patient_id=self.patient_id, device_id=self.device_id, slot=slot,
            segment_start=self._segment, offset=first, t_stream_s=self._segment / self.device_fs + first / cfg.fs,
            t_gateway_s=t_gw, fs=cfg.fs, leads=self.leads, context_mv=context, margin=m, interpolated_samples=interp_n,
            gaps=gaps,
        )


def _fill_linear(context: np.ndarray) -> None:
    """Fill NaN rows of ``(n, leads)`` in place, linearly between the rows either side (held at the ends)."""
    bad = np.isnan(context).any(axis=1)
    if not bad.any():
        return
    idx = np.arange(len(context))
    good = ~bad
    if not good.any():
        context[:] = 0.0
        return
    for col in range(context.shape[1]):
        context[bad, col] = np.interp(idx[bad], idx[good], context[good, col])


def windows_of(windower: Windower, outputs: Iterable[StreamOutput]) -> list[Window]:
    """Every window of a sequence of stream outputs (convenience for replay and tests)."""
    return [w for out in outputs for w in windower.push(out)]
