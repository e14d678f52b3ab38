"""INT8 post-training quantization of an exported classifier (ONNX Runtime static QDQ).

Convolutions and the linear projections (MatMul/Gemm with a weight initializer) get INT8 weights
(per output channel) and INT8 activations, with ranges calibrated on training windows. Everything
else — in particular the selective scan (the segment-sum decays, exp, the C·Bᵀ and state matrix
products, which have no weights) — stays float32: its dynamic range (decays from 1 down to 0 over a
window) does not survive 8 bits.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from models.classifier import FEATURES_NAME, INPUT_NAME

PERCENTILE = 99.99
"""Activation range: this percentile of |activation| over the calibration windows."""


class _Windows:
    """onnxruntime CalibrationDataReader over (n, 12, 1250) windows (and their rhythm features), in batches."""

    def __init__(self, windows: np.ndarray, features: np.ndarray | None = None, batch: int = 16) -> None:
        self.windows = np.ascontiguousarray(windows, dtype=np.float32)
        self.features = None if features is None else np.ascontiguousarray(features, dtype=np.float32)
        self.batch = batch
        self.pos = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= len(self.windows):
            return None
        sl = slice(self.pos, self.pos + self.batch)
        self.pos += self.batch
        feed = {INPUT_NAME: self.windows[sl]}
        if self.features is not None:
            feed[FEATURES_NAME] = self.features[sl]
        return feed

    def rewind(self) -> None:
        self.pos = 0


def quantizable_nodes(model_path: str | Path) -> list[str]:
    """Names of the nodes to quantize: every Conv, and every MatMul/Gemm whose second input is a weight."""
    import onnx

    proto = onnx.load(str(model_path))
    weights = {init.name for init in proto.graph.initializer}
    names = []
    for node in proto.graph.node:
        if "/fusion/" in node.name or any("basis" in i for i in node.input):
            # the head stays float: measured rhythm features (8 bits of a rate would be ~4 bpm steps) and the
            # calibrated logits, whose per-class ranges differ so much that one 8-bit scale would erase some
            continue
        if node.op_type == "Conv" or (node.op_type in ("MatMul", "Gemm") and node.input[1] in weights):
            names.append(node.name)
    return names


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, calibration: np.ndarray,
                  features: np.ndarray | None = None) -> Path:
    """Write the INT8 (QDQ) version of ``fp32_path`` calibrated on ``calibration`` (n, 12, 1250) windows
    (and their rhythm features, for a model that takes them).

    The ``ecgstream`` metadata is carried over with ``precision: int8`` and the quantized op list.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from models.classifier.export import set_metadata

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    info = json.loads({p.key: p.value for p in onnx.load(str(fp32_path)).metadata_props}["ecgstream"])
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        nodes = quantizable_nodes(pre)
        quantize_static(
            str(pre), str(int8_path), _Windows(calibration, features), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_quantize=nodes,
            op_types_to_quantize=["Conv", "MatMul", "Gemm"],
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, "CalibPercentile": PERCENTILE},
        )
    proto = onnx.load(str(int8_path))
    info.update(precision="int8", quantized_nodes=len(nodes),
                quantization="static QDQ INT8, per-channel weights, activation ranges at the "
                f"{PERCENTILE} percentile of {len(calibration)} training windows; Conv and weight MatMul/Gemm only, "
                "scan in float")
    set_metadata(proto, info)
    onnx.save(proto, str(int8_path))
    return int8_path
