"""Recording noise at the electrodes: baseline wander, muscle (EMG), electrode motion, mains.

Noise is added to electrode potentials (RA, LA, LL, V1…V6) before the leads are formed, so
Einthoven's and Goldberger's relations hold for noisy signals too. Amplitudes are specified as they
appear on a limb lead (each electrode gets 1/√2 of it, independent between electrodes). Every source
is a function of the absolute sample index (closed forms, or random blocks keyed by index), so a
stream cut into chunks is identical to one long call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_sim.synthesis.errors import SynthesisError
from firmware_sim.synthesis.projection import LEADS_USING, MEASURED_ELECTRODES
from protocol.errors import ProtocolError
from protocol.leads import STANDARD_LEADS, electrode_mask

NOISE_KINDS: tuple[str, ...] = ("baseline", "emg", "motion", "powerline")
"""The noise kinds, in the order of :class:`NoiseSpec`'s amplitude fields."""

EMG_BLOCK = 4096
"""Samples per independently seeded block of EMG noise."""
MOTION_WINDOW_S = 10.0
"""Electrode-motion bursts are drawn per window of this many seconds."""
RL_OFF_MAINS_MV = 0.5
"""Mains interference (mV RMS on a limb lead) when the right-leg (driven reference) electrode is off."""

_N_EL = len(MEASURED_ELECTRODES)


