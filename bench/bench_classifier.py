"""Edge inference speed: VAE (II, V1, V5 → 12 leads) + arrhythmia classifier, per 10 s window.

Run: ``.venv/bin/python -m bench classifier``. For batch 1 and 32 it prints ms per window and
windows/s of the VAE alone, each classifier alone and VAE + classifier, for ECG-Mamba FP32 and INT8 in
ONNX Runtime, ECG-Mamba in PyTorch eager, and the ResNet baseline (FP32, INT8), all on the CPU with 2
threads. The baseline, measured in the same run, is VAE + ECG-Mamba FP32 in ONNX Runtime: the last
column is each row's windows/s over it. With torch installed, the same trained ECG-Mamba is also
exported with the sequential reference scan (one step per token, as a first implementation would do)
and timed, to show what the chunked (SSD) scan buys. Goal: ≥ 100 windows/s for VAE + classifier on 2 cores.
Nothing is asserted.
"""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.classifier.speed import edge_path_speed, ort_runner, torch_runner
from models.runtime.onnx_model import ARTIFACTS

THREADS = 2
BASELINE = "VAE + Mamba ORT FP32"


def _sequential_scan_runner(folder: Path) -> Callable[[np.ndarray], np.ndarray] | None:
    """The shipped ECG-Mamba weights exported with the token-by-token reference scan (None without torch)."""
    try:
        from models.classifier.export import export_onnx
        from models.classifier.train import load_trained
    except ImportError:
        return None
    weights = ARTIFACTS / "classifier_mamba.pt"
    if not weights.exists():
        return None
    model = load_trained(weights)
    model.set_reference_scan(True)  # type: ignore[operator]  # load_trained returns the ECGMamba as nn.Module
    path = export_onnx(model, folder / "sequential.onnx", {"architecture": "mamba", "config_hash": "sequential"})
    return ort_runner(path, THREADS)


def main() -> None:
    cpu = platform.processor() or platform.machine()
    print(f"{os.cpu_count()} CPU(s) ({cpu}), {THREADS} threads; windows of 12 x 1250 samples (10 s at 125 Hz); "
          "best of repeats")
    classifiers = {}
    for label, name in (("Mamba ORT FP32", "classifier_mamba.onnx"), ("Mamba ORT INT8", "classifier_mamba_int8.onnx"),
                        ("ResNet ORT FP32", "classifier_resnet.onnx"), ("ResNet ORT INT8", "classifier_resnet_int8.onnx")):
        path = ARTIFACTS / name
        if path.exists():
            classifiers[label] = ort_runner(path, THREADS)
        else:
            print(f"({path.name} not found: skipped)")
    eager = torch_runner(ARTIFACTS / "classifier_mamba.pt", THREADS)
    if eager is not None:
        classifiers["Mamba torch eager FP32"] = eager
    with tempfile.TemporaryDirectory() as tmp:
        sequential = _sequential_scan_runner(Path(tmp))
        if sequential is not None:
            classifiers["Mamba ORT FP32 sequential scan"] = sequential
        rows = edge_path_speed(classifiers, threads=THREADS)
    base = {r["batch"]: r["windows_per_s"] for r in rows if r["what"] == BASELINE}
    print(f"{'what':<40} {'batch':>5} {'ms/batch':>9} {'ms/window':>10} {'windows/s':>10} {'vs ' + BASELINE:>26}")
    for r in rows:
        ratio = r["windows_per_s"] / base[r["batch"]] if r["batch"] in base else float("nan")
        print(f"{r['what']:<40} {r['batch']:>5} {r['ms_per_batch']:9.2f} {r['ms_per_window']:10.3f} "
              f"{r['windows_per_s']:10.1f} {ratio:25.2f}x")


if __name__ == "__main__":
    main()
