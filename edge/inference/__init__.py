"""Windows and batched inference on the edge gateway.

:mod:`.windowing` cuts each stream's 125 Hz blocks into 10 s windows on a fixed
hop grid (gaps drop windows, counted); :mod:`.backends` runs ONNX artifacts
behind one interface (ONNX Runtime CPU/CUDA, TensorRT, torch-CUDA), chosen
automatically; :mod:`.batcher` batches windows from many patients under a
latency deadline, off the event loop; :mod:`.pipeline` turns windows into
uplink-ready 12-lead :class:`protocol.window_payload.EcgWindow` results.
Never imports torch (the torch-CUDA backend imports it lazily when asked for).
"""

from edge.inference.backends import (
    BACKEND_ORDER,
    BackendUnavailable,
    InferenceBackend,
    OnnxRuntimeBackend,
    TensorRTBackend,
    TorchCudaBackend,
    available_backends,
    select_backend,
)
from edge.inference.batcher import BatcherStats, Completed, MicroBatcher, WindowDropped, percentile
from edge.inference.pipeline import (
    BackendStage,
    InferencePipeline,
    PipelineStats,
    ReconstructionStage,
    SecondStage,
    StageBatch,
    WindowResult,
)
from edge.inference.windowing import Window, WindowConfig, Windower, WindowerCounters, prepare_batch

__all__ = [
    "BACKEND_ORDER",
    "BackendStage",
    "BackendUnavailable",
    "BatcherStats",
    "Completed",
    "InferenceBackend",
    "InferencePipeline",
    "MicroBatcher",
    "OnnxRuntimeBackend",
    "PipelineStats",
    "ReconstructionStage",
    "SecondStage",
    "StageBatch",
    "TensorRTBackend",
    "TorchCudaBackend",
    "Window",
    "WindowConfig",
    "WindowDropped",
    "WindowResult",
    "Windower",
    "WindowerCounters",
    "available_backends",
    "percentile",
    "prepare_batch",
    "select_backend",
]
