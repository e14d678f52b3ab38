"""Domain randomisation of synthetic 12-lead training windows (numpy, a batch at a time).

A classifier trained on one simulator learns the simulator. Real patients, electrodes and devices
differ in ways the simulator does not vary enough, so each synthetic window is changed in those ways
before training (all drawn per window from a seeded generator, see :class:`AugmentConfig`):

- **amplitude**: a whole-window gain (log-normal) and a per-lead gain;
- **electrical axis**: the frontal-plane heart vector rotated by up to ± ``axis_deg``; the six limb
  leads are recomputed from the rotated vector, so Einthoven's law (III = II − I) and the augmented
  leads stay consistent;
- **electrode position**: each chest lead moved part of the way toward a neighbour;
- **noise and baseline**: muscle noise (5–40 Hz), mains (50 or 60 Hz) and baseline wander
  (0.05–0.5 Hz) added;
- **device**: a 100 Hz device rate (decimated and interpolated back to 125 Hz) for some windows and a
  front-end low-pass between 25 and 40 Hz;

and then the model's own 0.5–40 Hz band-pass, as :func:`models.preprocessing.prepare_window` ends.
Heart rate and intervals are not changed (labels depend on them). Input and output: (B, 12, n) mV at
:data:`models.preprocessing.MODEL_FS`, standard lead order.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.signal as sps

from models.classifier.config import AugmentConfig
from models.preprocessing import MODEL_FS, bandpass

SQRT3_2 = np.sqrt(3.0) / 2.0


def rotate_axis(x: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """Limb leads (rows 0–5: I, II, III, aVR, aVL, aVF) recomputed from the frontal vector rotated by
    ``degrees`` (B,); chest leads unchanged."""
    out = x.copy()
    hx = x[:, 0]
    hy = (x[:, 1] - 0.5 * x[:, 0]) / SQRT3_2
    th = np.deg2rad(degrees)[:, None]
    c, s = np.cos(th), np.sin(th)
    rx, ry = hx * c - hy * s, hx * s + hy * c
    lead_i, lead_ii = rx, 0.5 * rx + SQRT3_2 * ry
    out[:, 0], out[:, 1], out[:, 2] = lead_i, lead_ii, lead_ii - lead_i
    out[:, 3] = -(lead_i + lead_ii) / 2.0
    out[:, 4] = lead_i - lead_ii / 2.0
    out[:, 5] = lead_ii - lead_i / 2.0
    return out


def shift_chest(x: np.ndarray, alpha: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Chest leads (rows 6–11) moved toward the neighbour in ``direction`` (±1) by ``alpha`` (B,)."""
    out = x.copy()
    chest = x[:, 6:12]
    idx = np.clip(np.arange(6)[None, :] + direction[:, None], 0, 5)           # (B, 6)
    neighbour = np.take_along_axis(chest, idx[:, :, None], axis=1)
    out[:, 6:12] = (1.0 - alpha[:, None, None]) * chest + alpha[:, None, None] * neighbour
    return out


@functools.lru_cache(maxsize=64)
def _lowpass_sos(cutoff_hz: float) -> np.ndarray:
    return sps.butter(2, cutoff_hz, btype="lowpass", fs=MODEL_FS, output="sos")


def _band_noise(rng: np.random.Generator, shape: tuple[int, int, int], band: tuple[float, float]) -> np.ndarray:
    b, leads, n = shape
    white = rng.standard_normal((n, b * leads))
    filtered = bandpass(white, MODEL_FS, band).T.reshape(b, leads, n)
    return filtered / (filtered.std(axis=-1, keepdims=True) + 1e-12)


def augment(x: np.ndarray, rng: np.random.Generator, c: AugmentConfig) -> np.ndarray:
    """Domain-randomised copies of windows ``x`` (B, 12, n) mV; see the module docstring."""
    x = np.asarray(x, dtype=np.float64)
    b, leads, n = x.shape
    if b == 0:
        return x.astype(np.float32)
    x = rotate_axis(x, np.asarray(rng.uniform(-c.axis_deg, c.axis_deg, b)))
    x = shift_chest(x, np.asarray(rng.uniform(0.0, c.chest_shift, b)), rng.choice(np.array([-1, 1]), b))
    gain = np.exp(rng.normal(0.0, c.gain_log_sd, (b, 1, 1))) * rng.normal(1.0, c.lead_gain_sd, (b, leads, 1))
    x = x * np.clip(gain, 0.2, 5.0)
    t = np.arange(n) / MODEL_FS
    x = x + rng.uniform(0.0, c.emg_mv, (b, 1, 1)) * _band_noise(rng, (b, leads, n), (5.0, 40.0))
    mains = np.where(rng.random(b) < 0.5, 50.0, 60.0)[:, None, None]
    x = x + rng.uniform(0.0, c.powerline_mv, (b, 1, 1)) * np.sin(2 * np.pi * mains * t + rng.uniform(0, 6.3, (b, 1, 1)))
    wander_hz = rng.uniform(0.05, 0.5, (b, 1, 1))
    x = x + rng.uniform(0.0, c.baseline_mv, (b, 1, 1)) * np.sin(2 * np.pi * wander_hz * t
                                                                 + rng.uniform(0, 6.3, (b, leads, 1)))
    low = np.flatnonzero(rng.random(b) < c.low_rate_probability)
    if low.size:
        slow = sps.resample_poly(x[low], 4, 5, axis=-1)                         # 125 → 100 Hz
        x[low] = sps.resample_poly(slow, 5, 4, axis=-1)[..., :n]
    cutoffs = np.round(rng.uniform(*c.lowpass_hz, b), 0)
    for i in range(b):                                                          # one filter per window
        x[i] = sps.sosfiltfilt(_lowpass_sos(float(cutoffs[i])), x[i], axis=-1)
    flat = bandpass(x.transpose(2, 0, 1).reshape(n, b * leads), MODEL_FS)
    return flat.reshape(n, b, leads).transpose(1, 2, 0).astype(np.float32)
