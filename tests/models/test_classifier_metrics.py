"""AUROC/AUPRC and the multi-label report: absent classes are reported absent, never as zero."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.classifier.metrics import auprc, auroc, format_report, multilabel_report
from models.data.labels import CLASSES


def _pairwise_auroc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y], s[~y]
    return float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=40))
def test_auroc_is_the_probability_a_positive_outranks_a_negative(rows: list[tuple[bool, int]]) -> None:
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows], dtype=float)
    if y.all() or not y.any():
        assert np.isnan(auroc(y, s))
    else:
        assert auroc(y, s) == pytest.approx(_pairwise_auroc(y, s))


def test_auprc_of_a_perfect_ranking_is_one_and_of_a_reversed_one_is_low() -> None:
    y = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    s = np.array([0.9, 0.8, 0.3, 0.2, 0.1, 0.0])
    assert auprc(y, s) == pytest.approx(1.0)
    assert auprc(y, -s) < 0.4
    assert np.isnan(auprc(np.zeros(4, bool), np.arange(4.0)))


def test_absent_classes_are_reported_absent_and_left_out_of_the_macro() -> None:
    rng = np.random.default_rng(0)
    n = 60
    y = np.zeros((n, len(CLASSES)), dtype=np.float32)
    y[: n // 2, 0] = 1                           # NSR: half
    y[::4, 3] = 1                                # AF: a quarter
    y[:, 5] = 1                                  # SVT: every record
    prob = rng.random((n, len(CLASSES)))
    prob[:, 0] = y[:, 0] * 0.5 + prob[:, 0] * 0.1  # NSR perfectly ranked
    rep = multilabel_report(y, prob, bootstrap=50)
    pc = rep["per_class"]
    assert pc["NSR"]["auroc"] == 1.0 and pc["NSR"]["positives"] == n // 2
    assert pc["VT"] == {"status": "absent", "positives": 0}
    assert pc["SVT"]["status"] == "all_positive" and "auroc" not in pc["SVT"]
    assert rep["classes_scored"] == ["NSR", "AF"]
    assert "VT" in rep["classes_absent"] and "SVT" not in rep["classes_absent"]
    assert rep["macro_auroc"] == pytest.approx((1.0 + pc["AF"]["auroc"]) / 2, abs=1e-4)
    lo, hi = rep["macro_auroc_ci95"]
    assert lo <= rep["macro_auroc"] <= hi
    table = format_report({"x": rep})
    assert "absent" in table and "NSR" in table


def test_report_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="must both be"):
        multilabel_report(np.zeros((4, len(CLASSES))), np.zeros((4, 3)))
