"""Calibration of the 90 % band and its coverage (numpy only).

The decoder's σ is a Gaussian guess; on held-out synthetic windows a per-lead factor ``k`` is fitted
so that ``|truth − mean| ≤ k · 1.645 · σ`` holds for 90 % of samples (the 90th percentile of
``|error| / (1.645 σ)``). Coverage is then measured on another held-out split.
"""

from __future__ import annotations

import numpy as np

from models.reconstruction import Z90

NOMINAL = 0.90


def fit_band_scale(error: np.ndarray, sigma: np.ndarray, nominal: float = NOMINAL) -> np.ndarray:
    """Per lead (axis −2) factor on Z90·σ so that the band covers ``nominal`` of the samples.

    ``error`` and ``sigma``: (windows, leads, samples).
    """
    ratio = np.abs(error) / (Z90 * np.maximum(sigma, 1e-9))
    ratio = np.moveaxis(ratio, -2, 0).reshape(ratio.shape[-2], -1)
    return np.quantile(ratio, nominal, axis=1).astype(np.float32)


def coverage(error: np.ndarray, halfwidth: np.ndarray) -> np.ndarray:
    """Per lead (axis −2): fraction of samples with ``|error| ≤ halfwidth``."""
    inside = np.abs(error) <= halfwidth
    return np.moveaxis(inside, -2, 0).reshape(inside.shape[-2], -1).mean(axis=1)
