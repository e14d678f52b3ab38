"""Lead-off mapping, signal-quality index and the streaming resampler."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from edge.stream import LEAD_ELECTRODES, StreamingResampler, leads_off, signal_quality
from firmware_sim.faults import LEAD_ELECTRODES as SIM_LEAD_ELECTRODES
from firmware_sim.synthesis import NoiseSpec, synthesize
from models.preprocessing import resample
from protocol.leads import ELECTRODES, STANDARD_LEADS

WEARABLE = [1, 6, 10]  # II, V1, V5 in STANDARD_LEADS order


def test_lead_off_maps_electrodes_to_the_right_leads() -> None:
    assert LEAD_ELECTRODES == SIM_LEAD_ELECTRODES
    assert leads_off(["LA"], ["I", "II", "III", "V1"]).tolist() == [True, False, True, True]
    assert leads_off(["V5"], ["II", "V1", "V5"]).tolist() == [False, False, True]
    assert leads_off(["RL"], STANDARD_LEADS).all()
    assert not leads_off([], STANDARD_LEADS).any()
    for e in ELECTRODES:
        assert leads_off([e], STANDARD_LEADS).tolist() == [e in SIM_LEAD_ELECTRODES[lead] for lead in STANDARD_LEADS]


@pytest.mark.parametrize("rhythm", ["sinus", "sinus_brady", "afib", "pvc"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sqi_high_for_clean_ecg(rhythm: str, seed: int) -> None:
    x = synthesize(rhythm, seconds=4, fs=250, seed=seed).signals[:, WEARABLE]
    sqi, flat, saturated = signal_quality(x, 250, full_scale_mv=32.767)
    assert (sqi >= 0.55).all() and sqi.mean() >= 0.8
    assert not flat.any() and not saturated.any()


def test_sqi_low_for_noise_flat_and_saturation() -> None:
    rng = np.random.default_rng(0)
    assert (signal_quality(rng.normal(0, 0.3, (1000, 3)), 250)[0] <= 0.25).all()
    sqi, flat, _ = signal_quality(np.zeros((500, 3)), 250)
    assert (sqi == 0).all() and flat.all()
    railed = synthesize("sinus", seconds=4, fs=250, seed=1).signals[:, WEARABLE]
    railed[:, 2] = 32.767
    sqi, _, saturated = signal_quality(railed, 250, full_scale_mv=32.767)
    assert saturated.tolist() == [False, False, True] and sqi[2] == 0
    noisy = synthesize("sinus", seconds=4, fs=250, seed=3, noise=NoiseSpec(emg_mv=1.0)).signals[:, WEARABLE]
    assert signal_quality(noisy, 250)[0].mean() < 0.5


@pytest.mark.parametrize("fs", [250, 500, 130, 125])
def test_streaming_resampler_equals_batch(fs: int) -> None:
    rng = np.random.default_rng(fs)
    x = np.cumsum(rng.normal(size=(2003, 3)), axis=0)
    r = StreamingResampler(fs, 3)
    parts, i = [], 0
    while i < len(x):
        k = int(rng.integers(1, 90))
        parts.append(r.push(x[i : i + k]))
        i += k
    parts.append(r.flush())
    y = np.concatenate(parts)
    if r.identity:
        np.testing.assert_array_equal(y, x)
        return
    np.testing.assert_allclose(y, sps.resample_poly(x, r.up, r.down, axis=0, padtype="edge"), atol=1e-9)
    edge = 10 * max(r.up, r.down) // r.down + 2
    np.testing.assert_allclose(y[edge:-edge], resample(x, fs)[edge:-edge], atol=1e-9)


def _sqi_reference(x: np.ndarray, fs: float, full_scale_mv: float | None) -> np.ndarray:
    """The SQI as first written: ``scipy.signal.welch`` and ``sosfiltfilt`` called on every window."""
    flat = np.ptp(x, axis=0) < 0.02
    saturated = np.zeros(x.shape[1], dtype=bool)
    if full_scale_mv is not None:
        saturated = np.mean(np.abs(x) >= 0.99 * full_scale_mv, axis=0) > 0.01
    high = min(45.0, 0.45 * fs)
    band = sps.sosfiltfilt(sps.butter(2, (1.0, high), btype="bandpass", fs=fs, output="sos"), x - x.mean(axis=0), axis=0)
    freqs, psd = sps.welch(x - x.mean(axis=0), fs=fs, nperseg=min(len(x), int(2 * fs)), axis=0)
    total = psd[(freqs >= 1.0) & (freqs <= high)].sum(axis=0)
    ratio = np.divide(psd[(freqs >= 1.0) & (freqs <= 15.0)].sum(axis=0), total, out=np.zeros_like(total), where=total > 0)
    var = band.var(axis=0)
    kurt = np.divide(np.mean((band - band.mean(axis=0)) ** 4, axis=0), var**2, out=np.zeros_like(var), where=var > 0)
    score = 0.5 * np.clip((ratio - 0.5) / 0.3, 0, 1) + 0.5 * np.clip((kurt - 4.0) / 4.0, 0, 1)
    return np.where(flat | saturated, 0.0, score)


@pytest.mark.parametrize(("fs", "n"), [(250.0, 500), (250.0, 1000), (250.0, 777), (130.0, 260), (500.0, 1000)])
def test_sqi_with_cached_plans_equals_the_reference(fs: float, n: int) -> None:
    syn = synthesize("sinus", seconds=n / fs, fs=fs, seed=4, noise=NoiseSpec(emg_mv=0.05))
    x = np.stack([syn.lead("II"), syn.lead("V1"), syn.lead("V5")], axis=1)[:n]
    # the Welch part is the same computation bit for bit; the band-pass matches sosfiltfilt to rounding
    np.testing.assert_allclose(signal_quality(x, fs, 32.767)[0], _sqi_reference(x, fs, 32.767), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("fs", "n"), [(250.0, 500), (250.0, 1000), (250.0, 777), (130.0, 260), (500.0, 640)])
def test_band_ratio_equals_the_ratio_of_scipy_welch(fs: float, n: int) -> None:
    from edge.stream.quality import ecg_band_ratio

    x = np.random.default_rng(int(fs) + n).normal(size=(n, 3)).cumsum(axis=0)   # red noise: ratios far from 0.5
    freqs, psd = sps.welch(x, fs=fs, nperseg=min(n, int(2 * fs)), axis=0)
    high = min(45.0, 0.45 * fs)
    expected = psd[(freqs >= 1.0) & (freqs <= 15.0)].sum(axis=0) / psd[(freqs >= 1.0) & (freqs <= high)].sum(axis=0)
    np.testing.assert_allclose(ecg_band_ratio(np.ascontiguousarray(x.T), fs), expected, rtol=1e-12)
