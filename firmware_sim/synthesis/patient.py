"""Per-patient physiology: the parameters that make one virtual patient differ from another.

Every number is drawn from a population spread taken from the ECG/VCG literature (normal adult
values), never fitted to any record set. The same seed always gives the same patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np

SeedLike = int | np.random.Generator


def as_generator(seed_or_rng: SeedLike) -> np.random.Generator:
    """A numpy Generator from an int seed (or the Generator itself)."""
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


@dataclass(frozen=True)
class PatientProfile:
    """One virtual patient.

    Angles rotate the whole cardiac dipole (heart position in the chest); amplitude factors are
    dimensionless multipliers on the literature template; intervals are in seconds.
    """

    heart_rate_bpm: float = 70.0
    """Resting sinus rate (beats/min)."""
    hrv_fraction: float = 0.04
    """Standard deviation of the sinus RR interval as a fraction of its mean."""
    lf_hf_ratio: float = 1.2
    """Power ratio of the ~0.1 Hz (Mayer wave) to the respiratory RR oscillation."""
    resp_rate_hz: float = 0.25
    """Breathing rate (Hz): drives respiratory sinus arrhythmia, QRS amplitude and baseline wander."""
    resp_depth: float = 0.05
    """Depth of the respiratory beat-amplitude modulation (fraction; shallow breathing is smaller).
    Not drawn by :func:`random_patient` (so seeds give the patients they always did); the affective
    states (:mod:`firmware_sim.synthesis.affect`) change it."""
    frontal_rotation_deg: float = 0.0
    """Rotation in the frontal plane (positive turns the axis towards the feet, i.e. rightward axis)."""
    horizontal_rotation_deg: float = 0.0
    """Rotation in the horizontal plane (positive turns left-lateral forces posterior: clockwise rotation)."""
    sagittal_rotation_deg: float = 0.0
    """Rotation in the sagittal plane (positive turns inferior forces posterior)."""
    amplitude_scale: float = 1.0
    """Body habitus: common gain of every wave (thin chest > 1, obesity < 1)."""
    p_scale: float = 1.0
    """Extra gain of the P wave."""
    qrs_scale: float = 1.0
    """Extra gain of the QRS complex (left-ventricular mass)."""
    t_scale: float = 1.0
    """Extra gain of the T wave."""
    pr_s: float = 0.155
    """PR interval, P onset to QRS onset (s)."""
    qrs_duration_scale: float = 1.0
    """Stretch of the QRS complex in time (1.0 is about 95 ms from first to last deflection; ~88 ms as the
    edge measures it)."""
    qtc_s: float = 0.41
    """Heart-rate-corrected QT (Fridericia), QRS onset to T end (s)."""
    pvc_focus: tuple[float, float, float] = (-0.3, 0.8, -0.5)
    """Direction (Frank X, Y, Z) of the main force of this patient's ventricular ectopic beats."""
    ectopic_p_axis: tuple[float, float, float] = (0.4, -0.8, 0.1)
    """Direction (Frank X, Y, Z) of this patient's ectopic (premature atrial) P wave."""
    precordial_shift: float = 0.0
    """Chest-electrode placement along the V1→V6 line, in electrode spacings (positive: lateral)."""
    lead_field_delta: tuple[float, ...] = ()
    """Per-patient change of the 8×3 lead vectors (rows I, II, V1…V6, row-major), in Dower units:
    torso shape and conductivity, heart–electrode distance, vertical misplacement. Empty: none."""

    def rotation(self) -> np.ndarray:
        """3×3 rotation matrix (Frank X, Y, Z) of this patient's heart position."""
        return _rotation_matrix(self.frontal_rotation_deg, self.horizontal_rotation_deg,
                                self.sagittal_rotation_deg)

    def transfer(self) -> np.ndarray:
        """8×3 dipole-to-lead matrix (rows I, II, V1…V6) of this patient: Dower, varied by body and placement."""
        from firmware_sim.synthesis.projection import DOWER

        out = DOWER.copy()
        if self.precordial_shift:
            chest = DOWER[2:]
            pos = np.arange(6) + self.precordial_shift
            lo = np.clip(np.floor(pos).astype(int), 0, 4)
            frac = (pos - lo)[:, None]              # linear inter/extrapolation between neighbours
            out[2:] = chest[lo] + frac * (chest[lo + 1] - chest[lo])
        if self.lead_field_delta:
            out = out + np.asarray(self.lead_field_delta, dtype=float).reshape(8, 3)
        return out


