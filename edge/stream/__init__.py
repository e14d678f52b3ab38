"""Per-stream state of the edge gateway: order, gaps, clock, quality, model-rate resampling.

One :class:`~edge.stream.state.StreamState` per device turns decoded frames
(:class:`protocol.ble_frame.EcgFrame` or :class:`protocol.polar_pmd.PolarEcgFrame`)
into contiguous sample blocks, explicit gap records, quality reports and
model-rate blocks (the models' input rate, ``StreamConfig.model_fs``: 125 Hz unless the
artifacts say otherwise), and counts everything it drops or fills. It knows nothing of the
models themselves: no import of :mod:`models`, and so none of torch.

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
from edge.stream.resampling import DEFAULT_MODEL_FS, StreamingResampler, model_fs_from_metadata
from edge.stream.state import StreamConfig, StreamFormatError, StreamState

__all__ = [
    "DEFAULT_MODEL_FS",
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
    "model_fs_from_metadata",
    "signal_quality",
]
