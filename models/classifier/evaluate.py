"""Evaluation of an exported classifier on labelled real records (numpy + ONNX Runtime, no torch).

Records are CinC 2020/2021 folders (``.hea`` with ``# Dx:`` SNOMED CT codes + ``.mat``), read by
:class:`models.data.cinc.CincDataset`. Each 12-lead record of at least 10 s is preprocessed
(:func:`models.preprocessing.prepare_record`), cut into 10 s windows, and scored twice:

* ``true12``: the classifier on the recorded 12 leads;
* ``edge``: what the gateway would do — II, V1, V5 through the reconstruction VAE, then the classifier.

A record's score per class is the mean of its windows' probabilities. Per class and macro AUROC
and AUPRC, with bootstrap 95 % intervals over records (few records: the intervals are wide). A class
without a positive record is reported as absent, not as 0.

At the operating point: a record is called for a class when its score reaches the class's shipped
threshold (the ``thresholds`` of the artifact's ``ecgstream`` metadata; 0.5 where the artifact has
none, and the report says which: ``thresholds_source``; or a ``--thresholds`` file). Per class the
counts, sensitivity, specificity and F1 there, and macro F1; ``per_record`` lists every record's
labels and scores so any other threshold can be checked from the JSON alone. With an INT8 artifact
(``int8_model``), the same records through it, and its change from FP32.

The JSON (``ecgstream models eval classifier --json``), beside the fields it always had::

    "thresholds": {"NSR": 0.5, ...}, "thresholds_source": "artifact" | "default 0.5" | "file" (+ "; … for …"),
    "true12" | "edge": {"macro_f1": 0.21, "macro_f1_ci95": [lo, hi], ...,
                        "per_class": {"NSR": {"threshold", "tp", "fp", "fn", "tn", "sensitivity",
                                              "specificity", "precision", "f1", "f1_ci95", "auroc", ...}}},
    "int8": {"model", "model_version", "true12": {...}, "edge": {...},       # with --compare-int8
             "change": {"true12" | "edge": {"macro_auroc", "macro_auprc", "macro_f1",   # INT8 − FP32
                                            "max_abs_prob", "median_abs_prob", "calls_changed"}}},
    "per_record": [{"id": "E07500", "labels": ["SB"], "windows": 1, "true12": {class: p}, "edge": {class: p},
                    "int8": {"true12": {...}, "edge": {...}}}]              # "int8" with --compare-int8
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.classifier.metrics import format_report, multilabel_report, threshold_vector
from models.data.labels import CLASSES, multi_hot
from models.preprocessing import prepare_record, split_windows
from models.reconstruction import INPUT_INDEX
from protocol.leads import STANDARD_LEADS

if TYPE_CHECKING:
    from models.runtime.classifier import ClassifierModel

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
"""The operating point of a class whose artifact ships no threshold."""
PROB_DIGITS = 5
"""Decimals of the per-record probabilities in the JSON."""


def read_thresholds_file(path: str | Path) -> dict[str, float]:
    """A thresholds JSON: ``{class: t}`` or ``{"thresholds": {class: t}}`` (what the artifact metadata carries).

    Raises ValueError on unreadable JSON, unknown classes or values outside [0, 1].
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"thresholds file {path}: {exc}") from None
    if isinstance(raw, dict) and isinstance(raw.get("thresholds"), dict):
        raw = raw["thresholds"]
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"thresholds file {path}: expected {{class: threshold}}")
    unknown = sorted(set(raw) - set(CLASSES))
    if unknown:
        raise ValueError(f"thresholds file {path}: unknown classes {', '.join(unknown)} (classes: {', '.join(CLASSES)})")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw.values()):
        raise ValueError(f"thresholds file {path}: thresholds must be numbers")
    out = {str(k): float(v) for k, v in raw.items()}
    threshold_vector([out[c] for c in out], list(out))   # range check
    return out


