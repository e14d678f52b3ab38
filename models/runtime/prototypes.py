"""Prototype explanations as shipped, in ONNX Runtime: numpy in, one ``prototypes`` result per window out. No torch.

>>> model = PrototypeModel.load()                                           # doctest: +SKIP
>>> model.run(windows_mv, fs_hz=125.0, leads=STANDARD_LEADS)[0]["matches"][0]["record"]   # doctest: +SKIP
'HR09589'

Each window ``(12, n)`` in mV (the 12 standard leads, any order the ``leads`` argument names) is resampled to
125 Hz and band-passed (:func:`models.preprocessing.prepare_record`), its centre 10 s kept, and scored by
``prototypes.onnx`` (:mod:`models.prototypes`). The result follows the project's contract for stored
``prototypes`` results: the class explained (the top-scoring class, or the one asked for) and up to three
matches, best first, each with the prototype's stored lead II strip (``prototypes_strips.json``), the matched
part of that strip and the matching part of this window (seconds from the window's start).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from models.preprocessing import MODEL_FS, WINDOW_SAMPLES, prepare_record
from models.prototypes import ARTIFACT, INPUT_NAME, STRIPS, segment_samples
from models.runtime.onnx_model import ARTIFACTS, OnnxModel
from protocol.leads import STANDARD_LEADS

DEFAULT_PROTOTYPES = ARTIFACTS / ARTIFACT
"""The shipped prototype layer over the ECG-Mamba classifier's embedding."""
TOP_MATCHES = 3
MATCH_KEYS = ("prototype_id", "class", "source", "record", "lead", "fs_hz", "strip_mv", "strip_segment_s")
"""What each match copies from the stored strips (the contract's fields besides the similarity and window segment)."""


