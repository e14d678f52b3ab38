"""From the cardiac dipole to electrode potentials and the 12 standard leads.

The dipole (Frank X right→left, Y head→foot, Z front→back) is projected onto the eight independent
leads I, II, V1…V6 with the Dower transform; III, aVR, aVL and aVF are then derived exactly
(Einthoven, Goldberger). Noise and lead-off act on electrode potentials, and
:func:`electrodes_to_leads` brings them back to leads, so the lead relations hold for noisy signals.
"""

from __future__ import annotations

import numpy as np

DOWER: np.ndarray = np.array([
    [0.632, -0.235, 0.059],    # I
    [0.235, 1.066, -0.132],    # II
    [-0.515, 0.157, -0.917],   # V1
    [0.044, 0.164, -1.387],    # V2
    [0.882, 0.098, -1.277],    # V3
    [1.213, 0.127, -0.601],    # V4
    [1.125, 0.127, -0.086],    # V5
    [0.831, 0.076, 0.230],     # V6
])
"""Dower et al. (1980) Frank-to-12-lead coefficients, rows I, II, V1…V6 (``protocol.leads.INDEPENDENT_LEADS``)."""

MEASURED_ELECTRODES: tuple[str, ...] = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")
"""Electrodes whose potentials make up the leads (RL is the driven reference, in no lead)."""

LEADS_USING: dict[str, tuple[str, ...]] = {
    "RA": ("I", "II", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"),
    "LA": ("I", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"),
    "LL": ("II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"),
    "RL": (),
    **{f"V{i}": (f"V{i}",) for i in range(1, 7)},
}
"""Leads that read each electrode (limb electrodes feed the Wilson terminal of every V lead)."""

def dipole_to_independent(dipole_mv: np.ndarray, transfer: np.ndarray = DOWER) -> np.ndarray:
    """Project a dipole (n, 3) in mV onto I, II, V1…V6 → (n, 8) in mV."""
    return dipole_mv @ transfer.T


def independent_to_standard(ind: np.ndarray) -> np.ndarray:
    """(n, 8) leads I, II, V1…V6 → (n, 12) in ``protocol.leads.STANDARD_LEADS`` order (exact relations)."""
    lead_i, lead_ii = ind[:, 0], ind[:, 1]
    out = np.empty((ind.shape[0], 12))
    out[:, 0] = lead_i
    out[:, 1] = lead_ii
    out[:, 2] = lead_ii - lead_i
    out[:, 3] = -(lead_i + lead_ii) / 2.0
    out[:, 4] = lead_i - lead_ii / 2.0
    out[:, 5] = lead_ii - lead_i / 2.0
    out[:, 6:] = ind[:, 2:]
    return out


def independent_to_electrodes(ind: np.ndarray) -> np.ndarray:
    """Electrode potentials (n, 9) in :data:`MEASURED_ELECTRODES` order, Wilson terminal at 0 mV."""
    ra = -(ind[:, 0] + ind[:, 1]) / 3.0
    out = np.empty((ind.shape[0], 9))
    out[:, 0] = ra
    out[:, 1] = ra + ind[:, 0]
    out[:, 2] = ra + ind[:, 1]
    out[:, 3:] = ind[:, 2:]
    return out


def electrodes_to_independent(el: np.ndarray) -> np.ndarray:
    """Electrode potentials (n, 9) → leads I, II, V1…V6 (n, 8), each V lead against Wilson's terminal."""
    wilson = (el[:, 0] + el[:, 1] + el[:, 2]) / 3.0
    out = np.empty((el.shape[0], 8))
    out[:, 0] = el[:, 1] - el[:, 0]
    out[:, 1] = el[:, 2] - el[:, 0]
    out[:, 2:] = el[:, 3:] - wilson[:, None]
    return out
