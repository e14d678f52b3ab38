"""Metrics of a reconstruction and evaluation on real 12-lead records (numpy; ONNX Runtime for the VAE).

Per lead: Pearson r (mean over windows of the per-window r; windows where the true lead is flat
are left out) and RMSE in µV over all samples. Means are taken over the reconstructed leads
I, III, aVR, aVL, aVF, V2, V3, V4, V6.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.preprocessing import prepare_record, split_windows
from models.reconstruction import INPUT_INDEX, RECONSTRUCTED_LEADS
from protocol.leads import STANDARD_LEADS

if TYPE_CHECKING:
    from firmware_sim.records import Recording

log = logging.getLogger(__name__)

Reconstructor = Callable[[np.ndarray], np.ndarray]
Generic = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(B, 3, 1250) II, V1, V5 → (B, 12, 1250) standard leads."""


@dataclass
class _Acc:
    r_sum: np.ndarray = field(default_factory=lambda: np.zeros(12))
    r_n: np.ndarray = field(default_factory=lambda: np.zeros(12))
    se_sum: np.ndarray = field(default_factory=lambda: np.zeros(12))
    n: int = 0

    def add(self, truth: np.ndarray, pred: np.ndarray) -> None:
        """truth, pred: (B, 12, n) mV."""
        t = truth.astype(np.float64)
        p = pred.astype(np.float64)
        tc = t - t.mean(axis=-1, keepdims=True)
        pc = p - p.mean(axis=-1, keepdims=True)
        tn, pn = np.sqrt((tc**2).sum(-1)), np.sqrt((pc**2).sum(-1))
        ok = (tn > 1e-6) & (pn > 1e-9)
        r = np.where(ok, (tc * pc).sum(-1) / np.where(ok, tn * pn, 1.0), 0.0)
        self.r_sum += r.sum(0)
        self.r_n += ok.sum(0)
        self.se_sum += ((t - p) ** 2).sum(axis=(0, 2))
        self.n += t.shape[0] * t.shape[2]

    def result(self) -> dict[str, Any]:
        per_lead = {}
        for i, lead in enumerate(STANDARD_LEADS):
            if lead not in RECONSTRUCTED_LEADS:
                continue
            r = self.r_sum[i] / self.r_n[i] if self.r_n[i] else float("nan")
            rmse = np.sqrt(self.se_sum[i] / self.n) * 1000.0 if self.n else float("nan")
            per_lead[lead] = {"r": round(float(r), 4), "rmse_uv": round(float(rmse), 2)}
        return {
            "per_lead": per_lead,
            "mean_r": round(float(np.mean([v["r"] for v in per_lead.values()])), 4),
            "mean_rmse_uv": round(float(np.mean([v["rmse_uv"] for v in per_lead.values()])), 2),
        }


