"""Inference backends behind one interface, chosen automatically or by name.

Every backend runs the same ONNX artifact (or, for ``torch-cuda``, the module it
was exported from) and speaks numpy: ``run({input name: array}) -> {output name:
array}``, batch first, at most :attr:`InferenceBackend.max_batch` rows per call
to the device (larger inputs are split).

==================== ============================================================= ============================
name                 how                                                            available when
==================== ============================================================= ============================
``tensorrt``         TensorRT engine built from the ONNX (dynamic batch 1..max),    ``tensorrt`` and
                     cached on disk next to the model (or ``cache_dir``)            ``cuda-python`` import, a GPU
``onnxruntime-cuda`` ONNX Runtime, CUDA execution provider                          onnxruntime-gpu with CUDA
``torch-cuda``       the training-side ``torch.nn.Module`` on CUDA, built by a       torch with CUDA, and a
                     ``module_factory`` the caller passes (the edge never imports   factory passed
                     training code, and torch only lazily, here)
``onnxruntime-cpu``  ONNX Runtime on the CPU                                        always (onnxruntime)
==================== ============================================================= ============================

:func:`select_backend` with ``"auto"`` takes the first available in that order;
a named backend that is unavailable raises :class:`BackendUnavailable` with the
reason. ONNX Runtime sessions come from :class:`models.runtime.onnx_model.OnnxModel`.

**Tested here:** ``onnxruntime-cpu`` and the unavailable paths. The TensorRT
and torch-CUDA code paths are written against the TensorRT 10 and torch 2
APIs but have not run on a GPU in this repository's tests (no GPU in CI).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edge.errors import EdgeError
from models.runtime.onnx_model import DEFAULT_RECONSTRUCTION, OnnxModel, available_providers

BACKEND_ORDER: tuple[str, ...] = ("tensorrt", "onnxruntime-cuda", "torch-cuda", "onnxruntime-cpu")
"""Preference of ``select_backend("auto")``, best first."""
_ALIASES = {
    "trt": "tensorrt", "cuda": "onnxruntime-cuda", "ort-cuda": "onnxruntime-cuda", "cpu": "onnxruntime-cpu",
    "ort-cpu": "onnxruntime-cpu", "onnxruntime": "onnxruntime-cpu", "torch": "torch-cuda",
}


class BackendUnavailable(EdgeError, RuntimeError):
    """The requested backend cannot run on this machine (the message says why)."""


@runtime_checkable
class InferenceBackend(Protocol):
    """A model that maps named batch-first numpy inputs to named numpy outputs."""

    name: str
    max_batch: int
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    metadata: Mapping[str, str]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def _batches(inputs: Mapping[str, np.ndarray], max_batch: int) -> list[dict[str, np.ndarray]]:
    sizes = {np.shape(v)[0] for v in inputs.values()}
    if len(sizes) != 1:
        raise ValueError(f"inputs disagree on batch size: { {k: np.shape(v) for k, v in inputs.items()} }")
    (n,) = sizes
    return [
        {k: np.ascontiguousarray(v[s : s + max_batch]) for k, v in inputs.items()}
        for s in range(0, max(n, 1), max_batch)
    ]


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class OnnxRuntimeBackend:
    """ONNX Runtime on the CPU (``provider="cpu"``) or with the CUDA execution provider (``"cuda"``)."""

    def __init__(self, model_path: str | Path = DEFAULT_RECONSTRUCTION, *, provider: str = "cpu",
                 max_batch: int = 64, threads: int = 0) -> None:
        provider = provider.lower()
        if provider not in ("cpu", "cuda"):
            raise ValueError(f"provider must be 'cpu' or 'cuda', got {provider!r}")
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        full = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}[provider]
        if full not in available_providers():
            raise BackendUnavailable(
                f"onnxruntime-{provider}: this onnxruntime build has no {full} "
                f"(has {', '.join(available_providers())}; install onnxruntime-gpu for CUDA)"
            )
        try:
            self.model = OnnxModel(model_path, providers=[provider], threads=threads)
        except (RuntimeError, OSError) as exc:  # e.g. CUDA libraries missing at session creation
            if isinstance(exc, FileNotFoundError):
                raise
            raise BackendUnavailable(f"onnxruntime-{provider}: session failed: {exc}") from exc
        if self.model.providers[0] != full:  # onnxruntime falls back to the CPU silently
            raise BackendUnavailable(f"onnxruntime-{provider}: session fell back to {self.model.providers}")
        self.name = f"onnxruntime-{provider}"
        self.max_batch = max_batch
        self.input_names = tuple(self.model.input_names)
        self.output_names = tuple(self.model.output_names)
        self.metadata: Mapping[str, str] = self.model.metadata

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return _concat([self.model.run(**part) for part in _batches(inputs, self.max_batch)])


class TensorRTBackend:
    """A TensorRT engine built from the ONNX model, with a dynamic batch axis (1..``max_batch``).

    The engine is built once and cached as ``{cache_dir}/{model}-{sha}-trt{version}-{gpu}-b{max}[-fp16].engine``
    (written atomically); a cached engine is reused when model, TensorRT version,
    GPU and batch limit match. Device memory and streams through ``cuda-python``
    (``cuda.bindings.runtime``, or ``cuda.cudart`` in older releases).
    **Not run in this repository's tests** (no GPU, no TensorRT here).
    """

    name = "tensorrt"

    def __init__(self, model_path: str | Path = DEFAULT_RECONSTRUCTION, *, max_batch: int = 64,
                 cache_dir: str | Path | None = None, fp16: bool = False, workspace_mib: int = 512) -> None:
        trt, cudart = _import_tensorrt()
        self._trt, self._cudart = trt, cudart
        self.max_batch = max_batch
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model {path} not found")
        onnx_bytes = path.read_bytes()
        gpu = _cuda_check(cudart, cudart.cudaGetDeviceProperties(0))[0].name
        gpu = (gpu.decode() if isinstance(gpu, bytes) else str(gpu)).strip("\x00").replace(" ", "_")
        sha = hashlib.sha256(onnx_bytes).hexdigest()[:12]
        cache = Path(cache_dir) if cache_dir is not None else path.parent
        self.engine_path = cache / f"{path.stem}-{sha}-trt{trt.__version__}-{gpu}-b{max_batch}{'-fp16' if fp16 else ''}.engine"
        logger = trt.Logger(trt.Logger.WARNING)
        if self.engine_path.is_file():
            serialized = self.engine_path.read_bytes()
        else:
            serialized = self._build(trt, logger, onnx_bytes, fp16, workspace_mib, max_batch)
            cache.mkdir(parents=True, exist_ok=True)
            tmp = self.engine_path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(serialized)
            os.replace(tmp, self.engine_path)
        self._runtime = trt.Runtime(logger)
        self.engine = self._runtime.deserialize_cuda_engine(serialized)
        if self.engine is None:
            raise BackendUnavailable(f"tensorrt: could not deserialise {self.engine_path} (delete it to rebuild)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = tuple(n for n in names if is_input[n])
        self.output_names = tuple(n for n in names if not is_input[n])
        self.metadata: Mapping[str, str] = _onnx_metadata(path)
        self._stream = _cuda_check(cudart, cudart.cudaStreamCreate())[0]
        self._buffers: dict[str, tuple[int, int]] = {}  # name → (device pointer, bytes)

    @staticmethod
    def _build(trt: Any, logger: Any, onnx_bytes: bytes, fp16: bool, workspace_mib: int, max_batch: int) -> bytes:
        builder = trt.Builder(logger)
        flags = 0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendUnavailable(f"tensorrt: the ONNX parser refused the model: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            inp = network.get_input(i)
            rest = tuple(inp.shape)[1:]
            profile.set_shape(inp.name, (1, *rest), (max_batch, *rest), (max_batch, *rest))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendUnavailable("tensorrt: engine build failed (see the TensorRT log)")
        return bytes(serialized)

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _cuda_check(self._cudart, self._cudart.cudaFree(ptr))
            ptr = _cuda_check(self._cudart, self._cudart.cudaMalloc(nbytes))[0]
            self._buffers[name] = (ptr, nbytes)
        return int(ptr)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return _concat([self._run_one(part) for part in _batches(inputs, self.max_batch)])

    def _run_one(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart, ctx = self._cudart, self.context
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.input_names:
            x = np.ascontiguousarray(inputs[name], dtype=np.float32)
            ctx.set_input_shape(name, x.shape)
            ptr = self._buffer(name, x.nbytes)
            _cuda_check(cudart, cudart.cudaMemcpyAsync(ptr, x.ctypes.data, x.nbytes, h2d, self._stream))
            ctx.set_tensor_address(name, ptr)
        outs: dict[str, np.ndarray] = {}
        for name in self.output_names:
            out = np.empty(tuple(ctx.get_tensor_shape(name)), dtype=np.float32)
            ctx.set_tensor_address(name, self._buffer(name, out.nbytes))
            outs[name] = out
        if not ctx.execute_async_v3(int(self._stream)):
            raise RuntimeError("tensorrt: execute_async_v3 failed")
        for name, out in outs.items():
            ptr = self._buffers[name][0]
            _cuda_check(cudart, cudart.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, d2h, self._stream))
        _cuda_check(cudart, cudart.cudaStreamSynchronize(self._stream))
        return outs

    def __del__(self) -> None:
        cudart = getattr(self, "_cudart", None)
        for ptr, _ in getattr(self, "_buffers", {}).values():
            if cudart is not None:
                cudart.cudaFree(ptr)


def _import_tensorrt() -> tuple[Any, Any]:
    if importlib.util.find_spec("tensorrt") is None:
        raise BackendUnavailable("tensorrt: the tensorrt Python package is not installed (JetPack or pip install tensorrt)")
    try:
        import tensorrt as trt
    except Exception as exc:  # noqa: BLE001 - a broken install must read as unavailable
        raise BackendUnavailable(f"tensorrt: import failed: {exc}") from exc
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]  # cuda-python < 12.6
        except ImportError:
            raise BackendUnavailable("tensorrt: needs cuda-python for device memory (pip install cuda-python)") from None
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count < 1:
        raise BackendUnavailable(f"tensorrt: no CUDA device ({err})")
    return trt, cudart


def _cuda_check(cudart: Any, result: Any) -> Any:
    """cuda-python calls return (error, *values); raise on error, return the values."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return rest


