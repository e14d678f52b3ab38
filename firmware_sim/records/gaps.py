"""Fill missing (NaN) samples by linear interpolation."""

from __future__ import annotations

import dataclasses

import numpy as np

from firmware_sim.records.errors import RecordError
from firmware_sim.records.recording import Recording


def fill_gaps(recording: Recording) -> tuple[Recording, int]:
    """The recording with every NaN sample replaced, and how many sample values were filled.

    Each channel is interpolated linearly in time between its nearest valid
    samples; NaNs before the first or after the last valid sample take that
    sample's value. Returns ``(recording, 0)`` unchanged when nothing is missing.
    Raises :class:`RecordError` when a channel has no valid sample at all.
    """
    missing = np.isnan(recording.signals)
    n_missing = int(missing.sum())
    if n_missing == 0:
        return recording, 0
    empty = [
        name
        for name, all_missing in zip(recording.lead_names, missing.all(axis=0), strict=True)
        if all_missing
    ]
    if empty:
        raise RecordError(
            f"record {recording.name!r}: channel {', '.join(empty)} has no valid samples to fill from"
        )
    signals = recording.signals.copy()
    t = np.arange(recording.n_samples)
    for column in np.flatnonzero(missing.any(axis=0)):
        gap = missing[:, column]
        signals[gap, column] = np.interp(t[gap], t[~gap], signals[~gap, column])
    return dataclasses.replace(recording, signals=signals), n_missing
