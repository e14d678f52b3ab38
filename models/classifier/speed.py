"""Inference speed of the edge path (VAE 3→12 leads + classifier) in ONNX Runtime and PyTorch eager.

Used by ``bench/bench_classifier.py`` (printed, with ratios) and by the model cards (recorded).
Numbers depend on the machine and its load: they are measurements, never test assertions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from models.preprocessing import WINDOW_SAMPLES


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time (s) of ``repeats`` calls after one untimed warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _chain(classify: Callable[[np.ndarray], np.ndarray], reconstruct: Callable[[np.ndarray], np.ndarray],
           x3: np.ndarray) -> np.ndarray:
    """The edge path: reconstruct 12 leads from 3, then classify."""
    return classify(reconstruct(x3))


def ort_runner(path: str | Path, threads: int = 2) -> Callable[[np.ndarray], np.ndarray]:
    """(B, 12, 1250) → probabilities with an ONNX Runtime CPU session of ``threads`` intra-op threads."""
    from models.runtime.classifier import ClassifierModel

    model = ClassifierModel.load(path, providers=["cpu"], threads=threads, max_batch=1024)
    return model.predict


def vae_runner(threads: int = 2) -> Callable[[np.ndarray], np.ndarray]:
    """(B, 3, 1250) → (B, 12, 1250) with the shipped VAE in ONNX Runtime on the CPU."""
    from models.runtime.onnx_model import ReconstructionModel

    vae = ReconstructionModel.load(providers=["cpu"], threads=threads, max_batch=1024)
    return lambda x: vae.reconstruct(x)[0]


def torch_runner(weights: str | Path, threads: int = 2) -> Callable[[np.ndarray], np.ndarray] | None:
    """The same classifier in PyTorch eager from its ``classifier_<arch>.pt`` (None without torch or weights)."""
    try:
        import torch

        from models.classifier.train import load_trained
    except ImportError:
        return None
    if not Path(weights).exists():
        return None
    from models.classifier.export import n_features
    from models.features import feature_matrix, measured_rows
    from models.preprocessing import MODEL_FS
    from protocol.leads import STANDARD_LEADS

    torch.set_num_threads(threads)
    model = load_trained(weights)
    rows = measured_rows(STANDARD_LEADS)

    def run(x: np.ndarray) -> np.ndarray:
        f = torch.from_numpy(feature_matrix(x, MODEL_FS, rows)) if n_features(model) else None
        with torch.no_grad():
            return torch.sigmoid(model(torch.from_numpy(x), f)).numpy()

    return run


def edge_path_speed(
    classifiers: dict[str, Callable[[np.ndarray], np.ndarray]],
    *,
    batches: tuple[int, ...] = (1, 32),
    threads: int = 2,
    seconds: float = 2.0,
) -> list[dict[str, Any]]:
    """Per batch size: the VAE alone, then VAE + each classifier (and the classifier alone); best of repeats.

    Returns rows ``{"what", "batch", "ms_per_batch", "ms_per_window", "windows_per_s"}``.
    """
    vae = vae_runner(threads)
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    for batch in batches:
        x3 = rng.normal(0, 0.5, (batch, 3, WINDOW_SAMPLES)).astype(np.float32)
        x12 = vae(x3)
        t_one = best_time(partial(vae, x3), 1)
        reps = max(3, min(200, int(seconds / max(t_one, 1e-4))))
        cases: list[tuple[str, Callable[[], object]]] = [("VAE only (ORT FP32)", partial(vae, x3))]
        for name, classify in classifiers.items():
            cases.append((f"{name} only", partial(classify, x12)))
            cases.append((f"VAE + {name}", partial(_chain, classify, vae, x3)))
        for what, case in cases:
            t = best_time(case, reps)
            rows.append({"what": what, "batch": batch, "ms_per_batch": round(t * 1e3, 3),
                         "ms_per_window": round(t * 1e3 / batch, 3), "windows_per_s": round(batch / t, 1)})
    return rows