def _onnx_metadata(path: Path) -> Mapping[str, str]:
    """The ONNX model's custom metadata, read through an ONNX Runtime CPU session (cheap, once)."""
    try:
        return OnnxModel(path, providers=["cpu"]).metadata
    except Exception:  # noqa: BLE001 - metadata is informative only
        return {}


class TorchCudaBackend:
    """The training-side ``torch.nn.Module`` on CUDA (a guarded option; the edge never needs torch).

    ``module_factory`` builds the module whose ``forward(x)`` returns the ONNX
    graph's outputs in order (for the reconstruction VAE:
    ``models.reconstruction.vae.ReconstructionVAE`` loaded from its checkpoint,
    which returns ``(leads12, uncertainty)``). The edge may not import training
    code, so the wiring (``ecgstream``) passes the factory. Without torch, CUDA
    or a factory this raises :class:`BackendUnavailable` saying which.
    **Not run in this repository's tests** beyond that error (no GPU here).
    """

    name = "torch-cuda"

    def __init__(self, module_factory: Callable[[], Any] | None = None, *, max_batch: int = 64,
                 input_names: Sequence[str] = ("inputs",),
                 output_names: Sequence[str] = ("leads12", "uncertainty"), metadata: Mapping[str, str] | None = None) -> None:
        if importlib.util.find_spec("torch") is None:
            raise BackendUnavailable("torch-cuda: torch is not installed")
        import torch  # lazily: only this backend ever imports torch

        if not torch.cuda.is_available():
            raise BackendUnavailable(f"torch-cuda: torch {torch.__version__} sees no CUDA device")
        if module_factory is None:
            raise BackendUnavailable("torch-cuda: no module_factory given (the edge does not load training code itself)")
        self._torch = torch
        self.module = module_factory().eval().to("cuda")
        self.max_batch = max_batch
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)
        self.metadata: Mapping[str, str] = dict(metadata or {})

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        parts = []
        with torch.inference_mode():
            for part in _batches(inputs, self.max_batch):
                args = [torch.from_numpy(part[n]).to("cuda", non_blocking=True) for n in self.input_names]
                out = self.module(*args)
                out = out if isinstance(out, (tuple, list)) else (out,)
                parts.append({n: t.float().cpu().numpy() for n, t in zip(self.output_names, out, strict=True)})
        return _concat(parts)


