"""Multi-label metrics (numpy): per-class and macro AUROC and AUPRC, with bootstrap confidence intervals,
and — given per-class thresholds — sensitivity, specificity and F1 at that operating point.

A class with no positive (or no negative) example in a data set has no AUROC: it is reported as
``"absent"`` (or ``"all_positive"``) and left out of the macro average, never counted as 0. At a
threshold, an absent class still has a specificity (how often it is called where it is not), but
no sensitivity or F1; macro F1 is over the scored (present) classes, like macro AUROC.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
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


def confusion_counts(y: np.ndarray, prob: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per class (tp, fp, fn, tn) of the calls ``prob >= threshold`` against multi-hot ``y``: (n, k) → (k, 4).

    ``>=`` like :meth:`models.runtime.classifier.ClassifierModel.labels`: a probability equal to the
    threshold is a call.
    """
    truth = np.asarray(y) > 0.5
    called = np.asarray(prob, dtype=np.float64) >= np.asarray(thresholds, dtype=np.float64)[None, :]
    tp = (called & truth).sum(0)
    fp = (called & ~truth).sum(0)
    fn = (~called & truth).sum(0)
    tn = (~called & ~truth).sum(0)
    return np.stack([tp, fp, fn, tn], axis=1).astype(np.int64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def rates(counts: np.ndarray) -> dict[str, np.ndarray]:
    """(…, 4) counts (tp, fp, fn, tn) → sensitivity, specificity, precision and F1 (NaN where undefined).

    F1 = 2·tp / (2·tp + fp + fn), NaN for a class without positives (its F1 says nothing).
    """
    c = np.asarray(counts, dtype=np.float64)
    tp, fp, fn, tn = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
    sens = _ratio(tp, tp + fn)
    return {
        "sensitivity": sens,
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "f1": np.where(np.isfinite(sens), _ratio(2 * tp, 2 * tp + fp + fn), np.nan),
    }


def threshold_vector(thresholds: Mapping[str, float] | Sequence[float] | np.ndarray | float,
                     classes: Sequence[str] = CLASSES) -> np.ndarray:
    """Thresholds as a (k,) array in ``classes`` order: one number for all, a sequence, or {class: t} (all classes)."""
    if isinstance(thresholds, Mapping):
        missing = [c for c in classes if c not in thresholds]
        if missing:
            raise ValueError(f"no threshold for {', '.join(missing)}")
        t = np.array([float(thresholds[c]) for c in classes])
    else:
        t = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(classes),)).copy()
    if not (np.isfinite(t).all() and ((t >= 0) & (t <= 1)).all()):
        raise ValueError(f"thresholds must be probabilities in [0, 1], got {t.tolist()}")
    return t


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
    thresholds: Mapping[str, float] | Sequence[float] | np.ndarray | float | None = None,
) -> dict[str, Any]:
    """Per-class and macro AUROC/AUPRC of ``prob`` (n, k) against multi-hot ``y`` (n, k).

    With ``bootstrap`` > 0, 95 % percentile intervals from that many resamples of the rows (a class
    missing from a resample is left out of that resample's macro). Classes without positives are
    ``{"status": "absent", "positives": 0}`` and not in the macro.

    With ``thresholds`` (see :func:`threshold_vector`), every class also gets ``threshold``, the
    counts ``tp``/``fp``/``fn``/``tn`` of the calls ``prob >= threshold``, ``sensitivity``,
    ``specificity``, ``precision`` and ``f1`` (``None`` where undefined: no sensitivity or F1
    without positives), and the report a ``macro_f1`` over the scored classes (with intervals when
    bootstrapping).
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
    t_vec = None if thresholds is None else threshold_vector(thresholds, classes)
    if t_vec is not None:
        counts = confusion_counts(y, prob, t_vec)
        r = rates(counts)
        for j, name in enumerate(classes):
            per_class[name].update(
                threshold=_r(t_vec[j]), **dict(zip(("tp", "fp", "fn", "tn"), map(int, counts[j]), strict=True)),
                **{m: _r(r[m][j]) for m in ("sensitivity", "specificity", "precision", "f1")})
    out: dict[str, Any] = {
        "n": n,
        "macro_auroc": _r(_macro(aurocs)),
        "macro_auprc": _r(_macro(auprcs)),
        "classes_scored": [c for c in classes if per_class[c]["status"] == "present"],
        "classes_absent": [c for c in classes if per_class[c]["status"] == "absent"],
        "per_class": per_class,
    }
    scored = [j for j, c in enumerate(classes) if per_class[c]["status"] == "present"]
    if t_vec is not None:
        out["macro_f1"] = _r(_macro([per_class[classes[j]]["f1"] for j in scored
                                     if per_class[classes[j]]["f1"] is not None]))
    if bootstrap > 0 and n > 1:
        rng = np.random.default_rng(seed)
        boots = np.full((bootstrap, len(scored), 2), np.nan)
        draws = rng.integers(0, n, (bootstrap, n))
        for b, idx in enumerate(draws):
            for k, j in enumerate(scored):
                boots[b, k] = auroc(y[idx, j], prob[idx, j]), auprc(y[idx, j], prob[idx, j])
        if t_vec is not None and scored:
            _bootstrap_f1(out, per_class, y[:, scored], prob[:, scored], t_vec[scored], draws,
                          [classes[j] for j in scored])
        for k, j in enumerate(scored):
            for m, name in enumerate(("auroc", "auprc")):
                v = boots[:, k, m][np.isfinite(boots[:, k, m])]
                if v.size:
                    per_class[classes[j]][f"{name}_ci95"] = [_r(np.percentile(v, 2.5)), _r(np.percentile(v, 97.5))]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # a resample without any scored class
            macro = np.nanmean(boots, axis=1)  # (bootstrap, 2)
        for m, name in enumerate(("auroc", "auprc")):
            v = macro[:, m][np.isfinite(macro[:, m])]
            if v.size:
                out[f"macro_{name}_ci95"] = [_r(np.percentile(v, 2.5)), _r(np.percentile(v, 97.5))]
        out["bootstrap"] = bootstrap
    return out


def _bootstrap_f1(out: dict[str, Any], per_class: dict[str, Any], y: np.ndarray, prob: np.ndarray,
                  t: np.ndarray, draws: np.ndarray, names: Sequence[str]) -> None:
    """95 % intervals of each scored class's F1 and of macro F1 over the resamples ``draws`` (b, n)."""
    n, k = y.shape
    called = prob >= t
    hits = np.stack([called & y, called & ~y, ~called & y, ~called & ~y], axis=-1).reshape(n, k * 4)
    times = np.zeros((len(draws), n))                                  # how often each row is in each resample
    np.add.at(times, (np.repeat(np.arange(len(draws)), n), draws.reshape(-1)), 1.0)
    f1 = rates((times @ hits).reshape(len(draws), k, 4))["f1"]        # (b, k)
    for k, name in enumerate(names):
        v = f1[:, k][np.isfinite(f1[:, k])]
        if v.size:
            per_class[name]["f1_ci95"] = [_r(np.percentile(v, 2.5)), _r(np.percentile(v, 97.5))]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        macro = np.nanmean(f1, axis=1)
    v = macro[np.isfinite(macro)]
    if v.size:
        out["macro_f1_ci95"] = [_r(np.percentile(v, 2.5)), _r(np.percentile(v, 97.5))]


