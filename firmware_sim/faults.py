"""Fault injection for virtual wearables, deterministic per seed, with a ground-truth log.

A :class:`FaultConfig` describes what goes wrong; a :class:`FaultInjector` (one
per device) does it and records each injected fault twice: as a count in
:class:`FaultStats` and as a :class:`FaultEvent` (stream time, kind, seq) so a
test can check the edge's gap and lead-off accounting against the truth.

Link faults act on a device's outgoing frames (:meth:`FaultInjector.route`), in
this order for each frame:

1. **disconnect** periods: the link is down for frames due in ``[start, end)``.
   With :attr:`DisconnectPolicy.DROP` they are lost, as a BLE wearable without
   storage loses them. With :attr:`DisconnectPolicy.BUFFER` the device keeps the
   newest ``buffer_frames`` in a ring buffer (older ones are overwritten, and
   counted lost) and sends them when the link is back.
2. **burst loss**: a Gilbert–Elliott chain over frames (good → bad with
   ``p_enter_bad``, bad → good with ``p_leave_bad``; a frame in the bad state is
   lost with ``loss_in_bad``).
3. **random loss** with probability ``loss_p``.
4. **jitter**: an exponential delay of mean ``jitter_mean_s`` (capped at
   ``jitter_max_s``) that keeps frame order, as a BLE link layer does (frames
   bunch up behind a late one). Counted, not logged per frame (it loses nothing).
5. **reordering**: with ``reorder_p`` a frame is held back ``reorder_depth``
   frame periods, so that many later frames overtake it.
6. **duplicates**: with ``duplicate_p`` a frame is sent twice in a row.

Each frame draws the same six uniforms whatever happens to it, so the outcome
for a seed does not depend on how frames are batched, on the pace, or on timing.

Signal faults: **lead-off** intervals flag the listed electrodes in every frame
they touch and make the leads using those electrodes flat (0 mV) or railed
(the format's full scale). **Clock drift** and offset are applied by the
packetizer's :class:`~firmware_sim.packetizer.DeviceClock`, **battery drain**
speed-up by the device; both are configured here so one scenario holds every fault.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

import numpy as np

from protocol.leads import electrode_mask

log = logging.getLogger(__name__)
T = TypeVar("T")

_LIMB = ("RA", "LA", "LL")
LEAD_ELECTRODES: dict[str, frozenset[str]] = {
    "I": frozenset({"RA", "LA", "RL"}),
    "II": frozenset({"RA", "LL", "RL"}),
    "III": frozenset({"LA", "LL", "RL"}),
    **{lead: frozenset({*_LIMB, "RL"}) for lead in ("aVR", "aVL", "aVF")},
    **{f"V{i}": frozenset({f"V{i}", *_LIMB, "RL"}) for i in range(1, 7)},
}
"""Electrodes each lead depends on (precordial leads use Wilson's terminal; RL is the reference)."""


class FaultKind(StrEnum):
    """What a :class:`FaultEvent` records."""

    LOSS = "loss"
    BURST_LOSS = "burst_loss"
    DISCONNECT_LOSS = "disconnect_loss"
    BUFFER_OVERFLOW = "buffer_overflow"
    BUFFERED = "buffered"
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    DISCONNECT_START = "disconnect_start"
    DISCONNECT_END = "disconnect_end"
    LEAD_OFF_START = "lead_off_start"
    LEAD_OFF_END = "lead_off_end"
    BATTERY_LOW = "battery_low"
    BATTERY_EMPTY = "battery_empty"
    SEND_FAILED = "send_failed"
    """Not injected: the transport refused a frame (e.g. broker down); logged so the truth is complete."""


LOST_KINDS = frozenset(
    {FaultKind.LOSS, FaultKind.BURST_LOSS, FaultKind.DISCONNECT_LOSS, FaultKind.BUFFER_OVERFLOW, FaultKind.SEND_FAILED}
)
"""Event kinds that mean a frame never reached the receiver."""


@dataclass(frozen=True)
class FaultEvent:
    """One ground-truth fault. ``t_s`` is stream time (seconds after the first sample).

    For frame faults ``seq`` is the frame's sequence number and ``n_samples`` its
    samples per lead; for interval faults (disconnect, lead-off) ``t_s`` is the
    interval's start or end.
    """

    t_s: float
    kind: FaultKind
    seq: int | None = None
    n_samples: int = 0
    detail: str = ""


@dataclass(frozen=True)
class GilbertElliott:
    """Two-state burst-loss channel; probabilities are per frame."""

    p_enter_bad: float
    p_leave_bad: float
    loss_in_bad: float = 1.0

    def __post_init__(self) -> None:
        _check_p("p_enter_bad", self.p_enter_bad)
        _check_p("p_leave_bad", self.p_leave_bad)
        _check_p("loss_in_bad", self.loss_in_bad)
        if self.p_leave_bad == 0:
            raise ValueError("p_leave_bad must be > 0 or the channel never recovers")

    @property
    def mean_burst_frames(self) -> float:
        """Mean frames per stay in the bad state."""
        return 1.0 / self.p_leave_bad

    @property
    def loss_rate(self) -> float:
        """Long-run fraction of frames lost."""
        return self.p_enter_bad / (self.p_enter_bad + self.p_leave_bad) * self.loss_in_bad


@dataclass(frozen=True)
class Interval:
    """``[start_s, end_s)`` in stream seconds."""

    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if not 0 <= self.start_s < self.end_s:
            raise ValueError(f"interval needs 0 <= start < end, got [{self.start_s}, {self.end_s})")


class LeadOffMode(StrEnum):
    FLAT = "flat"
    """The input reads 0 mV (front end with lead-off pull to mid-rail, after the high-pass)."""
    RAIL = "rail"
    """The input saturates at the format's positive full scale."""


@dataclass(frozen=True)
class LeadOff:
    """Electrodes detached during ``[start_s, end_s)``."""

    start_s: float
    end_s: float
    electrodes: tuple[str, ...]
    mode: LeadOffMode = LeadOffMode.FLAT

    def __post_init__(self) -> None:
        Interval(self.start_s, self.end_s)
        if not self.electrodes:
            raise ValueError("a lead-off interval needs at least one electrode")
        electrode_mask(self.electrodes)  # raises for unknown names

    def affects(self, lead: str) -> bool:
        """True if ``lead`` uses one of the detached electrodes."""
        return bool(LEAD_ELECTRODES[lead] & set(self.electrodes))


class DisconnectPolicy(StrEnum):
    DROP = "drop"
    """Frames due while the link is down are lost."""
    BUFFER = "buffer"
    """The device keeps the newest ``buffer_frames`` and sends them on reconnect."""


@dataclass(frozen=True)
class FaultConfig:
    """Everything that goes wrong for one device. All probabilities are per frame; times in seconds."""

    seed: int = 0
    loss_p: float = 0.0
    burst: GilbertElliott | None = None
    jitter_mean_s: float = 0.0
    jitter_max_s: float = 1.0
    reorder_p: float = 0.0
    reorder_depth: int = 1
    duplicate_p: float = 0.0
    disconnects: tuple[Interval, ...] = ()
    disconnect_policy: DisconnectPolicy = DisconnectPolicy.DROP
    buffer_frames: int = 0
    lead_off: tuple[LeadOff, ...] = ()
    clock_drift_ppm: float = 0.0
    clock_offset_us: int = 0
    battery_drain_speedup: float = 1.0
    battery_start_pct: float | None = None

    def __post_init__(self) -> None:
        for name in ("loss_p", "reorder_p", "duplicate_p"):
            _check_p(name, getattr(self, name))
        if self.jitter_mean_s < 0 or self.jitter_max_s < 0:
            raise ValueError("jitter times must be >= 0")
        if self.reorder_depth < 1:
            raise ValueError("reorder_depth must be >= 1 frame")
        if self.buffer_frames < 0:
            raise ValueError("buffer_frames must be >= 0")
        if self.battery_drain_speedup < 0:
            raise ValueError("battery_drain_speedup must be >= 0")
        spans = sorted(self.disconnects, key=lambda i: i.start_s)
        if any(a.end_s > b.start_s for a, b in zip(spans, spans[1:], strict=False)):
            raise ValueError("disconnect intervals must not overlap")

    @property
    def has_link_faults(self) -> bool:
        """True if any frame may be lost, delayed, reordered or duplicated."""
        return bool(
            self.loss_p or self.burst or self.jitter_mean_s or self.reorder_p or self.duplicate_p or self.disconnects
        )


@dataclass
class FaultStats:
    """Counts of every injected fault for one device (frames unless said otherwise)."""

    frames_in: int = 0
    frames_out: int = 0
    lost_random: int = 0
    lost_burst: int = 0
    lost_disconnect: int = 0
    lost_buffer_overflow: int = 0
    samples_lost: int = 0
    bursts: int = 0
    buffered: int = 0
    duplicated: int = 0
    reordered: int = 0
    delayed: int = 0
    max_delay_s: float = 0.0
    disconnects: int = 0
    lead_off_intervals: int = 0
    lead_off_frames: int = 0
    battery_empty: bool = False

    @property
    def frames_lost(self) -> int:
        """Frames that never reach the receiver because of an injected fault."""
        return self.lost_random + self.lost_burst + self.lost_disconnect + self.lost_buffer_overflow


@dataclass
class Delivery(Generic[T]):
    """A frame to send at stream time ``release_s``."""

    release_s: float
    payload: T
    seq: int


@dataclass
class FaultInjector(Generic[T]):
    """One device's faults: routes frames, applies lead-off, tracks the link, keeps the log."""

    config: FaultConfig
    frame_period_s: float
    stats: FaultStats = field(default_factory=FaultStats)
    events: list[FaultEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.frame_period_s <= 0:
            raise ValueError("frame_period_s must be positive")
        self._rng = np.random.default_rng(self.config.seed)
        self._bad = False
        self._last_release = -math.inf
        self._buffer: deque[tuple[float, int, int, T]] = deque()
        self._disconnects = sorted(self.config.disconnects, key=lambda i: i.start_s)
        self._lead_off_started: set[int] = set()
        self._lead_off_ended: set[int] = set()

    def log(self, t_s: float, kind: FaultKind, seq: int | None = None, n_samples: int = 0, detail: str = "") -> None:
        """Record a ground-truth event (also at DEBUG level on this module's logger)."""
        self.events.append(FaultEvent(t_s, kind, seq, n_samples, detail))
        log.debug("fault at %.3f s: %s seq=%s %s", t_s, kind, seq, detail)

    # -- link ---------------------------------------------------------------------------------------

    def link_down_at(self, t_s: float) -> Interval | None:
        """The disconnect interval covering ``t_s``, if any."""
        for span in self._disconnects:
            if span.start_s <= t_s < span.end_s:
                return span
        return None

    def next_link_change(self, after_s: float) -> float:
        """Stream time of the first disconnect start or end strictly after ``after_s`` (``inf`` if none)."""
        for span in self._disconnects:
            if span.start_s > after_s:
                return span.start_s
            if span.end_s > after_s:
                return span.end_s
        return math.inf

    def link_change(self, t_s: float) -> tuple[bool, list[Delivery[T]]]:
        """Apply the link change at ``t_s``: returns (link is up, buffered frames to send now)."""
        span = self.link_down_at(t_s)
        if span is not None and span.start_s == t_s:
            self.stats.disconnects += 1
            self.log(t_s, FaultKind.DISCONNECT_START, detail=f"until {span.end_s:.3f} s")
            return False, []
        self.log(t_s, FaultKind.DISCONNECT_END)
        released = [Delivery(t_s, payload, seq) for _, seq, _, payload in self._buffer]
        self.stats.buffered += len(released)
        self.stats.frames_out += len(released)
        for d in released:
            self.log(t_s, FaultKind.BUFFERED, d.seq)
        self._buffer.clear()
        return True, released

    # -- frames -------------------------------------------------------------------------------------

    def route(self, payloads: Sequence[T], due_s: np.ndarray, seq: np.ndarray, n_samples: int) -> list[Delivery[T]]:
        """Decide each frame's fate; returns what to send and when (stream seconds), in send order."""
        cfg = self.config
        k = len(payloads)
        self.stats.frames_in += k
        uniforms = self._rng.random((k, 6))
        out: list[Delivery[T]] = []
        for j in range(k):
            t, s, payload = float(due_s[j]), int(seq[j]), payloads[j]
            u_state, u_burst, u_loss, u_jitter, u_reorder, u_dup = uniforms[j]
            if cfg.burst is not None:
                if self._bad:
                    self._bad = u_state >= cfg.burst.p_leave_bad
                elif u_state < cfg.burst.p_enter_bad:
                    self._bad = True
                    self.stats.bursts += 1
            if self._disconnects and self.link_down_at(t) is not None:
                self._link_down_frame(t, s, n_samples, payload)
                continue
            if self._bad and u_burst < cfg.burst.loss_in_bad:  # type: ignore[union-attr]
                self._lose(t, s, n_samples, FaultKind.BURST_LOSS)
                continue
            if u_loss < cfg.loss_p:
                self._lose(t, s, n_samples, FaultKind.LOSS)
                continue
            delay = 0.0
            if cfg.jitter_mean_s:
                delay = min(-cfg.jitter_mean_s * math.log1p(-u_jitter), cfg.jitter_max_s)
                self.stats.delayed += int(delay > 0)
                self.stats.max_delay_s = max(self.stats.max_delay_s, delay)
            if u_reorder < cfg.reorder_p:
                release = t + delay + cfg.reorder_depth * self.frame_period_s * 1.5
                self.stats.reordered += 1
                self.log(t, FaultKind.REORDER, s, n_samples)
            else:
                release = max(t + delay, self._last_release)
                self._last_release = release
            out.append(Delivery(release, payload, s))
            if u_dup < cfg.duplicate_p:
                out.append(Delivery(release, payload, s))
                self.stats.duplicated += 1
                self.log(t, FaultKind.DUPLICATE, s, n_samples)
        self.stats.frames_out += len(out)
        return out

    def _link_down_frame(self, t: float, s: int, n_samples: int, payload: T) -> None:
        if self.config.disconnect_policy is DisconnectPolicy.DROP or self.config.buffer_frames == 0:
            self._lose(t, s, n_samples, FaultKind.DISCONNECT_LOSS)
            return
        if len(self._buffer) == self.config.buffer_frames:
            old_t, old_s, old_n, _ = self._buffer.popleft()
            self._lose(old_t, old_s, old_n, FaultKind.BUFFER_OVERFLOW)
        self._buffer.append((t, s, n_samples, payload))

    def _lose(self, t: float, s: int, n_samples: int, kind: FaultKind) -> None:
        counter = {
            FaultKind.LOSS: "lost_random", FaultKind.BURST_LOSS: "lost_burst",
            FaultKind.DISCONNECT_LOSS: "lost_disconnect", FaultKind.BUFFER_OVERFLOW: "lost_buffer_overflow",
        }[kind]
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        self.stats.samples_lost += n_samples
        self.log(t, kind, s, n_samples)

    # -- signal -------------------------------------------------------------------------------------

    def apply_lead_off(
        self, block_mv: np.ndarray, t_first_s: float, fs: float, leads: tuple[str, ...], full_scale_mv: float
    ) -> tuple[np.ndarray, np.ndarray | int]:
        """Flatten or rail the leads hit by lead-off intervals in ``block_mv`` (n, leads), mV.

        Returns the block (a modified copy if any interval touches it) and the
        per-sample electrode mask (or 0 when nothing is detached).
        """
        n = block_mv.shape[0]
        t_end = t_first_s + n / fs
        mask: np.ndarray | int = 0
        for i, off in enumerate(self.config.lead_off):
            self._lead_off_edges(i, off, t_end)
            if off.start_s >= t_end or off.end_s <= t_first_s:
                continue
            first = max(0, math.ceil((off.start_s - t_first_s) * fs - 1e-9))
            last = min(n, math.ceil((off.end_s - t_first_s) * fs - 1e-9))
            if first >= last:
                continue
            if isinstance(mask, int):
                block_mv = np.array(block_mv, dtype=np.float64)
                mask = np.zeros(n, dtype=np.uint16)
            cols = [c for c, lead in enumerate(leads) if off.affects(lead)]
            block_mv[first:last, cols] = full_scale_mv if off.mode is LeadOffMode.RAIL else 0.0
            mask[first:last] |= electrode_mask(off.electrodes)
        return block_mv, mask

    def _lead_off_edges(self, i: int, off: LeadOff, t_b: float) -> None:
        if i not in self._lead_off_started and off.start_s < t_b:
            self._lead_off_started.add(i)
            self.stats.lead_off_intervals += 1
            self.log(off.start_s, FaultKind.LEAD_OFF_START, detail=",".join(off.electrodes))
        if i not in self._lead_off_ended and off.end_s <= t_b:
            self._lead_off_ended.add(i)
            self.log(off.end_s, FaultKind.LEAD_OFF_END, detail=",".join(off.electrodes))


def _check_p(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")

