"""RR-interval processes: sinus rate with heart-rate variability, and atrial-fibrillation RR.

The sinus process follows McSharry et al. (2003): a bimodal RR spectrum with a Mayer-wave (LF,
~0.1 Hz) and a respiratory (HF) peak. It is synthesised as a sum of sinusoids whose frequencies are
drawn from that spectrum, so it can be evaluated at any time without state: a stream cut into
chunks gets exactly the same beats as one long call.
"""

from __future__ import annotations

import numpy as np

N_COMPONENTS = 24
"""Sinusoids in the spectral synthesis (half LF, half HF)."""


class SinusRateProcess:
    """Instantaneous sinus RR (s) as a function of time (s).

    ``mean_rr_s``: mean RR; ``std_fraction``: RR standard deviation / mean; ``lf_hf_ratio``: LF/HF
    power; ``resp_hz``: centre of the HF peak. LF is centred at 0.1 Hz; both peaks have an SD of
    0.01 Hz (McSharry's defaults).
    """

    def __init__(self, rng: np.random.Generator, mean_rr_s: float, std_fraction: float,
                 lf_hf_ratio: float, resp_hz: float) -> None:
        half = N_COMPONENTS // 2
        self.mean_rr_s = mean_rr_s
        self._freqs = np.concatenate([rng.normal(0.1, 0.01, half), rng.normal(resp_hz, 0.01, half)])
        self._phases = rng.uniform(0.0, 2 * np.pi, N_COMPONENTS)
        lf_var = lf_hf_ratio / (1.0 + lf_hf_ratio)
        power = np.concatenate([np.full(half, lf_var), np.full(half, 1.0 - lf_var)]) / half
        power *= rng.exponential(1.0, N_COMPONENTS)             # random spectral amplitudes (χ²₂)
        power /= power.sum()
        self._amps = mean_rr_s * std_fraction * np.sqrt(2.0 * power)

    def rr_at(self, t_s: float) -> float:
        """RR interval (s) of a beat starting at ``t_s`` seconds."""
        mod = float(np.dot(self._amps, np.sin(2 * np.pi * self._freqs * t_s + self._phases)))
        return self.mean_rr_s + mod


def af_rr(rng: np.random.Generator, mean_rr_s: float, cv: float) -> float:
    """One atrial-fibrillation RR (s): independent log-normal intervals, never below 0.25 s."""
    sigma = np.sqrt(np.log1p(cv * cv))
    return float(max(0.25, mean_rr_s * np.exp(rng.normal(-0.5 * sigma * sigma, sigma))))
