"""One cloud model as configured: an ONNX file, what it reads from a window, what its outputs mean.

A model plugs in by configuration alone (``[[model_worker.models]]`` in ``cloud.toml``)::

    [[model_worker.models]]
    name = "classifier"                                   # the key its results are stored under
    path = "models/artifacts/classifier_mamba_fp32.onnx"
    kind = "multilabel"                                   # how its outputs are read (see KINDS)
    threshold = 0.5                                       # multilabel: positive at or above this

What the model takes comes from the file's own ``ecgstream`` metadata entry (JSON), which every
project export writes: ``leads`` (or ``inputs``), the lead names of its input in order; ``fs_hz`` and
``samples``, its rate and window length; ``classes`` for a multi-label model; ``version`` or
``config_hash``. A configured value overrides the file's. The window (12 leads, int16 counts, as the
edge ships it) is turned into that input by :func:`window_input`: the leads picked by name, counts to
mV, resampled (polyphase) when the rates differ, cut or zero-padded to length.

Kinds (how outputs become a stored, JSON-able result):

- ``multilabel``: an output of shape ``(B, C)`` (``output``, default the first) of probabilities
  for the ``classes``; stored as ``{"probabilities": {class: p}, "positive": [...], "top": [...]}``.
- ``scores``: every output, each row flattened to a list of floats (for small regressors such as a
  stress score); refused at load time when one output has more than ``max_values`` values.

Heavy models that ship a runtime class (``zeroshot``, ``stress``, ``prototypes``) are kinds of
:data:`cloud.model_worker.adapters.ADAPTERS`; their result is whatever the runtime returns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from cloud.errors import CloudError
from protocol.window_payload import EcgWindow

KINDS = ("multilabel", "scores")


class ModelConfigError(CloudError, ValueError):
    """A model's configuration or file cannot be used (the message says which model and why)."""


class WindowMismatch(CloudError, ValueError):
    """A window lacks what a model needs (a lead, or enough samples)."""


@dataclass(frozen=True)
class ModelSpec:
    """One ``[[model_worker.models]]`` entry (see the module docstring)."""

    name: str
    path: Path
    kind: str = "multilabel"
    threshold: float = 0.5
    output: str | None = None
    leads: tuple[str, ...] | None = None
    fs_hz: float | None = None
    samples: int | None = None
    top: int = 3
    max_values: int = 256
    threads: int = 0

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, base_dir: Path | None = None) -> ModelSpec:
        """Build from a config table; relative paths are taken from ``base_dir`` (the config's folder)."""
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ModelConfigError(f"model_worker.models: unknown keys {sorted(unknown)}")
        if "name" not in raw or "path" not in raw:
            raise ModelConfigError("model_worker.models: each model needs a name and a path")
        values = dict(raw)
        path = Path(str(values.pop("path"))).expanduser()
        if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
            path = base_dir / path
        if values.get("leads") is not None:
            values["leads"] = tuple(str(x) for x in values["leads"])
        spec = cls(path=path, **values)
        from cloud.model_worker.adapters import ADAPTERS

        if spec.kind not in KINDS and spec.kind not in ADAPTERS:
            raise ModelConfigError(f"model {spec.name!r}: kind {spec.kind!r} is not one of "
                                   f"{', '.join((*KINDS, *ADAPTERS))}")
        if not 0.0 <= spec.threshold <= 1.0:
            raise ModelConfigError(f"model {spec.name!r}: threshold must be in [0, 1]")
        return spec


