"""Streaming filters: packet by packet equals one sosfilt over the whole signal; each stage does its job."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal as sps

from edge.signal.filters import EcgFilter, FilterSpec, SosStream, ZeroPhase, sosfilt_axis0


def _stream(filt: SosStream, x: np.ndarray, cuts: list[int]) -> np.ndarray:
    bounds = [0, *sorted(set(c % (x.shape[0] + 1) for c in cuts)), x.shape[0]]
    return np.concatenate([filt.process(x[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(0, 2000), max_size=30), n_leads=st.integers(1, 3),
       fs=st.sampled_from([100.0, 250.0, 500.0, 1000.0]), lowpass=st.booleans(), initial=st.sampled_from(["steady", "zero"]))
def test_streaming_equals_batch_sosfilt(cuts: list[int], n_leads: int, fs: float, lowpass: bool, initial: str) -> None:
    x = np.random.default_rng(n_leads).normal(size=(2000, n_leads)) + 3.0
    spec = FilterSpec(notch_hz=None if fs <= 120 else 60.0, lowpass_hz=40.0 if lowpass else None)
    filt = EcgFilter(fs, n_leads, spec, initial=initial)
    zi = filt.initial_state(x[0])
    expected = sps.sosfilt(spec.sos(fs), x, axis=0, zi=zi)[0]
    np.testing.assert_array_equal(_stream(filt, x, cuts), expected)


def _sine(f_hz: float, fs: float, seconds: float, amp: float = 1.0) -> np.ndarray:
    return amp * np.sin(2 * np.pi * f_hz * np.arange(int(seconds * fs)) / fs)


@pytest.mark.parametrize("mains", [50.0, 60.0])
@pytest.mark.parametrize("fs", [250.0, 500.0])
def test_notch_removes_mains_and_keeps_the_qrs_band(mains: float, fs: float) -> None:
    filt = EcgFilter(fs, 1, FilterSpec(baseline_hz=None, notch_hz=mains))
    hum = filt.process(_sine(mains, fs, 4.0))[int(2 * fs):]
    assert np.abs(hum).max() < 0.02
    qrs_band = EcgFilter(fs, 1, FilterSpec(baseline_hz=None, notch_hz=mains)).process(_sine(10.0, fs, 4.0))
    assert np.abs(qrs_band[int(2 * fs):]).max() > 0.95


def test_high_pass_removes_baseline_wander_and_offset() -> None:
    fs = 250.0
    x = 2.0 + _sine(0.1, fs, 20.0, amp=1.0) + _sine(10.0, fs, 20.0, amp=0.5)
    y = EcgFilter(fs, 1, FilterSpec(notch_hz=None)).process(x)[int(5 * fs):]
    residual = y - _sine(10.0, fs, 20.0, amp=0.5)[int(5 * fs):]
    assert np.abs(residual).max() < 0.1          # 1 mV wander at 0.1 Hz and a 2 mV offset
    assert abs(np.abs(y).max() - 0.5) < 0.05     # the 10 Hz content is kept (plus the 0.04 mV residual)


def test_steady_start_has_no_offset_step() -> None:
    y = EcgFilter(250.0, 2, FilterSpec(notch_hz=None)).process(np.full((100, 2), 5.0))
    assert np.abs(y).max() < 1e-9


def test_multi_lead_packets_filter_each_lead_alike() -> None:
    x = np.random.default_rng(0).normal(size=(500, 3))
    y = EcgFilter(500.0, 3).process(x)
    one = EcgFilter(500.0, 1).process(x[:, 1])
    np.testing.assert_array_equal(y[:, 1], one)


def test_bad_configuration_and_shapes_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="notch_hz"):
        EcgFilter(100.0, 1, FilterSpec(notch_hz=50.0))
    with pytest.raises(ValueError, match="sampling rate"):
        EcgFilter(0.0, 1)
    with pytest.raises(ValueError, match="shape"):
        EcgFilter(250.0, 3).process(np.zeros((10, 2)))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(16, 600), channels=st.integers(0, 3), seed=st.integers(0, 2**16),
       band=st.sampled_from([("lowpass", 25.0), ("bandpass", (0.5, 40.0)), ("highpass", 0.67)]))
def test_zero_phase_equals_sosfiltfilt(n: int, channels: int, seed: int, band: tuple[str, object]) -> None:
    sos = sps.butter(2, band[1], btype=band[0], fs=250.0, output="sos")
    zero = ZeroPhase(sos)
    shape = (n,) if channels == 0 else (n, channels)
    x = np.random.default_rng(seed).normal(size=shape)
    np.testing.assert_allclose(zero(x), sps.sosfiltfilt(sos, x, axis=0), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="samples"):
        zero(x[: zero.padlen])


@pytest.mark.parametrize("shape", [(500,), (500, 3), (37, 1), (1, 2), (60, 2, 3)])
def test_sosfilt_axis0_is_scipy_sosfilt_bit_for_bit_and_leaves_zi_alone(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape))
    sos = FilterSpec(lowpass_hz=40.0).sos(250.0)
    x = rng.normal(size=shape)
    zi = rng.normal(size=(sos.shape[0], 2, *shape[1:]))
    before = zi.copy()
    y, zf = sosfilt_axis0(sos, x, zi)
    y_ref, zf_ref = sps.sosfilt(sos, x, axis=0, zi=zi)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(zf, zf_ref)
    np.testing.assert_array_equal(zi, before)

