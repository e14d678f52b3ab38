"""The arrhythmia classifier as the pipeline's second stage: 12 reconstructed leads in, class probabilities out.

:class:`ClassifierStage` runs the classifier ONNX (any :class:`~edge.inference.backends.InferenceBackend`:
ONNX Runtime CPU/CUDA, TensorRT) on each batch's ``(B, 12, n)`` leads right after the reconstruction,
in the same worker thread, and gives each window ``{"probabilities": {class: p}, "thresholds": {class: t}}``
(the operating thresholds the artifact ships, chosen on real records; empty for older artifacts). A model
that takes measured rhythm features as a second input (``features_input`` in its metadata) gets them from
:func:`models.features.feature_matrix` of the same leads, exactly as in training. The classes, the
leads it takes and its version come from the file's ``ecgstream`` metadata, so a retrained model with
other classes needs no code change; the alarm rules read the classes they know (``VT``, ``AF``, …)
from :class:`~edge.alarms.evidence.WindowEvidence` and ignore the rest.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edge.inference.backends import InferenceBackend
from edge.inference.pipeline import StageBatch
from models.features import FEATURES_VERSION, feature_matrix, measured_rows
from protocol.leads import STANDARD_LEADS


class ClassifierStage:
    """A :class:`~edge.inference.pipeline.SecondStage` over the classifier's backend."""

    name = "classifier"

    def __init__(self, backend: InferenceBackend) -> None:
        self.backend = backend
        raw = (backend.metadata or {}).get("ecgstream")
        try:
            info: dict[str, Any] = json.loads(raw) if raw else {}
        except ValueError:
            info = {}
        if not info.get("classes"):
            raise ValueError("the classifier model has no 'classes' in its ecgstream metadata")
        self.info = info
        self.classes: tuple[str, ...] = tuple(info["classes"])
        self.leads: tuple[str, ...] = tuple(info.get("leads") or STANDARD_LEADS)
        self.version = f"classifier@{info.get('version') or info.get('config_hash') or 'unknown'}"
        self.input_name = str(info.get("input") or backend.input_names[0])
        self.output_name = str(info.get("output", "probabilities"))
        self.fs_hz = float(info.get("fs_hz", 125.0))
        self.features_name: str | None = info.get("features_input")
        if self.features_name is not None and info.get("features_version") != FEATURES_VERSION:
            raise ValueError(f"the classifier was trained on rhythm features version {info.get('features_version')}; "
                             f"this edge computes version {FEATURES_VERSION}")
        self._feature_rows = measured_rows(self.leads) if self.features_name else None
        self.thresholds: dict[str, float] = {str(k): float(v) for k, v in dict(info.get("thresholds") or {}).items()}

    def __call__(self, batch: StageBatch) -> list[dict[str, Any]]:
        idx = [batch.lead_names.index(lead) for lead in self.leads]
        leads = np.ascontiguousarray(batch.leads12[:, idx], dtype=np.float32)
        feed = {self.input_name: leads}
        if self.features_name is not None and self._feature_rows is not None:
            feed[self.features_name] = feature_matrix(leads, self.fs_hz, self._feature_rows)
        out = self.backend.run(feed)
        prob = np.asarray(out[self.output_name] if self.output_name in out else next(iter(out.values())))
        if prob.shape != (len(batch.windows), len(self.classes)):
            raise RuntimeError(f"classifier output {prob.shape} for {len(batch.windows)} windows of "
                               f"{len(self.classes)} classes")
        return [{"probabilities": {c: float(p) for c, p in zip(self.classes, row, strict=True)},
                 "thresholds": self.thresholds} for row in prob]
