"""Export a trained classifier to ONNX: fixed 1250-sample windows, dynamic batch, sigmoid output.

Input ``leads12`` float32 (B, 12, 1250): band-passed mV at 125 Hz in standard lead order (what the
edge pipeline's reconstruction stage hands on). Output ``probabilities`` float32 (B, 18), one
per class of :data:`models.data.labels.CLASSES`. The ``ecgstream`` metadata entry says so (classes,
SNOMED CT codes, rate, leads, version), so the edge and cloud read the classes from the file; a
top-level ``version`` entry names the model for the edge's result records.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models.classifier import FEATURES_NAME, INPUT_NAME, OUTPUT_NAME, class_metadata
from models.features import FEATURE_NAMES, FEATURES_VERSION, MEASURED_LEADS
from models.preprocessing import MODEL_FS, WINDOW_SAMPLES
from protocol.leads import STANDARD_LEADS

OPSET = 17
FP32_TOLERANCE = 1e-4
"""ONNX Runtime vs PyTorch (FP32): largest allowed absolute difference of any probability."""


class WithSigmoid(nn.Module):
    """A logits model → probabilities (what ships)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, features: Tensor | None = None) -> Tensor:
        return torch.sigmoid(self.model(x, features))


def n_features(model: nn.Module) -> int:
    """How many rhythm features ``model`` takes as its second input (0: none)."""
    fusion = getattr(model, "fusion", None)
    return int(getattr(fusion, "n_features", 0))


def export_onnx(model: nn.Module, path: str | Path, info: dict[str, Any]) -> Path:
    """Write ``model`` (logits out; put in eval mode here) as ONNX with the ``ecgstream`` metadata.

    ``info`` must hold at least ``architecture`` and ``config_hash``; it is merged into the metadata.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = WithSigmoid(model.eval()).eval().cpu()
    dummy: tuple[Tensor, ...] = (torch.zeros(2, len(STANDARD_LEADS), WINDOW_SAMPLES),)
    names = [INPUT_NAME]
    nf = n_features(model)
    if nf:
        dummy, names = (*dummy, torch.zeros(2, nf)), [INPUT_NAME, FEATURES_NAME]
        info = {**info, "features_input": FEATURES_NAME, "features": list(FEATURE_NAMES),
                "features_version": FEATURES_VERSION, "features_from": list(MEASURED_LEADS)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped, dummy, str(path), input_names=names, output_names=[OUTPUT_NAME],
            dynamic_axes={**{n: {0: "batch"} for n in names}, OUTPUT_NAME: {0: "batch"}}, opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    set_metadata(proto, info)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def set_metadata(proto: Any, info: dict[str, Any]) -> None:
    """Replace the model's metadata with the ``ecgstream`` JSON entry and a top-level ``version``."""
    arch = info.get("architecture", "mamba")
    version = f"classifier_{arch}{'_int8' if info.get('precision') == 'int8' else ''}@{info.get('config_hash', 'unknown')}"
    meta = {
        "task": "multi-label arrhythmia classification of one 10 s 12-lead window",
        **class_metadata(),
        "fs_hz": MODEL_FS, "samples": WINDOW_SAMPLES, "leads": list(STANDARD_LEADS), "units": "mV",
        "input": INPUT_NAME, "output": OUTPUT_NAME, "output_kind": "sigmoid probability per class",
        "preprocessing": "models.preprocessing.prepare_window (125 Hz, 0.5-40 Hz band-pass)",
        "training_data": "SYNTHETIC (ecgstream simulator; II, V1, V5 reconstructed by the VAE)",
        "not_a_medical_device": True, "version": version, "precision": "fp32",
        **info,
    }
    meta["version"] = version
    del proto.metadata_props[:]
    for key, value in (("ecgstream", json.dumps(meta)), ("version", version)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "ecgstream"


def torch_logits(model: nn.Module, x: np.ndarray, features: np.ndarray | None = None, batch: int = 128,
                 device: str = "cpu") -> np.ndarray:
    """(n, 12, 1250) (+ (n, F) rhythm features for a model that takes them) → (n, 18) logits (eval, no grad)."""
    model = model.eval().to(device)
    if n_features(model) and features is None:
        raise ValueError("this model takes rhythm features: pass features=feature_matrix(...)")
    out = []
    with torch.no_grad():
        for s in range(0, len(x), batch):
            xb = torch.as_tensor(np.ascontiguousarray(x[s : s + batch]), dtype=torch.float32, device=device)
            fb = None if not n_features(model) or features is None else \
                torch.as_tensor(np.ascontiguousarray(features[s : s + batch]), dtype=torch.float32, device=device)
            out.append(model(xb, fb).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 18), dtype=np.float32)


def torch_probabilities(model: nn.Module, x: np.ndarray, features: np.ndarray | None = None, batch: int = 128,
                        device: str = "cpu") -> np.ndarray:
    """(n, 12, 1250) (+ features) → (n, 18) probabilities from the torch model (eval mode, no grad)."""
    z = torch_logits(model, x, features, batch, device).astype(np.float64)
    return np.exp(-np.logaddexp(0.0, -z)).astype(np.float32)          # sigmoid without overflow


def max_difference(model: nn.Module, path: str | Path, x: np.ndarray) -> float:
    """Largest |ONNX Runtime − PyTorch| probability for input ``x`` (B, 12, 1250) (the runtime measures the
    rhythm features itself; PyTorch gets the same from :func:`models.features.feature_matrix`)."""
    from models.features import feature_matrix, measured_rows
    from models.runtime.classifier import ClassifierModel

    features = feature_matrix(x, MODEL_FS, measured_rows(STANDARD_LEADS)) if n_features(model) else None
    ref = torch_probabilities(model, x, features)
    got = ClassifierModel.load(path, providers=["cpu"]).predict(x)
    return float(np.abs(got - ref).max())
