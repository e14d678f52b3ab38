"""The stress model as shipped, in ONNX Runtime: numpy in, one result per window out. No torch.

>>> model = StressModel.load()                                          # doctest: +SKIP
>>> model.run(windows_mv, fs_hz=125.0, leads=STANDARD_LEADS)[0]["estimate"]   # doctest: +SKIP
'baseline'

Each window ``(n_leads, n)`` in mV is reduced to lead II, resampled to 125 Hz and band-passed
(:func:`models.preprocessing.prepare_record`), its centre 10 s kept; HRV features
(:mod:`models.stress.hrv`) are measured on it and both go to the network. The result follows the
project's contract for stored ``stress`` results: ``estimate``, ``probabilities``, ``hrv`` and a
``note`` that says what the model was trained on. It is an estimate, never a diagnosis.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np

from models.preprocessing import MODEL_FS, WINDOW_S, WINDOW_SAMPLES, prepare_record
from models.runtime.onnx_model import ARTIFACTS, OnnxModel
from models.stress import CLASSES, LEAD
from models.stress.hrv import hrv_features

DEFAULT_STRESS = ARTIFACTS / "stress_transformer.onnx"
"""The shipped stress patch transformer (trained on synthetic subjects)."""
HRV_KEYS = ("hr_bpm", "rmssd_ms", "sdnn_ms", "pnn50", "lf_hf", "resp_rate_bpm")


class HasPath(Protocol):
    """Anything naming an artifact file (the cloud's ``ModelSpec`` does)."""

    @property
    def path(self) -> Path: ...


class StressModel:
    """Runtime adapter for kind ``stress``: ``run(windows_mv, fs_hz, leads)`` → one outputs dict per window."""

    leads: tuple[str, ...] = (LEAD,)
    """The only lead it reads (the cloud worker hands it just this one)."""

    def __init__(self, model: OnnxModel, max_batch: int = 64) -> None:
        raw = model.metadata.get("ecgstream")
        if raw is None:
            raise ValueError(f"{model.path} has no 'ecgstream' metadata: not an ecgstream stress model")
        self.model = model
        self.max_batch = max_batch
        self.info: dict[str, Any] = json.loads(raw)
        if tuple(self.info.get("classes", ())) != CLASSES:
            raise ValueError(f"{model.path}: classes {self.info.get('classes')} are not {list(CLASSES)}")
        self.version: str = str(self.info.get("version", "unknown"))
        self.trained_on: str = str(self.info.get("trained_on", "unknown"))
        self.ecg_input, self.features_input = self.info.get("inputs", model.input_names)[:2]
        self.output_name: str = str(self.info.get("output", model.output_names[0]))

    @classmethod
    def load(cls, path: Path | None = None, **kwargs: Any) -> Self:
        """Open an artifact (default: the shipped one); ``providers``/``threads`` go to :class:`OnnxModel`."""
        max_batch = kwargs.pop("max_batch", 64)
        return cls(OnnxModel(DEFAULT_STRESS if path is None else path, **kwargs), max_batch=max_batch)

    @property
    def note(self) -> str:
        """What every result says about where the model comes from."""
        return f"estimate from a model trained on {self.trained_on} data"

    def prepare(self, windows_mv: np.ndarray, fs_hz: float, leads: Sequence[str]) -> np.ndarray:
        """Lead II of each window at 125 Hz, band-passed, centre 10 s: (B, 1250) float32."""
        x = np.asarray(windows_mv, dtype=np.float64)
        if x.ndim != 3 or x.shape[1] != len(leads):
            raise ValueError(f"expected windows (B, {len(leads)} leads, n), got shape {x.shape}")
        if LEAD not in leads:
            raise ValueError(f"the stress model reads lead {LEAD}; the windows have {', '.join(leads)}")
        if not np.isfinite(x).all():
            raise ValueError("windows contain NaN or infinity")
        if x.shape[2] < int(round(WINDOW_S * fs_hz)) - 1:
            raise ValueError(f"a window needs {WINDOW_S:g} s of signal, got {x.shape[2] / fs_hz:.2f} s")
        lead = x[:, list(leads).index(LEAD), :]
        out = np.zeros((x.shape[0], WINDOW_SAMPLES), dtype=np.float32)
        for i, w in enumerate(lead):
            p = prepare_record(w[:, None], fs_hz)[0]
            if p.size >= WINDOW_SAMPLES:
                s = (p.size - WINDOW_SAMPLES) // 2
                out[i] = p[s : s + WINDOW_SAMPLES]
            else:                                   # a sample short of 10 s after resampling: pad the end
                out[i, : p.size] = p
        return out

    def probabilities(self, prepared: np.ndarray, features: np.ndarray) -> np.ndarray:
        """(B, 3) class probabilities of prepared windows (B, 1250) and their HRV vectors (B, 7)."""
        probs = [np.zeros((0, len(CLASSES)), np.float32)]
        for s in range(0, len(prepared), self.max_batch):
            feed = {self.ecg_input: np.ascontiguousarray(prepared[s : s + self.max_batch, None, :], dtype=np.float32),
                    self.features_input: np.ascontiguousarray(features[s : s + self.max_batch], dtype=np.float32)}
            probs.append(self.model.run(**feed)[self.output_name])
        return np.concatenate(probs)

    def run(self, windows_mv: np.ndarray, fs_hz: float, leads: Sequence[str]) -> list[dict[str, Any]]:
        """One ``stress`` result per window (see the module docstring)."""
        prepared = self.prepare(windows_mv, fs_hz, leads)
        hrv = [hrv_features(w, MODEL_FS) for w in prepared]
        if not hrv:
            return []
        prob = self.probabilities(prepared, np.stack([h.vector() for h in hrv]))
        return [{
            "estimate": CLASSES[int(np.argmax(p))],
            "probabilities": {c: round(float(v), 4) for c, v in zip(CLASSES, p, strict=True)},
            "hrv": {k: h.as_dict()[k] for k in HRV_KEYS},
            "note": self.note,
        } for p, h in zip(prob, hrv, strict=True)]


def stress_adapter(spec: HasPath) -> StressModel:
    """The cloud model worker's adapter for kind ``stress`` (its ``ADAPTERS`` table maps the kind here)."""
    return StressModel.load(spec.path)
