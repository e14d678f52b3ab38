"""Low-complexity streaming AF detector on RR intervals (Petrėnas, Marozas & Sörnmo 2015).

A. Petrėnas, V. Marozas, L. Sörnmo, "Low-complexity detection of atrial fibrillation in continuous
long-term monitoring", Comput Biol Med 65 (2015) 184–191: Se 97.1 % / Sp 98.3 % on the MIT–BIH AF
database with an 8-beat window. Per beat *n* (RR ``r(n)`` in s):

1. **ectopic-beat filtering**: ``r_m(n)``, the 3-point median of the RR series. An isolated short
   (PAC, PVC) or long (missed beat) interval is replaced by a neighbour; AF, irregular at every beat,
   stays irregular. Causal here: the median of ``r(n−2), r(n−1), r(n)`` is ``r_m`` at ``n−1`` (one
   beat of delay, which the alarm's onset estimate does not inherit);
2. **irregularity**: ``M(n)``, the fraction of the ``N(N−1)/2`` pairs of the last ``N`` = 8 filtered
   RR that differ by ≥ γ = 30 ms, smoothed by the exponential averager
   ``M̄(n) = M̄(n−1) + α (M(n) − M̄(n−1))`` and divided by the RR trend ``r̄(n)`` (same averager on
   ``r``): ``I(n) = M̄(n) / r̄(n)`` (1/s). Dividing by the mean RR keeps fast AF — whose RR
   differences are smaller in seconds — above the threshold;
3. **bigeminy suppression**: the median filter leaves an alternating short–long series unchanged,
   while it moves AF's RR a lot, so ``B(n) = (Σ r_m / Σ r − 1)²`` over the same ``N`` beats, smoothed
   as ``B̄``, is ≈ 0 in bigeminy (and in sinus rhythm) and clearly positive in AF;
4. **fusion**: ``O(n) = I(n)`` where ``B̄(n) ≥ δ``, else ``B̄(n)`` (≈ 0); AF where ``O(n) ≥ η``. Here
   with a hysteresis: once open, the gate closes only when ``B̄`` falls below ``δ / 2``. In AF ``B̄``
   is only 1–3 δ (2–5·10⁻⁴ on synthetic AF at RR CV 0.25; 2.6·10⁻⁴ on one real AF record of
   ../shared/tune), so the paper's hard switch dropped O to 0 for a beat or two in the middle of AF
   and ended the alarm's irregular run.

Parameters are the paper's (N = 8, γ = 0.03 s, δ = 2·10⁻⁴), except the averager: the paper's
α = 0.02 (a 50-beat time constant) suits long-term Holter analysis; an alarm that must confirm a
30-s paroxysm online needs a faster one — α = 0.1 (10 beats), see :data:`DEFAULT_ALPHA`. η, the
paper's one design parameter, is the AF rule's ``af_irregularity`` (:class:`edge.alarms.AlarmConfig`).

**Cost**: the edge runs this on every beat of every patient. State is a few floats and two rings of
``N`` + 2 RR; :meth:`AfDetector.extend` takes a packet's beats at once and works on them as one
numpy batch (medians, pair counts and bigeminy ratios over strided sliding windows); only the three
averagers' multiply-adds run per beat, so any batching gives bit-identical figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["DEFAULT_ALPHA", "AfDetector", "AfDetectorConfig"]

DEFAULT_ALPHA = 0.1
"""Averager coefficient (per beat). The paper's 0.02 smooths over ~50 beats: on synthetic sinus →
AF → sinus transitions (30-s AF, RR CV 0.1–0.25, 8 patients each) the averaged figure rose too late
and a 30-s episode ended before the rule could confirm it; 0.05 confirmed 11 of 32, 0.1 confirmed
16 of 32 (all of them at CV ≥ 0.15, 13 of 16 at CV ≥ 0.2), while sinus, sinus bradycardia, 30 % PACs,
25 % PVCs, bigeminy, trigeminy and Wenckebach (10 patients × 180 s each) raised no AF with either."""


MAX_TREND_S: float | None = None
"""The paper divides M̄ by the RR trend, which lifts fast AF (its RR differences are smaller in
seconds) but pushes slow, rate-controlled AF under η: at 55 beats/min a clearly irregular synthetic
run (M̄ ≈ 0.7) reads 0.6. Capping the divisor at 0.75 s (80 beats/min) was tried and left off: on
synthetic RR it let ventricular bigeminy, 25 % PVCs and Wenckebach raise AF (1 of 10 patients
each) and found no more 30-s paroxysms. AF below ~60 beats/min is a known limit of the RR rule."""


@dataclass(frozen=True)
class AfDetectorConfig:
    """The detector's parameters (see the module docstring; defaults from Petrėnas et al. 2015)."""

    window_beats: int = 8
    """N: filtered RR in the pair-counting window (even, as the bigeminy ratio needs)."""
    gamma_s: float = 0.03
    """γ: two RR differing by at least this much (s) count as an irregular pair."""
    alpha: float = DEFAULT_ALPHA
    """Exponential averager coefficient for M, B and the RR trend."""
    delta: float = 2e-4
    """δ: below it the smoothed bigeminy ratio B̄ replaces the irregularity (bigeminy, sinus)."""
    delta_close_fraction: float = 0.5
    """Once B̄ reached δ, the irregularity passes until B̄ falls below this fraction of δ (see the
    module docstring: in AF B̄ is only 1–3 δ, and a flicker under δ must not end an AF run)."""
    max_trend_s: float | None = MAX_TREND_S
    """The RR trend divides M̄ no further than this (s); None: as the paper, always r̄."""

    def __post_init__(self) -> None:
        if self.window_beats < 2 or self.window_beats % 2:
            raise ValueError("window_beats must be even and ≥ 2")
        if not 0.0 < self.alpha <= 1.0 or self.gamma_s <= 0.0 or self.delta < 0.0:
            raise ValueError("need 0 < alpha ≤ 1, gamma_s > 0, delta ≥ 0")