def lead_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Per-lead r and RMSE (µV) of (B, 12, n) arrays, with means over the reconstructed leads."""
    acc = _Acc()
    acc.add(np.asarray(truth), np.asarray(pred))
    return acc.result()


def evaluate_windows(windows: np.ndarray, models: dict[str, Reconstructor], batch: int = 64) -> dict[str, Any]:
    """Metrics of each model on (n, 12, 1250) windows (standard lead order)."""
    accs = {name: _Acc() for name in models}
    for s in range(0, windows.shape[0], batch):
        w = windows[s : s + batch]
        x = np.ascontiguousarray(w[:, list(INPUT_INDEX)])
        for name, fn in models.items():
            accs[name].add(w, fn(x))
    return {"windows": int(windows.shape[0]), **{name: acc.result() for name, acc in accs.items()}}


def record_windows(rec: Recording) -> np.ndarray:
    """A 12-lead recording (standard lead order) → its non-overlapping 10 s model windows (n, 12, 1250).

    Any rate (resampled to 125 Hz); short NaN gaps interpolated, others zero; ``prepare_record``
    preprocessing. Fewer than 10 s gives no window.
    """
    from firmware_sim.records import fill_gaps

    rec, _ = fill_gaps(rec)
    sig = np.nan_to_num(np.asarray(rec.signals, dtype=np.float64))
    if sig.shape[0] < rec.fs * 10:
        return np.zeros((0, 12, 1250), dtype=np.float32)
    return split_windows(prepare_record(sig, rec.fs))


def real_windows(folder: str | Path) -> tuple[np.ndarray, int, int, list[str]]:
    """Every 12-lead record under ``folder`` → (windows (n, 12, 1250), records used, records skipped, names).

    Any rate (resampled to 125 Hz), NaN gaps filled, preprocessed by ``prepare_record`` and cut in
    non-overlapping 10 s windows. Records lacking any of the 12 standard leads, or shorter than 10 s,
    are skipped and counted.
    """
    from firmware_sim.records import MissingLeadError, RecordError, iter_records, read_record, select_leads

    out: list[np.ndarray] = []
    used, skipped, names = 0, 0, []
    for path in iter_records(folder):
        try:
            rec = read_record(path)
            rec = select_leads(rec, STANDARD_LEADS)
        except MissingLeadError:
            skipped += 1
            continue
        except RecordError as exc:
            log.warning("skipping %s: %s", path, exc)
            skipped += 1
            continue
        w = record_windows(rec)
        if w.shape[0] == 0:
            skipped += 1
            continue
        out.append(w)
        used += 1
        names.append(rec.name)
    windows = np.concatenate(out) if out else np.zeros((0, 12, 1250), dtype=np.float32)
    return windows, used, skipped, names


def evaluate_records(folder: str | Path, model_path: str | Path, baseline_path: str | Path, *,
                     calibration_s: float = 5.0, ceiling: bool = False) -> dict[str, Any]:
    """The report of ``ecgstream models eval reconstruction``: baseline vs VAE on every 12-lead record.

    With ``calibration_s`` > 0 the report also has ``patient_calibrated`` (see
    :func:`evaluate_patient_calibrated`); with ``ceiling``, ``linear_ceiling_loo`` (see
    :func:`linear_ceiling`). Raises ValueError when ``folder`` holds no usable record.
    """
    from models.reconstruction.calibration import coverage
    from models.reconstruction.linear import LinearBaseline
    from models.runtime.onnx_model import ReconstructionModel

    vae = ReconstructionModel.load(model_path, providers=["cpu"])
    baseline = LinearBaseline.load(baseline_path)
    windows, used, skipped, _ = real_windows(folder)
    if used == 0:
        raise ValueError(f"no 12-lead record of at least 10 s under {folder} ({skipped} skipped)")
    leads12, unc = vae.reconstruct(np.ascontiguousarray(windows[:, list(INPUT_INDEX)]))
    result: dict[str, Any] = {"records": used, "skipped_records": skipped, "windows": int(windows.shape[0]),
              "baseline": lead_metrics(windows, _batched(baseline.reconstruct, windows)),
              "vae": lead_metrics(windows, leads12)}
    cov = coverage(windows - leads12, unc)
    result["vae"]["coverage_90"] = {lead: round(float(cov[STANDARD_LEADS.index(lead)]), 4)
                                    for lead in RECONSTRUCTED_LEADS}
    result["model"] = str(model_path)
    if ceiling and len(windows) > 1:
        result["linear_ceiling_loo"] = linear_ceiling(windows)
    if calibration_s > 0:
        result["patient_calibrated"] = evaluate_patient_calibrated(
            windows, vae.reconstruct, baseline.reconstruct, calibration_s=calibration_s,
            model_version=str(vae.info.get("config_hash", "unknown")))
    return result


def linear_ceiling(windows: np.ndarray) -> dict[str, Any]:
    """What any patient-generic linear map could reach here: least squares fitted on the other windows
    of this very set (leave one out), scored on the left-out one.

    A diagnostic bound for the model card, never a model: it is fitted on the test records.
    """
    from models.reconstruction.linear import LinearBaseline

    w = np.asarray(windows, dtype=np.float64)
    pred = np.empty_like(w)
    for k in range(len(w)):
        rest = np.ones(len(w), dtype=bool)
        rest[k] = False
        pred[k] = LinearBaseline.fit(w[rest]).reconstruct(w[k : k + 1, list(INPUT_INDEX)])[0]
    return lead_metrics(w, pred)


def evaluate_patient_calibrated(windows: np.ndarray, vae: Generic, baseline: Reconstructor, *,
                                calibration_s: float, model_version: str = "unknown",
                                fs: float = 125.0) -> dict[str, Any]:
    """Generic vs patient-calibrated models, scored on the part of each window the calibration did not see.

    Per window: the first ``calibration_s`` seconds of its 12 leads calibrate the model for that
    patient (:mod:`models.reconstruction.patient_calibration`, as an admission 12-lead would); every
    model sees the window's II, V1, V5 whole; r and RMSE are taken over the remaining samples only.
    A window whose start cannot calibrate (flat inputs) keeps the generic model and is counted.
    """
    from models.reconstruction.calibration import coverage
    from models.reconstruction.patient_calibration import CalibrationError, fit_calibration

    n = windows.shape[2]
    n_cal = int(round(calibration_s * fs))
    if not 0 < n_cal < n - int(fs):
        raise ValueError(f"calibration_s must leave at least 1 s of a {n / fs:g} s window to score")
    mask = np.zeros((1, n), dtype=bool)
    mask[:, :n_cal] = True
    x = np.ascontiguousarray(windows[:, list(INPUT_INDEX)], dtype=np.float32)
    g12, gunc = vae(x)
    b12 = _batched(baseline, windows)
    ones = np.ones_like(gunc)

    def baseline_generic(xi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return baseline(xi), ones[: len(xi)]

    c12, cunc, b12c = np.empty_like(g12), np.empty_like(gunc), np.empty_like(b12)
    failed = 0
    for i in range(len(windows)):
        try:
            cal = fit_calibration(windows[i : i + 1], vae, patient_id=f"w{i}", model_version=model_version,
                                  mask=mask, fs=fs)
            bcal = fit_calibration(windows[i : i + 1], baseline_generic, patient_id=f"w{i}",
                                   model_version="linear", mask=mask, fs=fs)
        except CalibrationError:
            failed += 1
            c12[i], cunc[i], b12c[i] = g12[i], gunc[i], b12[i]
            continue
        c12[i], cunc[i] = cal.apply(x[i], g12[i], gunc[i])
        b12c[i] = bcal.apply(x[i], b12[i], ones[i])[0]
    tail = slice(n_cal, None)
    truth = windows[..., tail]
    out: dict[str, Any] = {
        "calibration_s": calibration_s, "scored_s": round((n - n_cal) / fs, 3), "windows": int(len(windows)),
        "not_calibrated": failed,
        "baseline": lead_metrics(truth, b12[..., tail]), "vae": lead_metrics(truth, g12[..., tail]),
        "baseline_calibrated": lead_metrics(truth, b12c[..., tail]),
        "vae_calibrated": lead_metrics(truth, c12[..., tail]),
    }
    cov = coverage(truth - c12[..., tail], cunc[..., tail])
    out["vae_calibrated"]["coverage_90"] = {lead: round(float(cov[STANDARD_LEADS.index(lead)]), 4)
                                            for lead in RECONSTRUCTED_LEADS}
    return out


def _batched(fn: Reconstructor, windows: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([fn(np.ascontiguousarray(windows[s : s + batch][:, list(INPUT_INDEX)]))
                           for s in range(0, len(windows), batch)])


def format_table(result: dict[str, Any], names: Iterable[str] = ("baseline", "vae")) -> str:
    """Per-lead table: r and RMSE (µV) of each model side by side."""
    names = [n for n in names if n in result]
    head = f"{'lead':<5}" + "".join(f" {n + ' r':>12} {n + ' µV':>12}" for n in names)
    lines = [head]
    for lead in RECONSTRUCTED_LEADS:
        row = f"{lead:<5}"
        for n in names:
            m = result[n]["per_lead"][lead]
            row += f" {m['r']:>12.3f} {m['rmse_uv']:>12.1f}"
        lines.append(row)
    row = f"{'mean':<5}"
    for n in names:
        row += f" {result[n]['mean_r']:>12.3f} {result[n]['mean_rmse_uv']:>12.1f}"
    lines.append(row)
    return "\n".join(lines)
