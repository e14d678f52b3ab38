"""Change a recording's sampling rate by polyphase filtering (scipy.signal.resample_poly)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from firmware_sim.records.errors import RecordError
from firmware_sim.records.recording import Recording

_MAX_RATE_DENOMINATOR = 1000  # rates are taken as multiples of 1 mHz
_MAX_FACTOR = 10_000  # beyond this, the polyphase filter gets impractically long


def rational_ratio(fs_from: float, fs_to: float) -> tuple[int, int]:
    """``(up, down)`` in lowest terms with ``fs_from * up / down == fs_to`` (rates rounded to 1 mHz).

    >>> rational_ratio(360, 250)
    (25, 36)
    """
    ratio = Fraction(fs_to).limit_denominator(_MAX_RATE_DENOMINATOR) / Fraction(fs_from).limit_denominator(
        _MAX_RATE_DENOMINATOR
    )
    return ratio.numerator, ratio.denominator


def resample(recording: Recording, fs: float) -> Recording:
    """The recording at ``fs`` Hz, every channel filtered at once (anti-aliasing FIR, Kaiser window).

    The duration is kept: ``n_samples`` becomes ``ceil(n_samples * up / down)``. The
    signal is detrended linearly at the edges (``padtype="line"``) so DC offsets do
    not ring. Returns ``recording`` itself when the rate is already ``fs``.

    Raises :class:`RecordError` when the recording has NaN samples (call
    :func:`firmware_sim.records.fill_gaps` first) or the rate ratio needs a
    factor above 10 000, and :class:`ValueError` for a non-positive ``fs``.
    """
    if not fs > 0:
        raise ValueError(f"target sampling rate must be positive, got {fs}")
    up, down = rational_ratio(recording.fs, fs)
    if up == down:
        return recording
    if max(up, down) > _MAX_FACTOR:
        raise RecordError(
            f"record {recording.name!r}: resampling {recording.fs:g} Hz to {fs:g} Hz needs the ratio "
            f"{up}/{down}; choose rates with a simpler ratio"
        )
    n_missing = int(np.isnan(recording.signals).sum())
    if n_missing:
        raise RecordError(
            f"record {recording.name!r} has {n_missing} missing (NaN) samples; fill_gaps() it before resampling"
        )
    signals = resample_poly(recording.signals, up, down, axis=0, padtype="line")
    return dataclasses.replace(recording, signals=signals, fs=float(fs))
