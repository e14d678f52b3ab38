"""ONNX Runtime wrapper: numpy in, numpy out, with provider selection. No torch.

>>> model = ReconstructionModel.load()                      # doctest: +SKIP
>>> leads12, uncertainty = model.reconstruct(x)             # x: (B, 3, 1250) II, V1, V5 in mV
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.preprocessing import WINDOW_SAMPLES

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DEFAULT_RECONSTRUCTION = ARTIFACTS / "reconstruction_vae.onnx"

_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def available_providers() -> list[str]:
    """Execution providers this onnxruntime build offers."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


class OnnxModel:
    """One ONNX model in an ONNX Runtime session.

    ``providers``: names in order of preference (``"cpu"``, ``"cuda"``, ``"tensorrt"`` or the full
    provider names); default: CUDA when the build has it, else CPU. ``threads``: intra-op threads
    (0: ONNX Runtime's default). ``spin_wait``: let idle intra-op threads spin for the next run
    (ONNX Runtime's default). Off here: on a gateway the models share two to four cores with the
    per-frame Python work, which spinning threads starve (sync edge path ≈ 5 % faster without).
    """

    def __init__(self, path: str | Path, *, providers: Sequence[str] | None = None, threads: int = 0,
                 spin_wait: bool = False) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {self.path} not found")
        have = ort.get_available_providers()
        if providers is None:
            chosen = [p for p in _PREFERENCE[1:] if p in have]
        else:
            chosen = [_provider_name(p) for p in providers]
            missing = [p for p in chosen if p not in have]
            if missing:
                raise RuntimeError(f"onnxruntime has no {', '.join(missing)} (available: {', '.join(have)})")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        if not spin_wait:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=chosen)
        self.providers = self.session.get_providers()
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run once; returns every output by name."""
        outs = self.session.run(None, inputs)
        return dict(zip(self.output_names, outs, strict=True))


def _provider_name(name: str) -> str:
    short = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
    return short.get(name.lower(), name)


class ReconstructionModel:
    """The 3→12 lead reconstruction VAE as shipped (``models/artifacts/reconstruction_vae.onnx``).

    Input: (B, 3, 1250) or (3, 1250) float32 II, V1, V5 in mV, preprocessed by
    ``models.preprocessing``. Output: ``leads12`` and ``uncertainty`` (half-width of the calibrated
    90 % band, mV; 0 for the measured leads II, V1, V5), both (B, 12, 1250) in standard lead order.
    """

    input_name = "inputs"

    def __init__(self, model: OnnxModel, max_batch: int = 64) -> None:
        self.model = model
        self.max_batch = max_batch
        meta = model.metadata
        self.info: dict[str, Any] = json.loads(meta["ecgstream"]) if "ecgstream" in meta else {}

    @classmethod
    def load(cls, path: str | Path = DEFAULT_RECONSTRUCTION, **kwargs: Any) -> ReconstructionModel:
        max_batch = kwargs.pop("max_batch", 64)
        return cls(OnnxModel(path, **kwargs), max_batch=max_batch)

    def reconstruct(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float32)
        single = x.ndim == 2
        if single:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (3, WINDOW_SAMPLES):
            raise ValueError(f"expected (B, 3, {WINDOW_SAMPLES}) II, V1, V5 windows, got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("input contains NaN or infinity")
        leads, unc = [], []
        for s in range(0, x.shape[0], self.max_batch):
            out = self.model.run(**{self.input_name: np.ascontiguousarray(x[s : s + self.max_batch])})
            leads.append(out["leads12"])
            unc.append(out["uncertainty"])
        lead_arr, unc_arr = np.concatenate(leads), np.concatenate(unc)
        return (lead_arr[0], unc_arr[0]) if single else (lead_arr, unc_arr)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.reconstruct(x)[0]
