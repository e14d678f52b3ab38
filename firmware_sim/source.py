"""The one interface every signal a virtual wearable can stream implements.

A source hands out consecutive blocks of samples in millivolts, at its own rate,
for its own leads. Synthesised patients, replayed recordings and test fixtures
are all sources, so devices, transports and fleets never care where samples
come from.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class SignalSource(Protocol):
    """Consecutive multi-lead samples, in mV, shape ``(n, len(lead_names))``."""

    @property
    def fs(self) -> float:
        """Sampling rate in Hz."""
        ...

    @property
    def lead_names(self) -> tuple[str, ...]:
        """Lead names (standard spelling, see :mod:`protocol.leads`) in column order."""
        ...

    def read(self, n_samples: int) -> np.ndarray:
        """The next ``n_samples`` rows (float, mV). Fewer rows (possibly 0) mean the source ended."""
        ...


class ArraySource:
    """A :class:`SignalSource` over an in-memory array, optionally looping."""

    def __init__(self, signals: np.ndarray, fs: float, lead_names: tuple[str, ...], *, loop: bool = False):
        signals = np.asarray(signals, dtype=np.float64)
        if signals.ndim != 2 or signals.shape[1] != len(lead_names):
            raise ValueError(
                f"signals must have shape (n, {len(lead_names)}) for leads {lead_names}, got {signals.shape}"
            )
        if fs <= 0:
            raise ValueError(f"sampling rate must be positive, got {fs}")
        if loop and len(signals) == 0:
            raise ValueError("cannot loop an empty signal")
        self._signals = signals
        self._fs = float(fs)
        self._lead_names = tuple(lead_names)
        self._loop = loop
        self._pos = 0

    @property
    def fs(self) -> float:
        return self._fs

    @property
    def lead_names(self) -> tuple[str, ...]:
        return self._lead_names

    @property
    def position(self) -> int:
        """Samples handed out so far (counting loops)."""
        return self._pos

    def read(self, n_samples: int) -> np.ndarray:
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {n_samples}")
        total = len(self._signals)
        if not self._loop:
            start = min(self._pos, total)
            block = self._signals[start : start + n_samples]
            self._pos = start + len(block)
            return block
        idx = (self._pos + np.arange(n_samples)) % total
        self._pos += n_samples
        return self._signals[idx]
