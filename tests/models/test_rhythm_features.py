"""The classifier's measured rhythm features: right on synthetic ECG whose truth is known, and on real records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.synthesis import random_patient, synthesize
from models.features import FEATURE_NAMES, N_FEATURES, feature_matrix, measure
from models.preprocessing import MODEL_FS, prepare_record, prepare_window
from models.reconstruction import INPUT_INDEX

TUNE = Path(__file__).resolve().parents[3] / "shared" / "tune" / "cinc2021"


def _window(rhythm: str, seed: int, **params: float) -> np.ndarray:
    s = synthesize(rhythm, seconds=12.0, fs=250.0, seed=seed, patient=random_patient(seed), params=params or None)
    return prepare_window(s.signals, 250.0)


@settings(max_examples=15, deadline=None)
@given(rate=st.floats(45.0, 180.0), seed=st.integers(0, 10_000))
def test_heart_rate_matches_the_simulated_sinus_rate(rate: float, seed: int) -> None:
    f = measure(_window("sinus", seed, heart_rate=rate)[list(INPUT_INDEX)], MODEL_FS)
    assert f.heart_rate_bpm == pytest.approx(rate, rel=0.08)
    assert f.beats >= int(rate / 6) - 2


def test_af_is_more_irregular_than_sinus_and_ventricular_beats_are_wide() -> None:
    def median(rhythm: str, attr: str) -> float:
        return float(np.nanmedian([getattr(measure(_window(rhythm, s)[list(INPUT_INDEX)], MODEL_FS), attr)
                                   for s in range(6)]))

    assert median("afib", "robust_irregularity") > 3 * median("sinus", "robust_irregularity")
    assert median("vt", "qrs_ms") > median("sinus", "qrs_ms") + 40
    assert median("lbbb", "qrs_ms") > median("sinus", "qrs_ms") + 40
    assert median("long_qt", "qtc_ms") > median("sinus", "qtc_ms") + 60
    assert median("t_inversion", "t_ii_mv") < 0 < median("sinus", "t_ii_mv")
    assert median("stemi_anterior", "st_v1_mv") > median("sinus", "st_v1_mv") + 0.1


def test_flat_window_has_no_beats_and_is_marked_invalid() -> None:
    flat = np.random.default_rng(0).normal(0, 0.005, (3, 1250))
    f = measure(flat, MODEL_FS)
    assert f.beats == 0 and np.isnan(f.heart_rate_bpm)
    v = f.vector()
    assert v.shape == (N_FEATURES,) and v[-1] == 0.0 and np.all(np.isfinite(v))
    assert f.max_rr_s == pytest.approx(10.0)


def test_feature_matrix_is_the_vector_of_each_window() -> None:
    w = np.stack([_window("sinus", 1), _window("afib", 2)])
    m = feature_matrix(w, MODEL_FS, list(INPUT_INDEX))
    assert m.shape == (2, len(FEATURE_NAMES)) and m.dtype == np.float32
    assert np.array_equal(m[1], measure(w[1][list(INPUT_INDEX)], MODEL_FS).vector())


@pytest.mark.skipif(not TUNE.is_dir(), reason="../shared/tune is not present")
def test_real_sinus_tachycardia_reads_fast_and_real_af_irregular() -> None:
    import wfdb

    def feats(name: str):  # type: ignore[no-untyped-def]
        r = wfdb.rdrecord(str(TUNE / name))
        x = prepare_record(r.p_signal, r.fs)
        x = x if x.shape[0] == 12 else x.T
        return measure(x[list(INPUT_INDEX), :1250], MODEL_FS)

    for tach in ("E07543", "JS06908", "JS11438"):       # labelled sinus tachycardia (SOURCES.md)
        assert feats(tach).heart_rate_bpm > 100
    for sinus in ("E07539", "HR07968", "JS36889"):      # normal sinus rhythm
        assert 55 < feats(sinus).heart_rate_bpm < 100 and feats(sinus).robust_irregularity < 0.1
    assert feats("A0689").robust_irregularity > 0.12    # AF
