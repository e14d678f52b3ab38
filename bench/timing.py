"""The one timing helper every benchmark uses."""

from __future__ import annotations

import time
from collections.abc import Callable


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
