"""Classification figures of the stress model (numpy): accuracy, macro F1, per-class precision/recall/F1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """``{"accuracy", "macro_f1", "per_class": {class: {precision, recall, f1, support}}, "confusion"}``."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_class: dict[str, dict[str, float]] = {}
    f1s = []
    for c, name in enumerate(classes):
        tp = confusion[c, c]
        precision = tp / confusion[:, c].sum() if confusion[:, c].sum() else 0.0
        recall = tp / confusion[c].sum() if confusion[c].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if confusion[c].sum():
            f1s.append(f1)
        per_class[name] = {"precision": round(float(precision), 4), "recall": round(float(recall), 4),
                           "f1": round(float(f1), 4), "support": int(confusion[c].sum())}
    report: dict[str, Any] = {
        "accuracy": round(float(np.mean(y_true == y_pred)) if y_true.size else 0.0, 4),
        "macro_f1": round(float(np.mean(f1s)) if f1s else 0.0, 4),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }
    if "stress" in classes:
        report["stress_vs_rest"] = one_vs_rest(confusion, list(classes).index("stress"))
    return report


def one_vs_rest(confusion: np.ndarray, positive: int) -> dict[str, float]:
    """Accuracy, sensitivity and specificity of one class against all others (the binary task that much
    of the WESAD literature reports: stress vs non-stress), from a multi-class confusion matrix."""
    c = np.asarray(confusion)
    rest = [i for i in range(c.shape[0]) if i != positive]
    tp, fn = c[positive, positive], c[positive, rest].sum()
    fp, tn = c[rest, positive].sum(), c[np.ix_(rest, rest)].sum()
    return {"accuracy": round(float((tp + tn) / max(c.sum(), 1)), 4),
            "sensitivity": round(float(tp / max(tp + fn, 1)), 4),
            "specificity": round(float(tn / max(tn + fp, 1)), 4)}
