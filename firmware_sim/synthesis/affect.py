"""Affective states that change sinus physiology: acute stress and amusement (as in WESAD).

A state is scripted as a parameter of any rhythm segment, like every other rhythm parameter::

    rhythm = [ { at = 0, name = "sinus" }, { at = 60, name = "sinus", stress = 1 },
               { at = 120, name = "sinus", amusement = 1 } ]

``stress`` / ``amusement`` is the level of the state (0: none, 1: a typical response, up to 2).
:func:`affected_context` turns the segment's patient into that patient under the state before the
rhythm's planner is built, so every rhythm reads the changed physiology:

- stress (acute psychosocial stress, e.g. the Trier Social Stress Test): heart rate up 8–25 bpm,
  vagal withdrawal (sinus RR SD down to 45–75 % of rest beyond the rate effect, so RMSSD and SDNN fall),
  LF/HF up 1.6–3.5×, breathing 25–60 % faster and shallower (respiratory amplitude modulation
  down to 45–75 %);
- amusement (funny film clips): heart rate up 1–6 bpm, HRV and LF/HF close to rest, breathing
  deeper and a little faster (laughter).

The response sizes come from published reviews of HRV under acute stress (Kim et al. 2018, Psychiatry
Investig.; the WESAD paper, Schmidt et al. 2018), not fitted to any record. Each subject has its own
reactivity, drawn from a generator keyed on the patient profile, so one virtual subject reacts alike in
every stress segment and differs from the next. With no state scripted nothing changes.

Known limit: the baseline-wander part of the noise model keeps the resting breathing rate (it is set per
stream, not per segment); RSA and the beat-amplitude modulation follow the state.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from firmware_sim.synthesis.errors import SynthesisError
from firmware_sim.synthesis.patient import PatientProfile
from firmware_sim.synthesis.planners import SegmentContext

AFFECT_STATES: Mapping[str, str] = {
    "stress": "acute stress level, 0–2 (1: typical; heart rate up, HRV down, LF/HF up, fast shallow breathing)",
    "amusement": "amusement level, 0–2 (1: typical; heart rate slightly up, deeper faster breathing)",
}
"""Rhythm parameters that script an affective state (name → meaning)."""
MAX_LEVEL = 2.0
"""Largest accepted state level."""


@dataclass(frozen=True)
class Reactivity:
    """How strongly one subject reacts to a state of level 1 (multipliers are relative to rest)."""

    hr_delta_bpm: float
    hrv_factor: float
    lf_hf_factor: float
    resp_rate_factor: float
    resp_depth_factor: float


def subject_reactivity(patient: PatientProfile, state: str) -> Reactivity:
    """This patient's response to ``state`` at level 1 (deterministic for the profile)."""
    key = struct.unpack("<4Q", struct.pack("<4d", patient.heart_rate_bpm, patient.hrv_fraction,
                                           patient.lf_hf_ratio, patient.resp_rate_hz))
    rng = np.random.default_rng([*key, 1 if state == "stress" else 2])
    if state == "stress":
        return Reactivity(hr_delta_bpm=float(rng.uniform(8.0, 25.0)), hrv_factor=float(rng.uniform(0.45, 0.75)),
                          lf_hf_factor=float(rng.uniform(1.6, 3.5)), resp_rate_factor=float(rng.uniform(1.25, 1.6)),
                          resp_depth_factor=float(rng.uniform(0.45, 0.75)))
    if state == "amusement":
        return Reactivity(hr_delta_bpm=float(rng.uniform(1.0, 6.0)), hrv_factor=float(rng.uniform(0.95, 1.25)),
                          lf_hf_factor=float(rng.uniform(0.8, 1.2)), resp_rate_factor=float(rng.uniform(1.05, 1.25)),
                          resp_depth_factor=float(rng.uniform(1.2, 1.7)))
    raise SynthesisError(f"unknown affective state {state!r}; known: {', '.join(AFFECT_STATES)}")


def scripted_state(params: Mapping[str, float]) -> tuple[str, float] | None:
    """The (state, level) a segment's parameters script, or None; more than one state is an error."""
    present = [(name, float(params[name])) for name in AFFECT_STATES if params.get(name, 0.0)]
    if not present:
        return None
    if len(present) > 1:
        raise SynthesisError(f"a segment scripts one affective state at a time, not {' and '.join(n for n, _ in present)}")
    name, level = present[0]
    if not 0.0 <= level <= MAX_LEVEL:
        raise SynthesisError(f"{name} level must be 0–{MAX_LEVEL:g}, not {level!r}")
    return name, level


def affected_patient(patient: PatientProfile, state: str, level: float) -> PatientProfile:
    """``patient`` under ``state`` at ``level`` (0: unchanged; effects scale linearly, factors geometrically)."""
    r = subject_reactivity(patient, state)
    return replace(
        patient,
        heart_rate_bpm=patient.heart_rate_bpm + level * r.hr_delta_bpm,
        hrv_fraction=patient.hrv_fraction * r.hrv_factor ** level,
        lf_hf_ratio=patient.lf_hf_ratio * r.lf_hf_factor ** level,
        resp_rate_hz=patient.resp_rate_hz * r.resp_rate_factor ** level,
        resp_depth=patient.resp_depth * r.resp_depth_factor ** level,
    )


def affected_heart_rate(patient: PatientProfile, state: str, level: float, heart_rate_bpm: float) -> float:
    """An explicitly scripted resting ``heart_rate_bpm`` raised as ``state`` raises the patient's own."""
    return heart_rate_bpm + level * subject_reactivity(patient, state).hr_delta_bpm


def affected_context(ctx: SegmentContext) -> SegmentContext:
    """A segment's context with its patient (and any scripted heart rate) under the state it scripts."""
    scripted = scripted_state(ctx.params)
    if scripted is None:
        return ctx
    state, level = scripted
    params = dict(ctx.params)
    if "heart_rate" in params:
        params["heart_rate"] = affected_heart_rate(ctx.patient, state, level, float(params["heart_rate"]))
    return replace(ctx, patient=affected_patient(ctx.patient, state, level), params=params)
