"""Evaluation of an exported classifier on labelled real records (numpy + ONNX Runtime, no torch).

Records are CinC 2020/2021 folders (``.hea`` with ``# Dx:`` SNOMED CT codes + ``.mat``), read by
:class:`models.data.cinc.CincDataset`. Each 12-lead record of at least 10 s is preprocessed
(:func:`models.preprocessing.prepare_record`), cut into 10 s windows, and scored twice:

* ``true12``: the classifier on the recorded 12 leads;
* ``edge``: what the gateway would do — II, V1, V5 through the reconstruction VAE, then the classifier.

A record's score per class is the mean of its windows' probabilities. Per class and macro AUROC
and AUPRC, with bootstrap 95 % intervals over records (few records: the intervals are wide). A class
without a positive record is reported as absent, not as 0.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from models.classifier.metrics import format_report, multilabel_report
from models.data.labels import CLASSES, multi_hot
from models.preprocessing import prepare_record, split_windows
from models.reconstruction import INPUT_INDEX
from protocol.leads import STANDARD_LEADS

log = logging.getLogger(__name__)


def record_windows(folder: str | Path) -> tuple[list[np.ndarray], np.ndarray, list[str], dict[str, str]]:
    """Every usable CinC record under ``folder`` → (windows per record (k, 12, 1250), targets (n, 18),
    record ids, skipped {id: reason}). Raises ``DatasetError`` when the folder is not a CinC folder."""
    from firmware_sim.records import MissingLeadError, RecordError, fill_gaps, select_leads
    from models.data.cinc import CincDataset

    dataset = CincDataset(folder)
    windows, targets, ids = [], [], []
    skipped: dict[str, str] = {}
    for rec in dataset:
        try:
            recording = select_leads(rec.recording, STANDARD_LEADS)
        except (MissingLeadError, RecordError) as exc:
            skipped[rec.record_id] = f"not 12-lead: {exc}"
            continue
        recording, _ = fill_gaps(recording)
        sig = np.nan_to_num(np.asarray(recording.signals, dtype=np.float64))
        if sig.shape[0] < recording.fs * 10:
            skipped[rec.record_id] = f"shorter than 10 s ({sig.shape[0] / recording.fs:.1f} s)"
            continue
        w = split_windows(prepare_record(sig, recording.fs))
        if w.shape[0] == 0:
            skipped[rec.record_id] = "no complete 10 s window"
            continue
        windows.append(w)
        targets.append(multi_hot(rec.labels))
        ids.append(rec.record_id)
    skipped.update(dataset.report.skipped)
    y = np.stack(targets) if targets else np.zeros((0, len(CLASSES)), dtype=np.float32)
    return windows, y, ids, skipped


def _record_scores(per_record: list[np.ndarray], predict: Any) -> np.ndarray:
    flat = np.concatenate(per_record)
    prob = predict(flat)
    bounds = np.cumsum([0] + [len(w) for w in per_record])
    return np.stack([prob[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])


def evaluate_records(
    folder: str | Path,
    model_path: str | Path,
    reconstruction_path: str | Path | None = None,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The report of ``ecgstream models eval classifier``:
    ``{"records": N, "true12": {...}, "edge": {...}, ...}`` (see :func:`multilabel_report`).

    Raises ValueError when ``folder`` holds no usable record.
    """
    from models.runtime.classifier import ClassifierModel
    from models.runtime.onnx_model import DEFAULT_RECONSTRUCTION, ReconstructionModel

    classifier = ClassifierModel.load(model_path, providers=["cpu"])
    if tuple(classifier.classes) != CLASSES:
        raise ValueError(f"{model_path} has classes {classifier.classes}, expected {CLASSES}")
    vae = ReconstructionModel.load(reconstruction_path or DEFAULT_RECONSTRUCTION, providers=["cpu"])
    per_record, y, ids, skipped = record_windows(folder)
    if not ids:
        raise ValueError(f"no 12-lead CinC record of at least 10 s under {folder} ({len(skipped)} skipped)")

    def edge_predict(x: np.ndarray) -> np.ndarray:
        return classifier.predict(vae(np.ascontiguousarray(x[:, list(INPUT_INDEX)])))

    result: dict[str, Any] = {
        "records": len(ids),
        "windows": int(sum(len(w) for w in per_record)),
        "skipped_records": len(skipped),
        "skipped": skipped,
        "record_score": "mean of the record's 10 s window probabilities",
        "bootstrap": {"resamples": bootstrap, "unit": "record", "interval": "95% percentile"},
    }
    for name, predict in (("true12", classifier.predict), ("edge", edge_predict)):
        result[name] = multilabel_report(y, _record_scores(per_record, predict), bootstrap=bootstrap, seed=seed)
    result["label_counts"] = {c: int(y[:, j].sum()) for j, c in enumerate(CLASSES)}
    result["model"] = str(model_path)
    result["model_version"] = classifier.version
    return result


def format_table(result: dict[str, Any]) -> str:
    """Per-class AUROC [95 % CI] of the true-12-lead and edge inputs side by side."""
    return format_report({k: result[k] for k in ("true12", "edge") if k in result})


def evaluate_synthetic(model_path: str | Path, config_path: str | Path, *, bootstrap: int = 200) -> dict[str, Any]:
    """The classifier on the held-out synthetic test set of a training config (true 12 leads and edge view)."""
    from models.classifier.config import load_config
    from models.classifier.data import test_views
    from models.runtime.classifier import ClassifierModel

    cfg = load_config(config_path)
    classifier = ClassifierModel.load(model_path, providers=["cpu"], max_batch=128)
    true12, edge = test_views(cfg.data.test_windows, cfg.data.test_seed, noise_fraction=cfg.data.noise_fraction,
                              cache_dir=cfg.data.cache_dir)
    out: dict[str, Any] = {"windows": len(true12), "config": str(config_path), "seed": cfg.data.test_seed}
    for name, ws in (("true12", true12), ("edge", edge)):
        out[name] = multilabel_report(ws.y, classifier.predict(ws.x), bootstrap=bootstrap)
    return out