def resolve_thresholds(
    artifact: Mapping[str, float] | None, override: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], str]:
    """Per-class thresholds for every class and where they came from.

    ``override`` (a ``--thresholds`` file) first, then the artifact's shipped ``thresholds``, then
    :data:`DEFAULT_THRESHOLD`. The source is ``"file"``, ``"artifact"`` or ``"default 0.5"``, with
    ``"; <next source> for <classes>"`` when the first source does not name every class.
    """
    chain: list[tuple[str, Mapping[str, float]]] = []
    if override:
        chain.append(("file", override))
    if artifact:
        chain.append(("artifact", artifact))
    chain.append((f"default {DEFAULT_THRESHOLD:g}", dict.fromkeys(CLASSES, DEFAULT_THRESHOLD)))
    out: dict[str, float] = {}
    used: dict[str, list[str]] = {}
    for c in CLASSES:
        name, table = next((n, t) for n, t in chain if c in t)
        out[c] = float(table[c])
        used.setdefault(name, []).append(c)
    names = [n for n, _ in chain if n in used]
    source = names[0] + "".join(f"; {n} for {', '.join(used[n])}" for n in names[1:])
    threshold_vector(out)
    return out, source


def artifact_thresholds(info: Mapping[str, object]) -> dict[str, float] | None:
    """The ``thresholds`` {class: t} of a classifier's ``ecgstream`` metadata, or None when it ships none."""
    raw = info.get("thresholds")
    if not isinstance(raw, Mapping) or not raw:
        return None
    return {str(k): float(v) for k, v in raw.items() if str(k) in CLASSES}  # type: ignore[arg-type]


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
    thresholds: Mapping[str, float] | None = None,
    int8_model: str | Path | None = None,
) -> dict[str, Any]:
    """The report of ``ecgstream models eval classifier``:
    ``{"records": N, "thresholds": {...}, "thresholds_source": ..., "true12": {...}, "edge": {...},
    "per_record": [...], ...}`` (see :func:`multilabel_report`), and ``"int8"`` with ``int8_model``.

    ``thresholds`` overrides the artifact's (see :func:`resolve_thresholds`); the INT8 model is scored
    at the same thresholds. Raises ValueError when ``folder`` holds no usable record.
    """
    from models.runtime.onnx_model import DEFAULT_RECONSTRUCTION, ReconstructionModel

    classifier = _load_classifier(model_path)
    int8 = _load_classifier(int8_model) if int8_model is not None else None
    t, t_source = resolve_thresholds(artifact_thresholds(classifier.info), thresholds)
    vae = ReconstructionModel.load(reconstruction_path or DEFAULT_RECONSTRUCTION, providers=["cpu"])
    per_record, y, ids, skipped = record_windows(folder)
    if not ids:
        raise ValueError(f"no 12-lead CinC record of at least 10 s under {folder} ({len(skipped)} skipped)")
    edge_inputs = [vae(np.ascontiguousarray(w[:, list(INPUT_INDEX)])) for w in per_record]

    def scores(model: ClassifierModel) -> dict[str, np.ndarray]:
        return {"true12": _record_scores(per_record, model.predict),
                "edge": _record_scores(edge_inputs, model.predict)}

    result: dict[str, Any] = {
        "data": str(folder),
        "records": len(ids),
        "windows": int(sum(len(w) for w in per_record)),
        "skipped_records": len(skipped),
        "skipped": skipped,
        "record_score": "mean of the record's 10 s window probabilities",
        "bootstrap": {"resamples": bootstrap, "unit": "record", "interval": "95% percentile"},
        "thresholds": t,
        "thresholds_source": t_source,
        "operating_point": "a record is called for a class when its score >= the class's threshold",
    }
    fp32 = scores(classifier)
    for name, prob in fp32.items():
        result[name] = multilabel_report(y, prob, bootstrap=bootstrap, seed=seed, thresholds=t)
    result["label_counts"] = {c: int(y[:, j].sum()) for j, c in enumerate(CLASSES)}
    result["model"] = str(model_path)
    result["model_version"] = classifier.version
    q = scores(int8) if int8 is not None else None
    if int8 is not None and q is not None:
        result["int8"] = _int8_report(int8_model, int8.version, y, fp32, q, result, bootstrap=bootstrap, seed=seed)
    result["per_record"] = [
        {"id": rid, "labels": [c for j, c in enumerate(CLASSES) if y[i, j] > 0.5], "windows": len(per_record[i]),
         **{name: _probs(prob[i]) for name, prob in fp32.items()},
         **({"int8": {name: _probs(prob[i]) for name, prob in q.items()}} if q is not None else {})}
        for i, rid in enumerate(ids)]
    return result


