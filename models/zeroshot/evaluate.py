"""Zero-shot evaluation on labelled real records (``ecgstream models eval zeroshot``).

Every record under the folder (CinC 2020/2021 layout) is cut into 10 s windows
(:func:`models.zeroshot.train.real_labelled_windows`); its labels are the knowledge-base labels its SNOMED CT
codes mean. A record's ECG embedding is the normalised mean of its windows'; each label is scored by cosine
similarity with the label's embedding, once per prompt set. Per class: AUROC over records, for every label
with at least one positive and one negative record; ``macro_auroc`` is their mean. No training or tuning
happens here: the labels are never seen by the model on these records.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.classifier.metrics import auroc
from models.runtime.zeroshot import ZeroShotModel


def evaluate_zeroshot(data: str | Path, model: ZeroShotModel | None = None, *,
                      max_records: int | None = None, records: Sequence[str] | None = None) -> dict[str, Any]:
    """``{"records", "positives", "plain": {"macro_auroc", "per_class"}, "knowledge": {…}, "model"}``."""
    from models.zeroshot.train import real_labelled_windows

    model = model or ZeroShotModel.load()
    x, labels, record_ids = real_labelled_windows(data)
    all_records = list(dict.fromkeys(record_ids))
    records = all_records if records is None else [r for r in all_records if r in set(records)]
    if max_records is not None:
        records = records[:max_records]
    keep = np.isin(np.asarray(record_ids), records)
    x, record_ids = x[keep], [r for r, k in zip(record_ids, keep, strict=True) if k]
    labels = [lab for lab, k in zip(labels, keep, strict=True) if k]
    z = model.embed_prepared(x) if x.shape[0] else np.zeros((0, 1), np.float32)
    ids = np.asarray(record_ids)
    rec_z = np.stack([z[ids == r].mean(0) for r in records])
    rec_z /= np.linalg.norm(rec_z, axis=1, keepdims=True)
    rec_labels = {r: labels[record_ids.index(r)] for r in records}
    keys = model.keys
    y = np.array([[k in rec_labels[r] for k in keys] for r in records], dtype=np.float64)
    out: dict[str, Any] = {"records": len(records), "windows": int(x.shape[0]), "model": model.version,
                           "positives": {k: int(y[:, j].sum()) for j, k in enumerate(keys) if y[:, j].sum() > 0}}
    for style in ("plain", "knowledge"):
        sim = model.score_embeddings(rec_z, model.names, style).similarities  # type: ignore[arg-type]
        per_class = {}
        for j, k in enumerate(keys):
            if 0 < y[:, j].sum() < len(records):
                per_class[k] = round(float(auroc(y[:, j], sim[:, j])), 4)
        macro = float(np.mean(list(per_class.values()))) if per_class else float("nan")
        out[style] = {"macro_auroc": round(macro, 4), "per_class": per_class}
    return out


__all__ = ["evaluate_zeroshot"]
