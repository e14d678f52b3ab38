"""Cloud zero-shot speed: the ECG encoder of the zero-shot model vs the arrhythmia classifier, per 10 s window.

Run: ``.venv/bin/python -m bench zeroshot``. For batch 1 and 16 (the model worker's default micro-batch)
it prints ms per window and windows/s on the CPU with 2 threads of: the zero-shot ECG encoder alone
(ONNX Runtime, prepared windows + rhythm features), the whole zero-shot path as the cloud runs it
(preprocessing, features, encoder, scoring all 28 knowledge-base labels: ``ZeroShotModel.run``), and the
shipped ECG-Mamba classifier FP32 (with its features) as the baseline, measured in the same run; the last
column is each row's windows/s over the baseline's at the same batch. Nothing is asserted.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

import numpy as np

from bench.timing import best_time
from models.features import feature_matrix, measured_rows
from models.preprocessing import MODEL_FS
from models.runtime.classifier import DEFAULT_CLASSIFIER, ClassifierModel
from models.runtime.zeroshot import DEFAULT_ZEROSHOT, ZeroShotModel
from protocol.leads import STANDARD_LEADS

THREADS = 2
BATCHES = (1, 16)
BASELINE = "classifier Mamba ORT FP32"


def _windows(n: int) -> np.ndarray:
    from firmware_sim.synthesis import random_patient, synthesize

    return np.stack([synthesize("sinus", seconds=10.0, fs=MODEL_FS, seed=s, patient=random_patient(s)).signals.T
                     for s in range(n)]).astype(np.float32)


def _runs(zs: ZeroShotModel, clf: ClassifierModel, x: np.ndarray) -> dict[str, Callable[[], object]]:
    rows = measured_rows(STANDARD_LEADS)

    def encoder() -> object:
        return zs.model.run(ecg=x, features=feature_matrix(x, MODEL_FS, rows).astype(np.float32))

    def classifier() -> object:
        return clf.predict(x)

    def whole() -> object:
        return zs.run(x, MODEL_FS, STANDARD_LEADS)

    return {BASELINE: classifier, "zero-shot ECG encoder ORT FP32": encoder,
            "zero-shot run (prepare + encode + 28 labels)": whole}


def main() -> None:
    cpu = platform.processor() or platform.machine()
    print(f"{os.cpu_count()} CPU(s) ({cpu}), {THREADS} threads; windows of 12 x 1250 samples (10 s at 125 Hz); "
          "best of repeats")
    if not DEFAULT_ZEROSHOT.exists() or not DEFAULT_CLASSIFIER.exists():
        print("(zero-shot or classifier artifact not found: skipped)")
        return
    zs = ZeroShotModel.load(threads=THREADS, providers=["cpu"])
    clf = ClassifierModel.load(threads=THREADS, providers=["cpu"])
    x_all = _windows(max(BATCHES))
    rows: list[tuple[str, int, float]] = []
    for b in BATCHES:
        for what, fn in _runs(zs, clf, np.ascontiguousarray(x_all[:b])).items():
            rows.append((what, b, best_time(fn, 10 if b == 1 else 5, warmup=True)))
    base = {b: b / s for what, b, s in rows if what == BASELINE}
    print(f"{'what':<46} {'batch':>5} {'ms/window':>10} {'windows/s':>10} {'vs ' + BASELINE:>30}")
    for what, b, s in rows:
        wps = b / s
        print(f"{what:<46} {b:>5} {1e3 * s / b:10.3f} {wps:10.1f} {wps / base[b]:29.2f}x")


if __name__ == "__main__":
    main()
