"""Running heart rate and an AF-oriented RR irregularity from the most recent RR intervals."""

from __future__ import annotations

import math

import numpy as np

MAD_TO_SD = 1.4826
"""1 / Φ⁻¹(3/4): the median of |X| for X ~ N(0, σ²) is σ / 1.4826, so 1.4826 · median |ΔRR| estimates
the RMS of ΔRR (RMSSD) when the differences are Gaussian — as they are, roughly, in AF."""


class RrStats:
    """The last RR intervals of a stream (s) and the figures the rules read from them.

    ``heart_rate_bpm``: 60 / trimmed mean of the last ``hr_intervals`` RR, the shortest and the
    longest left out (from 3 intervals on): robust to one missed or extra beat, and unlike a median
    right for bimodal rhythms such as bigeminy.

    ``irregularity``: how *unpredictable* the last ``irregularity_intervals`` RR are, as a robust,
    ectopy- and pattern-aware RMSSD / mean RR (unitless). In atrial fibrillation, whose RR are close
    to independent draws, it reads about ¾ of the classic RMSSD / mean RR over 32 RR (each lag's
    median estimates RMSSD; the smallest of four noisy estimates is biased low). It is the smallest of

    - **pattern lags**: for k = 1 … ``max_pattern_lag``, 1.4826 · median |RR[i] − RR[i−k]|. Lag 1 is
      the robust RMSSD (median rather than RMS, as in the ectopy-robust irregularity of Petrėnas et
      al., Comput Biol Med 2015: a missed beat or an isolated ectopic moves 2 of ~30 differences and
      not the median). The other lags make a *repeating* pattern regular: ventricular bigeminy
      (short, long, …) has RR[i] ≈ RR[i−2], trigeminy RR[i] ≈ RR[i−3], and respiratory sinus
      arrhythmia at 3–5 beats per breath is closest to itself at lag 3–4; AF's RR, uncorrelated at
      every lag, stays irregular at all of them;
    - **ectopy removed**: premature beats — an RR shorter than ``premature_fraction`` (0.85) of the
      window's median followed by one longer than the median (the compensatory or resetting pause
      of a PAC or PVC; the criterion of classic ectopic-beat filters of HRV analysis) — are dropped
      with their pause, and the robust RMSSD of the RR left is taken, provided at least half remain.
      Frequent random PACs/PVCs (over a quarter of beats) move more than half of the differences
      and would defeat the median alone; with the pairs removed the underlying sinus rhythm shows.
      In AF only the short-long pairs go (10–30 % of RR) and what stays is as irregular as before.

    NaN until half the window is filled (or ``max_pattern_lag`` + 2 intervals if more).

    **Choices, made on synthetic RR only** (``firmware_sim`` planners, 20 random patients × 150 s per
    rhythm, 4 ms fiducial jitter; the criterion was "≥ threshold continuously for 25–30 s", the AF
    rule's persistence): window 32 RR, lags 1–4, threshold 0.12 (:class:`edge.alarms.AlarmConfig`).
    With these, sinus (rest, brady, tachy), PAC (15 % and 30 % of beats), PVC (12 % and 25 %), ventricular
    bigeminy and trigeminy never stayed above 0.12 for 25 s, while AF did in every patient, including
    AF at the catalogue's lowest RR variability (CV 0.15) at 80–130 beats/min. Shorter windows (16,
    20 RR) missed 20–70 % of the CV-0.15 AF; lag 3 instead of 4 let strong sinus arrhythmia (HF
    dominant, RR SD 10 % of the mean) through 2.5 × as often; thresholds 0.11/0.13 trade ectopy
    and Wenckebach false alarms against low-CV AF. Left as limits: very strong respiratory sinus
    arrhythmia (~1/3 of such patients), Mobitz I with variable conduction and atrial flutter with
    variable block (both irregular by nature; CPSC 2021 scores flutter as AF) can read as AF.

    **Cost** (``add`` runs on every beat of every patient): RR live in a ring buffer of twice the
    capacity, each value written at ``i`` and ``i + capacity``, so the last ``n`` values are always one
    contiguous view (no copy, no Python loop over the history); the figures are computed lazily, at
    most once per interval added, when first read: three small medians over at most 32 values.
    """

    def __init__(self, hr_intervals: int = 8, irregularity_intervals: int = 32, max_pattern_lag: int = 4,
                 premature_fraction: float = 0.85) -> None:
        if max_pattern_lag < 1:
            raise ValueError("max_pattern_lag must be ≥ 1")
        if hr_intervals < 1 or irregularity_intervals < max_pattern_lag + 2:
            raise ValueError("need hr_intervals ≥ 1 and irregularity_intervals ≥ max_pattern_lag + 2")
        if not 0.0 < premature_fraction < 1.0:
            raise ValueError("premature_fraction must be in (0, 1)")
        self.hr_intervals = hr_intervals
        self.irregularity_intervals = irregularity_intervals
        self.max_pattern_lag = max_pattern_lag
        self.premature_fraction = premature_fraction
        self.min_intervals = max(max_pattern_lag + 2, irregularity_intervals // 2)
        self._cap = max(hr_intervals, irregularity_intervals)
        self._buf = np.zeros(2 * self._cap)
        self._count = 0
        self._hr: float | None = math.nan
        self._irr: float | None = math.nan
        self._lags = np.arange(1, max_pattern_lag + 1)

    def add(self, rr_s: float) -> None:
        """Append one RR interval (s)."""
        i = self._count % self._cap
        self._buf[i] = self._buf[i + self._cap] = rr_s
        self._count += 1
        self._hr = self._irr = None           # recomputed when next read

    def last(self, n: int) -> np.ndarray:
        """The last ``n`` RR (s), oldest first (fewer before ``n`` were added): a view of the ring
        buffer, valid until the next :meth:`add` — copy it to keep it."""
        k = min(n, self._count, self._cap)
        end = (self._count - 1) % self._cap + 1 + self._cap
        return self._buf[end - k : end]

    def mean_s(self, n: int) -> float | None:
        """Mean of the last ``n`` RR (s), or None before the first one."""
        if not self._count:
            return None
        return float(self.last(n).mean())

    @property
    def heart_rate_bpm(self) -> float:
        """Heart rate (beats/min) from the trimmed mean recent RR; NaN before the first interval."""
        if self._hr is None:
            self._hr = self._heart_rate()
        return self._hr

    @property
    def irregularity(self) -> float:
        """Robust, ectopy- and pattern-aware RMSSD / mean RR of the recent intervals (see the class); NaN until enough."""
        if self._irr is None:
            self._irr = irregularity(self.last(self.irregularity_intervals), self.max_pattern_lag,
                                     self.premature_fraction, self.min_intervals)
        return self._irr

    def _heart_rate(self) -> float:
        if not self._count:
            return math.nan
        rr = self.last(self.hr_intervals).tolist()       # ≤ hr_intervals floats: C-level sum/min/max
        if len(rr) < 3:
            return 60.0 * len(rr) / sum(rr)
        return 60.0 * (len(rr) - 2) / (sum(rr) - min(rr) - max(rr))


def _median(x: np.ndarray) -> np.ndarray:
    """Median along the last axis by partial sort (np.median costs ~10 × more on arrays this small)."""
    m = x.shape[-1]
    h = m // 2
    part = np.partition(x, (h - 1, h) if m % 2 == 0 else h, axis=-1)
    return 0.5 * (part[..., h - 1] + part[..., h]) if m % 2 == 0 else part[..., h]


_LAG_INDEX: dict[tuple[int, int], np.ndarray] = {}


def _lag_index(n: int, lags: int) -> np.ndarray:
    """Index array (lags, n − lags): row k−1 holds i − k for i = lags … n − 1."""
    idx = _LAG_INDEX.get((n, lags))
    if idx is None:
        idx = _LAG_INDEX[(n, lags)] = np.arange(lags, n)[None, :] - np.arange(1, lags + 1)[:, None]
    return idx


def irregularity(rr: np.ndarray, max_pattern_lag: int = 4, premature_fraction: float = 0.85,
                 min_intervals: int | None = None) -> float:
    """The irregularity of :class:`RrStats` over the RR sequence ``rr`` (s, oldest first); NaN when
    ``rr`` has fewer than ``min_intervals`` (default ``max_pattern_lag`` + 2) intervals."""
    rr = np.asarray(rr, dtype=np.float64)
    n, lags = rr.size, max_pattern_lag
    if n < max(lags + 2, min_intervals or 0):
        return math.nan
    mean = float(np.add.reduce(rr)) / n
    # |RR[i] − RR[i−k]| for k = 1 … lags over the same n − lags positions: one (lags, n − lags) array.
    diffs = np.abs(rr[lags:] - rr[_lag_index(n, lags)])
    spread = float(np.minimum.reduce(_median(diffs)))
    ref = float(_median(rr))
    short = premature_fraction * ref
    if float(np.minimum.reduce(rr)) < short:           # else no premature beat (most sinus windows)
        premature = rr[:-1] < short
        premature &= rr[1:] > ref
        drop = np.zeros(n, dtype=bool)
        drop[:-1] = premature
        drop[1:] |= premature
        kept = rr[~drop]
        if 2 * kept.size >= n and kept.size >= 3 and kept.size < n:
            spread = min(spread, float(_median(np.abs(np.diff(kept)))))
    return MAD_TO_SD * spread / mean
