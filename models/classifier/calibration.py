"""Per-class calibration and operating thresholds for the classifier, cross-validated by record (numpy only).

The classifier is trained on synthetic windows; its logits on real ECG are neither calibrated nor
best cut at 0.5. Issue 12 asks to calibrate on the real tuning records (``../shared/tune``) with
cross-validation and to choose an operating threshold per class there. This module does that:

* :func:`fit_calibration` — Platt scaling per class on the classifier's logits, ``z' = a_c·z + b_c``,
  with an L2 pull toward identity (``λ/2·((a−1)² + b²)``, ``λ`` in records) so a class with few
  positive records moves little; a class with fewer than ``min_positive_records`` positive (or
  negative) records keeps identity. The slope stays ≥ :data:`MIN_SLOPE`: calibration may flatten a
  class's scores but never reverse their order.
  **Fitted at window level with record weights**: every window counts ``1 / (windows of its record)``,
  so each record weighs 1 whatever its length (as evaluation, which averages a record's window
  probabilities) while the affine stays a per-window map — the same one the shipped model applies.
* :func:`choose_thresholds` — per class, the threshold that maximises F1 (ties toward higher
  specificity); a class with fewer than ``min_positives`` positives gets 0.5 and is flagged.
* :func:`record_folds` — k folds of whole records (a record's windows are never split), stratified by
  each record's rarest class.
* :func:`cross_validate` — out-of-fold calibrated probabilities (each fold calibrated on the others),
  aggregated to records as evaluation does (mean of the record's window probabilities), thresholds chosen
  on them, and per-class sensitivity / specificity / F1 / AUROC with record counts and bootstrap 95 %
  intervals over records; the final calibration is fitted on all records.
* :meth:`Calibration.fold_into` — the affine folded into the classifier's last linear layer, so the
  shipped ONNX graph needs no extra operator.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from models.classifier.metrics import auroc
from models.data.labels import CLASSES

DEFAULT_SHRINKAGE = 1.0
"""λ of the pull toward identity, in records: as if one extra record per parameter agreed with a = 1, b = 0."""
MIN_POSITIVE_RECORDS = 3
"""A class needs this many positive and negative records in the fit set to be calibrated."""
MIN_SLOPE = 0.05
"""Lower bound of a calibrated slope ``a``: calibration never reverses a class's ranking."""
_NEWTON_STEPS = 100
_NOTE = ("record-level k-fold cross-validation on a small set: every record's windows are in one fold; "
         "thresholds are chosen on the same out-of-fold probabilities they are scored on, so sensitivity, "
         "specificity and F1 are optimistic (see 'held_out' for thresholds chosen inside each training fold); "
         "intervals are 95 % percentile bootstrap over records")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.exp(-np.logaddexp(0.0, -z))
    return out


