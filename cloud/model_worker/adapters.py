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

from cloud.model_worker.hosted import ModelConfigError, ModelSpec

ARTIFACTS = Path(__file__).resolve().parents[2] / "models" / "artifacts"
"""Where shipped model files live (``models/artifacts``)."""


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


__all__ = ["ADAPTERS", "ARTIFACTS", "RuntimeAdapter", "RuntimeFactory", "default_specs", "runtime"]
