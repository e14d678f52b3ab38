"""How close synthetic 12-lead ECGs are to real ones: inter-lead correlation and lead amplitudes.

For a folder of real 12-lead WFDB records (e.g. the CinC 2021 sample) and a synthetic population
with the same rhythm mix (from the records' SNOMED ``# Dx:`` codes), both after a 0.5–40 Hz
band-pass, this computes (a) the median over records of the 12×12 inter-lead Pearson correlation
matrix and (b) the median per-lead amplitude (1st–99th percentile span, mV). The report gives the
Frobenius distance between the two median matrices and the per-lead amplitude ratio synth/real.

The real records are only measured here; nothing in the synthesiser is fitted to them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import butter, sosfiltfilt

from firmware_sim.synthesis.engine import synthesize
from firmware_sim.synthesis.noise import NoiseSpec
from protocol.leads import STANDARD_LEADS, canonical_lead_name

SNOMED_RHYTHMS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"164909002", "733534002"}), "lbbb"),
    (frozenset({"59118001", "713427006"}), "rbbb"),
    (frozenset({"164889003"}), "afib"),
    (frozenset({"164890007"}), "aflutter"),
    (frozenset({"427172004", "17338001"}), "pvc"),
    (frozenset({"284470004", "63593006"}), "pac"),
    (frozenset({"111975006"}), "long_qt"),
    (frozenset({"59931005"}), "t_inversion"),
    (frozenset({"270492004"}), "av_block_1"),
    (frozenset({"427084000"}), "sinus_tachy"),
    (frozenset({"426177001"}), "sinus_brady"),
)
"""SNOMED-CT codes → catalogue rhythm, in priority order (first match wins; otherwise ``sinus``)."""

RATE_CODES: Mapping[str, tuple[float, float]] = {"427084000": (105.0, 140.0), "426177001": (45.0, 58.0)}
"""Sinus tachycardia / bradycardia codes → heart-rate range (bpm) applied to the chosen rhythm."""

SYNTH_NOISE = NoiseSpec(baseline_mv=0.05, emg_mv=0.01)
"""Light recording noise for the synthetic population (a resting 12-lead recording)."""

BAND_HZ = (0.5, 40.0)


@dataclass(frozen=True)
class SetSummary:
    """Median inter-lead correlation (12×12) and median lead amplitudes (12, mV) of a record set."""

    median_correlation: np.ndarray
    median_amplitude_mv: np.ndarray
    n_records: int


@dataclass(frozen=True)
class RealismReport:
    """Real vs synthetic summaries and the two distances."""

    real: SetSummary
    synthetic: SetSummary
    rhythm_mix: Mapping[str, int]

    @property
    def frobenius_distance(self) -> float:
        """‖median corr(synthetic) − median corr(real)‖_F."""
        return float(np.linalg.norm(self.synthetic.median_correlation - self.real.median_correlation))

    @property
    def amplitude_ratio(self) -> dict[str, float]:
        """Per lead: median amplitude synthetic / real."""
        ratio = self.synthetic.median_amplitude_mv / self.real.median_amplitude_mv
        return {lead: float(r) for lead, r in zip(STANDARD_LEADS, ratio, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "frobenius_distance": self.frobenius_distance,
            "amplitude_ratio": self.amplitude_ratio,
            "real_amplitude_mv": dict(zip(STANDARD_LEADS, self.real.median_amplitude_mv.tolist(), strict=True)),
            "synthetic_amplitude_mv": dict(zip(STANDARD_LEADS, self.synthetic.median_amplitude_mv.tolist(), strict=True)),
            "real_median_correlation": self.real.median_correlation.tolist(),
            "synthetic_median_correlation": self.synthetic.median_correlation.tolist(),
            "n_real": self.real.n_records,
            "n_synthetic": self.synthetic.n_records,
            "rhythm_mix": dict(self.rhythm_mix),
        }

    def format(self) -> str:
        """A readable table."""
        lines = [
            f"real records: {self.real.n_records}   synthetic: {self.synthetic.n_records}   "
            f"rhythm mix: {', '.join(f'{k} {v}' for k, v in sorted(self.rhythm_mix.items()))}",
            f"Frobenius distance of median inter-lead correlation: {self.frobenius_distance:.2f}",
            "",
            f"{'lead':>5} {'real mV':>8} {'synth mV':>9} {'ratio':>6}   corr with V1 real/synth",
        ]
        v1 = STANDARD_LEADS.index("V1")
        for i, lead in enumerate(STANDARD_LEADS):
            lines.append(
                f"{lead:>5} {self.real.median_amplitude_mv[i]:8.2f} {self.synthetic.median_amplitude_mv[i]:9.2f} "
                f"{self.amplitude_ratio[lead]:6.2f}   {self.real.median_correlation[v1, i]:+.2f} / "
                f"{self.synthetic.median_correlation[v1, i]:+.2f}")
        return "\n".join(lines)


def bandpass(signals: np.ndarray, fs: float) -> np.ndarray:
    """Zero-phase 0.5–40 Hz band-pass (2nd-order Butterworth) along axis 0."""
    sos = butter(2, BAND_HZ, btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, signals, axis=0)


def summarise(records: Iterable[tuple[np.ndarray, float]]) -> SetSummary:
    """Median correlation and amplitude over ``(signals (n, 12) mV, fs Hz)`` records."""
    corrs, amps = [], []
    for signals, fs in records:
        f = bandpass(np.asarray(signals, dtype=float), fs)
        with np.errstate(invalid="ignore", divide="ignore"):
            corrs.append(np.corrcoef(f.T))
        amps.append(np.percentile(f, 99, axis=0) - np.percentile(f, 1, axis=0))
    return SetSummary(np.nanmedian(np.array(corrs), axis=0), np.median(np.array(amps), axis=0), len(amps))


@dataclass(frozen=True)
class RealRecord:
    """One real record: signals (n, 12) in mV in standard lead order, fs (Hz), SNOMED codes."""

    signals: np.ndarray
    fs: float
    codes: tuple[str, ...]


def read_records(folder: Path) -> list[RealRecord]:
    """Every 12-lead WFDB record (``*.hea``) in ``folder``, leads reordered to the standard order."""
    import wfdb

    out = []
    for header in sorted(Path(folder).glob("*.hea")):
        rec = wfdb.rdrecord(str(header.with_suffix("")))
        names = [canonical_lead_name(n) for n in rec.sig_name]
        order = [names.index(lead) for lead in STANDARD_LEADS]
        codes: tuple[str, ...] = ()
        for comment in rec.comments or []:
            if comment.strip().startswith("Dx:"):
                codes = tuple(c.strip() for c in comment.split(":", 1)[1].split(","))
        out.append(RealRecord(np.nan_to_num(rec.p_signal[:, order]), float(rec.fs), codes))
    return out


def rhythm_for_codes(codes: Sequence[str], rng: np.random.Generator) -> tuple[str, dict[str, float]]:
    """Catalogue rhythm (and heart-rate parameter) for a record's SNOMED codes."""
    found = set(codes)
    rhythm = next((name for group, name in SNOMED_RHYTHMS if group & found), "sinus")
    params: dict[str, float] = {}
    if rhythm not in ("sinus_tachy", "sinus_brady", "afib", "aflutter"):
        for code, (lo, hi) in RATE_CODES.items():
            if code in found:
                params["heart_rate"] = float(rng.uniform(lo, hi))
    return rhythm, params


