"""The one preprocessing every model input goes through, in training and in service.

A model window is 10 s of ECG at 125 Hz (1250 samples per lead), band-passed
0.5–40 Hz, in mV (no per-window normalisation: amplitude is information the
reconstruction and the classifier both need). Training data, evaluation on
real records and the edge gateway all call :func:`prepare_window` or
:func:`prepare_record`, so what a model saw in training is what it sees in
service. numpy/scipy only: the edge runs this without torch.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
from scipy import signal as sps

PREPROCESSING_VERSION = 2
"""Bumped whenever the output of this module changes (invalidates cached data sets)."""
MODEL_FS = 125.0
"""Model sampling rate (Hz): ECG content of interest is below 40 Hz."""
WINDOW_S = 10.0
WINDOW_SAMPLES = int(MODEL_FS * WINDOW_S)
BAND_HZ = (0.5, 40.0)
"""Pass band: removes baseline wander below and EMG/powerline above."""
_FILTER_ORDER = 2
PAD_S = 2.0


def resample(signals: np.ndarray, fs: float, target_fs: float = MODEL_FS) -> np.ndarray:
    """Polyphase resampling along axis 0 (``(n, leads)`` or ``(n,)``), anti-aliased."""
    signals = np.asarray(signals, dtype=np.float64)
    if fs <= 0 or target_fs <= 0:
        raise ValueError(f"sampling rates must be positive, got {fs} -> {target_fs}")
    if abs(fs - target_fs) < 1e-9:
        return signals
    ratio = Fraction(target_fs / fs).limit_denominator(1000)
    return sps.resample_poly(signals, ratio.numerator, ratio.denominator, axis=0, padtype="line")


@functools.lru_cache(maxsize=32)
def _band_sos(fs: float, low: float, high: float) -> np.ndarray:
    """The band-pass design, once per rate (designing costs more than filtering one window)."""
    return sps.butter(_FILTER_ORDER, (low, high), btype="bandpass", fs=fs, output="sos")


def bandpass(signals: np.ndarray, fs: float, band: tuple[float, float] = BAND_HZ) -> np.ndarray:
    """Zero-phase Butterworth band-pass along axis 0."""
    high = min(band[1], 0.45 * fs)
    sos = _band_sos(float(fs), float(band[0]), float(high))
    signals = np.asarray(signals, dtype=np.float64)
    # Odd extension over up to 2 s lets the 0.5 Hz high-pass settle before the data starts.
    padlen = min(signals.shape[0] - 1, int(PAD_S * fs))
    return sps.sosfiltfilt(sos, signals, axis=0, padtype="odd", padlen=padlen)


def prepare_record(signals: np.ndarray, fs: float) -> np.ndarray:
    """A whole record ``(n, leads)`` in mV at ``fs`` → ``(leads, m)`` float32 at :data:`MODEL_FS`, filtered.

    NaN samples must be filled first (see ``firmware_sim.records.fill_gaps``).
    """
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim != 2:
        raise ValueError(f"signals must have shape (n, leads), got {signals.shape}")
    if np.isnan(signals).any():
        raise ValueError("signals contain NaN; fill gaps before preprocessing")
    if signals.shape[0] < int(fs):
        raise ValueError(f"need at least 1 s of signal, got {signals.shape[0]} samples at {fs} Hz")
    out = bandpass(resample(signals, fs), MODEL_FS)
    return np.ascontiguousarray(out.T, dtype=np.float32)


def prepare_window(signals: np.ndarray, fs: float) -> np.ndarray:
    """One window ``(n, leads)`` at ``fs`` → ``(leads, WINDOW_SAMPLES)`` float32.

    Longer input keeps its centre 10 s (extra signal on both sides absorbs the
    filter's edge effects); shorter input is refused.
    """
    out = prepare_record(signals, fs)
    extra = out.shape[1] - WINDOW_SAMPLES
    if extra < 0:
        raise ValueError(f"a window needs {WINDOW_S:g} s of signal, got {out.shape[1] / MODEL_FS:.2f} s")
    start = extra // 2
    return np.ascontiguousarray(out[:, start : start + WINDOW_SAMPLES])


def split_windows(prepared: np.ndarray, hop_s: float = WINDOW_S) -> np.ndarray:
    """Cut a prepared record ``(leads, m)`` into windows ``(k, leads, WINDOW_SAMPLES)`` every ``hop_s``."""
    hop = int(round(hop_s * MODEL_FS))
    if hop <= 0:
        raise ValueError("hop must be positive")
    starts = np.arange(0, prepared.shape[1] - WINDOW_SAMPLES + 1, hop)
    if starts.size == 0:
        return np.zeros((0, prepared.shape[0], WINDOW_SAMPLES), dtype=np.float32)
    idx = starts[:, None] + np.arange(WINDOW_SAMPLES)[None, :]
    return np.ascontiguousarray(prepared[:, idx].transpose(1, 0, 2))
