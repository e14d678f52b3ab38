"""Per-rhythm realism of the simulator: real 12-lead records against synthetic ones of the same rhythm.

For every rhythm group the real records carry (SNOMED ``# Dx:`` codes: sinus, sinus bradycardia and
tachycardia, AF, flutter, PAC, RBBB, LBBB, first-degree AV block), ``n_synthetic`` random simulator
patients of the catalogue rhythm of the same name are synthesised at the records' duration (10 s)
and sampling rate (500 Hz), and both sides go through the same path: the model preprocessing
(:func:`models.preprocessing.prepare_window`, 10 s at 125 Hz, 0.5–40 Hz), the edge's QRS detector on
lead II (:class:`edge.signal.qrs.QrsDetector`) and its ST measurement (:func:`edge.signal.st.measure_st`,
which also gives QRS onset, J point and QRS width on the median beat). From that, per window:

- **rate and RR**: heart rate (60 / mean RR), RMSSD / mean RR, RR CV, and the AF rule's own
  statistic (:func:`edge.signal.rr.irregularity`, version 2's, now the ectopy gate) and the version-3 AF
  detector's score (:class:`edge.signal.af_detector.AfDetector`, NaN for fewer than 10 RR);
- **atrial activity**: P amplitude per lead (peak-to-peak of the median beat 250–10 ms before QRS
  onset) and f-wave amplitude per lead (median peak-to-peak, over TQ segments, of what is left after
  subtracting the median beat: average-beat subtraction, so a sinus P wave cancels and only
  fibrillatory activity and noise remain);
- **intervals**: QRS width, QT (QRS onset to T end, tangent method on the leads with the largest T)
  and QTc (Fridericia, as the simulator's ``qtc_s``);
- **ST level** per lead (J + 60 ms against the PR baseline) and **QRS amplitude** per lead (R/S
  peak-to-peak of the median beat);
- **the classifier's own rhythm features** (:func:`models.features.measure` on II, V1, V5), prefixed
  ``features.``: what the classifier is given besides the leads, so a gap there is a gap it will meet.

The report gives median and interquartile range per group. A record belongs to every group whose
code it carries (an AF record with LBBB counts in both); ``sinus`` is normal sinus rhythm with no
other group's code. The real records are only measured here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.signal.af_detector import AfDetector
from edge.signal.qrs import QrsDetector
from edge.signal.rr import irregularity
from edge.signal.st import measure_st
from firmware_sim.synthesis import SIMULATOR_VERSION, synthesize
from firmware_sim.synthesis.realism import SYNTH_NOISE, read_records
from models.features import measure as measure_features
from models.features import measured_rows
from models.preprocessing import MODEL_FS, WINDOW_S, prepare_window
from protocol.leads import STANDARD_LEADS

RHYTHM_GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("sinus", frozenset({"426783006"})),
    ("sinus_brady", frozenset({"426177001"})),
    ("sinus_tachy", frozenset({"427084000"})),
    ("afib", frozenset({"164889003"})),
    ("aflutter", frozenset({"164890007"})),
    ("pac", frozenset({"284470004", "63593006"})),
    ("rbbb", frozenset({"59118001", "713427006"})),
    ("lbbb", frozenset({"164909002", "733534002"})),
    ("av_block_1", frozenset({"270492004"})),
)
"""Group (= simulator rhythm of the same name) → SNOMED-CT codes."""

PRE_S, POST_S = 0.35, 0.65
"""Beat segment around each R peak (s): long enough for the P wave before and the T wave after."""
P_WINDOW_S = (0.25, 0.01)
"""P wave searched from 250 ms to 10 ms before QRS onset."""
QRS_SPAN_S = (-0.10, 0.12)
"""R/S amplitude read over this span around R (s): wide enough for bundle-branch block."""
T_CLEARANCE_S = 0.25
"""The T peak is searched no later than this before the next R (s), so the next P wave is never taken for it."""
MIN_TQ_S = 0.06
"""TQ segments shorter than this give no f-wave reading."""

SCALARS = ("hr_bpm", "rmssd_over_mean_rr", "rr_cv", "af_irregularity", "af_detector", "qrs_ms", "qt_ms", "qtc_ms")
PER_LEAD = ("p_mv", "f_mv", "st_mv", "amp_mv")
CLASSIFIER_FEATURES = ("heart_rate_bpm", "rr_cv", "rmssd_ratio", "robust_irregularity", "premature_fraction",
                       "qrs_ms", "qtc_ms", "p_amplitude_mv", "st_ii_mv", "st_v1_mv", "st_v5_mv", "t_ii_mv",
                       "t_v1_mv", "t_v5_mv")
"""Fields of :class:`models.features.WindowFeatures` compared (as ``features.<name>``)."""
FEATURES = (SCALARS + tuple(f"{kind}_{lead}" for kind in PER_LEAD for lead in STANDARD_LEADS)
            + tuple(f"features.{name}" for name in CLASSIFIER_FEATURES))
"""Every measured figure of a window, in report order."""
SHOWN = ("hr_bpm", "rr_cv", "rmssd_over_mean_rr", "af_irregularity", "af_detector", "p_mv_II", "p_mv_V1", "f_mv_II", "f_mv_V1",
         "qrs_ms", "qt_ms", "qtc_ms", "st_mv_II", "st_mv_V2", "st_mv_V5", "amp_mv_I", "amp_mv_II", "amp_mv_V1",
         "amp_mv_V3", "amp_mv_V5", "features.heart_rate_bpm", "features.robust_irregularity",
         "features.premature_fraction", "features.qrs_ms", "features.qtc_ms", "features.p_amplitude_mv",
         "features.st_v1_mv", "features.t_ii_mv")
"""The figures the printed table shows (the JSON has all of :data:`FEATURES`)."""


def groups_for_codes(codes: Iterable[str]) -> list[str]:
    """Every rhythm group of a record's SNOMED codes (``sinus`` only without another group's code)."""
    found = set(codes)
    named = [name for name, group in RHYTHM_GROUPS[1:] if group & found]
    if not named and RHYTHM_GROUPS[0][1] & found:
        return ["sinus"]
    return named


def detect_beats(lead: np.ndarray, fs: float = MODEL_FS) -> np.ndarray:
    """R peaks (sample indices) of one preprocessed lead, by the edge's streaming detector fed whole."""
    det = QrsDetector(fs)
    first = det.process(np.asarray(lead, dtype=np.float64))
    last = det.finish()
    return np.unique(np.concatenate([first.beats, last.beats]).astype(np.int64))


