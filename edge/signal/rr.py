"""Running heart rate and the AF detector's RR irregularity from the most recent RR intervals."""

from __future__ import annotations

import math

import numpy as np

from edge.signal.af_detector import AfDetector, AfDetectorConfig

ECTOPY_GATE = 0.12
GATE_POWER = 2
GATE_FLOOR = 0.1
"""The gate is computed only where the detector reads above this (1/s; the AF rule's lowest level is
0.4): sinus rhythm, most of the time, pays for the detector alone."""
"""The AF figure is scaled by min(1, robust irregularity / this)²: see :class:`RrStats`."""

MAD_TO_SD = 1.4826
"""1 / Φ⁻¹(3/4): the median of |X| for X ~ N(0, σ²) is σ / 1.4826, so 1.4826 · median |ΔRR| estimates
the RMS of ΔRR (RMSSD) when the differences are Gaussian — as they are, roughly, in AF."""


class RrStats:
    """The last RR intervals of a stream (s) and the figures the rules read from them.

    ``heart_rate_bpm``: 60 / trimmed mean of the last ``hr_intervals`` RR, the shortest and the
    longest left out (from 3 intervals on): robust to one missed or extra beat, and unlike a median
    right for bimodal rhythms such as bigeminy.

    ``irregularity``: the output ``O(n)`` of the low-complexity AF detector of Petrėnas, Marozas &
    Sörnmo (Comput Biol Med 2015; :mod:`edge.signal.af_detector`): 8-beat irregular-pair fraction of
    the 3-point-median-filtered RR, exponentially averaged and divided by the RR trend (1/s), with
    bigeminy suppression; ≥ η (``AlarmConfig.af_irregularity``) in AF. NaN until 10 RR were added
    (the first full 8-beat window of filtered RR). Real ECG (``../shared/tune``, CinC 2021, lead II
    through the edge's filter and QRS detector; 10–17 s records, so the detector alone, before the
    gate): the three AF records read 0.81–1.14, atrial flutter 0.60 and 1.64; of the 33 other
    records long enough (sinus, brady-/tachycardia, PAC, PVC, BBB, AV block …) 30 read ≤ 0.5 (27 of
    them 0: bigeminy suppression also gates smooth sinus arrhythmia), RBBB 0.65 and a long PR 0.54
    stay under η, one with frequent PACs reads 1.10.

    **Ectopy gate**: the 3-point median removes isolated ectopic beats but not frequent ones
    (couplets, runs of PACs one or two beats apart), which the detector reads as AF: synthetic sinus
    rhythm with 25–30 % PACs or PVCs held O ≥ η for 20-s runs. The published figure is therefore
    ``O · min(1, robust_irregularity / ectopy_gate)²`` with ``ectopy_gate`` = 0.1: the version-2
    statistic below, which drops premature–pause pairs and reads repeating patterns as regular, is
    0.12–0.19 on real AF (ungated) and ≈ 0.03–0.08 on synthetic sinus with 25–30 % ectopy or
    bigeminy (O scaled by 0.1–0.6; squared, as a linear gate still let 20-s runs through).
    NaN until that statistic is known (half its window: 16 RR). Computed only where O > 0.1
    (:data:`GATE_FLOOR`), below every AF level, so sinus rhythm pays for the detector alone.

    ``robust_irregularity``: version 2's figure, kept as the ectopy gate (:func:`irregularity`): a
    robust, ectopy- and pattern-aware RMSSD / mean RR of the last ``irregularity_intervals`` RR —
    the smallest over lags 1 … ``max_pattern_lag`` of 1.4826 · median |RR[i] − RR[i−k]|, and of the
    same lag-1 figure once premature beats (RR < ``premature_fraction`` of the median followed by a
    longer one) are dropped with their pause. It separates synthetic AF from ectopy well, but real
    AF reads only 0.12–0.19 on it (tune/), at its old threshold (0.12): it missed most real AF.

    **Cost** (``add`` runs on every beat of every patient): RR live in a ring buffer of twice the
    capacity, each value written at ``i`` and ``i + capacity``, so the last ``n`` values are always one
    contiguous view (no copy, no Python loop over the history). The figures are computed lazily, when
    first read: the AF detector takes every RR added since the last read as one numpy batch
    (:meth:`AfDetector.extend`; the session reads once per packet), so its recursive averagers see
    every beat while the cost is paid once per packet.
    """

    def __init__(self, hr_intervals: int = 8, irregularity_intervals: int = 32, max_pattern_lag: int = 4,
                 premature_fraction: float = 0.85, af: AfDetectorConfig | None = None,
                 ectopy_gate: float = ECTOPY_GATE) -> None:
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
        self._robust: float | None = math.nan
        self._lags = np.arange(1, max_pattern_lag + 1)
        self.detector = AfDetector(af)
        self.ectopy_gate = ectopy_gate
        self._unread = 0                      # RR added since the detector last saw the buffer

    def add(self, rr_s: float) -> None:
        """Append one RR interval (s)."""
        i = self._count % self._cap
        self._buf[i] = self._buf[i + self._cap] = rr_s
        self._count += 1
        self._unread += 1
        if self._unread == self._cap:         # the ring is about to overwrite RR the detector has not seen
            self._feed()
        self._hr = self._robust = None        # recomputed when next read

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
        """The AF detector's output ``O(n)`` (1/s, see the class and :mod:`edge.signal.af_detector`); NaN until enough."""
        self._feed()
        o = self.detector.output
        if not o > GATE_FLOOR or self.ectopy_gate <= 0.0:
            return o                          # far below any AF level: the gate could not matter
        robust = self.robust_irregularity
        if math.isnan(robust):
            return math.nan
        return o * min(1.0, robust / self.ectopy_gate) ** GATE_POWER

    def _feed(self) -> None:
        """Hand the RR added since the last read to the detector, as one batch."""
        if self._unread:
            self.detector.extend(self.last(self._unread))
            self._unread = 0

    @property
    def robust_irregularity(self) -> float:
        """Version 2's robust, ectopy- and pattern-aware RMSSD / mean RR (see the class); NaN until enough."""
        if self._robust is None:
            self._robust = irregularity(self.last(self.irregularity_intervals), self.max_pattern_lag,
                                        self.premature_fraction, self.min_intervals)
        return self._robust

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
