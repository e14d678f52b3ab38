"""The timing helpers the benchmarks share."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np


def best_time(fn: Callable[[], object], repeats: int, *, warmup: bool = False) -> float:
    """Best wall time (s) of ``repeats`` calls of ``fn``, after one untimed call if ``warmup``."""
    if warmup:
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def latency_ms(seconds: Sequence[float]) -> tuple[float, float, float]:
    """p50, p99 and max (ms) of latencies given in seconds."""
    a = np.asarray(seconds) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())
