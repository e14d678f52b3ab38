"""Leave-one-subject-out evaluation of the stress model (torch; training extras).

Each subject in turn is held out; a fresh network is trained on every other subject with the same config
and scored on the held-out one; the figures pool every held-out window. Subject-independent by design:
published near-perfect WESAD accuracies usually mix one subject's windows into training and test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.stress import CLASSES
from models.stress.config import StressConfig
from models.stress.data import StressSet
from models.stress.metrics import classification_report
from models.stress.train import Echo, fit, predict


def loso(data: StressSet, cfg: StressConfig, echo: Echo | None = None) -> dict[str, Any]:
    """``{"subjects", "source", "windows", "loso": {"accuracy", "macro_f1", "per_class", "confusion",
    "per_subject": {id: accuracy}}}``."""
    ids = data.subject_ids()
    if len(ids) < 2:
        raise ValueError("leave-one-subject-out needs at least two subjects")
    subjects = np.asarray(data.subjects)
    y_pred = np.empty(len(data), dtype=np.int64)
    per_subject: dict[str, float] = {}
    for i, sid in enumerate(ids):
        held = subjects == sid
        net = fit(data.subset(~held), cfg)
        pred = predict(net, data.windows[held], data.features[held]).argmax(axis=1)
        y_pred[held] = pred
        per_subject[sid] = round(float(np.mean(pred == data.labels[held])), 4)
        if echo is not None:
            echo(f"fold {i + 1}/{len(ids)} ({sid}): accuracy {per_subject[sid]:.3f}")
    report = classification_report(data.labels, y_pred, CLASSES)
    return {"subjects": len(ids), "source": data.source, "windows": len(data),
            "loso": {**report, "per_subject": per_subject}}


def score_artifact(data: StressSet, path: Path | None = None) -> dict[str, Any]:
    """The shipped (or given) ONNX model as it is, scored on every window of ``data``: for synthetic
    evaluation subjects (seeds disjoint from training) a held-out-subject figure; on WESAD the
    synthetic-to-real figure."""
    from models.runtime.stress import StressModel

    model = StressModel.load(path)
    pred = model.probabilities(data.windows, data.features).argmax(axis=1)
    return {"model": str(model.model.path.name), "version": model.version, "trained_on": model.trained_on,
            **classification_report(data.labels, pred, CLASSES)}
