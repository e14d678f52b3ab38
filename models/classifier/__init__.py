"""The ECG-Mamba arrhythmia classifier: one 10 s 12-lead window in, a probability per class out.

Classes (multi-label) are :data:`models.data.labels.CLASSES`, each with its SNOMED CT codes
(``NOISE`` has none). This package's top level is numpy only: the torch models
(:mod:`models.classifier.mamba`, :mod:`models.classifier.resnet`), training, export and
quantization import torch/onnx themselves; the edge loads the ONNX artifact through
:class:`models.runtime.classifier.ClassifierModel`.
"""

from __future__ import annotations

from typing import Any

from models.data.labels import CLASSES, DESCRIPTIONS, VOCABULARY

INPUT_NAME = "leads12"
"""ONNX input: float32 (B, 12, 1250) band-passed mV, standard lead order."""
FEATURES_NAME = "features"
"""ONNX input of classifiers that take measured rhythm features: float32 (B, :data:`models.features.N_FEATURES`)
(:func:`models.features.feature_matrix` of the same windows; the runtime computes it)."""
OUTPUT_NAME = "probabilities"
"""ONNX output: float32 (B, 18) sigmoid probabilities in :data:`CLASSES` order."""


def class_metadata() -> dict[str, Any]:
    """The class part of the ONNX ``ecgstream`` metadata: keys, descriptions, SNOMED CT codes."""
    return {
        "classes": list(CLASSES),
        "descriptions": dict(DESCRIPTIONS),
        "snomed": {c.key: sorted(c.snomed) for c in VOCABULARY},
    }
