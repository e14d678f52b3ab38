"""Literature templates of the P wave and QRS-T complexes as Gaussian dipole waves.

Frank coordinates: X right→left, Y head→foot, Z front→back; vectors in mV, times in s relative to
the fiducial point (P onset for P waves, the main QRS force for ventricular complexes).
Values follow the normal adult vectorcardiogram: a small P loop pointing left-inferior (right atrium
anterior, then left atrium posterior); QRS with initial septal forces anterior-rightward, an
anterior-inferior force at ~20 ms, the maximal vector (≈1.4–1.6 mV) left-inferior-posterior at
~40 ms and terminal right-superior-posterior forces; a T loop (≈0.45 mV) left-inferior-anterior.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from firmware_sim.synthesis.dipole import WaveSet, waveset
from firmware_sim.synthesis.patient import PatientProfile

Row = tuple[float, float, tuple[float, float, float], bool]

SINUS_P: tuple[Row, ...] = (
    (0.040, 0.016, (0.02, 0.08, -0.04), False),   # right atrium: inferior, anterior
    (0.068, 0.018, (0.07, 0.06, 0.05), False),    # left atrium: leftward, posterior
)
NORMAL_QRS: tuple[Row, ...] = (
    (-0.030, 0.0075, (-0.10, 0.02, -0.20), False),  # septal: rightward, anterior
    (-0.014, 0.0090, (0.35, 0.20, -0.35), False),   # apical: left, inferior, anterior
    (0.000, 0.0105, (1.10, 0.45, 0.75), False),     # maximal: left, inferior, posterior
    (0.024, 0.0090, (-0.25, -0.15, 0.35), False),   # basal: right, superior, posterior
)
NORMAL_T: tuple[Row, ...] = (
    (0.200, 0.050, (0.16, 0.08, -0.08), True),
    (0.265, 0.032, (0.34, 0.17, -0.17), True),
)
LBBB_QRS: tuple[Row, ...] = (
    (-0.045, 0.013, (0.30, 0.05, 0.15), False),     # septum activated right→left: no septal q
    (-0.015, 0.018, (0.85, 0.30, 0.55), False),
    (0.030, 0.018, (0.85, -0.05, 1.30), False),     # late posterolateral LV: notched R in V5/V6, deep S in V1
)
LBBB_T: tuple[Row, ...] = (
    (0.230, 0.050, (-0.12, -0.03, -0.18), True),    # secondary T, discordant to the QRS
    (0.300, 0.035, (-0.25, -0.05, -0.35), True),
)
RBBB_TERMINAL: tuple[Row, ...] = (
    (0.048, 0.020, (-0.60, -0.10, -0.85), False),   # delayed RV: rightward-anterior R' (V1), wide S (I, V6)
)
RBBB_T: tuple[Row, ...] = (
    (0.200, 0.050, (0.14, 0.08, 0.04), True),
    (0.265, 0.032, (0.30, 0.16, 0.16), True),       # secondary T: inverted in V1
)
ST_WAVES: tuple[tuple[float, float, float], ...] = ((0.090, 0.035, 0.7), (0.160, 0.045, 0.7))
"""(center s, width s, weight) of the ST-segment shift; the vector gives its direction."""

ST_DIRECTIONS: Mapping[str, tuple[float, float, float]] = {
    "anterior": (0.3, -0.5, -1.0),        # LAD: up in V1–V4, down in II, III, aVF
    "inferior": (-0.2, 1.0, 0.2),         # RCA: up in II, III, aVF, down in I, aVL
    "lateral": (1.0, -0.5, 0.2),          # LCx/diagonal: up in I, aVL, V5, V6, down in III, aVF
    "subendocardial": (-0.7, -0.6, 0.3),  # diffuse ischaemia: down in I, II, V4–V6, up in aVR
}
"""Injury-current directions by territory (unit vectors after normalisation)."""


def _gain(rows: tuple[Row, ...], g: float) -> tuple[Row, ...]:
    return tuple((c, w, (v[0] * g, v[1] * g, v[2] * g), r) for c, w, v, r in rows)


def _stretch_depolarisation(ws: WaveSet, k: float) -> WaveSet:
    dep = ~ws.repolarisation
    return WaveSet(np.where(dep, ws.centers_s * k, ws.centers_s), np.where(dep, ws.widths_s * k, ws.widths_s),
                   ws.vectors_mv, ws.repolarisation, ws.qtc_s)


def _unit(v: tuple[float, float, float]) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    return a / np.linalg.norm(a)


def sinus_p(patient: PatientProfile) -> WaveSet:
    """The patient's sinus P wave; fiducial = P onset."""
    g = patient.amplitude_scale * patient.p_scale
    ws = waveset(_gain(SINUS_P, g)).rotated(patient.rotation())
    return WaveSet(ws.centers_s - ws.onset_s, ws.widths_s, ws.vectors_mv, ws.repolarisation)