def realism_report(folder: Path, *, seed: int = 0, seconds: float = 10.0, fs: float = 500.0) -> RealismReport:
    """Compare the records in ``folder`` with one synthetic patient per record (same rhythm mix)."""
    records = read_records(folder)
    if not records:
        raise FileNotFoundError(f"no WFDB records (*.hea) in {folder}")
    rng = np.random.default_rng(seed)
    synth: list[tuple[np.ndarray, float]] = []
    mix: Counter[str] = Counter()
    for i, rec in enumerate(records):
        rhythm, params = rhythm_for_codes(rec.codes, rng)
        mix[rhythm] += 1
        s = synthesize(rhythm, seconds=seconds, fs=fs, seed=seed * 1000 + i, noise=SYNTH_NOISE, params=params)
        synth.append((s.signals, s.fs))
    real = summarise((r.signals, r.fs) for r in records)
    return RealismReport(real, summarise(synth), dict(mix))


def main() -> None:
    """Print the report for ``../shared/tune/cinc2021`` (or the folder given as argument)."""
    import sys

    default = Path(__file__).resolve().parents[2].parent / "shared" / "tune" / "cinc2021"
    print(realism_report(Path(sys.argv[1]) if len(sys.argv) > 1 else default).format())


if __name__ == "__main__":
    main()
