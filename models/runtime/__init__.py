"""Model runtime for the edge and cloud: ONNX artifacts in, numpy out. Never imports torch."""

from models.runtime.onnx_model import OnnxModel, ReconstructionModel, available_providers

__all__ = ["OnnxModel", "ReconstructionModel", "available_providers"]
