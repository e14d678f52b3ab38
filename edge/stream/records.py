"""What a :class:`~edge.stream.state.StreamState` emits and counts.

Sample indices count samples per lead at the device rate from the stream's
first sample (0); every index is covered exactly once, by a received block, an
interpolated block or a non-interpolated gap, so time stays aligned across
gaps. Device times are µs on the device clock, gateway times seconds on the
clock of the arrival times given to ``push``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from edge.stream.quality import QualityReport


class GapReason(StrEnum):
    """Why samples are missing."""

    LOST_FRAMES = "lost_frames"
    """Sequence numbers missing (radio loss), shorter than the disconnect threshold."""
    DISCONNECT = "disconnect"
    """Sequence numbers missing for at least the configured disconnect duration."""
    TIMESTAMP_GAP = "timestamp_gap"
    """Frames without sequence numbers (Polar PMD): the device timestamps jump ahead."""
    DEVICE_RESET = "device_reset"
    """The device restarted its sequence numbers; length from timestamps or arrival times."""


class EventKind(StrEnum):
    """Stream events that are not gaps."""

    DEVICE_RESET = "device_reset"
    """Sequence numbers restarted (see :class:`~edge.stream.reorder.Restarted`)."""
    TIMESTAMP_JUMP = "timestamp_jump"
    """Device timestamps disagree with the sequence numbers (clock reset); samples follow the seq, the clock refits."""


@dataclass(frozen=True, eq=False)
class SampleBlock:
    """Contiguous samples ``[start, start + n)``: ``samples_mv`` float32, shape ``(n, leads)``, mV.

    ``t_device_us``: device time of the first sample (µs); ``t_gateway_s``:
    its gateway time (s) under the clock estimate at emission. ``interpolated``:
    linear fill of a short gap, not measured. ``lead_off``: bool per lead,
    flagged by the device (for a fill: the frame after it); ``electrodes``: the
    detached electrodes the device flagged (the same in every frame of the block).
    """

    start: int
    samples_mv: np.ndarray
    t_device_us: float
    t_gateway_s: float
    interpolated: bool
    lead_off: np.ndarray
    electrodes: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        """Samples per lead."""
        return int(self.samples_mv.shape[0])

    @property
    def stop(self) -> int:
        """Index after the last sample."""
        return self.start + self.n


@dataclass(frozen=True)
class Gap:
    """Samples ``[start, start + length)`` missing; filled linearly when ``interpolated`` (then also a block)."""

    start: int
    length: int
    reason: GapReason
    interpolated: bool
    t_device_us: float
    t_gateway_s: float

    @property
    def stop(self) -> int:
        return self.start + self.length


@dataclass(frozen=True)
class StreamEvent:
    """Something noteworthy at sample index ``index`` that is not a gap."""

    index: int
    kind: EventKind
    detail: str = ""


@dataclass(frozen=True, eq=False)
class ModelBlock:
    """Samples at the model rate ``fs`` (Hz), float32 ``(n, leads)`` mV, of one contiguous segment.

    ``segment_start`` is the device-rate index where the segment starts, ``offset``
    the model-rate index of the first sample within it: sample ``i`` is at
    stream time ``segment_start / fs_device + (offset + i) / fs``.
    ``t_gateway_s``: gateway time of the first sample.
    """

    segment_start: int
    offset: int
    samples_mv: np.ndarray
    fs: float
    t_gateway_s: float


@dataclass
class StreamCounters:
    """Everything counted for one stream (frames unless said otherwise; samples per lead)."""

    frames: int = 0
    """Frames pushed (including duplicates and late ones)."""
    samples: int = 0
    """Received samples emitted."""
    duplicates: int = 0
    late: int = 0
    reordered: int = 0
    gaps: int = 0
    samples_lost: int = 0
    """Samples in gaps (interpolated ones included)."""
    samples_interpolated: int = 0
    decode_errors: int = 0
    """Reported by the caller (:meth:`~edge.stream.state.StreamState.decode_error`)."""
    lead_off_intervals: int = 0
    """Times a new electrode was flagged detached."""
    device_resets: int = 0
    timestamp_jumps: int = 0


@dataclass
class StreamOutput:
    """What one ``push``, ``poll`` or ``flush`` produced, in stream order within each list."""

    blocks: list[SampleBlock] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    model_blocks: list[ModelBlock] = field(default_factory=list)
    quality: list[QualityReport] = field(default_factory=list)
    events: list[StreamEvent] = field(default_factory=list)

    def extend(self, other: StreamOutput) -> None:
        """Append ``other``'s records to this one's."""
        self.blocks += other.blocks
        self.gaps += other.gaps
        self.model_blocks += other.model_blocks
        self.quality += other.quality
        self.events += other.events
