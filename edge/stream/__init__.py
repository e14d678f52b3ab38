"""Per-stream state of the edge gateway: order, gaps, clock, quality, model-rate resampling.

One :class:`~edge.stream.state.StreamState` per device turns decoded frames
(:class:`protocol.ble_frame.EcgFrame` or :class:`protocol.polar_pmd.PolarEcgFrame`)
into contiguous sample blocks, explicit gap records, quality reports and
model-rate (125 Hz) blocks, and counts everything it drops or fills.

Modules: :mod:`.reorder` (bounded reorder buffer on u32 sequence numbers),
:mod:`.clock` (device → gateway clock with drift), :mod:`.quality` (lead-off
mapping and signal-quality index), :mod:`.resampling` (streaming polyphase
resampler), :mod:`.records` (the output records), :mod:`.state` (the state itself).
"""

from edge.stream.clock import ClockEstimator
from edge.stream.quality import LEAD_ELECTRODES, QualityReport, QualityTracker, leads_off, signal_quality
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
from edge.stream.reorder import Delivered, ReorderBuffer, ReorderStats, Restarted, Skipped
from edge.stream.resampling import StreamingResampler
from edge.stream.state import StreamConfig, StreamFormatError, StreamState

__all__ = [
    "LEAD_ELECTRODES",
    "ClockEstimator",
    "Delivered",
    "EventKind",
    "Gap",
    "GapReason",
    "ModelBlock",
    "QualityReport",
    "QualityTracker",
    "ReorderBuffer",
    "ReorderStats",
    "Restarted",
    "SampleBlock",
    "Skipped",
    "StreamConfig",
    "StreamCounters",
    "StreamEvent",
    "StreamFormatError",
    "StreamOutput",
    "StreamState",
    "StreamingResampler",
    "leads_off",
    "signal_quality",
]
