"""Streaming QRS detector: Hamilton & Tompkins (1986) rules on a Pan & Tompkins (1985) style front end.

Pipeline on one lead, packet by packet, every stage a stateful filter carried between packets:

1. 5–15 Hz Butterworth band-pass (the QRS band; rejects baseline, T waves, mains and most EMG);
2. absolute first difference × fs (mV/s);
3. moving-window integration over 80 ms (MWI, mV/s): one hump per QRS complex. As in Hamilton &
   Tompkins (absolute value, not Pan & Tompkins' square), so a low-amplitude ectopic beat is not
   squashed below the threshold set by the dominant beats.

A *candidate* is an MWI sample that rises above its predecessor and is the largest within
± ``lookahead_s``; it is decided once the look-ahead has arrived. Each candidate is placed (its R
peak) at the largest absolute value of the input lead in the ``r_window_s`` before its MWI peak
(the integration window plus the band-pass delay), so feed the detector a baseline-filtered lead
(:class:`edge.signal.filters.EcgFilter`). Candidates are classified in time order by Hamilton &
Tompkins' rules, with intervals measured between R peaks: ignored within the 200 ms refractory
period; a T wave when within 360 ms of the last QRS with less than half its maximum slope; a QRS
when above the threshold ``NPK + 0.3125 (SPK − NPK)`` (SPK, NPK: medians of the last 8 QRS and noise
peak heights), else noise. When no QRS has come for 1.5 mean RR, the largest noise candidate above
half the threshold and ≥ 360 ms after the last QRS is taken as a QRS (*search-back*). Candidates
whose band-passed amplitude is below ``min_qrs_mv`` are never beats (flat or disconnected leads,
asystole); until SPK is learnt, that floor alone decides.

The first ``learn_s`` seconds seed SPK (the largest candidate of each second); beats in that time
are reported when it ends. After that a beat is decided ``lookahead_s`` after its MWI peak, about
0.2–0.25 s after the R peak (plus up to one packet of waiting for the samples); search-back beats
come later and are flagged.

Every decision depends only on samples and on candidates in time order, and every filter is an
exact streaming filter (``sosfilt``/``lfilter`` with carried state), so a stream fed in packets of
any size gives the same beats as fed whole.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy import signal as sps
from scipy.ndimage import maximum_filter1d

from edge.signal.filters import SosStream, butter_sos
from edge.signal.rr import RrStats


@dataclass(frozen=True)
class QrsConfig:
    """Detector parameters (s, Hz, mV); defaults from Pan & Tompkins (1985) and Hamilton & Tompkins (1986)."""

    band_hz: tuple[float, float] = (5.0, 15.0)
    integration_s: float = 0.080
    lookahead_s: float = 0.150
    refractory_s: float = 0.200
    twave_s: float = 0.360
    threshold_ratio: float = 0.3125
    searchback_rr: float = 1.5
    default_rr_s: float = 1.0
    learn_s: float = 3.0
    peaks_kept: int = 8
    r_window_s: float = 0.150
    min_qrs_mv: float = 0.05
    hr_intervals: int = 8
    irregularity_intervals: int = 16


@dataclass(frozen=True)
class QrsResult:
    """What one packet produced.

    ``beats``: absolute sample indices (from the first sample fed) of the R peaks reported now, in
    time order; ``searchback``: True for beats found by search-back (reported late);
    ``heart_rate_bpm`` and ``rr_irregularity``: running figures after this packet (see
    :class:`edge.signal.rr.RrStats`), NaN until enough beats.
    """

    beats: np.ndarray
    searchback: np.ndarray
    heart_rate_bpm: float
    rr_irregularity: float


@dataclass(frozen=True)
class _Candidate:
    i: int          # MWI peak (absolute sample)
    height: float   # MWI value, mV/s
    slope: float    # max |d/dt| of the band-passed lead over the integration window, mV/s
    amp: float      # max |band-passed lead| over the integration window, mV
    r: int          # R peak on the input lead (absolute sample)


@dataclass
class _Decisions:
    """Hamilton–Tompkins decision state (indices in samples)."""

    qrs_peaks: deque[float]
    noise_peaks: deque[float]
    last_i: int | None = None
    last_r: int | None = None
    last_slope: float = 0.0
    deadline: float = float("inf")
    searchable: list[_Candidate] = field(default_factory=list)


class QrsDetector:
    """Streaming QRS detector for one lead sampled at ``fs`` Hz (100–1000 Hz); see the module docstring."""

    def __init__(self, fs: float, config: QrsConfig | None = None) -> None:
        if not 100.0 <= fs <= 1000.0:
            raise ValueError(f"QrsDetector works at 100–1000 Hz, got fs={fs!r}")
        self.fs = float(fs)
        self.config = c = config or QrsConfig()
        self._band = SosStream(butter_sos(1, (float(c.band_hz[0]), float(c.band_hz[1])), "bandpass", self.fs), 1,
                               initial="zero")
        w = self._samples(c.integration_s)
        self._w = w
        self._mwi_b = np.full(w, 1.0 / w)
        self._mwi_zi = np.zeros(w - 1)
        self._prev_bp = 0.0
        self._look = self._samples(c.lookahead_s)
        self._back = max(w, self._samples(c.r_window_s))
        self._keep = self._look + self._back + 1
        # History (absolute index of first row = self._hist_start): input, band-passed, |slope|, MWI.
        self._hist = np.zeros((0, 4))
        self._hist_start = 0
        self._next = 1            # first sample not yet examined as a candidate
        self._learn_end = self._samples(c.learn_s)
        self._learning: list[_Candidate] | None = []
        self._d = _Decisions(deque(maxlen=c.peaks_kept), deque(maxlen=c.peaks_kept))
        self.rr = RrStats(c.hr_intervals, c.irregularity_intervals)
        self._finished = False

    def _samples(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.fs)))

    # -- public -------------------------------------------------------------------------------

    def process(self, packet: np.ndarray) -> QrsResult:
        """Feed the next ``n`` samples (mV, shape ``(n,)``) of the lead; returns the beats decided now."""
        if self._finished:
            raise RuntimeError("QrsDetector.finish() was called: the stream has ended")
        x = np.asarray(packet, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"packet must be one lead, shape (n,), got {x.shape}")
        self._append(x)
        end = self._hist_start + self._hist.shape[0]
        return self._decide(end - self._look, self._hist[:, 3])

    def finish(self) -> QrsResult:
        """End the stream: decide the candidates still waiting for look-ahead (none may follow)."""
        if self._finished:
            raise RuntimeError("QrsDetector.finish() was called twice")
        self._finished = True
        end = self._hist_start + self._hist.shape[0]
        mwi = np.concatenate([self._hist[:, 3], np.full(self._look, -np.inf)])
        return self._decide(end, mwi)

    @property
    def samples_seen(self) -> int:
        """Number of samples fed so far."""
        return self._hist_start + self._hist.shape[0]

    # -- signal path ----------------------------------------------------------------------------

    def _append(self, x: np.ndarray) -> None:
        bp = self._band.process(x)
        slope = np.abs(np.diff(bp, prepend=self._prev_bp)) * self.fs
        if bp.size:
            self._prev_bp = float(bp[-1])
        mwi, self._mwi_zi = sps.lfilter(self._mwi_b, 1.0, slope, zi=self._mwi_zi)
        self._hist = np.concatenate([self._hist, np.column_stack([x, bp, slope, mwi])])

    def _decide(self, limit: int, mwi: np.ndarray) -> QrsResult:
        """Examine candidates in ``[self._next, limit)``, classify them, then trim the history."""
        start = self._hist_start
        beats: list[tuple[int, bool]] = []
        lo, hi = self._next - start, limit - start
        if hi > lo:
            peak = maximum_filter1d(mwi, size=2 * self._look + 1, mode="constant", cval=-np.inf)
            seg = slice(lo, hi)
            rising = mwi[seg] > mwi[lo - 1 : hi - 1]
            idx = lo + np.flatnonzero(rising & (mwi[seg] >= peak[seg]) & (mwi[seg] > 0.0))
            for k in idx.tolist():
                self._candidate(self._features(k), beats)
            self._next = limit
        self._after(limit, beats)
        drop = max(0, self._hist.shape[0] - self._keep)
        if drop:
            self._hist = self._hist[drop:]
            self._hist_start += drop
        return QrsResult(np.array([b for b, _ in beats], dtype=np.int64), np.array([s for _, s in beats], dtype=bool),
                         self.rr.heart_rate_bpm, self.rr.irregularity)

    def _features(self, k: int) -> _Candidate:
        """Candidate at history row ``k``."""
        h = self._hist
        win = h[max(0, k - self._w + 1) : k + 1]
        r_lo = max(0, k - self._back)
        r = r_lo + int(np.argmax(np.abs(h[r_lo : k + 1, 0])))
        start = self._hist_start
        return _Candidate(start + k, float(h[k, 3]), float(win[:, 2].max()), float(np.abs(win[:, 1]).max()), start + r)

    # -- decisions ------------------------------------------------------------------------------

    def _candidate(self, c: _Candidate, beats: list[tuple[int, bool]]) -> None:
        if self._learning is not None:
            if c.i < self._learn_end:
                self._learning.append(c)
                return
            self._end_learning(beats)
        self._searchback_until(c.i, beats)
        self._classify(c, beats)

    def _after(self, known_until: int, beats: list[tuple[int, bool]]) -> None:
        """All candidates before ``known_until`` are decided: end learning, search back if due."""
        if self._learning is not None:
            if known_until < self._learn_end:
                return
            self._end_learning(beats)
        self._searchback_until(known_until, beats)

    def _end_learning(self, beats: list[tuple[int, bool]]) -> None:
        pending, self._learning = self._learning or [], None
        block = self._samples(1.0)
        best: dict[int, float] = {}
        for c in pending:
            if c.amp >= self.config.min_qrs_mv:
                best[c.i // block] = max(best.get(c.i // block, 0.0), c.height)
        self._d.qrs_peaks.extend(best.values())
        self._d.noise_peaks.append(0.0)
        for c in pending:
            self._searchback_until(c.i, beats)
            self._classify(c, beats)

    def _threshold(self) -> float:
        d = self._d
        if not d.qrs_peaks:
            return 0.0  # nothing learnt yet: the amplitude floor alone decides
        spk, npk = _median(d.qrs_peaks), _median(d.noise_peaks)
        return npk + self.config.threshold_ratio * (spk - npk)

    def _classify(self, c: _Candidate, beats: list[tuple[int, bool]]) -> None:
        cfg, d = self.config, self._d
        if c.amp < cfg.min_qrs_mv:
            return
        since = None if d.last_r is None else (c.r - d.last_r) / self.fs
        if since is not None and since < cfg.refractory_s:
            return
        t_wave = since is not None and since < cfg.twave_s and c.slope < 0.5 * d.last_slope
        if not t_wave and c.height > self._threshold():
            self._accept(c, beats, searchback=False)
            return
        d.noise_peaks.append(c.height)
        if since is None or since >= cfg.twave_s:
            d.searchable.append(c)

    def _searchback_until(self, known_until: int, beats: list[tuple[int, bool]]) -> None:
        """Search back while the deadline lies before ``known_until`` (all candidates up to it decided)."""
        d = self._d
        while d.deadline < known_until:
            half = 0.5 * self._threshold()
            eligible = [c for c in d.searchable if c.height > half]
            if eligible:
                best = max(eligible, key=lambda c: c.height)
                d.searchable.remove(best)
                self._accept(best, beats, searchback=True)
            else:
                d.searchable.clear()
                d.deadline += self._mean_rr_s() * self.fs

    def _mean_rr_s(self) -> float:
        mean = self.rr.mean_s(self.config.peaks_kept)
        return self.config.default_rr_s if mean is None else mean

    def _accept(self, c: _Candidate, beats: list[tuple[int, bool]], *, searchback: bool) -> None:
        d = self._d
        if d.last_r is not None:
            if c.r <= d.last_r:
                return
            self.rr.add((c.r - d.last_r) / self.fs)
        d.qrs_peaks.append(c.height)
        d.last_i, d.last_r, d.last_slope = c.i, c.r, c.slope
        d.searchable = [s for s in d.searchable if s.i > c.i]
        d.deadline = c.i + self.config.searchback_rr * self._mean_rr_s() * self.fs
        beats.append((c.r, searchback))


def _median(values: deque[float]) -> float:
    """``float(np.median(values))`` for the few peaks kept (exactly: the middle value, or the mean of the
    two middle ones), without converting them to an array on every candidate."""
    s = sorted(values)
    if any(v != v for v in s):
        return float("nan")
    n = len(s)
    return float(s[n // 2]) if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0
