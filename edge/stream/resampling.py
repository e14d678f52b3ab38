"""Streaming polyphase resampling from the device rate to the model rate (125 Hz unless configured).

Choice: a polyphase FIR with state, not accumulate-and-resample. It uses the
same rational ratio (``Fraction(fs_out / fs_in).limit_denominator(1000)``) and
the same filter as ``scipy.signal.resample_poly`` (Kaiser-windowed ``firwin``,
β = 5, ``20 · max(up, down) + 1`` taps) that
:func:`models.preprocessing.resample` calls, so, for one contiguous segment
fed in blocks of any size and then :meth:`StreamingResampler.flush` ed, the
concatenated output equals ``resample_poly(x, up, down, padtype="edge")`` of
the whole segment to float rounding, and equals
:func:`models.preprocessing.resample` (``padtype="line"``) everywhere except
the first and last ``≈ 10 · max(up, down) / down`` output samples, where only
the edge extension differs (40 ms at 250 → 125 Hz).

Output sample ``m`` of a segment needs input up to index
``(m · down + half_len) / up``, so the output lags the input by the filter's
half length (20 input samples = 80 ms at 250 Hz; 21 at 130 Hz). Work per
block is one gather and one ``einsum``, vectorised over output samples and
leads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from fractions import Fraction

import numpy as np
from scipy import signal as sps

DEFAULT_MODEL_FS = 125.0
"""The model rate (Hz) of the shipped artifacts (their ``fs_hz`` metadata), used when none is configured."""


def model_fs_from_metadata(metadata: Mapping[str, str]) -> float | None:
    """The input rate (Hz) an ONNX artifact states: ``fs_hz`` in its ``ecgstream`` JSON metadata, else None.

    ``metadata`` is what an inference backend reads from the artifact (``InferenceBackend.metadata``).
    """
    try:
        fs = float(json.loads(metadata["ecgstream"])["fs_hz"])
    except (KeyError, TypeError, ValueError):
        return None
    return fs if fs > 0 else None


class StreamingResampler:
    """Resamples one contiguous segment of ``(n, n_channels)`` blocks from ``fs_in`` to ``fs_out`` Hz."""

    def __init__(self, fs_in: float, n_channels: int, fs_out: float = DEFAULT_MODEL_FS) -> None:
        if fs_in <= 0 or fs_out <= 0:
            raise ValueError(f"sampling rates must be positive, got {fs_in} -> {fs_out}")
        ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.fs_in, self.fs_out = fs_in, fs_out
        max_rate = max(self.up, self.down)
        self._half = 10 * max_rate
        self._h = (
            np.ones(1) if self.up == self.down
            else sps.firwin(2 * self._half + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * self.up
        )
        self._taps = -(-len(self._h) // self.up) + 1
        # coefficient of tap t for an output sample of phase p = (m·down + half) mod up: h[p + t·up]
        # (0 past the end); a table per phase instead of one gather of h per block
        h_idx = np.arange(self.up)[:, None] + np.arange(self._taps)[None, :] * self.up
        self._coef = np.where(h_idx < len(self._h), self._h[np.minimum(h_idx, len(self._h) - 1)], 0.0)
        self._tap_range = np.arange(self._taps)
        self._plans: dict[int, tuple[np.ndarray, np.ndarray]] = {}   # up == 1: (gather offsets, coef) per count
        self._pad = self._taps + 1
        self._n_channels = n_channels
        self._buf = np.empty((0, n_channels))
        self._buf_start = 0
        self._n_in = 0
        self._m = 0

    @property
    def n_out(self) -> int:
        """Output samples produced so far."""
        return self._m

    @property
    def identity(self) -> bool:
        """True when no resampling is needed (input already at the output rate)."""
        return self.up == self.down

    def push(self, block: np.ndarray) -> np.ndarray:
        """Add input samples ``(n, n_channels)``; returns the output samples now complete (float64)."""
        x = np.asarray(block, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self._n_channels:
            raise ValueError(f"block must have shape (n, {self._n_channels}), got {x.shape}")
        if self.identity:
            self._m += len(x)
            return x.copy()
        if len(x) == 0:
            return np.empty((0, self._n_channels))
        if self._n_in == 0:
            self._buf = np.repeat(x[:1], self._pad, axis=0)
            self._buf_start = -self._pad
        self._buf = np.concatenate([self._buf, x])
        self._n_in += len(x)
        last = (((self._n_in - 1) * self.up - self._half) // self.down) + 1
        return self._emit(last)

    def flush(self) -> np.ndarray:
        """End of segment: the remaining output, the input extended by its last sample (edge padding)."""
        if self.identity or self._n_in == 0:
            return np.empty((0, self._n_channels))
        self._buf = np.concatenate([self._buf, np.repeat(self._buf[-1:], self._pad, axis=0)])
        total = -(-self._n_in * self.up // self.down)
        out = self._emit(total)
        self._n_in = 0
        return out

    def _emit(self, stop: int) -> np.ndarray:
        """Output samples ``[self._m, stop)``; trims the input history they no longer need."""
        if stop <= self._m:
            return np.empty((0, self._n_channels))
        if self.up == 1:
            # one phase: the gather pattern and coefficients of a run of k outputs depend on k only
            # (a frame gives the same k every time), so they are made once per k
            k = stop - self._m
            plan = self._plans.get(k)
            if plan is None:
                plan = ((np.arange(k) * self.down)[:, None] - self._tap_range, np.repeat(self._coef, k, axis=0))
                if len(self._plans) < 64:
                    self._plans[k] = plan
            offsets, coef = plan
            idx = offsets + (self._m * self.down + self._half - self._buf_start)
        else:
            m = np.arange(self._m, stop)
            pos = m * self.down + self._half
            idx = (pos // self.up)[:, None] - self._tap_range - self._buf_start
            coef = self._coef[pos % self.up]
        y = np.einsum("mt,mtc->mc", coef, np.take(self._buf, idx, axis=0))   # take: the same copy as [idx], faster
        self._m = stop
        keep_from = (self._m * self.down + self._half) // self.up - self._taps - self._buf_start
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._buf_start += keep_from
        return y
