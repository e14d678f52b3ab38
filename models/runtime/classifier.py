"""The arrhythmia classifier as shipped, in ONNX Runtime: numpy in, probabilities out. No torch.

>>> model = ClassifierModel.load()                     # doctest: +SKIP
>>> prob = model.predict(leads12)                      # (B, 12, 1250) band-passed mV → (B, 18)
>>> model.labels(prob[0])                              # classes at or above their shipped threshold

A classifier whose artifact declares a ``features`` input (measured rhythm features, :mod:`models.features`)
gets them computed here from the same windows, so every caller — the edge, the cloud, the evaluation — serves
the model exactly what it was trained on. ``thresholds``: the operating threshold per class the artifact ships
(chosen on real records by cross-validation), 0.5 for classes it does not name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from models.features import FEATURES_VERSION, feature_matrix, measured_rows
from models.preprocessing import MODEL_FS, WINDOW_SAMPLES
from models.runtime.onnx_model import ARTIFACTS, OnnxModel
from protocol.leads import STANDARD_LEADS

DEFAULT_CLASSIFIER = ARTIFACTS / "classifier_mamba.onnx"
"""The FP32 ECG-Mamba classifier (the edge's default)."""
DEFAULT_CLASSIFIER_INT8 = ARTIFACTS / "classifier_mamba_int8.onnx"
"""The INT8 (QDQ) ECG-Mamba classifier."""
DEFAULT_THRESHOLD = 0.5
"""Operating threshold of a class the artifact ships none for."""


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
        self.input_name = self.info.get("input", model.input_names[0])
        self.output_name = self.info.get("output", "probabilities")
        self.features_name: str | None = self.info.get("features_input")
        if self.features_name is not None and self.features_name not in model.input_names:
            raise ValueError(f"{model.path}: metadata names a features input {self.features_name!r} the graph lacks")
        if self.features_name is not None and self.info.get("features_version") != FEATURES_VERSION:
            raise ValueError(f"{model.path} was trained on rhythm features version {self.info.get('features_version')}"
                             f", this runtime computes version {FEATURES_VERSION}")
        self._feature_rows = measured_rows(self.leads or STANDARD_LEADS) if self.features_name else None
        shipped = {str(k): float(v) for k, v in dict(self.info.get("thresholds", {})).items()}
        self.thresholds: Mapping[str, float] = {c: shipped.get(c, DEFAULT_THRESHOLD) for c in self.classes}
        """Operating threshold per class (the artifact's, else :data:`DEFAULT_THRESHOLD`)."""
        self.thresholds_shipped = bool(shipped)

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
        out = []
        for s in range(0, x.shape[0], self.max_batch):
            part = np.ascontiguousarray(x[s : s + self.max_batch])
            feed = {self.input_name: part}
            if self.features_name is not None and self._feature_rows is not None:
                feed[self.features_name] = feature_matrix(part, MODEL_FS, self._feature_rows)
            out.append(self.model.run(**feed)[self.output_name])
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

    def labels(self, prob: np.ndarray, threshold: float | None = None) -> frozenset[str]:
        """Classes of one window at or above their shipped threshold (or one ``threshold`` for all)."""
        return frozenset(c for c, p in self.as_dict(prob).items()
                         if p >= (self.thresholds[c] if threshold is None else threshold))
