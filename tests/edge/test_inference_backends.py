"""Backend selection: auto picks what is there (the CPU here), a named unavailable backend is a clear error."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edge.inference.backends import (
    BackendUnavailable,
    InferenceBackend,
    OnnxRuntimeBackend,
    available_backends,
    backend_name,
    select_backend,
)
from models.runtime.onnx_model import DEFAULT_RECONSTRUCTION, available_providers

HAS_CUDA_EP = "CUDAExecutionProvider" in available_providers()


def test_auto_picks_the_best_available_which_is_the_cpu_here() -> None:
    reasons = available_backends()
    assert reasons["onnxruntime-cpu"] is None
    backend = select_backend("auto", DEFAULT_RECONSTRUCTION, max_batch=8)
    assert isinstance(backend, InferenceBackend)
    if reasons["tensorrt"] is not None and reasons["onnxruntime-cuda"] is not None:
        assert backend.name == "onnxruntime-cpu"
    assert backend.input_names == ("inputs",) and backend.output_names == ("leads12", "uncertainty")
    assert "ecgstream" in backend.metadata and backend.max_batch == 8


@pytest.mark.skipif(HAS_CUDA_EP, reason="this onnxruntime has CUDA")
@pytest.mark.parametrize("name", ["onnxruntime-cuda", "cuda"])
def test_requesting_cuda_without_it_is_a_clear_error(name: str) -> None:
    with pytest.raises(BackendUnavailable, match="onnxruntime-cuda: this onnxruntime build has no CUDAExecutionProvider"):
        select_backend(name)


def test_requesting_tensorrt_without_it_is_a_clear_error() -> None:
    if available_backends()["tensorrt"] is None:
        pytest.skip("tensorrt is installed here")
    with pytest.raises(BackendUnavailable, match="^tensorrt: "):
        select_backend("trt")


def test_requesting_torch_cuda_without_a_gpu_or_factory_is_a_clear_error() -> None:
    with pytest.raises(BackendUnavailable, match="^torch-cuda: (torch is not installed|torch .* sees no CUDA|no module_factory)"):
        select_backend("torch-cuda")


def test_unknown_names_and_missing_models() -> None:
    assert backend_name("CPU") == "onnxruntime-cpu" and backend_name("auto") == "auto"
    with pytest.raises(ValueError, match="unknown inference backend 'tpu'"):
        select_backend("tpu")
    with pytest.raises(FileNotFoundError):
        select_backend("auto", "/nonexistent/model.onnx")
    with pytest.raises(FileNotFoundError):
        select_backend("cpu", "/nonexistent/model.onnx")


def test_cpu_backend_splits_batches_above_max_batch() -> None:
    backend = OnnxRuntimeBackend(DEFAULT_RECONSTRUCTION, provider="cpu", max_batch=2)
    x = np.random.default_rng(1).normal(0, 0.4, (5, 3, 1250)).astype(np.float32)
    whole = backend.run({"inputs": x})
    assert whole["leads12"].shape == (5, 12, 1250) and whole["uncertainty"].shape == (5, 12, 1250)
    for i in range(5):
        one = backend.run({"inputs": x[i : i + 1]})
        np.testing.assert_allclose(one["leads12"][0], whole["leads12"][i], atol=1e-5)
    with pytest.raises(ValueError, match="batch size"):
        backend.run({"inputs": x, "other": x[:2]})


def test_the_edge_inference_package_never_imports_torch() -> None:
    code = (
        "import sys, edge.inference, edge.inference.pipeline\n"
        "edge.inference.select_backend('auto')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