def _num(v: float | None, width: int, digits: int = 2) -> str:
    return f"{'-' if v is None else f'{v:.{digits}f}':>{width}}"


def format_report(reports: dict[str, dict[str, Any]], classes: Sequence[str] = CLASSES) -> str:
    """A text table: one row per class; per report the AUROC [95 % CI] (``-`` cells and the status for
    an absent class) and, when the report was made at thresholds, the threshold, sensitivity (with
    detected/positives), specificity and F1 next to it. The last row is the macro AUROC and macro F1."""
    names = list(reports)
    at_op = {n: "macro_f1" in reports[n] for n in names}
    op_head = f" {'thr':>5} {'sens':>11} {'spec':>5} {'F1':>5}"
    op_blank = " " * len(op_head)
    lines = [f"{'class':<7}" + "".join(f" {n:>24}" + (" " * len(op_head) if at_op[n] else "") for n in names),
             f"{'':<7}" + "".join(f" {'AUROC [95% CI]':>24}" + (op_head if at_op[n] else "") for n in names)]
    for c in [*classes, "macro"]:
        row = f"{c:<7}"
        for n in names:
            r = reports[n]
            if c == "macro":
                v, ci = r.get("macro_auroc"), r.get("macro_auroc_ci95")
                e: dict[str, Any] = {"status": "present"}
            else:
                e = r["per_class"][c]
                v, ci = e.get("auroc"), e.get("auroc_ci95")
            if e["status"] != "present":
                cell = e["status"]
            else:
                cell = "n/a" if v is None else f"{v:.3f}"
                if ci:
                    cell += f" [{ci[0]:.3f},{ci[1]:.3f}]"
            row += f" {cell:>24}"
            if not at_op[n]:
                continue
            if c == "macro":
                row += op_blank[: -6] + _num(r.get("macro_f1"), 6)
                continue
            sens = "-" if e.get("sensitivity") is None else f"{e['sensitivity']:.2f} {e['tp']}/{e['tp'] + e['fn']}"
            row += f" {_num(e.get('threshold'), 5)} {sens:>11} {_num(e.get('specificity'), 5)} {_num(e.get('f1'), 5)}"
        lines.append(row)
    return "\n".join(lines)