@dataclass
class HostedModel:
    """A loaded model: the ONNX Runtime session plus the resolved input and output description."""

    spec: ModelSpec
    session: Any
    input_name: str
    output_names: list[str]
    leads: tuple[str, ...]
    fs_hz: float
    samples: int
    version: str
    classes: tuple[str, ...] = ()
    output: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def load(cls, spec: ModelSpec) -> HostedModel:
        """Open the file and check that it can be run as configured (ModelConfigError otherwise)."""
        import onnxruntime as ort

        if not spec.path.is_file():
            raise ModelConfigError(f"model {spec.name!r}: file {spec.path} not found")
        opts = ort.SessionOptions()
        if spec.threads:
            opts.intra_op_num_threads = spec.threads
        try:
            session = ort.InferenceSession(str(spec.path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise ModelConfigError(f"model {spec.name!r}: {spec.path} is not a loadable ONNX model ({exc})") from None
        info: dict[str, Any] = {}
        raw = session.get_modelmeta().custom_metadata_map.get("ecgstream")
        if raw:
            try:
                info = json.loads(raw)
            except ValueError:
                raise ModelConfigError(f"model {spec.name!r}: its ecgstream metadata is not JSON") from None
        leads = spec.leads or tuple(info.get("leads") or info.get("inputs") or ())
        fs = spec.fs_hz or info.get("fs_hz")
        samples = spec.samples or info.get("samples")
        missing = [k for k, v in (("leads", leads), ("fs_hz", fs), ("samples", samples)) if not v]
        if missing or fs is None or samples is None:
            raise ModelConfigError(f"model {spec.name!r}: {', '.join(missing)} neither configured nor in the file's "
                                   "ecgstream metadata")
        outputs = [o.name for o in session.get_outputs()]
        model = cls(spec, session, session.get_inputs()[0].name, outputs, tuple(leads), float(fs), int(samples),
                    str(info.get("version") or info.get("config_hash") or "unknown"), info=info)
        if spec.kind == "multilabel":
            model.output = spec.output or ("probabilities" if "probabilities" in outputs else outputs[0])
            if model.output not in outputs:
                raise ModelConfigError(f"model {spec.name!r}: no output {model.output!r} (has {', '.join(outputs)})")
            model.classes = tuple(info.get("classes") or ())
            if not model.classes:
                raise ModelConfigError(f"model {spec.name!r}: a multilabel model needs 'classes' in its metadata")
        return model

    def input_for(self, window: EcgWindow) -> np.ndarray:
        """This model's input for one window (WindowMismatch when it cannot be fed)."""
        return window_input(window, self.leads, self.fs_hz, self.samples)

    def run(self, windows: Sequence[EcgWindow]) -> list[dict[str, Any]]:
        """One stored result (JSON-able) per window; WindowMismatch when one cannot be fed."""
        return self.run_inputs(np.stack([self.input_for(w) for w in windows]))

    def run_inputs(self, x: np.ndarray) -> list[dict[str, Any]]:
        """One result per row of ``x`` (float32 ``(B, len(leads), samples)``, from :meth:`input_for`)."""
        n = x.shape[0]
        feed = {self.input_name: x}
        features_name = self.info.get("features_input")
        if features_name:             # a classifier that reads measured rhythm features: computed as in training
            from models.features import feature_matrix, measured_rows

            feed[str(features_name)] = feature_matrix(x, self.fs_hz, measured_rows(self.leads))
        out = dict(zip(self.output_names, self.session.run(None, feed), strict=True))
        if self.spec.kind == "multilabel":
            assert self.output is not None  # load() sets it for every multilabel model
            return [self._multilabel(row) for row in np.asarray(out[self.output], dtype=np.float64)]
        results = []
        for i in range(n):
            entry: dict[str, Any] = {}
            for k, v in out.items():
                flat = np.asarray(v[i], dtype=np.float64).ravel()
                if flat.size > self.spec.max_values:
                    raise ModelConfigError(f"model {self.name!r}: output {k!r} has {flat.size} values per window "
                                           f"(max_values {self.spec.max_values})")
                entry[k] = [round(float(a), 6) for a in flat]
            results.append({"scores": entry})
        return results

    def _multilabel(self, p: np.ndarray) -> dict[str, Any]:
        if p.shape != (len(self.classes),):
            raise ModelConfigError(f"model {self.name!r}: output has {p.size} values for {len(self.classes)} classes")
        probs = {c: round(float(v), 4) for c, v in zip(self.classes, p, strict=True)}
        order = np.argsort(-p)
        shipped = dict(self.info.get("thresholds") or {})      # the artifact's per-class operating point
        limits = [float(shipped.get(c, self.spec.threshold)) for c in self.classes]
        out: dict[str, Any] = {
            "probabilities": probs,
            "positive": [self.classes[i] for i in order if p[i] >= limits[i]],
            "top": [self.classes[i] for i in order[: self.spec.top]],
            "threshold": self.spec.threshold,
        }
        if shipped:
            out["thresholds"] = {c: round(t, 4) for c, t in zip(self.classes, limits, strict=True)}
        return out


def window_input(window: EcgWindow, leads: Sequence[str], fs_hz: float, samples: int) -> np.ndarray:
    """The model input for one window: float32 ``(len(leads), samples)`` mV at ``fs_hz``."""
    missing = [lead for lead in leads if lead not in window.leads]
    if missing:
        raise WindowMismatch(f"window {window.window_id} has no lead {', '.join(missing)}")
    x = window.millivolts()[[window.leads.index(lead) for lead in leads]].astype(np.float64)
    if window.fs_hz != fs_hz:
        up, down = int(round(fs_hz)), int(window.fs_hz)
        g = gcd(up, down)
        x = resample_poly(x, up // g, down // g, axis=1)
    if x.shape[1] < 0.9 * samples:
        raise WindowMismatch(f"window {window.window_id} is {x.shape[1] / fs_hz:.1f} s long; the model needs "
                             f"{samples / fs_hz:.1f} s")
    out = np.zeros((len(leads), samples), dtype=np.float32)
    n = min(samples, x.shape[1])
    out[:, :n] = x[:, :n]
    return out
