"""Running heart rate and RR irregularity from the most recent RR intervals."""

from __future__ import annotations

from collections import deque

import numpy as np


class RrStats:
    """The last RR intervals of a stream (s) and the figures the rules read from them.

    ``heart_rate_bpm``: 60 / trimmed mean of the last ``hr_intervals`` RR, the shortest and the
    longest left out (from 3 intervals on): robust to one missed or extra beat, and unlike a median
    right for bimodal rhythms such as bigeminy.

    ``irregularity``: how unpredictable the RR sequence is, over the last ``irregularity_intervals``
    RR (unitless): the smallest, over lags k = 1 … ``max_pattern_lag``, of the RMS of
    ``RR[i] − RR[i−k]`` divided by the mean RR. Lag 1 is the classic RMSSD / mean (about 0.02–0.08
    in sinus rhythm, above ~0.15 in atrial fibrillation; insensitive to slow rate trends, unlike the
    coefficient of variation). The other lags make a *repeating* pattern regular: ventricular
    bigeminy (short, long, short, long) has a large RMSSD but RR[i] ≈ RR[i−2], and trigeminy
    RR[i] ≈ RR[i−3], so group beating no longer reads as AF, while AF's RR, uncorrelated at every
    lag, stays irregular at all of them. Both figures are NaN until enough intervals exist (1 for
    the rate, ``max_pattern_lag`` + 2 for the irregularity).
    """

    def __init__(self, hr_intervals: int = 8, irregularity_intervals: int = 16, max_pattern_lag: int = 3) -> None:
        if max_pattern_lag < 1:
            raise ValueError("max_pattern_lag must be ≥ 1")
        if hr_intervals < 1 or irregularity_intervals < max_pattern_lag + 2:
            raise ValueError("need hr_intervals ≥ 1 and irregularity_intervals ≥ max_pattern_lag + 2")
        self.hr_intervals = hr_intervals
        self.max_pattern_lag = max_pattern_lag
        self._rr: deque[float] = deque(maxlen=max(hr_intervals, irregularity_intervals))
        self.irregularity_intervals = irregularity_intervals
        self._figures = (float("nan"), float("nan"))

    def add(self, rr_s: float) -> None:
        """Append one RR interval (s)."""
        self._rr.append(rr_s)
        self._figures = (self._heart_rate(), self._irregularity())

    def mean_s(self, n: int) -> float | None:
        """Mean of the last ``n`` RR (s), or None before the first one."""
        if not self._rr:
            return None
        return float(np.mean(list(self._rr)[-n:]))

    @property
    def heart_rate_bpm(self) -> float:
        """Heart rate (beats/min) from the trimmed mean recent RR; NaN before the first interval."""
        return self._figures[0]

    @property
    def irregularity(self) -> float:
        """Pattern-aware RMSSD / mean RR of the recent intervals (unitless; see the class); NaN until enough."""
        return self._figures[1]

    def _heart_rate(self) -> float:
        rr = np.sort(list(self._rr)[-self.hr_intervals :])
        return 60.0 / float((rr[1:-1] if rr.size >= 3 else rr).mean())

    def _irregularity(self) -> float:
        rr = np.asarray(list(self._rr)[-self.irregularity_intervals :])
        if rr.size < self.max_pattern_lag + 2:
            return float("nan")
        rms = min(float(np.sqrt(np.mean((rr[k:] - rr[:-k]) ** 2))) for k in range(1, self.max_pattern_lag + 1))
        return rms / float(rr.mean())
