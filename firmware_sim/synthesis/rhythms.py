"""The rhythm catalogue: every named rhythm, its one-line description, its parameters.

``rhythm_names()`` lists the catalogue; :func:`make_planner` builds the beat planner of one rhythm
segment. Parameter defaults are drawn per segment from clinically typical ranges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from firmware_sim.synthesis.affect import AFFECT_STATES, affected_context, scripted_state
from firmware_sim.synthesis.dipole import WaveSet
from firmware_sim.synthesis.errors import SynthesisError, UnknownRhythmError
from firmware_sim.synthesis.morphology import ectopic_ventricular_complex, ventricular_complex
from firmware_sim.synthesis.planners import (
    AtrialFibrillationPlanner,
    FlutterPlanner,
    PacPlanner,
    PausePlanner,
    Planner,
    PvcPlanner,
    RegularVentricularPlanner,
    SegmentContext,
    SilentPlanner,
    SinusPlanner,
    WenckebachPlanner,
)

SINUS_PARAMS: Mapping[str, str] = {
    "heart_rate": "sinus rate (beats/min)",
    "pr_s": "PR interval (s)",
    "qtc_s": "rate-corrected QT, Fridericia (s)",
    **AFFECT_STATES,
}


@dataclass(frozen=True)
class RhythmInfo:
    """One catalogue entry: description, accepted parameters (name → meaning with unit), builder."""

    name: str
    description: str
    params: Mapping[str, str]
    build: Callable[[SegmentContext], Planner]


def _complex(ctx: SegmentContext, conduction: str = "normal", **kw: float | str) -> WaveSet:
    qtc = ctx.params.get("qtc_s")
    return ventricular_complex(ctx.patient, conduction, qtc_s=None if qtc is None else float(qtc), **kw)  # type: ignore[arg-type]


def _sinus(rate: Callable[[SegmentContext], float] | None = None, conduction: str = "normal",
           pr: Callable[[SegmentContext], float] | None = None, label: str = "N",
           **complex_kw: float | str) -> Callable[[SegmentContext], Planner]:
    def build(ctx: SegmentContext) -> Planner:
        return SinusPlanner(ctx, _complex(ctx, conduction, **complex_kw),
                            rate_bpm=ctx.param("heart_rate", lambda: rate(ctx) if rate else ctx.patient.heart_rate_bpm),
                            pr_s=ctx.param("pr_s", lambda: pr(ctx) if pr else ctx.patient.pr_s), label=label)
    return build


def _stemi(territory: str) -> Callable[[SegmentContext], Planner]:
    def build(ctx: SegmentContext) -> Planner:
        st = ctx.param("st_mv", 0.3)
        return _sinus(st_territory=territory, st_mv=st)(ctx)
    return build


def _st_depression(ctx: SegmentContext) -> Planner:
    return _sinus(st_territory="subendocardial", st_mv=ctx.param("st_mv", 0.2))(ctx)


def _long_qt(ctx: SegmentContext) -> Planner:
    qtc = ctx.param("qtc_s", lambda: ctx.rng.uniform(0.50, 0.56))
    return SinusPlanner(ctx, ventricular_complex(ctx.patient, qtc_s=qtc), rate_bpm=_rate(ctx), pr_s=_pr(ctx))


def _rate(ctx: SegmentContext) -> float:
    return ctx.param("heart_rate", ctx.patient.heart_rate_bpm)


def _pr(ctx: SegmentContext) -> float:
    return ctx.param("pr_s", ctx.patient.pr_s)


def _pac(ctx: SegmentContext) -> Planner:
    return PacPlanner(ctx, _complex(ctx), rate_bpm=_rate(ctx), pr_s=_pr(ctx),
                      probability=ctx.param("pac_prob", 0.15))


def _pvc(every: int) -> Callable[[SegmentContext], Planner]:
    def build(ctx: SegmentContext) -> Planner:
        return PvcPlanner(ctx, _complex(ctx), rate_bpm=_rate(ctx), pr_s=_pr(ctx), every=every,
                          probability=ctx.param("pvc_prob", 0.12))
    return build


def _wenckebach(ctx: SegmentContext) -> Planner:
    return WenckebachPlanner(ctx, _complex(ctx), rate_bpm=_rate(ctx), pr_s=ctx.param("pr_s", 0.2),
                             ratio=int(ctx.param("ratio", 4)))


def _pause(ctx: SegmentContext) -> Planner:
    return PausePlanner(ctx, _complex(ctx), rate_bpm=_rate(ctx), pr_s=_pr(ctx),
                        pause_s=ctx.param("pause_s", 3.0), every_s=ctx.param("every_s", 10.0))


AF_F_MV = (0.015, 0.06)
"""AF f-wave amplitude (dipole mV). In V1 the edge reads f-waves (median peak-to-peak in TQ after
average-beat subtraction) of 0.069 [0.054–0.110] mV on the tune set's 3 AF records, noise included
(sinus records read 0.032 there), and read 0.085 [0.068–0.110] mV at the former 0.02–0.08; literature:
mostly 0.05–0.1 mV peak to peak in V1, "fine" AF below 0.05."""


def _afib(ctx: SegmentContext) -> Planner:
    # Real AF is less irregular when fast (RR CV falls with rate) and its f-waves are small (AF_F_MV):
    # rate 60–160 bpm, CV drawn at 0.10–0.25 and scaled by √(100 / rate).
    rate = ctx.param("heart_rate", lambda: ctx.rng.uniform(60.0, 160.0))
    return AtrialFibrillationPlanner(
        ctx, _complex(ctx),
        rate_bpm=rate,
        cv=ctx.param("rr_cv", lambda: float(np.clip(ctx.rng.uniform(0.10, 0.25) * np.sqrt(100.0 / rate), 0.06, 0.3))),
        f_hz=ctx.param("f_hz", lambda: ctx.rng.uniform(5.0, 8.0)),
        f_mv=ctx.param("f_mv", lambda: ctx.rng.uniform(*AF_F_MV)),
    )


def _aflutter(ctx: SegmentContext) -> Planner:
    return FlutterPlanner(ctx, _complex(ctx), flutter_rate=ctx.param("flutter_rate", lambda: ctx.rng.uniform(270, 330)),
                          block=int(ctx.param("block", 0)), f_mv=ctx.param("f_mv", lambda: ctx.rng.uniform(0.1, 0.2)))


def _svt(ctx: SegmentContext) -> Planner:
    return RegularVentricularPlanner(ctx, _complex(ctx), label="N", dissociated_p=False,
                                     rate_bpm=ctx.param("heart_rate", lambda: ctx.rng.uniform(160.0, 210.0)))


def _vt(ctx: SegmentContext) -> Planner:
    return RegularVentricularPlanner(ctx, ectopic_ventricular_complex(ctx.patient), label="V", dissociated_p=True,
                                     rate_bpm=ctx.param("heart_rate", lambda: ctx.rng.uniform(150.0, 210.0)))


def _vf(ctx: SegmentContext) -> Planner:
    return SilentPlanner(ctx, vf_mv=ctx.param("vf_mv", lambda: ctx.rng.uniform(0.3, 0.8)))


def _asystole(ctx: SegmentContext) -> Planner:
    return SilentPlanner(ctx)


def _uniform(lo: float, hi: float) -> Callable[[SegmentContext], float]:
    return lambda ctx: float(ctx.rng.uniform(lo, hi))


SINUS_BRADY_BPM = (45.0, 58.0)
"""Sinus bradycardia as resting ECGs record it: mostly 45–59 bpm (the tune set's 11 records read 55 [51–57]
bpm; at the former 40–55 the simulator's read 47 [43–50])."""

_RATE = {"heart_rate": SINUS_PARAMS["heart_rate"]}
_ST = {**SINUS_PARAMS, "st_mv": "ST shift, spatial magnitude of the injury vector (mV)"}

CATALOGUE: Mapping[str, RhythmInfo] = {info.name: info for info in (
    RhythmInfo("sinus", "normal sinus rhythm at the patient's resting rate, with HRV", SINUS_PARAMS, _sinus()),
    RhythmInfo("sinus_brady", "sinus bradycardia, 45–58 bpm", SINUS_PARAMS, _sinus(_uniform(*SINUS_BRADY_BPM))),
    RhythmInfo("sinus_tachy", "sinus tachycardia, 105–140 bpm", SINUS_PARAMS, _sinus(_uniform(105.0, 140.0))),
    RhythmInfo("afib", "atrial fibrillation: irregular RR (CV 0.06–0.3, lower when fast), small f-waves 5–8 Hz, no P waves",
               {**_RATE, "rr_cv": "RR coefficient of variation", "f_hz": "f-wave frequency (Hz)",
                "f_mv": "f-wave amplitude (mV)"}, _afib),
    RhythmInfo("aflutter", "atrial flutter: sawtooth F-waves ~300/min, 2:1–4:1 (variable) block",
               {"flutter_rate": "F-wave rate (per min)", "block": "conduction ratio n:1, 0 = variable",
                "f_mv": "F-wave amplitude (mV)"}, _aflutter),
    RhythmInfo("pac", "sinus rhythm with premature atrial contractions (ectopic P, non-compensatory pause)",
               {**SINUS_PARAMS, "pac_prob": "probability of a PAC after a sinus beat"}, _pac),
    RhythmInfo("pvc", "sinus rhythm with isolated PVCs (wide bizarre QRS, compensatory pause)",
               {**SINUS_PARAMS, "pvc_prob": "probability of a PVC after a sinus beat"}, _pvc(0)),
    RhythmInfo("pvc_bigeminy", "ventricular bigeminy: every sinus beat followed by a PVC", SINUS_PARAMS, _pvc(1)),
    RhythmInfo("pvc_trigeminy", "ventricular trigeminy: two sinus beats then a PVC", SINUS_PARAMS, _pvc(2)),
    RhythmInfo("vt", "monomorphic ventricular tachycardia, 150–210 bpm, QRS ~160 ms, AV dissociation",
               _RATE, _vt),
    RhythmInfo("vf", "ventricular fibrillation: chaotic 4–8 Hz waves, no QRS",
               {"vf_mv": "fibrillation amplitude (mV)"}, _vf),
    RhythmInfo("svt", "supraventricular (AV nodal re-entrant) tachycardia, narrow QRS, 160–210 bpm, no P",
               _RATE, _svt),
    RhythmInfo("av_block_1", "first-degree AV block: sinus rhythm with PR 240–320 ms", SINUS_PARAMS,
               _sinus(pr=_uniform(0.24, 0.32))),
    RhythmInfo("wenckebach", "second-degree AV block Mobitz I: PR lengthens until a P is not conducted",
               {**SINUS_PARAMS, "ratio": "P waves per group (4 → 4:3), 0 = variable"}, _wenckebach),
    RhythmInfo("lbbb", "left bundle branch block: QRS ~150 ms, broad notched R in V5/V6, deep S in V1",
               SINUS_PARAMS, _sinus(conduction="lbbb", label="L")),
    RhythmInfo("rbbb", "right bundle branch block: QRS ~140 ms, rsR' in V1, wide S in I and V6",
               SINUS_PARAMS, _sinus(conduction="rbbb", label="R")),
    RhythmInfo("stemi_anterior", "anterior STEMI: ST elevation V1–V4, reciprocal depression II/III/aVF",
               _ST, _stemi("anterior")),
    RhythmInfo("stemi_inferior", "inferior STEMI: ST elevation II/III/aVF, reciprocal depression I/aVL",
               _ST, _stemi("inferior")),
    RhythmInfo("stemi_lateral", "lateral STEMI: ST elevation I/aVL/V5/V6, reciprocal depression III/aVF",
               _ST, _stemi("lateral")),
    RhythmInfo("st_depression", "diffuse subendocardial ischaemia: ST depression I/II/V4–V6, elevation aVR",
               _ST, _st_depression),
    RhythmInfo("t_inversion", "sinus rhythm with inverted T waves", SINUS_PARAMS, _sinus(t_gain=-0.8)),
    RhythmInfo("long_qt", "sinus rhythm with long QT (QTc 500–560 ms)", SINUS_PARAMS, _long_qt),
    RhythmInfo("pause", "sinus rhythm with sinus-arrest pauses",
               {**SINUS_PARAMS, "pause_s": "pause length (s)", "every_s": "time between pauses (s)"}, _pause),
    RhythmInfo("asystole", "asystole: flat line, no QRS (for as long as the segment lasts)", {}, _asystole),
)}


def rhythm_names() -> dict[str, str]:
    """Every rhythm in the catalogue → its one-line description."""
    return {name: info.description for name, info in CATALOGUE.items()}


def rhythm_info(name: str) -> RhythmInfo:
    """The catalogue entry of ``name``; :class:`UnknownRhythmError` (listing valid names) otherwise."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownRhythmError(name, CATALOGUE) from None


def check_segment(name: str, params: Mapping[str, float]) -> RhythmInfo:
    """The entry of ``name`` after checking ``params``: unknown names or values raise errors."""
    info = rhythm_info(name)
    unknown = sorted(set(params) - set(info.params))
    if unknown:
        accepted = ", ".join(f"{k} ({v})" for k, v in info.params.items()) or "none"
        raise SynthesisError(f"rhythm {name!r} does not take {', '.join(unknown)}; it accepts: {accepted}")
    for key, value in params.items():
        if not isinstance(value, int | float) or not value == value or value < 0:
            raise SynthesisError(f"rhythm parameter {key}={value!r} must be a number ≥ 0")
    if not 20.0 <= params.get("heart_rate", 60.0) <= 300.0:
        raise SynthesisError(f"heart_rate must be 20–300 beats/min, not {params['heart_rate']!r}")
    scripted_state(params)
    return info


def make_planner(name: str, ctx: SegmentContext) -> Planner:
    """Build the planner of one segment (see :func:`check_segment` for the errors)."""
    info = check_segment(name, ctx.params)
    return info.build(affected_context(ctx))