def _load_classifier(path: str | Path) -> ClassifierModel:
    from models.runtime.classifier import ClassifierModel

    model = ClassifierModel.load(path, providers=["cpu"])
    if tuple(model.classes) != CLASSES:
        raise ValueError(f"{path} has classes {model.classes}, expected {CLASSES}")
    return model


def _probs(p: np.ndarray) -> dict[str, float]:
    return {c: round(float(v), PROB_DIGITS) for c, v in zip(CLASSES, p, strict=True)}


def _int8_report(path: str | Path | None, version: str, y: np.ndarray, fp32: dict[str, np.ndarray],
                 int8: dict[str, np.ndarray], result: dict[str, Any], *, bootstrap: int, seed: int) -> dict[str, Any]:
    """INT8 on the same records at the same thresholds, and its change from FP32 (INT8 − FP32)."""
    out: dict[str, Any] = {"model": str(path), "model_version": version}
    change: dict[str, Any] = {}
    for name, prob in int8.items():
        rep = multilabel_report(y, prob, bootstrap=bootstrap, seed=seed, thresholds=result["thresholds"])
        out[name] = rep
        base = result[name]
        diff = np.abs(prob - fp32[name])
        t = threshold_vector(result["thresholds"])
        calls_changed = int(((prob >= t) != (fp32[name] >= t)).sum())
        change[name] = {
            **{k: None if rep[k] is None or base[k] is None else round(rep[k] - base[k], 4)
               for k in ("macro_auroc", "macro_auprc", "macro_f1")},
            "max_abs_prob": round(float(diff.max()), 4), "median_abs_prob": round(float(np.median(diff)), 4),
            "calls_changed": calls_changed,
        }
    out["change"] = change
    return out


def format_table(result: dict[str, Any]) -> str:
    """Per-class AUROC [95 % CI] and, at the thresholds, sensitivity/specificity/F1 of the true-12-lead
    and edge inputs side by side; then INT8's change from FP32 when the report has it."""
    table = format_report({k: result[k] for k in ("true12", "edge") if k in result})
    int8 = result.get("int8")
    if not int8:
        return table
    lines = [table, "", f"INT8 ({int8['model']}) on the same records, change from FP32 (INT8 − FP32):"]
    for name, ch in int8["change"].items():
        d = ", ".join(f"{k} {v:+.4f}" if v is not None else f"{k} n/a"
                      for k, v in ch.items() if k.startswith("macro_"))
        lines.append(f"  {name:<6} {d}; max |Δp| {ch['max_abs_prob']:.4f}, calls changed {ch['calls_changed']}")
    return "\n".join(lines)


def evaluate_synthetic(model_path: str | Path, config_path: str | Path, *, bootstrap: int = 200,
                       thresholds: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The classifier on the held-out synthetic test set of a training config (true 12 leads and edge view),
    per window; with ``thresholds`` ({class: t} for every class) also at that operating point."""
    from models.classifier.config import load_config
    from models.classifier.data import test_views
    from models.runtime.classifier import ClassifierModel

    cfg = load_config(config_path)
    classifier = ClassifierModel.load(model_path, providers=["cpu"], max_batch=128)
    true12, edge = test_views(cfg.data.test_windows, cfg.data.test_seed, noise_fraction=cfg.data.noise_fraction,
                              cache_dir=cfg.data.cache_dir)
    out: dict[str, Any] = {"windows": len(true12), "config": str(config_path), "seed": cfg.data.test_seed}
    for name, ws in (("true12", true12), ("edge", edge)):
        out[name] = multilabel_report(ws.y, classifier.predict(ws.x), bootstrap=bootstrap, thresholds=thresholds)
    return out
