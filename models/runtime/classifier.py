"""The arrhythmia classifier as shipped, in ONNX Runtime: numpy in, probabilities out. No torch.

>>> model = ClassifierModel.load()                     # doctest: +SKIP
>>> prob = model.predict(leads12)                      # (B, 12, 1250) band-passed mV → (B, 18)
>>> model.labels(prob[0])                              # classes at or above their threshold
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from models.preprocessing import WINDOW_SAMPLES
from models.runtime.onnx_model import ARTIFACTS, OnnxModel

DEFAULT_CLASSIFIER = ARTIFACTS / "classifier_mamba.onnx"
"""The FP32 ECG-Mamba classifier (the edge's default)."""
DEFAULT_CLASSIFIER_INT8 = ARTIFACTS / "classifier_mamba_int8.onnx"
"""The INT8 (QDQ) ECG-Mamba classifier."""


class ClassifierModel:
    """An exported classifier: input (B, 12, n) float32 mV, output (B, k) probabilities.

    Classes, SNOMED CT codes, window length and leads are read from the file's ``ecgstream``
    metadata (:attr:`classes`, :attr:`snomed`, :attr:`samples`, :attr:`leads`).
    """

    def __init__(self, model: OnnxModel, max_batch: int = 64) -> None:
        self.model = model
        self.max_batch = max_batch
        raw = model.metadata.get("ecgstream")
        if raw is None:
            raise ValueError(f"{model.path} has no 'ecgstream' metadata: not an ecgstream classifier")
        self.info: dict[str, Any] = json.loads(raw)
        self.classes: tuple[str, ...] = tuple(self.info["classes"])
        self.snomed: Mapping[str, list[str]] = self.info.get("snomed", {})
        self.samples: int = int(self.info.get("samples", WINDOW_SAMPLES))
        self.leads: tuple[str, ...] = tuple(self.info.get("leads", ()))
        self.version: str = str(self.info.get("version", "unknown"))
        self.input_name = model.input_names[0]
        self.output_name = self.info.get("output", "probabilities")

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CLASSIFIER, **kwargs: Any) -> ClassifierModel:
        """Open an artifact; ``providers``/``threads`` go to :class:`OnnxModel`, ``max_batch`` to the runner."""
        max_batch = kwargs.pop("max_batch", 64)
        return cls(OnnxModel(path, **kwargs), max_batch=max_batch)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(B, 12, n) or (12, n) → (B, k) or (k,) probabilities. Raises ValueError on wrong shape or NaN."""
        x = np.asarray(x, dtype=np.float32)
        single = x.ndim == 2
        if single:
            x = x[None]
        n_leads = len(self.leads) or 12
        if x.ndim != 3 or x.shape[1:] != (n_leads, self.samples):
            raise ValueError(f"expected (B, {n_leads}, {self.samples}) windows, got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("input contains NaN or infinity")
        if x.shape[0] == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        out = [self.model.run(**{self.input_name: np.ascontiguousarray(x[s : s + self.max_batch])})[self.output_name]
               for s in range(0, x.shape[0], self.max_batch)]
        prob = np.concatenate(out)
        return prob[0] if single else prob

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.predict(x)

    def as_dict(self, prob: np.ndarray) -> dict[str, float]:
        """One window's probabilities (k,) → {class: probability}."""
        prob = np.asarray(prob).reshape(-1)
        if prob.shape[0] != len(self.classes):
            raise ValueError(f"expected {len(self.classes)} probabilities, got {prob.shape[0]}")
        return {c: float(p) for c, p in zip(self.classes, prob, strict=True)}

    def labels(self, prob: np.ndarray, threshold: float = 0.5) -> frozenset[str]:
        """Classes of one window at or above ``threshold``."""
        return frozenset(c for c, p in self.as_dict(prob).items() if p >= threshold)
