"""Bounded reorder buffer keyed by u32 frame sequence numbers (wrapping).

Frames are released strictly in sequence order. A frame whose predecessors
have not arrived is held until one of:

- the *window* is exceeded: a frame ``window`` or more sequence numbers ahead of
  the oldest missing one has arrived, so the missing ones are given up on just
  far enough for every held frame to fit in the window;
- the *hold time* passes: the oldest held frame has waited more than
  ``max_hold_s`` seconds (gateway time, checked on :meth:`ReorderBuffer.push`
  and :meth:`ReorderBuffer.poll`);
- :meth:`ReorderBuffer.flush` is called (end of stream).

Sequence numbers given up on come out as :class:`Skipped` records before the
:class:`Delivered` frame that follows the hole (a hole may be given up on in
two steps, window then hold time, so add consecutive records up); the caller
then knows the samples on both sides of every gap.

Frames at or behind the release point:

- **duplicate** — the seq was released within the last ``history`` frames or is
  already held: dropped and counted;
- **late** — the seq was given up on (it is inside a gap already reported):
  dropped and counted. It is *not* used to fill the reported gap: the gap has
  already been emitted downstream (possibly interpolated), and emitting the
  same sample indices twice would break the "every index once" guarantee;
- **restart** — more than ``history`` frames behind: the device restarted its
  sequence. Held frames are released, a :class:`Restarted` marker is emitted
  and the new run starts at this frame. A caller that knows better (arrival
  times) calls :meth:`ReorderBuffer.restart` itself.

Memory is bounded: at most ``window - 1`` frames are held and ``history``
sequence numbers remembered.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_U32 = 1 << 32
_HALF = 1 << 31


@dataclass(frozen=True)
class Delivered(Generic[T]):
    """A frame released in order; ``arrival_s`` is when it reached the gateway (s)."""

    seq: int
    item: T
    arrival_s: float


@dataclass(frozen=True)
class Skipped:
    """``n_frames`` consecutive sequence numbers from ``first_seq`` (wrapping) declared missing."""

    first_seq: int
    n_frames: int


@dataclass(frozen=True)
class Restarted:
    """The device restarted its sequence numbering at ``seq`` (the next :class:`Delivered`)."""

    seq: int


Release = Delivered[T] | Skipped | Restarted


@dataclass
class ReorderStats:
    """Frame counts of one buffer."""

    delivered: int = 0
    duplicates: int = 0
    late: int = 0
    reordered: int = 0
    """Frames that arrived after a frame with a higher sequence number (and were put back in order)."""
    skipped: int = 0
    """Sequence numbers declared missing."""
    restarts: int = 0


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two u32 sequence numbers, in ``[-2**31, 2**31)``."""
    d = (a - b) % _U32
    return d - _U32 if d >= _HALF else d


class ReorderBuffer(Generic[T]):
    """Puts frames back in sequence order within ``window`` frames or ``max_hold_s`` seconds."""

    def __init__(self, window: int = 8, max_hold_s: float = 1.0, history: int | None = None) -> None:
        if window < 1:
            raise ValueError(f"reorder window must be >= 1 frame, got {window}")
        if max_hold_s < 0:
            raise ValueError(f"max_hold_s must be >= 0 s, got {max_hold_s}")
        self.window = window
        self.max_hold_s = max_hold_s
        self.history = 4 * window if history is None else history
        if self.history < window:
            raise ValueError(f"history ({self.history}) must be >= window ({window})")
        self.stats = ReorderStats()
        self._next: int | None = None
        self._held: dict[int, tuple[T, float]] = {}
        self._recent: deque[int] = deque()
        self._recent_set: set[int] = set()

    @property
    def next_seq(self) -> int | None:
        """The sequence number released next (None before the first frame)."""
        return self._next

    @property
    def held(self) -> int:
        """Frames waiting for a missing predecessor."""
        return len(self._held)

    def push(self, seq: int, item: T, arrival_s: float) -> list[Release[T]]:
        """Add frame ``seq`` (u32) that arrived at ``arrival_s``; returns what is released now, in order."""
        seq %= _U32
        out: list[Release[T]] = []
        if self._next is None:
            self._next = seq
        d = seq_diff(seq, self._next)
        if d < 0:
            if seq in self._recent_set:
                self.stats.duplicates += 1
                return out
            if -d <= self.history:
                self.stats.late += 1
                return out
            out += self.flush()
            out.append(Restarted(seq))
            self.stats.restarts += 1
            self._next = seq
            self._recent.clear()
            self._recent_set.clear()
        elif seq in self._held:
            self.stats.duplicates += 1
            return out
        if self._held and any(seq_diff(s, seq) > 0 for s in self._held):
            self.stats.reordered += 1
        self._held[seq] = (item, arrival_s)
        out += self._release(arrival_s)
        return out

    def poll(self, now_s: float) -> list[Release[T]]:
        """Release what has waited longer than the hold time by gateway time ``now_s`` (call from a timer)."""
        return self._release(now_s)

    def flush(self) -> list[Release[T]]:
        """Release everything held, declaring the holes between (end of stream)."""
        return self._release(float("inf"))

    def restart(self, seq: int) -> list[Release[T]]:
        """The caller knows the device restarted its stream at ``seq`` (its arrival time says so, e.g. a
        jump ahead no gap could explain): release everything held, then a :class:`Restarted` marker; the
        next :meth:`push` of ``seq`` starts the new run."""
        out = self.flush()
        out.append(Restarted(seq % _U32))
        self.stats.restarts += 1
        self._next = seq % _U32
        self._recent.clear()
        self._recent_set.clear()
        return out

    def _release(self, now_s: float) -> list[Release[T]]:
        out: list[Release[T]] = []
        while self._held:
            assert self._next is not None
            if self._next in self._held:
                item, arrival = self._held.pop(self._next)
                out.append(Delivered(self._next, item, arrival))
                self._remember(self._next)
                self.stats.delivered += 1
                self._next = (self._next + 1) % _U32
                continue
            offsets = [seq_diff(s, self._next) for s in self._held]
            nearest, farthest = min(offsets), max(offsets)
            oldest = min(arrival for _, arrival in self._held.values())
            if farthest >= self.window:
                skip = min(nearest, farthest - self.window + 1)
            elif now_s - oldest > self.max_hold_s:
                skip = nearest
            else:
                break
            out.append(Skipped(self._next, skip))
            self.stats.skipped += skip
            self._next = (self._next + skip) % _U32
        return out

    def _remember(self, seq: int) -> None:
        self._recent.append(seq)
        self._recent_set.add(seq)
        if len(self._recent) > self.history:
            self._recent_set.discard(self._recent.popleft())
