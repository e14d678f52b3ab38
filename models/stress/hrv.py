"""Heart-rate-variability features of one ECG window, in numpy (no torch): the stress model's second input.

Beats come from the model package's whole-window detector (:func:`models.features.beats.detect_beats`) on
one band-passed lead. From the RR intervals (physiological ones only: 0.27–2 s, and within 30 % of the
median so an ectopic or a missed beat does not count as variability):

- ``hr_bpm``: 60 / mean RR; ``rmssd_ms``: root mean square of successive RR differences; ``sdnn_ms``: RR
  standard deviation; ``pnn50``: fraction of successive differences above 50 ms;
- ``lf_hf``: power of the RR series in 0.04–0.15 Hz over 0.15–0.4 Hz (Lomb–Scargle periodogram of the
  unevenly sampled RR series, Task Force 1996 bands). On a 10 s window this is an ultra-short-term
  estimate: the LF band holds at most one and a half cycles, so read it as a trend, not a measurement;
- ``resp_rate_bpm``: breathing rate from the respiratory modulation of the R-wave amplitude (ECG-derived
  respiration) and of the RR intervals (respiratory sinus arrhythmia): the peak of the summed normalised
  Lomb–Scargle spectra of both beat series in 0.1–0.7 Hz (6–42 breaths/min).

Every feature is NaN when the window has too few beats to measure it (:data:`MIN_BEATS`).
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields

import numpy as np
from scipy.signal import lombscargle

from models.features.beats import detect_beats

MIN_BEATS = 4
"""Fewest accepted beats for any feature (three RR intervals)."""
LF_HZ = (0.04, 0.15)
HF_HZ = (0.15, 0.4)
RESP_HZ = (0.1, 0.7)
RR_RANGE_S = (0.27, 2.0)
"""Physiological RR intervals (222–30 bpm)."""
ECTOPY_TOLERANCE = 0.3
"""RR intervals further than this fraction from the window's median RR are left out (ectopy, missed beats)."""
_GRID = 64


@dataclass(frozen=True)
class HrvFeatures:
    """HRV of one window (see the module docstring); NaN where not measurable."""

    hr_bpm: float
    rmssd_ms: float
    sdnn_ms: float
    pnn50: float
    lf_hf: float
    resp_rate_bpm: float

    def as_dict(self) -> dict[str, float | None]:
        """JSON-ready, NaN as None."""
        return {f.name: (None if math.isnan(v) else round(float(v), 4))
                for f, v in zip(fields(self), astuple(self), strict=True)}

    def vector(self) -> np.ndarray:
        """The network's feature vector, float32 (:data:`N_FEATURES`): each feature scaled to order one
        (missing ones 0), then the fraction of features that were measurable."""
        scaled = np.array([self.hr_bpm / 100.0, self.rmssd_ms / 50.0, self.sdnn_ms / 50.0, self.pnn50,
                           math.log(self.lf_hf) if self.lf_hf > 0 else math.nan, self.resp_rate_bpm / 20.0])
        valid = np.isfinite(scaled)
        return np.append(np.where(valid, scaled, 0.0), valid.mean()).astype(np.float32)


N_FEATURES = 7
"""Length of :meth:`HrvFeatures.vector`."""
MISSING = HrvFeatures(*(math.nan,) * 6)


def _band_power(t: np.ndarray, y: np.ndarray, band: tuple[float, float]) -> float:
    f = np.linspace(band[0], band[1], _GRID)
    p = lombscargle(t, y - y.mean(), 2 * np.pi * f, normalize=False)
    return float(np.trapezoid(p, f))


def _peak_frequency(t: np.ndarray, series: list[np.ndarray], band: tuple[float, float]) -> float:
    f = np.linspace(band[0], band[1], 4 * _GRID)
    total = np.zeros_like(f)
    for y in series:
        y = y - y.mean()
        if np.ptp(y) == 0:
            continue
        p = lombscargle(t, y, 2 * np.pi * f, normalize=False)
        total += p / (p.sum() + 1e-12)
    return float(f[np.argmax(total)]) if total.any() else math.nan


