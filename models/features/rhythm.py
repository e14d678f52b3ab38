"""Rhythm and interval features of one classifier window, the classifier's second input.

Morphology alone must never decide that 120 bpm is "normal sinus rhythm": rate, RR irregularity, QRS
width and intervals are measured, not guessed, so the classifier takes them as a second input next to
the 12 leads (``features``, shape (B, :data:`N_FEATURES`)) and the model package computes them here —
for training windows and, through :mod:`models.runtime.classifier`, at the edge — from the leads the
wearable measures (II, V1, V5) only.

Features (physical units in :class:`WindowFeatures`; :meth:`WindowFeatures.vector` scales them to
order one for the network and sets missing ones to 0 with ``valid`` = 0):

- heart rate (60 / median RR), the RR coefficient of variation, RMSSD / mean RR, the robust RMSSD / mean
  RR (1.4826 · median |ΔRR| / mean: ectopy-robust, as in the AF rule), the fraction of premature beats
  (RR < 0.85 × median followed by a longer one), the longest RR and the beat count (pauses, asystole);
- QRS width, QTc (Bazett) and P-wave amplitude (peak-to-peak before the QRS on II or V1: atrial activity
  averages out of the median beat in AF), from the median beat (:mod:`models.features.beats`) upsampled to
  1 kHz; QRS onset/offset where the spatial slope falls below 20 % of its peak for 24 ms;
- ST level at J + 60 ms and the T-wave amplitude (signed, at the spatial T peak) against the PR baseline
  for II, V1 and V5.

numpy + scipy, about a millisecond per window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields

import numpy as np
from scipy.signal import resample_poly

from models.features.beats import WindowBeats, window_beats

FEATURES_VERSION = "1"
"""Version of the feature definitions; stored in the classifier's metadata (a model trained on one version
must be served the same)."""

MEASURED_LEADS = ("II", "V1", "V5")
"""Leads the features are computed from (what the wearable records)."""

UPSAMPLE = 8
"""Median beat upsampling factor for the interval measurements (125 Hz → 1 kHz)."""


@dataclass(frozen=True)
class WindowFeatures:
    """Measured rhythm features of a window (NaN when not measurable); see the module docstring."""

    heart_rate_bpm: float
    rr_cv: float
    rmssd_ratio: float
    robust_irregularity: float
    premature_fraction: float
    max_rr_s: float
    beats: int
    qrs_ms: float
    qtc_ms: float
    p_amplitude_mv: float
    st_ii_mv: float
    st_v1_mv: float
    st_v5_mv: float
    t_ii_mv: float
    t_v1_mv: float
    t_v5_mv: float

    def vector(self) -> np.ndarray:
        """The network's input: scaled features, NaN → 0, with a last ``valid`` flag (≥ 3 beats)."""
        scale = np.array([100.0, 1.0, 1.0, 1.0, 1.0, 2.0, 20.0, 100.0, 400.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
        raw = np.array(astuple(self), dtype=np.float64) / scale
        valid = float(self.beats >= 3 and math.isfinite(self.heart_rate_bpm))
        return np.concatenate([np.where(np.isfinite(raw), np.clip(raw, -5.0, 5.0), 0.0), [valid]]).astype(np.float32)


FEATURE_NAMES: tuple[str, ...] = (*(f.name for f in fields(WindowFeatures)), "valid")
N_FEATURES = len(FEATURE_NAMES)


def _nan() -> float:
    return float("nan")


def _rr_features(rr: np.ndarray, window_s: float, beats: int) -> tuple[float, ...]:
    """heart rate, CV, RMSSD ratio, robust irregularity, premature fraction, longest RR."""
    if rr.size == 0:
        return _nan(), _nan(), _nan(), _nan(), _nan(), (window_s if beats == 0 else _nan())
    mean, med = float(rr.mean()), float(np.median(rr))
    hr = 60.0 / med if med > 0 else _nan()
    if rr.size < 2:
        return hr, _nan(), _nan(), _nan(), _nan(), float(rr.max())
    d = np.diff(rr)
    cv = float(rr.std() / mean)
    rmssd = float(np.sqrt(np.mean(d * d)) / mean)
    robust = float(1.4826 * np.median(np.abs(d)) / mean)
    premature = (rr[:-1] < 0.85 * med) & (rr[1:] > med)
    return hr, cv, rmssd, robust, float(premature.sum() / rr.size), float(rr.max())


def _first_quiet(quiet: np.ndarray, gap: int) -> int:
    """Index of the first run of ``gap`` True values in ``quiet`` (its start), or len(quiet)."""
    if quiet.size < gap:
        return quiet.size
    runs = np.convolve(quiet.astype(np.int32), np.ones(gap, dtype=np.int32), mode="valid")
    hit = np.flatnonzero(runs == gap)
    return int(hit[0]) if hit.size else quiet.size


def _interval_features(b: WindowBeats) -> tuple[float, ...]:
    """QRS width, QTc, P amplitude, ST (II, V1, V5) and T amplitude (II, V1, V5)."""
    nan = _nan()
    if b.template is None or b.rr_s.size == 0:
        return (nan,) * 9
    fs = b.fs * UPSAMPLE
    t = resample_poly(b.template, UPSAMPLE, 1, axis=1)
    c = b.half * UPSAMPLE
    slope = np.abs(np.diff(t, axis=1, prepend=t[:, :1])).sum(axis=0)
    core = int(0.04 * fs)
    peak = float(slope[c - core : c + core].max())
    if peak <= 0:
        return (nan,) * 9
    quiet = slope < 0.2 * peak
    gap = int(0.024 * fs)
    offset = c + _first_quiet(quiet[c:], gap)
    onset = c - _first_quiet(quiet[: c + 1][::-1], gap)
    qrs_ms = 1000.0 * (offset - onset) / fs
    lo, hi = onset - int(0.03 * fs), onset - int(0.01 * fs)
    if lo < 0:
        return (qrs_ms,) + (nan,) * 8
    baseline = t[:, lo:hi].mean(axis=1, keepdims=True)
    x = t - baseline
    rr = float(np.median(b.rr_s))
    j60 = offset + int(0.06 * fs)
    st = x[:, j60] if j60 < x.shape[1] else np.full(x.shape[0], nan)
    # T wave: the spatial magnitude's peak between J + 80 ms and R + min(0.6 · RR + 0.1 s, 0.6 s)
    t_lo = offset + int(0.08 * fs)
    t_hi = min(x.shape[1] - 1, c + int(min(0.6 * rr + 0.1, 0.6) * fs))
    qtc = nan
    t_amp = np.full(x.shape[0], nan)
    if t_hi > t_lo + 2:
        mag = np.sqrt((x[:, t_lo:t_hi] ** 2).sum(axis=0))
        tp = int(np.argmax(mag))
        t_amp = x[:, t_lo + tp]
        after = mag[tp:]
        end = np.flatnonzero(after < 0.15 * mag[tp])
        if end.size:
            qt_s = (t_lo + tp + int(end[0]) - onset) / fs
            qtc = 1000.0 * qt_s / math.sqrt(rr)
    p_lo, p_hi = onset - int(0.25 * fs), onset - int(0.03 * fs)
    p_amp = nan
    if p_lo >= 0:
        region = x[:2, p_lo:p_hi]                          # II and V1
        p_amp = float((region.max(axis=1) - region.min(axis=1)).max())
    return (qrs_ms, qtc, p_amp, *map(float, st), *map(float, t_amp))


def measure(leads: np.ndarray, fs: float) -> WindowFeatures:
    """Features of one window of the measured leads ((3, n) II, V1, V5; band-passed mV)."""
    b = window_beats(leads, fs)
    rr = b.rr_s
    hr, cv, rmssd, robust, premature, max_rr = _rr_features(rr, leads.shape[1] / fs, int(b.peaks.size))
    qrs, qtc, p, st_ii, st_v1, st_v5, t_ii, t_v1, t_v5 = _interval_features(b)
    return WindowFeatures(hr, cv, rmssd, robust, premature, max_rr, int(b.peaks.size), qrs, qtc, p,
                          st_ii, st_v1, st_v5, t_ii, t_v1, t_v5)


def measured_rows(lead_names: Sequence[str]) -> list[int]:
    """Row indices of II, V1 and V5 in a window whose rows are ``lead_names``."""
    missing = [n for n in MEASURED_LEADS if n not in lead_names]
    if missing:
        raise ValueError(f"rhythm features need leads {', '.join(MEASURED_LEADS)}; missing {', '.join(missing)}")
    return [list(lead_names).index(n) for n in MEASURED_LEADS]


def feature_matrix(windows: np.ndarray, fs: float, rows: Sequence[int]) -> np.ndarray:
    """(B, :data:`N_FEATURES`) float32 network input for (B, leads, n) windows; ``rows``: II, V1, V5."""
    w = np.asarray(windows)
    out = np.empty((w.shape[0], N_FEATURES), dtype=np.float32)
    sel = list(rows)
    for i in range(w.shape[0]):                            # per window (not per sample): ~1 ms each
        out[i] = measure(w[i, sel], fs).vector()
    return out