@dataclass(frozen=True)
class NoiseSpec:
    """Noise amplitudes in mV as seen on a limb lead, and detached electrodes.

    ``baseline_mv``: RMS of respiratory/low-frequency wander (< 0.5 Hz). ``emg_mv``: RMS of broadband
    muscle noise. ``motion_mv``: peak of electrode-motion bursts (0.5–2 Hz transients of 0.4–1.5 s,
    ``motion_rate_per_min`` of them on average). ``powerline_mv``: RMS of mains interference at
    ``powerline_hz`` (50 or 60 Hz, with a weak 3rd harmonic). ``lead_off``: electrode names
    (``protocol.leads.ELECTRODES``); the leads that read them become flat (0 mV), as a front end
    with lead-off detection reports them, so the lead relations no longer hold for those leads.
    RL (driven reference) off adds strong mains interference instead.
    """

    baseline_mv: float = 0.0
    emg_mv: float = 0.0
    motion_mv: float = 0.0
    powerline_mv: float = 0.0
    powerline_hz: float = 50.0
    motion_rate_per_min: float = 3.0
    lead_off: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("baseline_mv", "emg_mv", "motion_mv", "powerline_mv", "motion_rate_per_min"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise SynthesisError(f"NoiseSpec.{name} must be a finite number ≥ 0, not {value!r}")
        if self.powerline_hz not in (50.0, 60.0):
            raise SynthesisError(f"NoiseSpec.powerline_hz must be 50 or 60, not {self.powerline_hz!r}")
        try:
            electrode_mask(self.lead_off)
        except ProtocolError as exc:
            raise SynthesisError(f"NoiseSpec.lead_off: {exc}") from exc
        object.__setattr__(self, "lead_off", tuple(self.lead_off))

    @classmethod
    def from_snr(cls, kind: str, snr_db: float, *, signal_rms_mv: float = 0.3,
                 powerline_hz: float = 50.0) -> NoiseSpec:
        """One kind of noise (``baseline``, ``emg``, ``motion``, ``powerline``) at ``snr_db`` dB below
        a signal of RMS ``signal_rms_mv`` (mV; a limb lead in sinus rhythm is about 0.3 mV RMS)."""
        if kind not in NOISE_KINDS:
            raise SynthesisError(f"unknown noise kind {kind!r}; valid kinds are: {', '.join(NOISE_KINDS)}")
        amplitude = signal_rms_mv * 10.0 ** (-snr_db / 20.0)
        if kind == "motion":
            amplitude *= 2.0 * np.sqrt(2.0)     # bursts are specified by peak, not RMS
        return cls(**{f"{kind}_mv": amplitude}, powerline_hz=powerline_hz)

    @property
    def is_silent(self) -> bool:
        """True when this spec adds no noise and detaches no electrode."""
        return not (self.baseline_mv or self.emg_mv or self.motion_mv or self.powerline_mv or self.lead_off)

    def active_kinds(self) -> tuple[str, ...]:
        """The noise kinds with a non-zero amplitude."""
        return tuple(k for k in NOISE_KINDS if getattr(self, f"{k}_mv") > 0)


def leads_reading(electrodes: tuple[str, ...]) -> tuple[str, ...]:
    """The standard leads that read any of ``electrodes`` (these go flat when they are off)."""
    names = {lead for e in electrodes for lead in LEADS_USING[e]}
    return tuple(name for name in STANDARD_LEADS if name in names)


class NoiseSource:
    """Electrode noise of one :class:`NoiseSpec`, deterministic for ``key`` (a tuple of ints)."""

    def __init__(self, spec: NoiseSpec, key: tuple[int, ...], resp_hz: float) -> None:
        self.spec = spec
        self.key = key
        rng = np.random.default_rng([*key, 0])
        per_electrode = 1.0 / np.sqrt(2.0)
        # baseline: respiration and its harmonic, plus slow drifts
        self._bw_f = np.concatenate([[resp_hz, 2 * resp_hz], rng.uniform(0.03, 0.45, 4)])
        self._bw_phase = rng.uniform(0, 2 * np.pi, (6, _N_EL))
        w = rng.normal(0.0, 1.0, (6, _N_EL)) * np.array([1.0, 0.3, 0.6, 0.6, 0.6, 0.6])[:, None]
        self._bw_w = w / np.sqrt((w**2).sum(axis=0) / 2.0) * spec.baseline_mv * per_electrode
        # mains: one phase with small per-electrode skew, per-electrode coupling
        mains = max(spec.powerline_mv, RL_OFF_MAINS_MV if "RL" in spec.lead_off else 0.0)
        c = rng.normal(0.0, 1.0, _N_EL)
        self._pl_c = c / np.sqrt(np.mean(c**2)) * mains * per_electrode * np.sqrt(2.0)
        self._pl_phase = rng.uniform(0, 2 * np.pi) + rng.normal(0.0, 0.1, _N_EL)
        # EMG envelope
        self._emg_f = rng.uniform(0.05, 0.3)
        self._emg_phase = rng.uniform(0, 2 * np.pi)
        self._emg_scale = spec.emg_mv * per_electrode / np.sqrt(1.125)

    def render(self, n0: int, n: int, fs: float) -> np.ndarray:
        """Electrode noise (n, 9) in mV for samples ``n0 … n0+n-1``."""
        t = (n0 + np.arange(n)) / fs
        out = np.zeros((n, _N_EL))
        s = self.spec
        if s.baseline_mv:
            out += _sinusoids(t, self._bw_f, self._bw_phase, self._bw_w)
        if self._pl_c.any():
            f = s.powerline_hz * np.array([1.0, 3.0])
            phase = np.stack([self._pl_phase, 3 * self._pl_phase])
            weights = np.stack([self._pl_c, 0.15 * self._pl_c]) / np.sqrt(1.0225)
            out += _sinusoids(t, f, phase, weights)
        if s.emg_mv:
            env = 1.0 + 0.5 * np.sin(2 * np.pi * self._emg_f * t + self._emg_phase)
            out += self._emg_scale * env[:, None] * self._white(n0, n)
        if s.motion_mv:
            out += self._motion(t)
        return out

    def _white(self, n0: int, n: int) -> np.ndarray:
        first, last = n0 // EMG_BLOCK, (n0 + n - 1) // EMG_BLOCK
        blocks = [np.random.default_rng([*self.key, 1, b]).standard_normal((EMG_BLOCK, _N_EL))
                  for b in range(first, last + 1)]
        joined = np.concatenate(blocks)
        off = n0 - first * EMG_BLOCK
        return joined[off:off + n]

    def _motion(self, t: np.ndarray) -> np.ndarray:
        out = np.zeros((t.size, _N_EL))
        s = self.spec
        first = int(np.floor((t[0] - 2.0) / MOTION_WINDOW_S))
        last = int(np.floor((t[-1] + 2.0) / MOTION_WINDOW_S))
        for w in range(max(first, 0), last + 1):
            rng = np.random.default_rng([*self.key, 2, w])
            for _ in range(rng.poisson(s.motion_rate_per_min * MOTION_WINDOW_S / 60.0)):
                tc = (w + rng.uniform()) * MOTION_WINDOW_S
                dur = rng.uniform(0.4, 1.5)
                f = rng.uniform(0.5, 2.0)
                phi = rng.uniform(0, 2 * np.pi)
                weights = rng.normal(0.0, 0.2, _N_EL)
                weights[rng.integers(_N_EL)] = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)
                i0 = max(int(np.searchsorted(t, tc - dur)), 0)
                i1 = int(np.searchsorted(t, tc + dur))
                if i1 <= i0:
                    continue
                tt = t[i0:i1] - tc
                shape = np.exp(-0.5 * (tt / (dur / 4)) ** 2) * np.cos(2 * np.pi * f * tt + phi)
                out[i0:i1] += s.motion_mv * shape[:, None] * weights[None, :]
        return out


def _sinusoids(t: np.ndarray, freqs: np.ndarray, phases: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Σ_k w[k, e]·sin(2π f[k] t + φ[k, e]) → (n, electrodes), with one sin/cos pair per frequency."""
    arg = 2 * np.pi * t[:, None] * freqs[None, :]
    return np.sin(arg) @ (np.cos(phases) * weights) + np.cos(arg) @ (np.sin(phases) * weights)