def ectopic_p(patient: PatientProfile) -> WaveSet:
    """P wave of a premature atrial beat from the patient's ectopic focus; fiducial = P onset."""
    a = 0.12 * patient.amplitude_scale * patient.p_scale * _unit(patient.ectopic_p_axis)
    ws = waveset([(0.040, 0.017, tuple(0.6 * a), False), (0.065, 0.019, tuple(0.6 * a), False)])
    return WaveSet(ws.centers_s - ws.onset_s, ws.widths_s, ws.vectors_mv, ws.repolarisation)


def ventricular_complex(
    patient: PatientProfile,
    conduction: str = "normal",
    *,
    qtc_s: float | None = None,
    st_territory: str | None = None,
    st_mv: float = 0.0,
    t_gain: float = 1.0,
) -> WaveSet:
    """A supraventricular-conducted QRS-T for this patient.

    ``conduction`` is ``normal``, ``lbbb`` or ``rbbb``; ``qtc_s`` overrides the patient's QTc (s);
    ``st_territory`` (a key of :data:`ST_DIRECTIONS`) with ``st_mv`` adds an ST shift of that size (mV,
    spatial magnitude; hyperacute T for the infarct territories); ``t_gain`` scales the T wave
    (negative inverts it).
    """
    amp = patient.amplitude_scale
    qrs_g, t_g = amp * patient.qrs_scale, amp * patient.t_scale * t_gain
    qtc = patient.qtc_s if qtc_s is None else qtc_s
    if conduction == "normal":
        rows = _gain(NORMAL_QRS, qrs_g) + _gain(NORMAL_T, t_g)
    elif conduction == "lbbb":
        rows = _gain(LBBB_QRS, qrs_g) + _gain(LBBB_T, t_g)
        qtc += 0.05
    elif conduction == "rbbb":
        rows = _gain(NORMAL_QRS[:3], qrs_g) + _gain(RBBB_TERMINAL, qrs_g) + _gain(RBBB_T, t_g)
        qtc += 0.03
    else:
        raise ValueError(f"conduction must be normal, lbbb or rbbb, not {conduction!r}")
    if st_territory is not None and st_mv:
        d = _unit(ST_DIRECTIONS[st_territory]) * st_mv * amp
        rows += tuple((c, w, tuple(k * d), True) for c, w, k in ST_WAVES)
        if st_territory != "subendocardial":
            rows += ((0.265, 0.032, tuple(0.6 * d), True),)
    ws = waveset(rows).rotated(patient.rotation())
    if conduction == "normal":
        ws = _stretch_depolarisation(ws, patient.qrs_duration_scale)
    ws = WaveSet(ws.centers_s, ws.widths_s, ws.vectors_mv, ws.repolarisation, qtc)
    return _bake_qt(ws)


def ectopic_ventricular_complex(patient: PatientProfile) -> WaveSet:
    """A wide, bizarre ventricular ectopic QRS (≈ 150 ms) with a discordant T (PVC, VT)."""
    u = _unit(patient.pvc_focus)
    side = np.cross(u, [0.0, 0.0, 1.0])
    side = side / np.linalg.norm(side) if np.linalg.norm(side) > 1e-6 else np.array([1.0, 0.0, 0.0])
    a = patient.amplitude_scale * patient.qrs_scale
    rows: list[Row] = [
        (-0.030, 0.016, tuple(a * (0.5 * u + 0.35 * side)), False),
        (0.000, 0.020, tuple(a * 1.5 * u), False),
        (0.030, 0.016, tuple(a * (0.5 * u - 0.35 * side)), False),
        (0.230, 0.055, tuple(-0.25 * a * u), True),
        (0.300, 0.040, tuple(-0.40 * a * u), True),
    ]
    return _bake_qt(waveset(rows, qtc_s=patient.qtc_s + 0.06))


def _bake_qt(ws: WaveSet) -> WaveSet:
    """Stretch the ST-T so that at RR = 1 s the QT equals the complex's QTc."""
    s = ws.repolarisation_scale(1.0)
    rep = ws.repolarisation
    return WaveSet(np.where(rep, ws.centers_s * s, ws.centers_s), np.where(rep, ws.widths_s * s, ws.widths_s),
                   ws.vectors_mv, rep, ws.qtc_s)