def _rotation_matrix(frontal_deg: float, horizontal_deg: float, sagittal_deg: float) -> np.ndarray:
    a, b, c = np.deg2rad([frontal_deg, horizontal_deg, sagittal_deg])
    # frontal: X towards Y (about Z); horizontal: X towards Z (about Y); sagittal: Y towards Z (about X)
    rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[np.cos(b), 0.0, -np.sin(b)], [0.0, 1.0, 0.0], [np.sin(b), 0.0, np.cos(b)]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(c), -np.sin(c)], [0.0, np.sin(c), np.cos(c)]])
    return rz @ ry @ rx


def _unit(v: np.ndarray) -> tuple[float, float, float]:
    u = v / np.linalg.norm(v)
    return float(u[0]), float(u[1]), float(u[2])


def random_patient(seed_or_rng: SeedLike) -> PatientProfile:
    """Draw a patient from normal-adult population spreads (deterministic for an int seed).

    Spreads: QRS frontal axis SD ≈ 22°, horizontal ≈ 20°, sagittal ≈ 12°; amplitudes log-normal
    with ≈ 25 % CV; PR 155 ± 20 ms; rate 60–95 bpm. Checked against the 53 CinC 2021 tune records
    (``ecgstream sim realism``; a small set, so literature ranges decide where it is thin):

    - QRS duration scale 0.72–0.92: the edge's slope-threshold QRS width reads 72 [68–77] ms on the
      tune set's 18 sinus records and read 88 ms at the former 0.85–1.1;
    - QTc (Fridericia) 410 ± 18 ms (the measured QTc reads ~12 ms longer than the real sinus records';
      left, as within the spread of QT methods);
    - sinus RR SD 1.2–5 % of the mean: 10 s resting windows read RR CV 0.023 [0.015–0.034] on the real
      sinus records, 0.040 at the former 2–6 %.
    """
    rng = as_generator(seed_or_rng)
    ectopic_p = rng.normal([0.3, -0.8, 0.0], 0.3)           # low-atrial focus: superior P axis
    return PatientProfile(
        heart_rate_bpm=float(rng.uniform(60.0, 95.0)),
        hrv_fraction=float(rng.uniform(0.012, 0.05)),
        lf_hf_ratio=float(rng.uniform(0.5, 2.5)),
        resp_rate_hz=float(rng.uniform(0.2, 0.33)),
        frontal_rotation_deg=float(np.clip(rng.normal(0.0, 22.0), -60.0, 60.0)),
        horizontal_rotation_deg=float(np.clip(rng.normal(0.0, 20.0), -50.0, 50.0)),
        sagittal_rotation_deg=float(np.clip(rng.normal(0.0, 12.0), -30.0, 30.0)),
        amplitude_scale=float(np.exp(rng.normal(0.0, 0.2))),
        p_scale=float(np.exp(rng.normal(0.0, 0.25))),
        qrs_scale=float(np.exp(rng.normal(0.0, 0.2))),
        t_scale=float(np.exp(rng.normal(0.0, 0.25))),
        pr_s=float(np.clip(rng.normal(0.155, 0.02), 0.12, 0.20)),
        qrs_duration_scale=float(rng.uniform(0.72, 0.92)),
        qtc_s=float(np.clip(rng.normal(0.41, 0.018), 0.37, 0.45)),
        pvc_focus=_unit(rng.normal(0.0, 1.0, 3)),
        ectopic_p_axis=_unit(ectopic_p),
        **_lead_field(rng),
    )


class _LeadField(TypedDict):
    precordial_shift: float
    lead_field_delta: tuple[float, ...]


LIMB_LEAD_FIELD_CV = 0.06
"""Relative spread of the limb-lead vectors between patients (torso shape, limb electrode sites)."""
CHEST_LEAD_FIELD_CV = 0.2
"""Relative spread of the chest-lead vectors (heart–electrode distance, torso inhomogeneity, ±1 interspace)."""
PRECORDIAL_SHIFT_SD = 0.3
"""SD of the chest-electrode placement along the V1→V6 line (electrode spacings)."""


def _lead_field(rng: np.random.Generator) -> _LeadField:
    """Per-patient lead-field variation, drawn after the other fields so those stay as before.

    Each lead vector gets an isotropic perturbation scaled by its own length (CV above), from
    published spreads of electrode misplacement and torso-model studies, not fitted to records.
    """
    from firmware_sim.synthesis.projection import DOWER

    shift = float(np.clip(rng.normal(0.0, PRECORDIAL_SHIFT_SD), -0.8, 0.8))
    cv = np.array([LIMB_LEAD_FIELD_CV] * 2 + [CHEST_LEAD_FIELD_CV] * 6)
    norms = np.linalg.norm(DOWER, axis=1)
    delta = rng.normal(0.0, 1.0, (8, 3)) * (cv * norms)[:, None] / np.sqrt(3.0)
    return {"precordial_shift": shift, "lead_field_delta": tuple(float(v) for v in delta.ravel())}