def _check_2d(name: str, value: np.ndarray, n: int | None = None, c: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (n, classes), got shape {arr.shape}")
    if (n is not None and arr.shape[0] != n) or (c is not None and arr.shape[1] != c):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({n}, {c})")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def _round(x: float, digits: int = 4) -> float | None:
    return round(float(x), digits) if np.isfinite(x) else None


# --- records ----------------------------------------------------------------------------------------


def aggregate_records(
    probs: np.ndarray, targets: np.ndarray, record_ids: Sequence[str] | np.ndarray
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Window-level ``probs`` and ``targets`` (n, C) → (record ids in order of first window, mean probability
    per record (R, C), targets per record (R, C): positive when any of its windows is)."""
    ids = np.asarray(record_ids)
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if not (ids.shape[0] == probs.shape[0] == targets.shape[0]):
        raise ValueError(f"{ids.shape[0]} record ids for {probs.shape[0]} probabilities and {targets.shape[0]} targets")
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first)  # record index by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    group = rank[inverse.reshape(-1)]
    r = order.size
    sums = np.zeros((r, probs.shape[1]))
    np.add.at(sums, group, probs)
    counts = np.bincount(group, minlength=r).astype(np.float64)
    pos = np.zeros((r, targets.shape[1]))
    np.maximum.at(pos, group, (targets > 0.5).astype(np.float64))
    return tuple(str(ids[first[i]]) for i in order), sums / counts[:, None], pos


def record_folds(
    record_ids: Sequence[str] | np.ndarray, k: int, seed: int, *, targets: np.ndarray | None = None
) -> list[np.ndarray]:
    """``k`` folds of window indices, every record's windows in one fold.

    With window ``targets`` (n, C) the folds are stratified: records are grouped by their rarest positive
    class (by positive records; no class is a group of its own), shuffled within a group, and dealt to the
    folds in turn, rarest groups first, so each class's positive records spread over as many folds as they can.
    Raises ValueError when ``k`` is below 2 or above the number of records.
    """
    ids = np.asarray(record_ids)
    uniq, inverse = np.unique(ids, return_inverse=True)
    inverse = inverse.reshape(-1)
    if not 2 <= k <= uniq.size:
        raise ValueError(f"k must be between 2 and the number of records ({uniq.size}), got {k}")
    rng = np.random.default_rng([seed, 29])
    stratum = np.full(uniq.size, -1)
    if targets is not None:
        y = np.asarray(targets) > 0.5
        if y.ndim != 2 or y.shape[0] != ids.shape[0]:
            raise ValueError(f"targets must be ({ids.shape[0]}, classes), got {y.shape}")
        rec = np.zeros((uniq.size, y.shape[1]), dtype=bool)
        np.logical_or.at(rec, inverse, y)
        counts = rec.sum(axis=0)
        rarity = np.where(rec, counts[None, :], np.iinfo(np.int64).max)
        stratum = np.where(rec.any(axis=1), np.argmin(rarity, axis=1), -1)
        sizes = {s: int((stratum == s).sum()) for s in np.unique(stratum)}
    else:
        sizes = {-1: uniq.size}
    deal: list[np.ndarray] = [rng.permutation(np.flatnonzero(stratum == s)) for s in sorted(sizes, key=lambda s: (sizes[s], s))]
    order = np.concatenate(deal)
    fold_of_record = np.empty(uniq.size, dtype=np.int64)
    fold_of_record[order] = rng.permutation(k)[np.arange(order.size) % k]
    window_fold = fold_of_record[inverse]
    return [np.flatnonzero(window_fold == f) for f in range(k)]


# --- calibration ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Per-class affine calibration of logits, ``z' = a·z + b`` (``a``, ``b``: (C,) float64).

    ``fitted`` marks the classes that were fitted (the others are identity: too few records).
    """

    a: np.ndarray
    b: np.ndarray
    fitted: np.ndarray
    classes: tuple[str, ...] = CLASSES
    shrinkage: float = DEFAULT_SHRINKAGE
    w: np.ndarray | None = None
    """(C, K) weights of the rhythm terms (:func:`models.classifier.heads.rhythm_basis`) added to each
    calibrated logit, or None (plain Platt scaling)."""

    def __post_init__(self) -> None:
        a = np.asarray(self.a, dtype=np.float64).reshape(-1).copy()
        b = np.asarray(self.b, dtype=np.float64).reshape(-1).copy()
        fitted = np.asarray(self.fitted, dtype=bool).reshape(-1).copy()
        if not (a.shape == b.shape == fitted.shape == (len(self.classes),)):
            raise ValueError(f"a, b and fitted need one entry per class ({len(self.classes)})")
        for arr in (a, b, fitted):
            arr.flags.writeable = False
        if self.w is not None:
            w = np.asarray(self.w, dtype=np.float64).copy()
            if w.ndim != 2 or w.shape[0] != len(self.classes):
                raise ValueError(f"w needs one row per class ({len(self.classes)})")
            w.flags.writeable = False
            object.__setattr__(self, "w", w)
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "fitted", fitted)

    @classmethod
    def identity(cls, classes: Sequence[str] = CLASSES) -> Calibration:
        """The calibration that changes nothing."""
        c = len(classes)
        return cls(np.ones(c), np.zeros(c), np.zeros(c, dtype=bool), tuple(classes))

    def apply(self, logits: np.ndarray, basis: np.ndarray | None = None) -> np.ndarray:
        """Calibrated logits, same shape as ``logits`` (n, C); ``basis`` (n, K): the windows' rhythm terms,
        needed when the calibration has them."""
        z = np.asarray(logits, dtype=np.float64)
        out: np.ndarray = z * self.a + self.b
        if self.w is not None:
            if basis is None:
                raise ValueError("this calibration adds rhythm terms: pass the windows' basis")
            out = out + np.asarray(basis, dtype=np.float64) @ self.w.T
        return out

    def probabilities(self, logits: np.ndarray, basis: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probabilities ``sigmoid(a·z + b [+ w·basis])``."""
        return _sigmoid(self.apply(logits, basis))

    def fold_into(self, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The classifier's last linear layer (``weight`` (C, H) as torch stores it, ``bias`` (C,)) with the
        affine folded in: ``a·(W h + c) + b = (a·W) h + (a·c + b)``, in the input dtypes."""
        w = np.asarray(weight)
        c = np.asarray(bias)
        n = len(self.classes)
        if w.ndim != 2 or w.shape[0] != n or c.shape != (n,):
            raise ValueError(f"expected weight ({n}, H) and bias ({n},), got {w.shape} and {c.shape}")
        new_w = (w.astype(np.float64) * self.a[:, None]).astype(w.dtype)
        new_c = (c.astype(np.float64) * self.a + self.b).astype(c.dtype)
        return new_w, new_c

    def to_dict(self) -> dict[str, Any]:
        """JSON-able ``{"method", "shrinkage", "classes": {key: {"a", "b", "fitted"[, "rhythm"]}}}``."""
        from models.classifier.heads import RHYTHM_BASIS

        def entry(j: int) -> dict[str, Any]:
            e: dict[str, Any] = {"a": float(self.a[j]), "b": float(self.b[j]), "fitted": bool(self.fitted[j])}
            if self.w is not None:
                e["rhythm"] = {name: round(float(v), 6) for name, v in zip(RHYTHM_BASIS, self.w[j], strict=True)}
            return e

        method = "Platt scaling of logits per class, L2-shrunk toward a=1, b=0; identity where too few records"
        if self.w is not None:
            method += "; plus measured rhythm terms (rate, RR irregularity, premature beats, QRS, QTc) shrunk toward 0"
        return {"method": method, "shrinkage": self.shrinkage,
                "classes": {key: entry(j) for j, key in enumerate(self.classes)}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """The inverse of :meth:`to_dict`."""
        entries: Mapping[str, Mapping[str, Any]] = data["classes"]
        keys = tuple(entries)
        rhythm = [entries[k].get("rhythm") for k in keys]
        w = None if any(r is None for r in rhythm) else np.array([list(r.values()) for r in rhythm])  # type: ignore[union-attr]
        return cls(
            np.array([float(entries[k]["a"]) for k in keys]),
            np.array([float(entries[k]["b"]) for k in keys]),
            np.array([bool(entries[k]["fitted"]) for k in keys]),
            keys,
            float(data.get("shrinkage", DEFAULT_SHRINKAGE)),
            w,
        )


def _platt_loss(z: np.ndarray, y: np.ndarray, w: np.ndarray, a: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    s = z * a + b
    data = (w * (np.logaddexp(0.0, s) - y * s)).sum(axis=0)
    out: np.ndarray = data + 0.5 * lam * ((a - 1.0) ** 2 + b**2)
    return out


def _newton(z: np.ndarray, y: np.ndarray, w: np.ndarray, a: np.ndarray, b: np.ndarray, lam: float,
            free_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Damped Newton on the (convex) shrunk Platt loss, all classes at once; ``a`` held where ``~free_a``."""
    a, b = a.copy(), b.copy()
    loss = _platt_loss(z, y, w, a, b, lam)
    for _ in range(_NEWTON_STEPS):
        s = z * a + b
        p = _sigmoid(s)
        r = w * (p - y)
        h = w * p * (1.0 - p)
        g_a = np.where(free_a, (r * z).sum(axis=0) + lam * (a - 1.0), 0.0)
        g_b = r.sum(axis=0) + lam * b
        h_aa = (h * z * z).sum(axis=0) + lam
        h_ab = np.where(free_a, (h * z).sum(axis=0), 0.0)
        h_bb = h.sum(axis=0) + lam
        det = h_aa * h_bb - h_ab**2
        step_a = np.where(free_a, (h_bb * g_a - h_ab * g_b) / det, 0.0)
        step_b = np.where(free_a, (h_aa * g_b - h_ab * g_a) / det, g_b / h_bb)
        t = np.ones_like(a)
        new_loss = _platt_loss(z, y, w, a - step_a, b - step_b, lam)
        for _ in range(40):  # backtrack where the full step does not lower the loss
            worse = new_loss > loss + 1e-12 * (1.0 + np.abs(loss))
            if not worse.any():
                break
            t = np.where(worse, t / 2, t)
            new_loss = _platt_loss(z, y, w, a - t * step_a, b - t * step_b, lam)
        a, b = a - t * step_a, b - t * step_b
        loss = new_loss
        if max(float(np.abs(t * step_a).max()), float(np.abs(t * step_b).max())) < 1e-10:
            break
    return a, b


def _fit_with_rhythm(z: np.ndarray, y: np.ndarray, w: np.ndarray, basis: np.ndarray, fit: np.ndarray,
                     lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per fitted class, L2-shrunk logistic regression of ``y`` on [z, 1, basis] toward (1, 0, 0…) by Newton."""
    n, c = z.shape
    k = basis.shape[1]
    a, b, wk = np.ones(c), np.zeros(c), np.zeros((c, k))
    prior = np.concatenate([[1.0, 0.0], np.zeros(k)])
    weights = w[:, 0]
    for j in np.flatnonzero(fit):
        x = np.column_stack([z[:, j], np.ones(n), basis])
        yj = y[:, j]

        def loss(t: np.ndarray, x: np.ndarray = x, yj: np.ndarray = yj) -> float:
            s = x @ t
            return float((weights * (np.logaddexp(0.0, s) - yj * s)).sum() + 0.5 * lam * ((t - prior) ** 2).sum())

        theta = prior.copy()
        current = loss(theta)
        for _ in range(_NEWTON_STEPS):
            p = _sigmoid(x @ theta)
            g = x.T @ (weights * (p - yj)) + lam * (theta - prior)
            h = (x * (weights * p * (1.0 - p))[:, None]).T @ x + lam * np.eye(k + 2)
            step = np.linalg.solve(h, g)
            t = 1.0
            while t > 1e-6 and loss(theta - t * step) > current:      # damped: never a step that raises the loss
                t /= 2.0
            theta = theta - t * step
            new = loss(theta)
            if abs(current - new) < 1e-12 * (1.0 + abs(current)) or float(np.abs(t * step).max()) < 1e-10:
                break
            current = new
        theta[0] = max(theta[0], MIN_SLOPE)
        a[j], b[j], wk[j] = theta[0], theta[1], theta[2:]
    return a, b, wk


def fit_calibration(
    logits: np.ndarray,
    targets: np.ndarray,
    groups: Sequence[str] | np.ndarray,
    *,
    shrinkage: float = DEFAULT_SHRINKAGE,
    min_positive_records: int = MIN_POSITIVE_RECORDS,
    classes: Sequence[str] = CLASSES,
    basis: np.ndarray | None = None,
) -> Calibration:
    """Fit ``z' = a·z + b`` per class on window ``logits`` (n, C) and multi-hot ``targets`` (n, C).

    ``groups`` is the record of each window: a window weighs ``1 / (windows of its record)`` and positive /
    negative records are counted per class; a class with fewer than ``min_positive_records`` of either keeps
    identity. ``shrinkage`` (λ ≥ 0) pulls (a, b) toward (1, 0) by ``λ/2·((a−1)² + b²)``; the slope is kept
    at least :data:`MIN_SLOPE` (the constrained optimum, not a clipped one).
    """
    if shrinkage < 0:
        raise ValueError(f"shrinkage must be ≥ 0, got {shrinkage}")
    z = _check_2d("logits", logits, c=len(classes))
    y = (_check_2d("targets", targets, n=z.shape[0], c=z.shape[1]) > 0.5).astype(np.float64)
    ids, _, rec_y = aggregate_records(y, y, groups)
    _, inverse, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    w = (1.0 / counts[inverse.reshape(-1)])[:, None]
    pos = rec_y.sum(axis=0)
    fit = (pos >= min_positive_records) & (len(ids) - pos >= min_positive_records)
    c = z.shape[1]
    if basis is not None:      # calibration fused with measured rhythm terms (rate, irregularity, QRS …)
        bz = _check_2d("basis", basis, n=z.shape[0])
        a, b, wk = _fit_with_rhythm(z, y, w, bz, fit, shrinkage)
        return Calibration(a, b, fit, tuple(classes), float(shrinkage), wk)
    a, b = np.ones(c), np.zeros(c)
    if fit.any():
        cols = np.flatnonzero(fit)
        zf, yf = z[:, cols], y[:, cols]
        af, bf = _newton(zf, yf, w, np.ones(cols.size), np.zeros(cols.size), shrinkage, np.ones(cols.size, bool))
        low = af < MIN_SLOPE
        if low.any():  # convex problem: the constrained optimum lies on a = MIN_SLOPE
            af = np.where(low, MIN_SLOPE, af)
            af, bf = _newton(zf, yf, w, af, np.where(low, 0.0, bf), shrinkage, ~low)
        a[cols], b[cols] = af, bf
    return Calibration(a, b, fit, tuple(classes), float(shrinkage))


# --- thresholds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """Operating threshold per class (predict the class when its probability is ≥ the threshold).

    ``flagged``: no threshold chosen, 0.5 kept; ``reasons`` says why per class (:data:`TOO_FEW` or
    :data:`UNINFORMATIVE`, ``""`` when chosen). ``f1``: F1 at the threshold on the data it was chosen on
    (in-sample). ``positives``: positive examples (records) it was chosen from.
    """

    values: np.ndarray
    flagged: np.ndarray
    f1: np.ndarray
    positives: np.ndarray
    classes: tuple[str, ...] = CLASSES
    rule: str = "f1"
    reasons: tuple[str, ...] = ()

    def as_mapping(self) -> dict[str, float]:
        """``{class: threshold}``, as the edge's ``WindowEvidence.thresholds`` takes them."""
        return {c: float(v) for c, v in zip(self.classes, self.values, strict=True)}

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """(n, C) bool: each class at or above its threshold."""
        out: np.ndarray = np.asarray(probs) >= self.values
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able ``{class: {"threshold", "flagged", "positives", "f1_in_sample"}}``."""
        return {
            c: {"threshold": round(float(self.values[j]), 6), "flagged": bool(self.flagged[j]),
                "reason": self.reasons[j] if self.reasons else "", "positives": int(self.positives[j]),
                "f1_in_sample": _round(self.f1[j])}
            for j, c in enumerate(self.classes)
        }


TOO_FEW = "too few positives"
UNINFORMATIVE = ("uninformative: AUROC ≤ 0.6, or F1 best only when every example is called positive, or the "
                 "threshold calls over half of the examples positive for a class under a quarter of them")


def _f1_threshold(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Threshold maximising F1 of ``p ≥ t`` (ties: the highest such t, i.e. fewest false positives), and F1."""
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(~ys)
    ends = np.flatnonzero(np.append(ps[1:] != ps[:-1], True))  # last index of each run of equal scores
    n_pos = int(ys.sum())
    f1 = 2.0 * tp[ends] / (tp[ends] + fp[ends] + n_pos)
    best = int(np.flatnonzero(f1 >= f1.max() - 1e-12)[0])
    end = int(ends[best])
    t = float(ps[end])
    if end + 1 < ps.size:
        mid = 0.5 * (t + float(ps[end + 1]))
        if float(ps[end + 1]) < mid <= t:
            t = mid  # between the last score taken and the next one: no score moves
    return t, float(f1[best])


def choose_thresholds(
    probs: np.ndarray,
    targets: np.ndarray,
    *,
    min_positives: int = MIN_POSITIVE_RECORDS,
    rule: Literal["f1"] = "f1",
    classes: Sequence[str] = CLASSES,
) -> Thresholds:
    """Per-class threshold maximising F1 of ``probs ≥ t`` against ``targets`` (both (n, C), typically one row
    per record of out-of-fold calibrated probabilities). Among thresholds with the same F1 the highest wins
    (fewest false positives: higher specificity); the threshold sits midway between the last score taken and
    the next lower one. A class keeps 0.5 and is flagged when it has fewer than ``min_positives`` positives,
    or when its scores are uninformative: AUROC ≤ 0.6 (on a few records, 0.5–0.6 is chance), the best F1
    calls over half the examples positive for a class that is under a quarter of them, or it needs every
    example called positive
    (F1 then favours calling nearly everything positive; shipping that threshold would raise the class on
    almost every window).
    """
    if rule != "f1":
        raise ValueError(f"unknown threshold rule {rule!r}; known: f1")
    p = _check_2d("probs", probs, c=len(classes))
    y = _check_2d("targets", targets, n=p.shape[0], c=p.shape[1]) > 0.5
    c = p.shape[1]
    values, f1 = np.full(c, 0.5), np.zeros(c)
    positives = y.sum(axis=0)
    reasons = [TOO_FEW if positives[j] < max(min_positives, 1) else "" for j in range(c)]
    for j in range(c):
        if not reasons[j]:
            t, best = _f1_threshold(p[:, j], y[:, j])
            over_calls = (p[:, j] >= t).mean() > 0.5 and y[:, j].mean() < 0.25
            if not y[:, j].all() and (t <= p[:, j].min() or auroc(y[:, j], p[:, j]) <= 0.6 or over_calls):
                reasons[j] = UNINFORMATIVE
            else:
                values[j], f1[j] = t, best
        if reasons[j]:
            pred = p[:, j] >= 0.5
            tp = int((pred & y[:, j]).sum())
            denom = int(pred.sum()) + int(positives[j])
            f1[j] = 2.0 * tp / denom if denom else float("nan")
    flagged = np.array([bool(r) for r in reasons])
    return Thresholds(values, flagged, f1, positives.astype(np.int64), tuple(classes), rule, tuple(reasons))


# --- cross-validation -------------------------------------------------------------------------------


def _binary_metrics(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sensitivity, specificity and F1 along the last-but-one axis of bool (..., n, C) arrays (NaN where undefined)."""
    tp = (y & pred).sum(axis=-2).astype(np.float64)
    fn = (y & ~pred).sum(axis=-2)
    fp = (~y & pred).sum(axis=-2)
    tn = (~y & ~pred).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = tp / (tp + fn)
        spec = tn / (tn + fp)
        f1 = 2 * tp / (2 * tp + fp + fn)
    return sens, spec, f1


def _log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    out: np.ndarray = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=0)
    return out


def _ci(values: np.ndarray) -> list[float | None] | None:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return None
    return [_round(np.percentile(v, 2.5)), _round(np.percentile(v, 97.5))]


@dataclass(frozen=True)
class CvReport:
    """What :func:`cross_validate` found. ``calibration`` is fitted on all records (ship it);
    ``thresholds`` are chosen on the out-of-fold calibrated record probabilities (ship them)."""

    k: int
    seed: int
    calibration: Calibration
    thresholds: Thresholds
    record_ids: tuple[str, ...]
    record_probs: np.ndarray
    """Out-of-fold calibrated probability per record (R, C): mean of its windows'."""
    record_targets: np.ndarray
    oof_logits: np.ndarray
    """Out-of-fold calibrated logits per window (n, C)."""
    fold_calibrations: tuple[Calibration, ...]
    per_class: Mapping[str, Mapping[str, Any]]
    summary: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able report: method, counts, macro F1, per-class metrics, final calibration, thresholds."""
        return {
            **self.summary,
            "per_class": {c: dict(v) for c, v in self.per_class.items()},
            "calibration": self.calibration.to_dict(),
            "thresholds": self.thresholds.to_dict(),
        }


def cross_validate(
    logits: np.ndarray,
    targets: np.ndarray,
    record_ids: Sequence[str] | np.ndarray,
    k: int = 5,
    seed: int = 0,
    *,
    shrinkage: float = DEFAULT_SHRINKAGE,
    min_positive_records: int = MIN_POSITIVE_RECORDS,
    bootstrap: int = 1000,
    classes: Sequence[str] = CLASSES,
    basis: np.ndarray | None = None,
) -> CvReport:
    """Record-level k-fold cross-validated calibration and thresholds (see the module notes).

    Each fold's windows are calibrated by :func:`fit_calibration` on the other folds; the out-of-fold
    probabilities are averaged per record; :func:`choose_thresholds` picks thresholds on them; per class
    the report gives positive/negative records, threshold, sensitivity, specificity, F1 and AUROC with
    95 % bootstrap intervals over records (``bootstrap`` resamples, thresholds fixed), out-of-fold log-loss
    before and after calibration, and ``held_out`` sensitivity/specificity/F1 with thresholds chosen inside
    each training fold (honest, but from fewer records). ``macro_f1`` is over the classes with a chosen
    (unflagged) threshold; ``macro_f1_enough_positives`` also counts the classes flagged uninformative (at 0.5),
    so a model that fails a class is not flattered. The final calibration is fitted on all records.
    """
    z = _check_2d("logits", logits, c=len(classes))
    y = _check_2d("targets", targets, n=z.shape[0], c=z.shape[1]) > 0.5
    groups = np.asarray(record_ids)
    if groups.shape[0] != z.shape[0]:
        raise ValueError(f"{groups.shape[0]} record ids for {z.shape[0]} windows")
    folds = record_folds(groups, k, seed, targets=y)
    oof = np.empty_like(z)
    held_pred = np.zeros(z.shape, dtype=bool)  # per window, thresholds from the training folds
    fold_cals: list[Calibration] = []
    for test in folds:
        train = np.setdiff1d(np.arange(z.shape[0]), test)
        b_train = None if basis is None else basis[train]
        b_test = None if basis is None else basis[test]
        cal = fit_calibration(z[train], y[train], groups[train], shrinkage=shrinkage,
                              min_positive_records=min_positive_records, classes=classes, basis=b_train)
        fold_cals.append(cal)
        oof[test] = cal.apply(z[test], b_test)
        _, train_p, train_y = aggregate_records(cal.probabilities(z[train], b_train), y[train], groups[train])
        fold_thr = choose_thresholds(train_p, train_y, min_positives=min_positive_records, classes=classes)
        test_ids, test_p, _ = aggregate_records(cal.probabilities(z[test], b_test), y[test], groups[test])
        rec_pred = fold_thr.predict(test_p)
        row = {r: i for i, r in enumerate(test_ids)}
        held_pred[test] = rec_pred[[row[str(g)] for g in groups[test]]]
    ids, rec_p, rec_y_f = aggregate_records(_sigmoid(oof), y, groups)
    _, raw_p, _ = aggregate_records(_sigmoid(z), y, groups)
    _, held_rec, _ = aggregate_records(held_pred.astype(np.float64), y, groups)
    held_rec_pred = held_rec > 0.5  # one window per record in a fold: all its windows share the prediction
    rec_y = rec_y_f > 0.5
    thresholds = choose_thresholds(rec_p, rec_y, min_positives=min_positive_records, classes=classes)
    pred = thresholds.predict(rec_p)
    sens, spec, f1 = _binary_metrics(rec_y, pred)
    h_sens, h_spec, h_f1 = _binary_metrics(rec_y, held_rec_pred)
    ll_raw, ll_cal = _log_loss(rec_y, raw_p), _log_loss(rec_y, rec_p)
    n_rec = len(ids)
    rng = np.random.default_rng([seed, 31])
    idx = rng.integers(0, n_rec, (bootstrap, n_rec)) if bootstrap > 0 else np.zeros((0, n_rec), dtype=np.int64)
    b_sens, b_spec, b_f1 = _binary_metrics(rec_y[idx], pred[idx])  # (B, C)
    chosen = ~thresholds.flagged
    enough = rec_y.sum(axis=0) >= min_positive_records  # uninformative classes too, at 0.5
    per_class: dict[str, dict[str, Any]] = {}
    for j, c in enumerate(classes):
        positives = int(rec_y[:, j].sum())
        entry: dict[str, Any] = {
            "positive_records": positives,
            "negative_records": n_rec - positives,
            "threshold": round(float(thresholds.values[j]), 6),
            "flagged": bool(thresholds.flagged[j]),
            "flag_reason": thresholds.reasons[j],
            "calibrated": int(sum(bool(fc.fitted[j]) for fc in fold_cals)),
        }
        if 0 < positives < n_rec:
            auc = auroc(rec_y[:, j], rec_p[:, j])
            b_auc = np.array([auroc(rec_y[i, j], rec_p[i, j]) for i in idx])
            entry.update(
                sensitivity=_round(sens[j]), sensitivity_ci95=_ci(b_sens[:, j]),
                specificity=_round(spec[j]), specificity_ci95=_ci(b_spec[:, j]),
                f1=_round(f1[j]), f1_ci95=_ci(b_f1[:, j]),
                auroc=_round(auc), auroc_ci95=_ci(b_auc),
                log_loss_uncalibrated=_round(ll_raw[j]), log_loss_calibrated=_round(ll_cal[j]),
                held_out={"sensitivity": _round(h_sens[j]), "specificity": _round(h_spec[j]), "f1": _round(h_f1[j])},
            )
        per_class[c] = entry
    with warnings.catch_warnings():  # a resample may hold no positive of any thresholded class
        warnings.simplefilter("ignore", RuntimeWarning)
        macro_boot = np.nanmean(np.where(chosen, b_f1, np.nan), axis=1) if chosen.any() and bootstrap else np.zeros(0)
    summary: dict[str, Any] = {
        "method": _NOTE,
        "k": k,
        "seed": seed,
        "records": n_rec,
        "windows": int(z.shape[0]),
        "fold_records": [len(set(groups[f].tolist())) for f in folds],
        "record_score": "mean of the record's window probabilities",
        "bootstrap": {"resamples": bootstrap, "unit": "record", "interval": "95% percentile"},
        "min_positive_records": min_positive_records,
        "shrinkage": shrinkage,
        "classes_thresholded": [c for j, c in enumerate(classes) if chosen[j]],
        "macro_f1": _round(float(np.nanmean(f1[chosen]))) if chosen.any() else None,
        "macro_f1_ci95": _ci(macro_boot),
        "macro_f1_held_out": _round(float(np.nanmean(h_f1[chosen]))) if chosen.any() else None,
        "macro_f1_enough_positives": _round(float(np.nanmean(f1[enough]))) if enough.any() else None,
    }
    final = fit_calibration(z, y, groups, shrinkage=shrinkage, min_positive_records=min_positive_records,
                            classes=classes, basis=basis)
    return CvReport(k, seed, final, thresholds, ids, rec_p, rec_y.astype(np.float32), oof, tuple(fold_cals),
                    per_class, summary)
