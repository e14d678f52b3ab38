"""Does the matched segment matter? Deletion test of the prototype explanations on real records (numpy + ONNX
Runtime; no torch).

For every window of every record under a folder (CinC 2020/2021 or PTB-XL layout, true 12 leads, cut as
evaluation cuts them), the explained class is the window's top-scoring class. Its best-matching prototype gives
the matched segment; the segment is deleted (all 12 leads set to 0 mV: the windows are band-passed, so 0 is
their baseline) and the class's score measured again. The same is done for ``random_segments`` segments of the
same length at random positions (seeded). The report: mean score drop for the matched and the random
deletions, their ratio, and the share of windows where the matched deletion lowers the score more than the
random ones do on average. ``shown_matches``: the same with the segments of all the matches a result shows
(up to three) deleted at once against as many random segments of the same lengths. The same in logit units (``logit``), where a score near 0 or 1 still shows a change.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from models.preprocessing import MODEL_FS, WINDOW_S
from models.runtime.prototypes import TOP_MATCHES, PrototypeModel


def delete(windows: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """(n, leads, samples) windows with samples ``[start, stop)`` of row i set to 0 on every lead: ``spans`` is
    (n, 2), one span per window, or (n, k, 2), k spans per window."""
    spans = spans[:, None, :] if spans.ndim == 2 else spans
    t = np.arange(windows.shape[-1])
    inside = (t[None, None, :] >= spans[:, :, :1]) & (t[None, None, :] < spans[:, :, 1:2])
    mask: np.ndarray = np.any(inside, axis=1)
    return np.where(mask[:, None, :], 0.0, windows).astype(np.float32)


def shown_spans(model: PrototypeModel, sims: np.ndarray, pos: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """(n, k, 2) the window segments of the up-to-k matches a result shows for each window's class."""
    out = []
    for i in range(len(cls)):
        own = np.flatnonzero(model.prototype_class == int(cls[i]))
        ranked = own[np.argsort(-sims[i, own], kind="stable")][:TOP_MATCHES]
        out.append([model.segment(int(pos[i, j])) for j in ranked])
    return np.array(out, dtype=np.int64)


def deletion_drops(model: PrototypeModel, x: np.ndarray, *, random_segments: int, seed: int,
                   class_: str | None = None) -> dict[str, np.ndarray]:
    """Per window: the explained class index, its score, the matched segment and the score drops (matched and
    mean random) when the matched / a random same-length segment is deleted."""
    scores, sims, pos = model.infer(x)
    n = len(x)
    cls = np.argmax(scores, axis=1) if class_ is None else np.full(n, model.classes.index(class_))
    shown = shown_spans(model, sims, pos, cls)            # best match first
    rows = np.arange(n)
    base = scores[rows, cls]
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {"class": cls, "score": base, "span": shown[:, 0]}
    for name, spans in (("", shown[:, :1]), ("shown_", shown)):
        after = model.infer(delete(x, spans))[0][rows, cls]
        lengths = spans[:, :, 1] - spans[:, :, 0]
        random_after = np.zeros((n, random_segments))
        for k in range(random_segments):
            starts = rng.integers(0, x.shape[-1] - lengths + 1)
            random_after[:, k] = model.infer(delete(x, np.stack([starts, starts + lengths], axis=2)))[0][rows, cls]
        out |= {f"{name}matched": base - after, f"{name}random": (base[:, None] - random_after).mean(axis=1),
                f"{name}logit_matched": logit(base) - logit(after),
                f"{name}logit_random": (logit(base)[:, None] - logit(random_after)).mean(axis=1)}
    return out


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 − p)), with p kept inside float32's resolution (a saturated score still shows a change)."""
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(q) - np.log1p(-q)


def _summary(matched: np.ndarray, rand: np.ndarray) -> dict[str, Any]:
    mean_m, mean_r = float(matched.mean()), float(rand.mean())
    return {"mean_drop_matched": round(mean_m, 5), "mean_drop_random": round(mean_r, 5),
            "ratio": round(mean_m / mean_r, 3) if mean_r > 0 else None,
            "fraction_matched_greater": round(float((matched > rand).mean()), 4)}


def evaluate_faithfulness(data: str | os.PathLike[str], model: PrototypeModel, *, random_segments: int = 10,
                          seed: int = 0, hop_s: float = WINDOW_S, max_records: int | None = None) -> dict[str, Any]:
    """The deletion report (JSON-ready) for the records under ``data`` (see the module docstring)."""
    from models.classifier.real_data import load_real_windows

    rw = load_real_windows(data, reconstruct=None, edge_fraction=0.0, seed=seed, hop_s=hop_s)
    x, records = rw.x, np.asarray(rw.record_ids)
    if max_records is not None:
        keep = np.isin(records, list(rw.records[:max_records]))
        x, records = x[keep], records[keep]
    r = deletion_drops(model, x, random_segments=random_segments, seed=seed)
    matched, rand = r["matched"], r["random"]
    per_window = [{
        "record": str(records[i]), "class": model.classes[int(r["class"][i])], "score": round(float(r["score"][i]), 4),
        "segment_s": [round(float(r["span"][i, 0]) / MODEL_FS, 3), round(float(r["span"][i, 1]) / MODEL_FS, 3)],
        "drop_matched": round(float(matched[i]), 5), "drop_random": round(float(rand[i]), 5),
    } for i in range(len(x))]
    return {
        "data": str(data), "model_version": model.version, "records": int(len(set(records.tolist()))),
        "windows": int(len(x)), "skipped": dict(rw.skipped), "deletion": "all 12 leads set to 0 mV",
        "random_segments": random_segments, "seed": seed,
        "segment_s": round(float((r["span"][:, 1] - r["span"][:, 0]).mean()) / MODEL_FS, 3),
        **_summary(matched, rand),
        "logit": _summary(r["logit_matched"], r["logit_random"]),
        "shown_matches": {**_summary(r["shown_matched"], r["shown_random"]),
                          "logit": _summary(r["shown_logit_matched"], r["shown_logit_random"])},
        "per_window": per_window,
    }
