"""The cloud's model worker: heavier models on the windows of stored alerts, results into the store.

- :mod:`cloud.model_worker.hosted`: one configured ONNX model (:class:`ModelSpec` → :class:`HostedModel`)
  and how a stored window becomes its input;
- :mod:`cloud.model_worker.worker`: :class:`ModelWorker`, which follows the alert table and stores
  each model's result against the alert's window.

Models plug in by configuration (``[[model_worker.models]]``); a plain ONNX model needs no code, a heavy model
with a runtime class needs one line in :mod:`cloud.model_worker.adapters`.
"""

from cloud.model_worker.adapters import (
    ADAPTERS,
    HostedRuntime,
    default_model_specs,
    load_hosted,
)
from cloud.model_worker.hosted import (
    KINDS,
    HostedModel,
    ModelConfigError,
    ModelSpec,
    WindowMismatch,
    window_input,
)
from cloud.model_worker.worker import ModelWorker, ModelWorkerCounters

__all__ = [
    "ADAPTERS", "HostedRuntime", "default_model_specs", "load_hosted",
    "KINDS", "HostedModel", "ModelConfigError", "ModelSpec", "ModelWorker", "ModelWorkerCounters", "WindowMismatch",
    "window_input",
]