@lru_cache(maxsize=256)
def _windows(k: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gather indices for ``k`` sliding windows of ``n``: the windows (k, n), and both members of each
    of a window's ``n(n−1)/2`` pairs (k, pairs) — cached, so a batch costs a few ufunc calls."""
    win = np.arange(k)[:, None] + np.arange(n)[None, :]
    i, j = np.triu_indices(n, 1)
    out = (win, win[:, i], win[:, j])
    for a in out:
        a.setflags(write=False)
    return out


class AfDetector:
    """Streaming :mod:`Petrėnas et al. <edge.signal.af_detector>` AF detector over RR intervals.

    Feed RR intervals (s) with :meth:`add` or, a packet's worth at once, :meth:`extend`; read
    :attr:`output` (``O(n)``, 1/s: ≥ η in AF), :attr:`irregularity` (``I(n)``) and
    :attr:`bigeminy` (``B̄(n)``). NaN until ``N`` + 2 intervals have been seen (the first full
    window of filtered RR); the averagers then start from that window's values, so a stream that
    begins in AF reads as AF at once instead of climbing from zero. :meth:`reset` after a break in
    the beat series (data gap, detector restart): an RR spanning it is not an RR.
    """

    def __init__(self, config: AfDetectorConfig | None = None) -> None:
        self.config = config or AfDetectorConfig()
        n = self.config.window_beats
        self._keep = n + 2                     # raw RR kept: N medians need N + 2 raw values
        self._pairs = n * (n - 1) // 2
        self.reset()

    def reset(self) -> None:
        """Forget everything (a break in the RR series)."""
        self._raw = np.empty(0)
        self._r_bar = self._m_bar = self._b_bar = math.nan
        self._open = False
        self.count = 0
        self.output = self.irregularity = self.bigeminy = math.nan

    def add(self, rr_s: float) -> float:
        """One RR interval (s); returns the new ``O(n)``."""
        return self.extend(np.array((rr_s,)))

    def extend(self, rr_s: np.ndarray | list[float] | tuple[float, ...]) -> float:
        """A batch of RR intervals (s, oldest first), processed as one numpy batch; returns ``O`` after the last."""
        x = np.asarray(rr_s, dtype=np.float64).ravel()
        if not x.size:
            return self.output
        c = self.config
        n = c.window_beats
        raw = np.concatenate((self._raw, x))
        self.count += x.size
        self._raw = raw[-self._keep:]
        if raw.size < self._keep:
            return self.output
        # new outputs: one per RR added once the first window is full
        k = min(x.size, raw.size - self._keep + 1)
        tail = raw[-(k + n + 1):]                                        # enough for k windows of N medians
        lo, hi = np.minimum(tail[:-2], tail[1:-1]), np.maximum(tail[:-2], tail[1:-1])
        med = np.maximum(lo, np.minimum(hi, tail[2:]))                   # 3-point median: r_m at the centre beat
        centre = tail[1:-1]                                              # raw r aligned with r_m
        win, first, second = _windows(k, n)                              # (k, N) and (k, pairs) gathers
        d = np.abs(med[first] - med[second])
        m = np.add.reduce(d >= c.gamma_s, axis=1) / self._pairs
        wr = centre[win]
        b = (np.add.reduce(med[win], axis=1) / np.add.reduce(wr, axis=1) - 1.0) ** 2
        r = centre[n - 1:]                                               # newest centred raw RR per output
        if math.isnan(self._r_bar):                                      # first full window: warm start
            self._r_bar, self._m_bar, self._b_bar = float(wr[0].mean()), float(m[0]), float(b[0])
            r, m, b = r[1:], m[1:], b[1:]
            self._open = self._b_bar >= c.delta
        a, r_bar, m_bar, b_bar, is_open = c.alpha, self._r_bar, self._m_bar, self._b_bar, self._open
        close = c.delta_close_fraction * c.delta
        for ri, mi, bi in zip(r.tolist(), m.tolist(), b.tolist(), strict=True):
            r_bar += a * (ri - r_bar)             # the recursion itself, beat by beat: 3 multiply-adds,
            m_bar += a * (mi - m_bar)             # and the same floats however the beats were batched
            b_bar += a * (bi - b_bar)
            is_open = b_bar >= (close if is_open else c.delta)
        self._r_bar, self._m_bar, self._b_bar, self._open = r_bar, m_bar, b_bar, is_open
        trend = self._r_bar if c.max_trend_s is None else min(self._r_bar, c.max_trend_s)
        self.irregularity = self._m_bar / trend
        self.bigeminy = self._b_bar
        self.output = self.irregularity if self._open else self._b_bar
        return self.output