def hrv_from_peaks(peaks: np.ndarray, fs: float, amplitudes: np.ndarray | None = None) -> HrvFeatures:
    """HRV from R-peak sample indices (and each beat's R amplitude, for the respiration rate)."""
    peaks = np.asarray(peaks, dtype=np.float64)
    if peaks.size < MIN_BEATS:
        return MISSING
    t = peaks[1:] / fs
    rr = np.diff(peaks) / fs
    ok = (rr >= RR_RANGE_S[0]) & (rr <= RR_RANGE_S[1])
    if ok.any():
        ok &= np.abs(rr - np.median(rr[ok])) <= ECTOPY_TOLERANCE * np.median(rr[ok])
    if ok.sum() < MIN_BEATS - 1:
        return MISSING
    good = rr[ok]
    # successive differences only between two accepted, adjacent intervals
    pair = ok[1:] & ok[:-1]
    diffs = np.diff(rr)[pair]
    rmssd = float(np.sqrt(np.mean(diffs**2)) * 1000.0) if diffs.size else math.nan
    pnn50 = float(np.mean(np.abs(diffs) > 0.05)) if diffs.size else math.nan
    tt = t[ok]
    lf, hf = _band_power(tt, good, LF_HZ), _band_power(tt, good, HF_HZ)
    lf_hf = lf / hf if hf > 0 and lf > 0 else math.nan
    series = [good]
    if amplitudes is not None:
        amp = np.asarray(amplitudes, dtype=np.float64)[1:][ok]
        series.append(amp)
    resp_hz = _peak_frequency(tt, series, RESP_HZ)
    return HrvFeatures(
        hr_bpm=float(60.0 / good.mean()),
        rmssd_ms=rmssd,
        sdnn_ms=float(np.std(good, ddof=1) * 1000.0),
        pnn50=pnn50,
        lf_hf=float(lf_hf),
        resp_rate_bpm=resp_hz * 60.0,
    )


def hrv_features(lead_mv: np.ndarray, fs: float) -> HrvFeatures:
    """HRV of one band-passed lead ``(n,)`` in mV at ``fs`` Hz."""
    x = np.asarray(lead_mv, dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        raise ValueError("the lead contains NaN or infinity")
    peaks = detect_beats(x[None, :], fs)
    if peaks.size < MIN_BEATS:
        return MISSING
    times, amplitudes = r_peaks(x, peaks, fs)
    return hrv_from_peaks(times, fs, amplitudes)


def r_peaks(x: np.ndarray, beats: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Each beat's R peak — the largest absolute deflection from the window median within ± 40 ms of the
    detector's fiducial — in fractional samples (parabolic interpolation: RR to well under a sample at
    125 Hz) and its amplitude (mV)."""
    r = max(1, int(round(0.04 * fs)))
    idx = np.clip(beats[:, None] + np.arange(-r, r + 1)[None, :], 1, x.size - 2)
    centred = np.abs(x - np.median(x))
    peak = idx[np.arange(len(beats)), np.argmax(centred[idx], axis=1)]
    y0, y1, y2 = centred[peak - 1], centred[peak], centred[peak + 1]
    denom = y0 - 2 * y1 + y2
    shift = np.where(denom < 0, 0.5 * (y0 - y2) / np.where(denom < 0, denom, -1.0), 0.0)
    order = np.argsort(peak + np.clip(shift, -0.5, 0.5))
    return (peak + np.clip(shift, -0.5, 0.5))[order], y1[order]


def hrv_matrix(leads_mv: np.ndarray, fs: float) -> np.ndarray:
    """Feature vectors ``(B, N_FEATURES)`` of windows ``(B, n)`` (one band-passed lead each)."""
    x = np.asarray(leads_mv)
    return np.stack([hrv_features(w, fs).vector() for w in x]) if len(x) else np.zeros((0, N_FEATURES), np.float32)
