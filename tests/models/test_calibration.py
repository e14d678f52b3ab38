"""Per-class calibration, F1 thresholds and record-level cross-validation (models.classifier.calibration)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.classifier.calibration import (
    MIN_SLOPE,
    TOO_FEW,
    UNINFORMATIVE,
    Calibration,
    aggregate_records,
    choose_thresholds,
    cross_validate,
    fit_calibration,
    record_folds,
)
from models.classifier.metrics import auroc
from models.data.labels import CLASSES

THREE = ("a", "b", "c")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _synthetic(n: int, a: np.ndarray, b: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, (n, a.size))
    y = (rng.random((n, a.size)) < _sigmoid(a * z + b)).astype(np.float32)
    return z, y


def test_calibration_recovers_a_known_affine() -> None:
    a, b = np.array([0.4, 1.0, 2.0]), np.array([-1.5, 0.0, 0.8])
    z, y = _synthetic(8000, a, b, seed=1)
    cal = fit_calibration(z, y, [f"r{i}" for i in range(len(z))], classes=THREE)
    assert cal.fitted.all()
    np.testing.assert_allclose(cal.a, a, atol=0.1)
    np.testing.assert_allclose(cal.b, b, atol=0.12)


def test_each_record_weighs_one_whatever_its_windows() -> None:
    z, y = _synthetic(300, np.array([0.5, 1.5, 1.0]), np.array([0.5, -1.0, 0.0]), seed=2)
    once = fit_calibration(z, y, [f"r{i}" for i in range(300)], classes=THREE)
    reps = np.arange(300).repeat(np.arange(300) % 4 + 1)  # record i has 1–4 identical windows
    many = fit_calibration(z[reps], y[reps], [f"r{i}" for i in reps], classes=THREE)
    np.testing.assert_allclose(many.a, once.a, atol=1e-6)
    np.testing.assert_allclose(many.b, once.b, atol=1e-6)


def test_classes_with_few_positive_records_keep_identity() -> None:
    rng = np.random.default_rng(3)
    n = 60
    z = rng.normal(0, 1, (n, 3))
    y = np.zeros((n, 3))
    y[:4, 0] = 1          # 2 records × 2 windows: only 2 positive records
    y[:, 1] = rng.random(n) < 0.4
    y[:5, 2] = 1          # 5 positive records
    ids = [f"r{i // 2}" if i < 4 else f"r{i}" for i in range(n)]
    cal = fit_calibration(z, y, ids, classes=THREE)
    assert not cal.fitted[0] and cal.a[0] == 1.0 and cal.b[0] == 0.0
    assert cal.fitted[1] and cal.fitted[2]


def test_shrinkage_keeps_a_thin_class_near_identity() -> None:
    rng = np.random.default_rng(4)
    z = rng.normal(0, 1, (40, 3)) + 4.0            # badly biased logits
    y = np.zeros((40, 3))
    y[:3] = 1                                      # three positive records
    ids = [f"r{i}" for i in range(40)]
    loose = fit_calibration(z, y, ids, shrinkage=0.01, classes=THREE)
    tight = fit_calibration(z, y, ids, shrinkage=100.0, classes=THREE)
    rigid = fit_calibration(z, y, ids, shrinkage=1e6, classes=THREE)
    dist = lambda c: np.abs(c.a - 1) + np.abs(c.b)  # noqa: E731
    assert (dist(rigid) < dist(tight)).all() and (dist(tight) < dist(loose)).all() and (dist(rigid) < 0.01).all()


def test_calibration_never_reverses_the_ranking() -> None:
    z, y = _synthetic(2000, np.array([-1.0, 1.0, 0.5]), np.array([0.0, 0.0, 0.0]), seed=5)
    cal = fit_calibration(z, y, [f"r{i}" for i in range(2000)], classes=THREE)
    assert cal.a[0] == pytest.approx(MIN_SLOPE) and cal.a[1] > 0.8


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 12).map(lambda v: v / 12), st.booleans()), min_size=3, max_size=40),
)
def test_thresholds_maximise_f1_with_ties_toward_specificity(data: list[tuple[float, bool]]) -> None:
    p = np.array([d[0] for d in data])[:, None]
    y = np.array([d[1] for d in data])[:, None]
    if y.sum() == 0:
        y[0] = True
    thr = choose_thresholds(p, y, min_positives=1, classes=("x",))

    def f1_fp(t: float) -> tuple[float, int]:
        pred = p[:, 0] >= t
        tp, fp, fn = int((pred & y[:, 0]).sum()), int((pred & ~y[:, 0]).sum()), int((~pred & y[:, 0]).sum())
        return (2 * tp / (2 * tp + fp + fn) if tp else 0.0), fp

    levels = np.unique(p)
    candidates = [f1_fp(t) for t in [*levels, 2.0]]
    best = max(f for f, _ in candidates)
    if thr.flagged[0]:  # uninformative scores: no threshold is shipped
        assert thr.reasons[0] == UNINFORMATIVE and thr.values[0] == 0.5
        only_all = all(f < best - 1e-12 for f, _ in candidates[1:])
        rare = y[:, 0].mean() < 0.25
        over_calls = rare and any((p[:, 0] >= t).mean() > 0.5 for t in levels)
        assert not y.all() and (only_all or auroc(y[:, 0], p[:, 0]) <= 0.6 or over_calls)
        return
    assert auroc(y[:, 0], p[:, 0]) > 0.6 or y.all()
    fewest_fp = min(fp for f, fp in candidates if f >= best - 1e-12)
    got_f1, got_fp = f1_fp(float(thr.values[0]))
    assert got_f1 == pytest.approx(best) and got_fp == fewest_fp
    assert thr.f1[0] == pytest.approx(best)


def test_classes_with_too_few_positives_get_half_and_a_flag() -> None:
    p = np.linspace(0, 1, 20)[:, None].repeat(3, axis=1)
    y = np.zeros((20, 3), dtype=bool)
    y[-2:, 0] = True
    y[-6:, 1] = True
    y[:4, 2] = True
    thr = choose_thresholds(p, y, classes=THREE)
    assert thr.flagged.tolist() == [True, False, True]
    assert thr.values[0] == 0.5 and thr.values[2] == 0.5
    assert 0.68 < thr.values[1] < 0.74 and thr.f1[1] == 1.0   # between the 6th and 7th highest score
    assert thr.reasons == (TOO_FEW, "", UNINFORMATIVE)  # c's positives score lowest: worse than chance
    assert thr.as_mapping() == {"a": 0.5, "b": float(thr.values[1]), "c": 0.5}


@settings(max_examples=40, deadline=None)
@given(windows=st.lists(st.integers(1, 4), min_size=5, max_size=30), k=st.integers(2, 5), seed=st.integers(0, 99))
def test_folds_never_split_a_record_and_cover_every_window_once(windows: list[int], k: int, seed: int) -> None:
    k = min(k, len(windows))
    ids = np.repeat([f"rec{i}" for i in range(len(windows))], windows)
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.random((len(windows), 4)) < 0.3, windows, axis=0)
    folds = record_folds(ids, k, seed, targets=y)
    assert len(folds) == k
    everything = np.sort(np.concatenate(folds))
    np.testing.assert_array_equal(everything, np.arange(len(ids)))
    owner = {}
    for f, idx in enumerate(folds):
        for r in set(ids[idx].tolist()):
            assert owner.setdefault(r, f) == f
    assert all(len(f) for f in folds)


def test_folds_spread_a_rare_class_over_folds() -> None:
    ids = [f"r{i}" for i in range(50)]
    y = np.zeros((50, 2), dtype=bool)
    y[[3, 17, 29, 41, 44], 0] = True
    folds = record_folds(ids, 5, seed=7, targets=y)
    assert [int(y[f, 0].sum()) for f in folds] == [1, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="between 2"):
        record_folds(ids, 51, seed=0)


def test_fold_into_gives_the_same_probabilities_as_apply() -> None:
    rng = np.random.default_rng(8)
    c, h = len(CLASSES), 32
    cal = Calibration(rng.uniform(0.2, 2.0, c), rng.normal(0, 1, c), np.ones(c, dtype=bool))
    weight, bias = rng.normal(0, 0.3, (c, h)).astype(np.float32), rng.normal(0, 1, c).astype(np.float32)
    features = rng.normal(0, 1, (64, h)).astype(np.float32)
    w2, b2 = cal.fold_into(weight, bias)
    assert w2.dtype == np.float32 and b2.dtype == np.float32
    np.testing.assert_allclose(_sigmoid(features @ w2.T + b2), cal.probabilities(features @ weight.T + bias),
                               atol=1e-5)
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(again.a, cal.a)
    np.testing.assert_array_equal(again.b, cal.b)


def test_aggregate_records_averages_windows_in_first_seen_order() -> None:
    ids, p, y = aggregate_records(np.array([[0.2], [0.9], [0.4], [0.1]]), np.array([[0], [1], [0], [1]]),
                                  ["b", "a", "b", "a"])
    assert ids == ("b", "a")
    np.testing.assert_allclose(p[:, 0], [0.3, 0.5])
    np.testing.assert_array_equal(y[:, 0], [0, 1])


def test_cross_validation_is_out_of_fold_and_reports_by_record() -> None:
    rng = np.random.default_rng(9)
    n_rec, c = 53, len(CLASSES)
    windows = rng.integers(1, 3, n_rec)
    rec_y = rng.random((n_rec, c)) < 0.2
    rec_y[:2, 5] = True
    rec_y[2:, 5] = False                                     # a class with two positive records
    y = np.repeat(rec_y, windows, axis=0).astype(np.float32)
    ids = np.repeat([f"R{i:02d}" for i in range(n_rec)], windows)
    z = rng.normal(0, 1, y.shape) + 2.5 * y - 1.0            # informative logits, biased
    report = cross_validate(z, y, ids, k=5, seed=1, bootstrap=200)
    folds = record_folds(ids, 5, 1, targets=y)
    for fold, cal in zip(folds, report.fold_calibrations, strict=True):
        train = np.setdiff1d(np.arange(len(ids)), fold)
        expected = fit_calibration(z[train], y[train], ids[train])
        np.testing.assert_allclose(cal.a, expected.a)
        np.testing.assert_allclose(report.oof_logits[fold], expected.apply(z[fold]))
    final = fit_calibration(z, y, ids)
    np.testing.assert_allclose(report.calibration.a, final.a)
    out = json.loads(json.dumps(report.to_dict()))
    assert "record-level k-fold cross-validation on a small set" in out["method"]
    assert out["records"] == n_rec and out["windows"] == len(ids) and sum(out["fold_records"]) == n_rec
    svt = out["per_class"][CLASSES[5]]
    assert svt["flagged"] and svt["threshold"] == 0.5 and svt["positive_records"] == 2
    scored = [c for c in CLASSES if not out["per_class"][c]["flagged"]]
    assert scored == out["classes_thresholded"] and len(scored) >= 10
    for name in scored:
        entry = out["per_class"][name]
        assert entry["auroc"] > 0.8 and entry["f1_ci95"][0] <= entry["f1"] <= entry["f1_ci95"][1]
        assert entry["log_loss_calibrated"] < entry["log_loss_uncalibrated"]
    assert 0.5 < out["macro_f1"] <= 1 and out["macro_f1_held_out"] <= out["macro_f1"] + 0.1
    assert out["macro_f1_enough_positives"] <= out["macro_f1"]


def test_rhythm_terms_learn_what_the_logits_miss_and_the_graph_adds_the_same() -> None:
    """A class the network cannot see (logits carry nothing) but the measured rate tells: the fused
    calibration learns it from the rate term, and the model's head adds exactly those terms."""
    import torch

    from models.classifier.calibration import fit_calibration
    from models.classifier.heads import RHYTHM_BASIS, FusionHead, rhythm_basis
    from models.data.labels import CLASS_INDEX
    from models.features import N_FEATURES

    rng = np.random.default_rng(3)
    n = 80
    features = np.zeros((n, N_FEATURES), dtype=np.float32)
    rate = rng.uniform(50, 140, n)
    features[:, 0], features[:, -1] = rate / 100.0, 1.0
    basis = rhythm_basis(features)
    y = np.zeros((n, len(CLASSES)))
    st = CLASS_INDEX["STACH"]
    y[:, st] = rate > 100
    y[:, CLASS_INDEX["NSR"]] = (rate >= 60) & (rate <= 100)
    logits = rng.normal(0, 0.1, (n, len(CLASSES)))
    cal = fit_calibration(logits, y, [f"r{i}" for i in range(n)], basis=basis)
    assert cal.w is not None and cal.w.shape == (len(CLASSES), len(RHYTHM_BASIS))
    assert cal.w[st, RHYTHM_BASIS.index("tachycardia")] > 1.0
    p = cal.probabilities(logits, basis)[:, st]
    assert p[rate > 115].min() > 0.5 > p[rate < 95].max()
    assert "rhythm" in cal.to_dict()["classes"]["STACH"]

    head = FusionHead(4, len(CLASSES), N_FEATURES, hidden=4).eval()
    pooled, f = torch.randn(n, 4), torch.from_numpy(features)
    before = head(pooled, f).detach().numpy()
    head.add_rhythm_terms(cal.w)
    after = head(pooled, f).detach().numpy()
    np.testing.assert_allclose(after - before, basis @ cal.w.T, atol=1e-4)
