"""HRV features of the stress model, measured on signals whose heart rate and variability are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.stress.hrv import MISSING, N_FEATURES, hrv_features, hrv_from_peaks, hrv_matrix

FS = 125.0


def _pulse_train(beat_times_s: np.ndarray, seconds: float, amplitudes: np.ndarray | None = None) -> np.ndarray:
    """A lead of narrow R waves (10 ms Gaussians, 1 mV unless given) at the given times."""
    t = np.arange(int(seconds * FS)) / FS
    x = np.zeros_like(t)
    amps = np.ones(len(beat_times_s)) if amplitudes is None else amplitudes
    for b, a in zip(beat_times_s, amps, strict=True):
        x += a * np.exp(-0.5 * ((t - b) / 0.012) ** 2)
    return x


def _beats(rr_of_t: object, seconds: float) -> np.ndarray:
    times, t = [], 0.3
    while t < seconds - 0.3:
        times.append(t)
        t += rr_of_t(t)  # type: ignore[operator]
    return np.array(times)


def test_hr_rmssd_sdnn_and_pnn50_match_the_known_rr_series() -> None:
    beats = _beats(lambda t: 0.8 + 0.06 * np.sin(2 * np.pi * 0.25 * t), 60.0)
    f = hrv_features(_pulse_train(beats, 60.0), FS)
    rr = np.diff(beats)
    assert f.hr_bpm == pytest.approx(60.0 / rr.mean(), abs=1.0)
    assert f.rmssd_ms == pytest.approx(1000 * np.sqrt(np.mean(np.diff(rr) ** 2)), rel=0.15)
    assert f.sdnn_ms == pytest.approx(1000 * np.std(rr, ddof=1), rel=0.15)
    assert f.pnn50 == pytest.approx(np.mean(np.abs(np.diff(rr)) > 0.05), abs=0.1)


def test_breathing_rate_and_lf_hf_follow_the_modulation() -> None:
    # respiratory sinus arrhythmia and R-amplitude modulation at 0.3 Hz (18 breaths/min), nothing at LF
    beats = _beats(lambda t: 0.75 + 0.04 * np.sin(2 * np.pi * 0.3 * t), 60.0)
    amps = 1.0 + 0.1 * np.sin(2 * np.pi * 0.3 * beats)
    fast = hrv_features(_pulse_train(beats, 60.0, amps), FS)
    assert fast.resp_rate_bpm == pytest.approx(18.0, abs=2.0)
    assert fast.lf_hf < 1.0
    # the same at a 0.1 Hz (Mayer wave) modulation: LF dominates
    slow = hrv_features(_pulse_train(_beats(lambda t: 0.75 + 0.04 * np.sin(2 * np.pi * 0.1 * t), 60.0), 60.0), FS)
    assert slow.lf_hf > 1.0


def test_a_faster_steadier_heart_reads_as_higher_rate_and_lower_variability() -> None:
    calm = hrv_features(_pulse_train(_beats(lambda t: 0.9 + 0.05 * np.sin(2 * np.pi * 0.25 * t), 10.0), 10.0), FS)
    tense = hrv_features(_pulse_train(_beats(lambda t: 0.65 + 0.01 * np.sin(2 * np.pi * 0.35 * t), 10.0), 10.0), FS)
    assert tense.hr_bpm > calm.hr_bpm + 20
    assert tense.rmssd_ms < calm.rmssd_ms / 2 and tense.sdnn_ms < calm.sdnn_ms / 2


def test_a_flat_window_has_no_features_and_a_valid_zero_vector() -> None:
    f = hrv_features(np.zeros(1250), FS)
    assert f == MISSING or all(math.isnan(v) for v in f.as_dict().values() if v is not None)
    assert all(v is None for v in f.as_dict().values())
    v = f.vector()
    assert v.shape == (N_FEATURES,) and np.all(v == 0)
    assert hrv_matrix(np.zeros((0, 1250)), FS).shape == (0, N_FEATURES)


def test_an_ectopic_interval_does_not_count_as_variability() -> None:
    peaks = np.arange(0, 12) * 100.0          # 0.8 s at 125 Hz
    peaks[6] -= 40                            # one premature beat
    f = hrv_from_peaks(peaks, FS)
    assert f.rmssd_ms == pytest.approx(0.0, abs=1e-6)
    assert f.hr_bpm == pytest.approx(75.0, abs=0.5)


def test_nan_input_is_refused() -> None:
    x = np.zeros(1250)
    x[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        hrv_features(x, FS)