def available_backends(*, torch_factory: Callable[[], Any] | None = None) -> dict[str, str | None]:
    """Each backend name → None when it looks usable here, else why not (cheap checks, no model loaded)."""
    out: dict[str, str | None] = {}
    try:
        _import_tensorrt()
        out["tensorrt"] = None
    except BackendUnavailable as exc:
        out["tensorrt"] = str(exc)
    providers = available_providers()
    out["onnxruntime-cuda"] = None if "CUDAExecutionProvider" in providers else "onnxruntime has no CUDAExecutionProvider"
    if importlib.util.find_spec("torch") is None:
        out["torch-cuda"] = "torch is not installed"
    elif torch_factory is None:
        out["torch-cuda"] = "no module_factory given"
    else:
        import torch

        out["torch-cuda"] = None if torch.cuda.is_available() else "torch sees no CUDA device"
    out["onnxruntime-cpu"] = None if "CPUExecutionProvider" in providers else "onnxruntime has no CPUExecutionProvider"
    return out


def backend_name(preference: str) -> str:
    """Canonical backend name for a name or alias (``cpu``, ``cuda``, ``trt``, …); ``auto`` stays ``auto``."""
    p = preference.strip().lower()
    if p == "auto" or p in BACKEND_ORDER:
        return p
    if p in _ALIASES:
        return _ALIASES[p]
    raise ValueError(f"unknown inference backend {preference!r}: use auto or one of {', '.join(BACKEND_ORDER)}")


