"""ST deviation per lead over one analysis window: J+60 ms against the PR baseline, median over beats.

:func:`measure_st` takes one window of leads (the 12 of :attr:`edge.inference.pipeline.WindowResult.leads12`,
or just the measured ones in rules-only mode: any subset of the standard leads, band-passed 0.5–40 Hz,
mV, rows = leads), the per-lead uncertainty (half-width of the reconstruction's 90 % band, 0 for measured
leads) and the R peaks inside the window (sample indices on the window's grid, from the session's QRS
detector on lead II), and answers with one :class:`StMeasurement` per lead.

Method (what a 12-lead ECG cart does, simplified to the edge's 125 Hz):

1. **Beats.** Each R peak is moved to the peak of the QRS vector (largest sum of squares of the
   measured leads) within ± ``r_search_s``, so that an S deeper than the R cannot shift it; beats whose PR–ST span is not wholly inside the window are
   left out, so are premature beats (RR < ``premature_rr`` × median RR: their PR baseline sits on the
   previous T wave) and beats whose QRS does not match the median beat (correlation of the measured
   leads over the QRS < ``min_correlation``: ectopic or noisy beats). At least ``min_beats`` normal
   beats must remain, else there is no measurement.
2. **Fiducials on the median beat** (sample-wise median of the kept beats, measured leads only, so a
   reconstruction error cannot move them, interpolated to a 1 ms grid by a cubic spline): the spatial
   slope ``Σ|dx/dt|`` over the measured leads;
   QRS onset and offset (the J point) are where it falls below ``slope_fraction`` of its peak near R
   for ``quiet_s``, walking out from R. If the J point is not measurable (it would lie outside
   ``j_range_s`` after R) J = R + ``fallback_j_s`` (80 ms) and :attr:`StResult.j_measured` says so.
   A median QRS wider than ``max_qrs_s`` (ventricular rhythm, bundle-branch block) gives no
   measurement: ST deviation there is secondary to the conduction, not ischaemia.
3. **Baseline**: the flattest ``baseline_s`` (≈ 20 ms) stretch of the median beat (smallest spatial
   slope) in the PR segment, ``pr_search_s`` before QRS onset; without a measured onset, the mean of
   [R − 80 ms, R − 40 ms].
4. **ST level**: per beat and lead, mean of [J + 60 ms ± 10 ms] minus the mean over the baseline
   stretch; the lead's deviation is the median over beats (elevation positive).
5. **Reconstructed leads** (those in ``reconstructed``) carry the mean of their uncertainty over the
   ST samples of the kept beats, so the ST rule can demand that the near edge of the band reaches its
   threshold.

numpy and scipy, no state: one call per window, about a millisecond.

On the simulator's 12 leads (10 s windows through ``prepare_window``, 30 patients each) the median
deviation is +0.33/+0.37/+0.29 mV in V2/V3/V4 for an anterior STEMI, +0.26/+0.34/+0.30 mV in
II/III/aVF for an inferior one, +0.19/+0.21/+0.25/+0.22 mV in I/aVL/V5/V6 for a lateral one and
−0.13/−0.12/−0.13 mV in II/aVF/V4 with +0.09 mV in aVR for diffuse ST depression. Sinus reads a few
hundredths of a mV (median |ST| 0.01–0.03 mV per lead), more in V2–V5 for patients whose tall T
wave starts right after the QRS (up to +0.22 mV in V4 for one of 30 synthetic patients, T ×2 at
91 bpm): J + 60 ms then lies on the T upstroke, as it does on real ECGs at fast rates.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import CubicSpline

from edge.signal.median import median, median_rows
from protocol.leads import STANDARD_LEADS, WEARABLE_LEADS


@dataclass(frozen=True)
class StMeasurement:
    """ST deviation of one lead over a window (mV, J+60 ms minus PR baseline; + elevation).

    ``reconstructed``: the lead was synthesised from the measured ones (3→12 VAE) rather than
    recorded; ``uncertainty_mv``: half-width of its 90 % band (0 for a measured lead).
    """

    deviation_mv: float
    reconstructed: bool = False
    uncertainty_mv: float = 0.0


@dataclass(frozen=True)
class StConfig:
    """Measurement parameters (s unless named otherwise)."""

    j_offset_s: float = 0.060
    """ST is read at J + 60 ms …"""
    st_half_s: float = 0.010
    """… averaged over ± 10 ms."""
    baseline_s: float = 0.020
    """Length of the flattest PR stretch taken as isoelectric."""
    pr_search_s: float = 0.080
    """How far before QRS onset the baseline is searched."""
    fallback_baseline_s: tuple[float, float] = (-0.080, -0.040)
    """Baseline relative to R when QRS onset is not measurable."""
    fallback_j_s: float = 0.080
    """J = R + 80 ms when the QRS offset is not measurable."""
    j_range_s: tuple[float, float] = (0.016, 0.120)
    """A measured J point must lie this far after R."""
    max_qrs_s: float = 0.120
    """Median QRS at least this wide: no ST measurement."""
    slope_fraction: float = 0.12
    quiet_s: float = 0.016
    r_search_s: float = 0.040
    premature_rr: float = 0.8
    min_correlation: float = 0.9
    min_beats: int = 3


@dataclass(frozen=True)
class StResult:
    """ST of one window. ``st`` is empty when there was no measurement (``reason`` says why)."""

    st: dict[str, StMeasurement] = field(default_factory=dict)
    beats_used: int = 0
    beats_given: int = 0
    j_ms: float | None = None
    """J point after R on the median beat (ms)."""
    j_measured: bool = False
    """False: J fell back to R + ``fallback_j_s``."""
    qrs_ms: float | None = None
    """QRS duration of the median beat (ms), None if onset or offset was not measurable."""
    baseline_ms: float | None = None
    """Start of the baseline stretch relative to R (ms, negative)."""
    reason: str = ""

    @property
    def measured(self) -> bool:
        return bool(self.st)


def _samples(s: float, fs: float) -> int:
    return int(round(s * fs))


def _ms(s: float) -> int:
    """Steps of the 1 ms fiducial grid in ``s`` seconds."""
    return max(1, int(round(s * 1000.0)))


def _mean_between(seg: np.ndarray, p0: float, p1: float, step: float = 0.25) -> np.ndarray:
    """Mean of ``seg`` (last axis = samples) over fractional sample positions [p0, p1], linearly
    interpolated every ``step`` samples: a weighted sum of a few samples, so one product with the
    weights instead of two gathers of every beat and lead."""
    pos = np.arange(p0, p1 + 1e-9, step) if p1 > p0 else np.array([p0])
    pos = np.clip(pos, 0.0, seg.shape[-1] - 1.000001)
    i0 = np.floor(pos).astype(np.int64)
    w = pos - i0
    weights = np.bincount(i0, 1.0 - w, seg.shape[-1]) + np.bincount(i0 + 1, w, seg.shape[-1])
    return seg @ (weights / pos.size)


@functools.lru_cache(maxsize=32)
def _spline_derivative(fs: float, pre: int, post: int) -> tuple[np.ndarray, np.ndarray]:
    """The 1 ms grid of a beat segment (samples ``-pre … post`` around R at ``fs``) and the matrix ``D``
    with ``y @ D`` = the first derivative, on that grid, of the not-a-knot cubic spline through ``y``.

    A cubic spline is linear in the values it interpolates, so its derivative on a fixed grid is one
    matrix, made once per (rate, segment) by fitting the spline to the identity: per window this is a
    small matrix product instead of a spline fit (equal to ``CubicSpline(t, y, axis=1)(grid, 1)`` to
    rounding).
    """
    t = np.arange(-pre, post + 1) / fs
    grid = np.arange(t[0], t[-1], 0.001)
    return grid, np.ascontiguousarray(CubicSpline(t, np.eye(t.size), axis=1)(grid, 1))


def measure_st(
    leads: np.ndarray,
    fs: float,
    beats: Sequence[int] | np.ndarray,
    *,
    lead_names: Sequence[str] = STANDARD_LEADS,
    uncertainty: np.ndarray | None = None,
    reconstructed: Collection[str] = (),
    config: StConfig | None = None,
) -> StResult:
    """ST deviation per lead of one window (module docstring). ``leads``: ``(len(lead_names), n)`` mV."""
    c = config or StConfig()
    x = np.asarray(leads, dtype=np.float64)
    names = tuple(lead_names)
    if x.ndim != 2 or x.shape[0] != len(names):
        raise ValueError(f"leads must be (len(lead_names)={len(names)}, n), got {x.shape}")
    n = x.shape[1]
    given = np.unique(np.asarray(beats, dtype=np.int64))
    recon = {lead for lead in names if lead in set(reconstructed)}
    measured = [i for i, lead in enumerate(names) if lead not in recon] or list(range(len(names)))

    def fail(reason: str, used: int = 0, **extra: object) -> StResult:
        return StResult(beats_used=used, beats_given=int(given.size), reason=reason, **extra)  # type: ignore[arg-type]

    if given.size < c.min_beats:
        return fail(f"{given.size} beats in the window, {c.min_beats} needed")
    # 1. refine R to the peak of the QRS vector, keep beats whose PR..ST span is inside the window and
    #    that are not premature
    search = max(1, _samples(c.r_search_s, fs))
    pre = _samples(c.pr_search_s + c.max_qrs_s + 0.02, fs)
    post = _samples(c.j_range_s[1] + c.j_offset_s + c.st_half_s, fs) + 2
    power = (x[measured] ** 2).sum(axis=0)
    given = given[(given >= 0) & (given < n)]
    around = given[:, None] + np.arange(-search, search + 1)               # (beats, 2·search + 1)
    inside = (around >= 0) & (around < n)
    candidates = np.where(inside, power[np.clip(around, 0, n - 1)], -np.inf)
    r = np.unique(np.take_along_axis(around, candidates.argmax(axis=1)[:, None], axis=1)[:, 0])
    rr = np.diff(r)
    keep = (r - pre >= 0) & (r + post < n)
    if rr.size >= 2:
        keep &= ~np.concatenate([[False], rr < c.premature_rr * median(rr)])
    r = r[keep]
    if r.size < c.min_beats:
        return fail(f"{r.size} complete regular beats in the window, {c.min_beats} needed")
    offsets = np.arange(-pre, post + 1)
    seg = x[:, r[:, None] + offsets[None, :]].transpose(1, 0, 2)          # (beats, leads, L); R at index pre
    # 2. beats like the median beat on the measured leads over the QRS
    q_lo, q_hi = pre - _samples(0.06, fs), pre + _samples(0.08, fs) + 1
    qrs = seg[:, measured, q_lo:q_hi].reshape(r.size, -1)
    template = median_rows(qrs)
    qc = qrs - qrs.mean(axis=1, keepdims=True)
    tc = template - template.mean()
    denom = np.linalg.norm(qc, axis=1) * np.linalg.norm(tc)
    corr = np.where(denom > 0, qc @ tc / np.where(denom > 0, denom, 1.0), 0.0)
    normal = corr >= c.min_correlation
    seg, r = seg[normal], r[normal]
    if r.size < c.min_beats:
        return fail(f"{r.size} beats match the median beat, {c.min_beats} needed", int(r.size))
    # fiducials on the median beat of the measured leads, on a 1 ms grid (cubic spline: its derivative
    # is the slope), in seconds relative to R
    median_beat = median_rows(seg[:, measured])                           # (measured, L)
    t = offsets / fs
    grid, derivative = _spline_derivative(float(fs), pre, post)
    slope = np.abs(median_beat @ derivative).sum(axis=0)
    centre = int(np.argmin(np.abs(grid)))
    core = _ms(0.03)
    peak = float(slope[max(0, centre - core) : centre + core + 1].max())
    quiet = max(1, _ms(c.quiet_s))
    threshold = c.slope_fraction * peak

    # runs of ``quiet`` ms below threshold: run_starts[s] when slope[s : s + quiet] is all below
    below = np.concatenate([[0], np.cumsum(slope < threshold)])
    run_starts = np.flatnonzero(below[quiet:] - below[:-quiet] == quiet)

    def walk(step: int) -> float | None:
        """Time (s from R) of the first of ``quiet`` ms below threshold walking out from R (the sample
        of such a run nearest R, on R's side of it excluded); None if none."""
        if step > 0:
            after = run_starts[run_starts > centre]
            return float(grid[after[0]]) if after.size else None
        before = run_starts[run_starts + quiet - 1 < centre]
        return float(grid[before[-1] + quiet - 1]) if before.size else None

    onset = walk(-1) if peak > 0 else None
    offset = walk(+1) if peak > 0 else None
    j_measured = offset is not None and c.j_range_s[0] <= offset <= c.j_range_s[1]
    j = offset if j_measured and offset is not None else c.fallback_j_s
    qrs_ms = None
    if onset is not None and offset is not None and j_measured:
        qrs_ms = 1000.0 * (offset - onset)
        if qrs_ms >= 1000.0 * c.max_qrs_s:
            return fail(f"median QRS {qrs_ms:.0f} ms wide: ST not interpretable", int(r.size),
                        qrs_ms=qrs_ms, j_ms=1000.0 * j, j_measured=True)
    # 3. baseline: the flattest stretch of the PR segment, ending at QRS onset at the latest
    if onset is not None and onset - c.baseline_s >= t[0]:
        lo = int(np.searchsorted(grid, max(t[0], onset - c.pr_search_s)))
        hi = int(np.searchsorted(grid, onset))
        width = _ms(c.baseline_s)
        if hi - lo > width:
            cum = np.concatenate([[0.0], np.cumsum(slope[lo:hi])])
            b0 = float(grid[lo + int(np.argmin(cum[width:] - cum[:-width]))])
        else:
            b0 = onset - c.baseline_s
        b1 = b0 + c.baseline_s
    else:
        b0, b1 = c.fallback_baseline_s
    # 4. ST level per beat and lead (J + 60 ms ± 10 ms minus baseline), median over beats
    st0, st1 = j + c.j_offset_s - c.st_half_s, j + c.j_offset_s + c.st_half_s
    level = _mean_between(seg, (st0 - t[0]) * fs, (st1 - t[0]) * fs) \
        - _mean_between(seg, (b0 - t[0]) * fs, (b1 - t[0]) * fs)          # (beats, leads)
    deviation = median_rows(level)
    # 5. uncertainty of reconstructed leads over the ST samples of the kept beats
    unc = np.zeros(len(names))
    if uncertainty is not None and recon:
        u = np.asarray(uncertainty, dtype=np.float64)
        if u.shape != x.shape:
            raise ValueError(f"uncertainty must have the shape of leads {x.shape}, got {u.shape}")
        useg = u[:, r[:, None] + offsets[None, :]].transpose(1, 0, 2)
        unc = _mean_between(useg, (st0 - t[0]) * fs, (st1 - t[0]) * fs).mean(axis=0)
    st = {
        lead: StMeasurement(float(deviation[i]), reconstructed=lead in recon,
                            uncertainty_mv=float(unc[i]) if lead in recon else 0.0)
        for i, lead in enumerate(names)
    }
    return StResult(st, beats_used=int(r.size), beats_given=int(given.size), j_ms=1000.0 * j,
                    j_measured=j_measured, qrs_ms=qrs_ms, baseline_ms=1000.0 * b0)


def default_reconstructed(lead_names: Sequence[str]) -> tuple[str, ...]:
    """The leads of ``lead_names`` the wearable does not measure (what the 3→12 model reconstructs)."""
    return tuple(lead for lead in lead_names if lead not in WEARABLE_LEADS)
