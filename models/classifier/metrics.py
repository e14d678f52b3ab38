"""Multi-label metrics (numpy): per-class and macro AUROC and AUPRC, with bootstrap confidence intervals.

A class with no positive (or no negative) example in a data set has no AUROC: it is reported as
``"absent"`` (or ``"all_positive"``) and left out of the macro average, never counted as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.data.labels import CLASSES


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney, ties count half). NaN without both classes."""
    y = np.asarray(y).astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    s = np.asarray(score, dtype=np.float64)[order]
    ranks = np.empty(len(s))
    # average ranks over ties
    _, first, counts = np.unique(s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def auprc(y: np.ndarray, score: np.ndarray) -> float:
    """Average precision (area under the precision–recall curve, step-wise). NaN without positives."""
    y = np.asarray(y).astype(bool)
    pos = int(y.sum())
    if pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="mergesort")
    hits = y[order]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / pos)


def _status(y: np.ndarray) -> str:
    pos = int(y.sum())
    if pos == 0:
        return "absent"
    if pos == len(y):
        return "all_positive"
    return "present"


def _macro(values: Sequence[float]) -> float:
    v = [x for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def _r(x: float) -> float | None:
    return round(float(x), 4) if np.isfinite(x) else None


def multilabel_report(
    y: np.ndarray,
    prob: np.ndarray,
    *,
    bootstrap: int = 0,
    seed: int = 0,
    classes: Sequence[str] = CLASSES,
) -> dict[str, Any]:
    """Per-class and macro AUROC/AUPRC of ``prob`` (n, k) against multi-hot ``y`` (n, k).

    With ``bootstrap`` > 0, 95 % percentile intervals from that many resamples of the rows (a class
    missing from a resample is left out of that resample's macro). Classes without positives are
    ``{"status": "absent", "positives": 0}`` and not in the macro.
    """
    y = np.asarray(y) > 0.5
    prob = np.asarray(prob, dtype=np.float64)
    if y.shape != prob.shape or y.ndim != 2 or y.shape[1] != len(classes):
        raise ValueError(f"y and prob must both be (n, {len(classes)}), got {y.shape} and {prob.shape}")
    n = y.shape[0]
    per_class: dict[str, Any] = {}
    aurocs, auprcs = [], []
    for j, name in enumerate(classes):
        status = _status(y[:, j])
        entry: dict[str, Any] = {"status": status, "positives": int(y[:, j].sum())}
        if status == "present":
            a, p = auroc(y[:, j], prob[:, j]), auprc(y[:, j], prob[:, j])
            entry.update(auroc=_r(a), auprc=_r(p), prevalence=_r(y[:, j].mean()))
            aurocs.append(a)
            auprcs.append(p)
        per_class[name] = entry
    out: dict[str, Any] = {
        "n": n,
        "macro_auroc": _r(_macro(aurocs)),
        "macro_auprc": _r(_macro(auprcs)),
        "classes_scored": [c for c in classes if per_class[c]["status"] == "present"],
        "classes_absent": [c for c in classes if per_class[c]["status"] == "absent"],
        "per_class": per_class,
    }
    if bootstrap > 0 and n > 1:
        rng = np.random.default_rng(seed)
        scored = [j for j, c in enumerate(classes) if per_class[c]["status"] == "present"]
        boots = np.full((bootstrap, len(scored), 2), np.nan)
        for b in range(bootstrap):
            idx = rng.integers(0, n, n)
            for k, j in enumerate(scored):
                boots[b, k] = auroc(y[idx, j], prob[idx, j]), auprc(y[idx, j], prob[idx, j])
        for k, j in enumerate(scored):
            for m, name in enumerate(("auroc", "auprc")):
                v = boots[:, k, m][np.isfinite(boots[:, k, m])]
                if v.size:
                    per_class[classes[j]][f"{name}_ci95"] = [_r(np.percentile(v, 2.5)), _r(np.percentile(v, 97.5))]
        with np.errstate(all="ignore"):
            macro = np.nanmean(boots, axis=1)  # (bootstrap, 2)
        for m, name in enumerate(("auroc", "auprc")):
            v = macro[:, m][np.isfinite(macro[:, m])]
            if v.size:
                out[f"macro_{name}_ci95"] = [_r(np.percentile(v, 2.5)), _r(np.percentile(v, 97.5))]
        out["bootstrap"] = bootstrap
    return out


def format_report(reports: dict[str, dict[str, Any]], classes: Sequence[str] = CLASSES) -> str:
    """A text table: one row per class, one AUROC column per report (``-`` for an absent class)."""
    names = list(reports)
    lines = [f"{'class':<7}" + "".join(f" {n:>24}" for n in names)]
    for c in [*classes, "macro"]:
        row = f"{c:<7}"
        for n in names:
            r = reports[n]
            if c == "macro":
                v, ci = r.get("macro_auroc"), r.get("macro_auroc_ci95")
            else:
                e = r["per_class"][c]
                if e["status"] != "present":
                    row += f" {e['status']:>24}"
                    continue
                v, ci = e.get("auroc"), e.get("auroc_ci95")
            cell = "n/a" if v is None else f"{v:.3f}"
            if ci:
                cell += f" [{ci[0]:.3f},{ci[1]:.3f}]"
            row += f" {cell:>24}"
        lines.append(row)
    return "\n".join(lines)
