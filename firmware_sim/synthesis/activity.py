"""Continuous (non-beat) cardiac activity as dipole signals: AF f-waves, flutter F-waves, VF.

Each source is a closed-form function of time (frequency- and amplitude-modulated sinusoids with
phases drawn once), so any chunk of a stream can be evaluated on its own.
"""

from __future__ import annotations

import numpy as np


class ModulatedOscillators:
    """Sum of oscillators, each with its own 3-D direction, carrier, FM and AM (dipole in mV).

    ``harmonics`` gives the Fourier weights of the waveform (1 entry: a sinusoid; a 1/h series with
    alternating sign: a band-limited sawtooth).
    """

    def __init__(self, rng: np.random.Generator, freqs_hz: np.ndarray, directions: np.ndarray,
                 amplitude_mv: float, fm_depth_hz: float, am_depth: float,
                 harmonics: np.ndarray | None = None) -> None:
        k = len(freqs_hz)
        self._f = np.asarray(freqs_hz, dtype=float)
        self._dirs = np.asarray(directions, dtype=float).reshape(k, 3)
        self._amp = amplitude_mv / np.sqrt(k)
        self._fm_rate = rng.uniform(0.1, 0.5, k)
        self._fm_depth = fm_depth_hz
        self._am_rate = rng.uniform(0.1, 0.4, k)
        self._am_depth = am_depth
        self._phase = rng.uniform(0.0, 2 * np.pi, (3, k))
        self._harm = np.array([1.0]) if harmonics is None else np.asarray(harmonics, dtype=float)

    def __call__(self, t_s: np.ndarray) -> np.ndarray:
        """Dipole (n, 3) in mV at times ``t_s`` (s)."""
        t = np.asarray(t_s, dtype=float)[:, None]
        phase = (2 * np.pi * self._f * t + self._phase[0]
                 + (self._fm_depth / self._fm_rate) * np.sin(2 * np.pi * self._fm_rate * t + self._phase[1]))
        wave = np.zeros_like(phase)
        for h, weight in enumerate(self._harm, start=1):
            wave += weight * np.sin(h * phase)
        envelope = 1.0 + self._am_depth * np.sin(2 * np.pi * self._am_rate * t + self._phase[2])
        return (self._amp * envelope * wave) @ self._dirs


def _directions(rng: np.random.Generator, mean: tuple[float, float, float], spread: float, k: int) -> np.ndarray:
    d = np.asarray(mean, dtype=float)[None, :] + rng.normal(0.0, spread, (k, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def fibrillatory_waves(rng: np.random.Generator, f_hz: float, amplitude_mv: float) -> ModulatedOscillators:
    """AF f-waves: 3 oscillators around ``f_hz`` (4–9 Hz), strongest in V1 and the inferior leads."""
    freqs = np.clip(f_hz + rng.normal(0.0, 0.4, 3), 4.0, 9.0)
    dirs = _directions(rng, (-0.3, 0.5, -0.8), 0.4, 3)
    return ModulatedOscillators(rng, freqs, dirs, amplitude_mv, fm_depth_hz=0.5, am_depth=0.4)


def flutter_waves(rng: np.random.Generator, rate_per_min: float, amplitude_mv: float) -> ModulatedOscillators:
    """Typical (counter-clockwise) flutter: sawtooth F-waves, negative in II/III/aVF, positive in V1."""
    harmonics = np.array([(-1.0) ** (h + 1) / h for h in range(1, 7)]) * (2 / np.pi)
    dirs = _directions(rng, (0.0, 1.0, 0.3), 0.1, 1)
    return ModulatedOscillators(rng, np.array([rate_per_min / 60.0]), dirs, -amplitude_mv,
                                fm_depth_hz=0.0, am_depth=0.05, harmonics=harmonics)


def ventricular_fibrillation(rng: np.random.Generator, amplitude_mv: float) -> ModulatedOscillators:
    """VF: 4 chaotic oscillators at 4–8 Hz with wandering directions and deep amplitude modulation."""
    freqs = rng.uniform(4.0, 8.0, 4)
    dirs = _directions(rng, (0.0, 0.0, 0.0), 1.0, 4)
    return ModulatedOscillators(rng, freqs, dirs, amplitude_mv, fm_depth_hz=0.8, am_depth=0.7)