def select_backend(
    preference: str = "auto", model_path: str | Path = DEFAULT_RECONSTRUCTION, *, max_batch: int = 64,
    threads: int = 0, trt_cache_dir: str | Path | None = None, trt_fp16: bool = False,
    torch_factory: Callable[[], Any] | None = None,
) -> InferenceBackend:
    """Open the best available backend (``"auto"``) or the one named; unavailable → :class:`BackendUnavailable`.

    ``"auto"`` tries ``tensorrt`` > ``onnxruntime-cuda`` > ``torch-cuda`` > ``onnxruntime-cpu``
    and moves on when one fails to open; the message of the final error lists every reason.
    """
    name = backend_name(preference)

    def make(n: str) -> InferenceBackend:
        if n == "tensorrt":
            return TensorRTBackend(model_path, max_batch=max_batch, cache_dir=trt_cache_dir, fp16=trt_fp16)
        if n == "onnxruntime-cuda":
            return OnnxRuntimeBackend(model_path, provider="cuda", max_batch=max_batch, threads=threads)
        if n == "torch-cuda":
            return TorchCudaBackend(torch_factory, max_batch=max_batch, metadata=_onnx_metadata(Path(model_path)))
        return OnnxRuntimeBackend(model_path, provider="cpu", max_batch=max_batch, threads=threads)

    if name != "auto":
        return make(name)
    if not Path(model_path).is_file():
        raise FileNotFoundError(f"ONNX model {model_path} not found")
    reasons = []
    for n in BACKEND_ORDER:
        if n == "torch-cuda" and torch_factory is None:
            reasons.append(f"{n}: no module_factory given")
            continue
        try:
            return make(n)
        except BackendUnavailable as exc:
            reasons.append(str(exc))
    raise BackendUnavailable("no inference backend is available: " + "; ".join(reasons))
