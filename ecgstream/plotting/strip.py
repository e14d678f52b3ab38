"""A strip to draw: leads in mV on a common time axis, with their labels and annotations."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Strip:
    """What one plot shows.

    Attributes:
        signals: ``(n_samples, n_leads)`` mV (NaN where samples are missing: drawn as breaks).
        fs: sampling rate in Hz.
        lead_names: one per column.
        title: a line above the strip (record, patient, alert …).
        start_s: time of the first sample in the source (s), for the time labels.
        reconstructed: leads computed (not measured), drawn and labelled as such.
        beats: ``(time s from the strip start, symbol)`` beat annotations (``N``, ``V`` …).
        rhythms: ``(time s from the strip start, label)`` rhythm changes (``(AFIB``); one at 0
            gives the rhythm in effect when the strip starts.
    """

    signals: np.ndarray
    fs: float
    lead_names: tuple[str, ...]
    title: str = ""
    start_s: float = 0.0
    reconstructed: frozenset[str] = field(default_factory=frozenset)
    beats: tuple[tuple[float, str], ...] = ()
    rhythms: tuple[tuple[float, str], ...] = ()

    def __post_init__(self) -> None:
        signals = np.asarray(self.signals, dtype=np.float64)
        if signals.ndim != 2 or signals.shape[1] != len(self.lead_names) or signals.shape[0] == 0:
            raise ValueError(f"a strip needs (n > 0, {len(self.lead_names)}) samples, got {signals.shape}")
        if not self.fs > 0:
            raise ValueError(f"a strip needs a positive rate, got {self.fs}")
        object.__setattr__(self, "signals", signals)

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.signals.shape[0] / self.fs
