"""The shared model preprocessing and the synthetic training windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.data.synthetic import SyntheticSpec, generate, load_or_generate
from models.preprocessing import MODEL_FS, WINDOW_SAMPLES, prepare_record, prepare_window, split_windows


@given(st.sampled_from([100.0, 128.0, 250.0, 257.0, 360.0, 500.0, 1000.0]), st.floats(1.0, 20.0))
@settings(max_examples=25, deadline=None)
def test_any_rate_comes_out_at_the_model_rate_with_in_band_content_kept(fs: float, f_hz: float) -> None:
    t = np.arange(int(12 * fs)) / fs
    x = np.sin(2 * np.pi * f_hz * t)[:, None] * np.array([1.0, -0.5])
    out = prepare_record(x, fs)
    assert out.shape[0] == 2 and abs(out.shape[1] - 12 * MODEL_FS) <= 1 and out.dtype == np.float32
    middle = out[:, 125:-125]
    assert np.allclose(np.ptp(middle, axis=1) / 2, [1.0, 0.5], rtol=0.08)


def test_baseline_wander_and_powerline_are_removed() -> None:
    fs = 500.0
    t = np.arange(int(12 * fs)) / fs
    x = (2.0 * np.sin(2 * np.pi * 0.1 * t) + 0.3 * np.sin(2 * np.pi * 50 * t))[:, None]
    out = prepare_window(x, fs)
    assert out.shape == (1, WINDOW_SAMPLES)
    assert np.max(np.abs(out)) < 0.1


def test_windows_are_cut_at_the_hop() -> None:
    prepared = np.arange(3 * 4000, dtype=np.float32).reshape(3, 4000)
    windows = split_windows(prepared, hop_s=5.0)
    assert windows.shape == (5, 3, WINDOW_SAMPLES)
    np.testing.assert_array_equal(windows[1, :, 0], prepared[:, 625])


def test_short_or_gappy_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="needs 10 s"):
        prepare_window(np.zeros((2000, 3)), 250.0)
    with pytest.raises(ValueError, match="NaN"):
        prepare_record(np.full((3000, 3), np.nan), 250.0)


def test_synthetic_sets_are_deterministic_whatever_the_workers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = SyntheticSpec(70, seed=4)
    one = generate(spec, workers=1)
    two = generate(spec, workers=2)
    np.testing.assert_array_equal(one.signals, two.signals)
    assert one.rhythms == two.rhythms and len(set(one.rhythms)) > 8
    assert one.signals.shape == (70, 12, WINDOW_SAMPLES)
    i, ii, iii = one.signals[:, 0], one.signals[:, 1], one.signals[:, 2]
    assert np.max(np.abs(iii - (ii - i))) < 1e-4  # preprocessing is linear: Einthoven survives it
    cached = load_or_generate(spec, tmp_path)
    again = load_or_generate(spec, tmp_path)
    np.testing.assert_array_equal(cached.signals, again.signals)
    assert len(list(tmp_path.glob("synthetic-*.npz"))) == 1
    assert not np.array_equal(generate(SyntheticSpec(70, seed=5), workers=1).signals, one.signals)