class PrototypeModel:
    """Runtime adapter for kind ``prototypes``: ``run(windows_mv, fs_hz, leads)`` → one outputs dict per window."""

    def __init__(self, model: OnnxModel, strips: Sequence[dict[str, Any]], max_batch: int = 32) -> None:
        raw = model.metadata.get("ecgstream")
        if raw is None:
            raise ValueError(f"{model.path} has no 'ecgstream' metadata: not an ecgstream prototype model")
        self.model = model
        self.max_batch = max_batch
        self.info: dict[str, Any] = json.loads(raw)
        self.version: str = str(self.info.get("version", "unknown"))
        self.classes: tuple[str, ...] = tuple(self.info["classes"])
        self.patch_tokens = int(self.info["patch_tokens"])
        self.stride = int(self.info.get("stride_samples", 8))
        self.left_pad = int(self.info.get("left_pad_samples", 15))
        ids = list(self.info["prototype_ids"])
        by_id = {s["prototype_id"]: s for s in strips}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise ValueError(f"{model.path}: prototype strips missing for {', '.join(missing[:5])}")
        self.prototypes: list[dict[str, Any]] = [by_id[i] for i in ids]
        self.prototype_class = np.array([self.classes.index(p["class"]) for p in self.prototypes])

    @classmethod
    def load(cls, path: Path | None = None, **kwargs: Any) -> Self:
        """Open an artifact (default: the shipped one) and the strips file beside it (``strips=`` another);
        ``providers``/``threads`` go to :class:`OnnxModel`."""
        max_batch = kwargs.pop("max_batch", 32)
        strips_path = kwargs.pop("strips", None)
        model = OnnxModel(DEFAULT_PROTOTYPES if path is None else path, **kwargs)
        info = json.loads(model.metadata.get("ecgstream", "{}"))
        strips_file = Path(strips_path) if strips_path is not None else model.path.parent / info.get("strips", STRIPS)
        try:
            stored = json.loads(strips_file.read_text())
        except FileNotFoundError:
            raise ValueError(f"prototype strips {strips_file} not found (they ship beside {model.path.name})") from None
        if stored.get("version") != info.get("version"):
            raise ValueError(f"{strips_file} is for {stored.get('version')}, the model is {info.get('version')}")
        return cls(model, stored["prototypes"], max_batch=max_batch)

    def prepare(self, windows_mv: np.ndarray, fs_hz: float, leads: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(B, 12, 1250) float32 standard leads at 125 Hz, band-passed (the centre 10 s of each window), and the
        start of that 10 s in each input window (seconds)."""
        x = np.asarray(windows_mv, dtype=np.float64)
        if x.ndim != 3 or x.shape[1] != len(leads):
            raise ValueError(f"expected windows (B, {len(leads)} leads, n), got shape {x.shape}")
        absent = [lead for lead in STANDARD_LEADS if lead not in leads]
        if absent:
            raise ValueError(f"the prototype model reads the 12 standard leads; missing {', '.join(absent)}")
        if not np.isfinite(x).all():
            raise ValueError("windows contain NaN or infinity")
        if x.shape[2] < int(round(10.0 * fs_hz)) - 1:
            raise ValueError(f"a window needs 10 s of signal, got {x.shape[2] / fs_hz:.2f} s")
        order = [list(leads).index(lead) for lead in STANDARD_LEADS]
        out = np.zeros((x.shape[0], len(STANDARD_LEADS), WINDOW_SAMPLES), dtype=np.float32)
        offsets = np.zeros(x.shape[0])
        for i, w in enumerate(x[:, order, :]):
            p = prepare_record(w.T, fs_hz)
            if p.shape[1] >= WINDOW_SAMPLES:
                s = (p.shape[1] - WINDOW_SAMPLES) // 2
                out[i] = p[:, s : s + WINDOW_SAMPLES]
                offsets[i] = s / MODEL_FS
            else:                                    # a sample short of 10 s after resampling: pad the end
                out[i, :, : p.shape[1]] = p
        return out, offsets

    def infer(self, prepared: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prepared windows (B, 12, 1250) → scores (B, classes), similarities (B, P), positions (B, P)."""
        parts = []
        for s in range(0, prepared.shape[0], self.max_batch):
            out = self.model.run(**{INPUT_NAME: np.ascontiguousarray(prepared[s : s + self.max_batch],
                                                                     dtype=np.float32)})
            parts.append((out["scores"], out["similarities"], out["positions"]))
        if not parts:
            n = len(self.prototypes)
            return np.zeros((0, len(self.classes))), np.zeros((0, n)), np.zeros((0, n), dtype=np.int64)
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]))

    def segment(self, position: int) -> tuple[int, int]:
        """Samples ``[start, stop)`` of a prepared window that a match at token ``position`` stands for."""
        return segment_samples(int(position), self.patch_tokens, stride=self.stride, left_pad=self.left_pad)

    def best_match(self, similarities: np.ndarray, positions: np.ndarray, class_index: int) -> tuple[int, int, int]:
        """(prototype, start, stop) of the best-matching prototype of a class for one window."""
        own = np.flatnonzero(self.prototype_class == class_index)
        j = int(own[np.argmax(similarities[own])])
        a, b = self.segment(int(positions[j]))
        return j, a, b

    def explain(self, scores: np.ndarray, similarities: np.ndarray, positions: np.ndarray,
                class_: str | None = None, offset_s: float = 0.0) -> dict[str, Any]:
        """One window's ``prototypes`` result (see the module docstring)."""
        if class_ is None:
            c = int(np.argmax(scores))
        elif class_ in self.classes:
            c = self.classes.index(class_)
        else:
            raise ValueError(f"unknown class {class_!r}; the model knows {', '.join(self.classes)}")
        own = np.flatnonzero(self.prototype_class == c)
        ranked = own[np.argsort(-similarities[own], kind="stable")][:TOP_MATCHES]
        matches = []
        for j in ranked:
            a, b = self.segment(int(positions[j]))
            stored = self.prototypes[j]
            matches.append({
                **{k: stored[k] for k in MATCH_KEYS},
                "similarity": round(float(np.clip(similarities[j], 0.0, 1.0)), 4),
                "window_segment_s": [round(offset_s + a / MODEL_FS, 3), round(offset_s + b / MODEL_FS, 3)],
            })
        return {"class": self.classes[c], "matches": matches}

    def run(self, windows_mv: np.ndarray, fs_hz: float, leads: Sequence[str],
            class_: str | None = None) -> list[dict[str, Any]]:
        """One ``prototypes`` result per window, explaining ``class_`` or else each window's top class."""
        prepared, offsets = self.prepare(windows_mv, fs_hz, leads)
        scores, sims, pos = self.infer(prepared)
        return [self.explain(scores[i], sims[i], pos[i], class_, float(offsets[i])) for i in range(len(prepared))]


def prototypes_adapter(spec: Any) -> PrototypeModel:
    """The cloud model worker's adapter for kind ``prototypes`` (``spec.path``: the ONNX file)."""
    return PrototypeModel.load(spec.path)
