"""The simulator's AF stays in the ranges chosen against real records and the literature, for any patient:
RR coefficient of variation 0.06–0.3 (lower when fast) and small f-waves (V1 peak-to-peak as the realism
report measures it, 0.015–0.2 mV without recording noise)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.realism import measure_window
from firmware_sim.synthesis import synthesize
from models.preprocessing import prepare_window

SEEDS = st.integers(min_value=0, max_value=2**31 - 1)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=SEEDS)
def test_af_rr_variability_is_in_the_chosen_range_and_falls_with_rate(seed: int) -> None:
    s = synthesize("afib", seconds=90.0, fs=250.0, seed=seed)
    rr = np.diff(s.beats) / s.fs
    rate, cv = 60.0 / rr.mean(), rr.std() / rr.mean()
    # drawn CV 0.06–0.3; ~90–240 intervals estimate it within about ±20 %
    assert 0.045 <= cv <= 0.36, (rate, cv)
    if rate > 130.0:
        assert cv <= 0.25, (rate, cv)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(seed=SEEDS)
def test_af_f_waves_are_small(seed: int) -> None:
    s = synthesize("afib", seconds=10.0, fs=500.0, seed=seed, heart_rate=70.0)
    f = measure_window(prepare_window(s.signals, s.fs))
    # dipole amplitude 0.015–0.06 mV: in V1 mostly 0.03–0.12 mV peak to peak (median 0.06, as the real AF
    # records' 0.069 with their noise), never the coarse > 0.2 mV; no P wave left in the median beat
    assert 0.015 <= f["f_mv_V1"] <= 0.2, f["f_mv_V1"]
    assert f["f_mv_II"] <= 0.15, f["f_mv_II"]
    assert f["p_mv_II"] <= 0.1, f["p_mv_II"]
