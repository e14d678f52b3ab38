"""Export the trained VAE to ONNX (static 1250-sample windows, dynamic batch) and check it against PyTorch."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from models.preprocessing import MODEL_FS, WINDOW_SAMPLES
from models.reconstruction import INPUT_LEADS, PREDICTED_LEADS
from protocol.leads import STANDARD_LEADS

OPSET = 17
FP32_TOLERANCE_MV = 1e-4
"""ONNX Runtime vs PyTorch (FP32): largest allowed absolute difference on any output sample (mV)."""


def export_onnx(model: Any, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a ReconstructionVAE, eval mode) as ONNX with inputs ``inputs`` (B, 3, 1250)."""
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dummy = torch.zeros(2, 3, WINDOW_SAMPLES)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (dummy,), str(path), input_names=["inputs"], output_names=["leads12", "uncertainty"],
            dynamic_axes={"inputs": {0: "batch"}, "leads12": {0: "batch"}, "uncertainty": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    proto = onnx.load(str(path))
    meta = {
        "task": "3-to-12 lead ECG reconstruction",
        "inputs": list(INPUT_LEADS), "predicted": list(PREDICTED_LEADS), "outputs": list(STANDARD_LEADS),
        "fs_hz": MODEL_FS, "samples": WINDOW_SAMPLES, "units": "mV",
        "uncertainty": "half-width of the calibrated 90% band (mV); 0 for measured leads",
        "band_scale": [round(float(v), 5) for v in model.band_scale.tolist()],
        "training_data": "SYNTHETIC (ecgstream simulator)", "not_a_medical_device": True,
        **(info or {}),
    }
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "ecgstream", json.dumps(meta)
    proto.producer_name = "ecgstream"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def max_difference(model: Any, path: str | Path, x: np.ndarray) -> float:
    """Largest |ONNX Runtime − PyTorch| over both outputs for input ``x`` (B, 3, 1250)."""
    import torch

    from models.runtime.onnx_model import OnnxModel

    with torch.no_grad():
        ref = [t.numpy() for t in model.eval()(torch.as_tensor(x, dtype=torch.float32))]
    got = OnnxModel(path, providers=["cpu"]).run(inputs=np.asarray(x, dtype=np.float32))
    return float(max(np.abs(got["leads12"] - ref[0]).max(), np.abs(got["uncertainty"] - ref[1]).max()))
