"""The heavy models the worker hosts through their runtime classes (``models/runtime/<name>.py``).

A plain ONNX classifier plugs in by configuration alone (:mod:`cloud.model_worker.hosted`). A heavy
model whose result needs more than reading an output (the ECG–text zero-shot model, the stress
estimate, the prototype explanations) ships a runtime class instead (numpy + onnxruntime, no torch)::

    @classmethod load(cls, path: Path | None = None) -> Self
    version: str
    def run(self, windows_mv: np.ndarray, fs_hz: float, leads: Sequence[str]) -> list[dict]

:data:`ADAPTERS` maps a ``kind`` to the factory that opens such a model for one :class:`ModelSpec`;
:func:`runtime` builds that factory from the module and class names (imported only when the kind is
used, so the worker loads nothing it does not host) and the file the model ships as. With no
``[[model_worker.models]]`` configured the worker hosts the shipped classifier plus every kind here
whose shipped file exists (:func:`default_specs`).

One line per kind::

    "stress": runtime("models.runtime.stress", "StressModel", "stress_transformer.onnx"),
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cloud.model_worker.hosted import HostedModel, ModelConfigError, ModelSpec, window_input
from models.runtime.onnx_model import ARTIFACTS  # where shipped model files live
from protocol.leads import STANDARD_LEADS
from protocol.window_payload import EcgWindow

RUNTIME_FS_HZ = 125.0
"""Rate windows are handed to a runtime adapter at (each runtime resamples to what it needs)."""
RUNTIME_SAMPLES = 1250
"""Samples per window handed to a runtime adapter (10 s at :data:`RUNTIME_FS_HZ`)."""



class RuntimeAdapter(Protocol):
    """A loaded heavy model (see the module docstring)."""

    version: str

    def run(self, windows_mv: np.ndarray, fs_hz: float, leads: Sequence[str]) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class RuntimeFactory:
    """Opens ``module.cls`` for a spec (``cls.load(spec.path)``); ``artifact``: its shipped file name."""

    module: str
    cls: str
    artifact: str

    @property
    def default_path(self) -> Path:
        return ARTIFACTS / self.artifact

    def __call__(self, spec: ModelSpec) -> RuntimeAdapter:
        if not spec.path.is_file():
            raise ModelConfigError(f"model {spec.name!r}: file {spec.path} not found")
        try:
            runtime_cls = getattr(importlib.import_module(self.module), self.cls)
        except (ImportError, AttributeError) as exc:
            raise ModelConfigError(f"model {spec.name!r}: kind {spec.kind!r} needs {self.module}.{self.cls} "
                                   f"({exc})") from None
        try:
            adapter: RuntimeAdapter = runtime_cls.load(spec.path)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelConfigError(f"model {spec.name!r}: {spec.path} cannot be opened as {spec.kind} "
                                   f"({exc})") from None
        return adapter


def runtime(module: str, cls: str, artifact: str) -> RuntimeFactory:
    """The factory for a runtime class ``module.cls`` shipped as ``models/artifacts/<artifact>``."""
    return RuntimeFactory(module, cls, artifact)


ADAPTERS: dict[str, Callable[[ModelSpec], RuntimeAdapter]] = {
    "zeroshot": runtime("models.runtime.zeroshot", "ZeroShotModel", "zeroshot_merl.onnx"),
    "stress": runtime("models.runtime.stress", "StressModel", "stress_transformer.onnx"),
    "prototypes": runtime("models.runtime.prototypes", "PrototypeModel", "prototypes.onnx"),
}
"""Runtime kinds the worker can host, by ``kind`` (one line each)."""


def default_specs() -> tuple[ModelSpec, ...]:
    """One spec per runtime kind whose shipped artifact exists (name = kind), in table order."""
    specs = []
    for kind, factory in ADAPTERS.items():
        path = getattr(factory, "default_path", None)
        if isinstance(path, Path) and path.is_file():
            specs.append(ModelSpec(name=kind, path=path, kind=kind))
    return tuple(specs)


def default_model_specs() -> tuple[ModelSpec, ...]:
    """What the worker hosts with no ``[[model_worker.models]]``: the shipped FP32 classifier (when its file
    exists) and every runtime kind whose shipped artifact exists."""
    from models.runtime.classifier import DEFAULT_CLASSIFIER

    classifier = (ModelSpec(name="classifier", path=DEFAULT_CLASSIFIER),) if DEFAULT_CLASSIFIER.is_file() else ()
    return (*classifier, *default_specs())


class HostedRuntime:
    """A runtime adapter as the worker runs it: the same face as :class:`HostedModel` (``name``, ``version``,
    ``input_for``, ``run_inputs``). Windows go to the runtime as the 12 standard leads in mV at
    :data:`RUNTIME_FS_HZ` (``leads``: the runtime's own ``leads`` attribute, when it declares one)."""

    def __init__(self, spec: ModelSpec, adapter: RuntimeAdapter) -> None:
        self.spec = spec
        self.adapter = adapter
        self.version = str(adapter.version)
        self.leads: tuple[str, ...] = tuple(spec.leads or getattr(adapter, "leads", None) or STANDARD_LEADS)
        self.fs_hz = float(spec.fs_hz or RUNTIME_FS_HZ)
        self.samples = int(spec.samples or round(self.fs_hz * RUNTIME_SAMPLES / RUNTIME_FS_HZ))

    @property
    def name(self) -> str:
        return self.spec.name

    def input_for(self, window: EcgWindow) -> np.ndarray:
        """(len(leads), samples) float32 mV (WindowMismatch when a lead is missing or it is too short)."""
        return window_input(window, self.leads, self.fs_hz, self.samples)

    def run(self, windows: Sequence[EcgWindow]) -> list[dict[str, Any]]:
        return self.run_inputs(np.stack([self.input_for(w) for w in windows]))

    def run_inputs(self, x: np.ndarray) -> list[dict[str, Any]]:
        out = self.adapter.run(x, self.fs_hz, self.leads)
        if len(out) != x.shape[0]:
            raise ModelConfigError(f"model {self.name!r}: {len(out)} results for {x.shape[0]} windows")
        return out


Hosted = HostedModel | HostedRuntime
"""Anything the worker runs."""


def load_hosted(spec: ModelSpec) -> Hosted:
    """Open one configured model: a runtime kind through :data:`ADAPTERS`, else a plain ONNX model."""
    factory = ADAPTERS.get(spec.kind)
    if factory is None:
        return HostedModel.load(spec)
    return HostedRuntime(spec, factory(spec))


__all__ = ["ADAPTERS", "ARTIFACTS", "Hosted", "HostedRuntime", "RuntimeAdapter", "RuntimeFactory",
           "default_model_specs", "default_specs", "load_hosted", "runtime"]