def _tangent_t_end(y: np.ndarray, t: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """(T end s, |T peak| mV) of one baseline-corrected median-beat lead: the steepest descent after the
    T peak (in [lo, hi] s) extended to the baseline (tangent method); NaN when it does not land."""
    sel = (t >= lo) & (t <= hi)
    if sel.sum() < 4:
        return math.nan, 0.0
    idx = np.flatnonzero(sel)
    k = idx[int(np.argmax(np.abs(y[idx])))]
    peak = float(y[k])
    if abs(peak) < 1e-6:
        return math.nan, 0.0
    after = np.arange(k, min(idx[-1] + int(0.15 * MODEL_FS), y.size - 1))
    if after.size < 2:
        return math.nan, abs(peak)
    slope = np.gradient(y, t)[after] * np.sign(peak)              # most negative = steepest return
    j = after[int(np.argmin(slope))]
    s = float(np.gradient(y, t)[j])
    if s == 0.0 or np.sign(s) == np.sign(peak):
        return math.nan, abs(peak)
    return float(t[j] - y[j] / s), abs(peak)


def measure_window(window: np.ndarray, fs: float = MODEL_FS) -> dict[str, float]:
    """Every figure of :data:`FEATURES` for one preprocessed window ``(12, n)`` mV (NaN where not measurable)."""
    x = np.asarray(window, dtype=np.float64)
    out = dict.fromkeys(FEATURES, math.nan)
    classifier = measure_features(x[measured_rows(STANDARD_LEADS)], fs)
    for name in CLASSIFIER_FEATURES:
        out[f"features.{name}"] = float(getattr(classifier, name))
    beats = detect_beats(x[STANDARD_LEADS.index("II")], fs)
    if beats.size < 3:
        return out
    rr = np.diff(beats) / fs
    mean_rr = float(rr.mean())
    out["hr_bpm"] = 60.0 / mean_rr
    out["rr_cv"] = float(rr.std() / mean_rr)
    out["rmssd_over_mean_rr"] = float(np.sqrt(np.mean(np.diff(rr) ** 2)) / mean_rr) if rr.size >= 2 else math.nan
    out["af_irregularity"] = irregularity(rr)
    out["af_detector"] = AfDetector().extend(rr)     # the AF rule's own score (version 3; ≥ 0.725 reads as AF)

    st = measure_st(x, fs, beats)
    for lead, m in st.st.items():
        out[f"st_mv_{lead}"] = m.deviation_mv
    if st.qrs_ms is not None:
        out["qrs_ms"] = st.qrs_ms
    onset = (st.j_ms - st.qrs_ms) / 1000.0 if st.qrs_ms is not None and st.j_ms is not None else math.nan
    j = st.j_ms / 1000.0 if st.j_ms is not None else 0.08

    pre, post = int(round(PRE_S * fs)), int(round(POST_S * fs))
    full = beats[(beats - pre >= 0) & (beats + post < x.shape[1])]
    if full.size < 2:
        return out
    t = np.arange(-pre, post + 1) / fs
    seg = x[:, full[:, None] + np.arange(-pre, post + 1)[None, :]]   # (leads, beats, L)
    template = np.median(seg, axis=1)                                 # (leads, L)
    b0 = (st.baseline_ms / 1000.0) if st.baseline_ms is not None else -0.08
    base_sel = (t >= b0) & (t <= b0 + 0.02) if st.baseline_ms is not None else (t >= -0.08) & (t <= -0.04)
    beat = template - template[:, base_sel].mean(axis=1, keepdims=True)

    span = (t >= QRS_SPAN_S[0]) & (t <= QRS_SPAN_S[1])
    amp = np.ptp(beat[:, span], axis=1)
    # T end: tangent method on the three leads with the largest T wave, median of their T ends
    median_rr = float(np.median(rr))
    t_hi = min(POST_S - 0.02, 0.55, median_rr - T_CLEARANCE_S)      # T peak, not the next P
    ends = [_tangent_t_end(beat[i], t, j + 0.06, t_hi) for i in range(beat.shape[0])]
    ranked = sorted((e for e in ends if math.isfinite(e[0])), key=lambda e: -e[1])[:3]
    t_end = float(np.median([e[0] for e in ranked])) if ranked else math.nan
    if math.isfinite(t_end) and math.isfinite(onset) and t_end < median_rr - 0.1:
        out["qt_ms"] = 1000.0 * (t_end - onset)
        out["qtc_ms"] = out["qt_ms"] / median_rr ** (1.0 / 3.0)

    # P wave: 250–10 ms before QRS onset, but not before the previous beat's T end (fast rates)
    ref = onset if math.isfinite(onset) else -0.05
    prev_t_end = (t_end if math.isfinite(t_end) else j + 0.32) - median_rr
    p_sel = (t >= max(ref - P_WINDOW_S[0], prev_t_end + 0.02)) & (t <= ref - P_WINDOW_S[1])
    p_amp = np.ptp(beat[:, p_sel], axis=1) if p_sel.sum() >= 3 else np.full(len(STANDARD_LEADS), math.nan)

    # f-waves: TQ of each beat (from the previous T end + 40 ms to 20 ms before QRS onset) after
    # subtracting the median beat
    residual = seg - template[:, None, :]
    tq_end = (ref - 0.02)
    prev_rr = {int(b): float(r) for b, r in zip(beats[1:], rr, strict=True)}
    tq_t_end = t_end if math.isfinite(t_end) else j + 0.32
    f_values = []
    for k, b in enumerate(full):
        if int(b) not in prev_rr:
            continue
        start = max(-PRE_S, tq_t_end + 0.04 - prev_rr[int(b)])
        if tq_end - start < MIN_TQ_S:
            continue
        sel = (t >= start) & (t <= tq_end)
        f_values.append(np.ptp(residual[:, k, sel], axis=1))
    f_amp = np.median(np.array(f_values), axis=0) if f_values else np.full(len(STANDARD_LEADS), math.nan)

    for i, lead in enumerate(STANDARD_LEADS):
        out[f"amp_mv_{lead}"] = float(amp[i])
        out[f"p_mv_{lead}"] = float(p_amp[i])
        out[f"f_mv_{lead}"] = float(f_amp[i])
    return out


@dataclass(frozen=True)
class Distribution:
    """Median and interquartile range of one figure over a set of windows (NaN-free count ``n``)."""

    median: float
    q25: float
    q75: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
        if v.size == 0:
            return cls(math.nan, math.nan, math.nan, 0)
        q25, med, q75 = np.percentile(v, [25, 50, 75])
        return cls(float(med), float(q25), float(q75), int(v.size))

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready (NaN → null)."""
        def num(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 5)
        return {"median": num(self.median), "q25": num(self.q25), "q75": num(self.q75), "n": self.n}

    def cell(self, digits: int) -> str:
        if self.n == 0:
            return "—"
        return f"{self.median:.{digits}f} [{self.q25:.{digits}f}–{self.q75:.{digits}f}]"


def summarise(rows: Sequence[Mapping[str, float]]) -> dict[str, Distribution]:
    """Per figure, its distribution over ``rows`` (one dict of :func:`measure_window` per window)."""
    return {name: Distribution.of([r[name] for r in rows]) for name in FEATURES}


@dataclass(frozen=True)
class RhythmComparison:
    """One rhythm group: the real windows' figures against the synthetic ones'."""

    name: str
    real: dict[str, Distribution]
    synthetic: dict[str, Distribution]
    n_real: int
    n_synthetic: int
    records: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"real": {k: v.to_dict() for k, v in self.real.items()},
                "synthetic": {k: v.to_dict() for k, v in self.synthetic.items()},
                "n_real": self.n_real, "n_synthetic": self.n_synthetic, "records": list(self.records)}


@dataclass(frozen=True)
class RhythmRealism:
    """Every group's comparison, plus how it was made."""

    rhythms: dict[str, RhythmComparison]
    seed: int
    n_synthetic: int
    seconds: float = WINDOW_S
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``{"rhythms": {name: {"real", "synthetic", "n_real", ...}}, "simulator_version", ...}``."""
        return {"rhythms": {k: v.to_dict() for k, v in self.rhythms.items()},
                "simulator_version": SIMULATOR_VERSION, "seed": self.seed, "n_synthetic": self.n_synthetic,
                "seconds": self.seconds, "features": list(FEATURES), **self.extra}

    def format(self, shown: Sequence[str] = SHOWN) -> str:
        """Side-by-side table per group: median [IQR] real and synthetic."""
        lines = [f"simulator version {SIMULATOR_VERSION}; {self.seconds:g} s windows at {MODEL_FS:g} Hz; "
                 "median [IQR] per group"]
        for name, cmp in self.rhythms.items():
            lines += ["", f"{name}: real n={cmp.n_real}, synthetic n={cmp.n_synthetic}",
                      f"  {'figure':<30} {'real':>26} {'synthetic':>26}"]
            for key in shown:
                digits = 0 if key.endswith(("_ms", "_bpm")) else 3
                lines.append(f"  {key:<30} {cmp.real[key].cell(digits):>26} {cmp.synthetic[key].cell(digits):>26}")
        return "\n".join(lines)


def synthetic_rows(rhythm: str, n: int, *, seed: int, seconds: float = WINDOW_S, fs: float = 500.0) -> list[dict[str, float]]:
    """Figures of ``n`` random simulator patients in ``rhythm`` (light recording noise), as real windows."""
    rows = []
    for k in range(n):
        s = synthesize(rhythm, seconds=seconds, fs=fs, seed=seed + k, noise=SYNTH_NOISE)
        rows.append(measure_window(prepare_window(s.signals, s.fs)))
    return rows


def compare_rhythms(folder: Path, *, n_synthetic: int = 30, seed: int = 0, seconds: float = WINDOW_S,
                    fs: float = 500.0) -> RhythmRealism:
    """Measure every record in ``folder`` and ``n_synthetic`` simulator patients per rhythm group found."""
    records = read_records(folder)
    if not records:
        raise FileNotFoundError(f"no WFDB records (*.hea) in {folder}")
    names = [p.stem for p in sorted(Path(folder).glob("*.hea"))]
    by_group: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for rec_id, rec in zip(names, records, strict=True):
        groups = groups_for_codes(rec.codes)
        if not groups or rec.signals.shape[0] < seconds * rec.fs:
            continue
        row = measure_window(prepare_window(rec.signals, rec.fs))
        for g in groups:
            by_group.setdefault(g, []).append((rec_id, row))
    out: dict[str, RhythmComparison] = {}
    for gi, (name, _) in enumerate(RHYTHM_GROUPS):
        if name not in by_group:
            continue
        real = by_group[name]
        synth = synthetic_rows(name, n_synthetic, seed=seed * 100_000 + gi * 1000, seconds=seconds, fs=fs)
        out[name] = RhythmComparison(name, summarise([r for _, r in real]), summarise(synth), len(real),
                                     len(synth), tuple(i for i, _ in real))
    return RhythmRealism(out, seed, n_synthetic, seconds)
