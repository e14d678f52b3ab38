"""Beat scheduling: each rhythm places atrial (P) and ventricular (QRS-T) complexes in time.

Atrial and ventricular events are separate placements, so AV conduction is explicit: a P wave
without a QRS is a blocked beat (Wenckebach, the sinus P hidden in a PVC's T wave), a QRS without a
P is ectopic or fibrillatory. A planner works one cardiac cycle at a time (a Python loop per beat,
never per sample) and can be asked for more beats at any time, so long streams are planned lazily.

Beat labels follow MIT-BIH: ``N`` normal, ``L``/``R`` left/right bundle-branch-block beat, ``A``
premature atrial, ``V`` premature ventricular or ventricular-tachycardia beat.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from firmware_sim.synthesis.activity import (
    ModulatedOscillators,
    fibrillatory_waves,
    flutter_waves,
    ventricular_fibrillation,
)
from firmware_sim.synthesis.dipole import Placement, WaveSet
from firmware_sim.synthesis.morphology import ectopic_p, ectopic_ventricular_complex, sinus_p
from firmware_sim.synthesis.patient import PatientProfile
from firmware_sim.synthesis.rr import SinusRateProcess, af_rr


@dataclass(frozen=True)
class SegmentContext:
    """What a planner needs: who, when (s), its parameters, and the last QRS before it (s)."""

    patient: PatientProfile
    rng: np.random.Generator
    start_s: float
    end_s: float
    params: Mapping[str, float]
    last_ventricular_s: float | None = None

    def param(self, name: str, default: float | Callable[[], float]) -> float:
        """A rhythm parameter, or its default (a callable default is drawn only when needed)."""
        if name in self.params:
            return float(self.params[name])
        return float(default() if callable(default) else default)


@dataclass(frozen=True)
class Episode:
    """A sub-rhythm event found while planning, e.g. a sinus pause (times in s)."""

    onset_s: float
    offset_s: float
    label: str


class Planner:
    """Base planner: repeatedly calls :meth:`_cycle` from an anchor time up to the segment end.

    Each cycle's anchor is no later than any complex it places, so after ``plan_until(t)`` no later
    call places a complex before ``t``.
    """

    def __init__(self, ctx: SegmentContext, mean_rr_s: float) -> None:
        self.ctx = ctx
        self.rng = ctx.rng
        self.mean_rr_s = mean_rr_s
        self.last_ventricular_s = ctx.last_ventricular_s
        self.episodes: list[Episode] = []
        self._out: list[Placement] = []
        self._resp_phase = float(self.rng.uniform(0.0, 2 * np.pi))
        self._anchor: float | None = None

    def plan_until(self, t_s: float) -> list[Placement]:
        """Place every cycle whose anchor is before ``t_s`` (and before the segment end)."""
        anchor = self._first_anchor() if self._anchor is None else self._anchor
        stop = min(t_s, self.ctx.end_s)
        while anchor < stop:
            anchor = self._cycle(anchor)
        self._anchor = anchor
        out, self._out = self._out, []
        return out

    @property
    def finished(self) -> bool:
        """True once every cycle of the segment has been placed."""
        return self._anchor is not None and self._anchor >= self.ctx.end_s

    def activity(self) -> ModulatedOscillators | None:
        """Continuous non-beat activity of this rhythm (f-waves, flutter, VF), or None."""
        return None

    def _first_ventricular_time(self, rr_s: float) -> float:
        """First QRS: one RR after the previous segment's last QRS, or at a random phase."""
        start = self.ctx.start_s
        last = self.last_ventricular_s
        if last is None or last + rr_s < start:
            return start + float(self.rng.uniform(0.05, 1.0)) * min(rr_s, 1.0)
        return last + rr_s

    def _first_anchor(self) -> float:
        raise NotImplementedError

    def _cycle(self, anchor_s: float) -> float:
        raise NotImplementedError

    def _gain(self, t_s: float) -> float:
        """Beat amplitude: respiratory modulation (± the patient's ``resp_depth``, 5 % at rest) and 1 % jitter."""
        resp = self.ctx.patient.resp_rate_hz
        return 1.0 + self.ctx.patient.resp_depth * np.sin(2 * np.pi * resp * t_s + self._resp_phase) + 0.01 * self.rng.standard_normal()

    def _atrium(self, t_s: float, waves: WaveSet) -> None:
        self._out.append(Placement(t_s, waves, self._gain(t_s)))

    def _ventricle(self, t_s: float, waves: WaveSet, label: str) -> None:
        last = self.last_ventricular_s
        rr = self.mean_rr_s if last is None else t_s - last
        self._out.append(Placement(t_s, waves, self._gain(t_s), waves.repolarisation_scale(rr), label))
        self.last_ventricular_s = t_s


class SinusPlanner(Planner):
    """Sinus node with heart-rate variability, every P conducted after ``pr_s`` seconds."""

    def __init__(self, ctx: SegmentContext, complex_: WaveSet, *, rate_bpm: float, pr_s: float,
                 label: str = "N") -> None:
        p = ctx.patient
        mean_rr = 60.0 / rate_bpm
        hrv = p.hrv_fraction * float(np.clip(mean_rr / 0.85, 0.3, 1.2))   # HRV shrinks at high rates
        self.rr = SinusRateProcess(ctx.rng, mean_rr, hrv, p.lf_hf_ratio, p.resp_rate_hz)
        self.p_wave = sinus_p(p)
        self.qrs = complex_
        self.pr_s = pr_s
        self.label = label
        super().__init__(ctx, mean_rr)

    def _av_delay(self, pr_s: float) -> float:
        """P onset → QRS fiducial (s) for a PR interval of ``pr_s``."""
        return pr_s - self.qrs.onset_s

    def _first_anchor(self) -> float:
        return self._first_ventricular_time(self.mean_rr_s) - self._av_delay(self.pr_s)

    def _conducted(self, a_s: float, p_wave: WaveSet, pr_s: float, label: str) -> float:
        self._atrium(a_s, p_wave)
        v = a_s + self._av_delay(pr_s)
        self._ventricle(v, self.qrs, label)
        return v

    def _cycle(self, a_s: float) -> float:
        self._conducted(a_s, self.p_wave, self.pr_s, self.label)
        return a_s + self.rr.rr_at(a_s)


class PacPlanner(SinusPlanner):
    """Sinus rhythm with premature atrial beats (probability ``pac_prob`` per beat); the sinus node resets."""

    def __init__(self, ctx: SegmentContext, complex_: WaveSet, *, rate_bpm: float, pr_s: float,
                 probability: float) -> None:
        super().__init__(ctx, complex_, rate_bpm=rate_bpm, pr_s=pr_s)
        self.probability = probability
        self.ectopic = ectopic_p(ctx.patient)
        self._pac_next = False

    def _cycle(self, a_s: float) -> float:
        rr = self.rr.rr_at(a_s)
        if self._pac_next:
            self._pac_next = False
            self._conducted(a_s, self.ectopic, self.pr_s * 0.9, "A")
            return a_s + 1.05 * rr
        self._conducted(a_s, self.p_wave, self.pr_s, "N")
        if self.rng.random() < self.probability:
            self._pac_next = True
            return a_s + float(self.rng.uniform(0.55, 0.75)) * rr
        return a_s + rr


class PvcPlanner(SinusPlanner):
    """Sinus rhythm with PVCs: every ``every``-th sinus beat (bigeminy 1, trigeminy 2) or at random.

    The sinus P after a PVC still fires but meets refractory ventricles: a full compensatory pause.
    """

    def __init__(self, ctx: SegmentContext, complex_: WaveSet, *, rate_bpm: float, pr_s: float,
                 every: int = 0, probability: float = 0.0) -> None:
        super().__init__(ctx, complex_, rate_bpm=rate_bpm, pr_s=pr_s)
        self.pvc = ectopic_ventricular_complex(ctx.patient)
        self.every = every
        self.probability = probability
        self._count = 0
        self._blocked_next = False

    def _cycle(self, a_s: float) -> float:
        rr = self.rr.rr_at(a_s)
        if self._blocked_next:
            self._blocked_next = False
            self._atrium(a_s, self.p_wave)
            return a_s + rr
        v = self._conducted(a_s, self.p_wave, self.pr_s, "N")
        self._count += 1
        due = self._count % self.every == 0 if self.every else self.rng.random() < self.probability
        if due:
            self._ventricle(v + float(self.rng.uniform(0.5, 0.62)) * rr, self.pvc, "V")
            self._blocked_next = True
        return a_s + rr


class WenckebachPlanner(SinusPlanner):
    """Mobitz I: the PR lengthens by decreasing steps until one P is not conducted.

    ``ratio`` P waves per group (4 → 4:3 conduction); 0 draws 3–5 for every group.
    """

    def __init__(self, ctx: SegmentContext, complex_: WaveSet, *, rate_bpm: float, pr_s: float,
                 ratio: int) -> None:
        super().__init__(ctx, complex_, rate_bpm=rate_bpm, pr_s=pr_s)
        self.ratio = ratio
        self._group = self._group_size()
        self._index = 0

    def _group_size(self) -> int:
        return self.ratio if self.ratio else int(self.rng.integers(3, 6))

    def _cycle(self, a_s: float) -> float:
        if self._index == self._group - 1:
            self._atrium(a_s, self.p_wave)                                  # dropped beat
            self._index = 0
            self._group = self._group_size()
        else:
            pr = self.pr_s + 0.12 * (1.0 - 0.5 ** self._index) / 0.5
            self._conducted(a_s, self.p_wave, pr, "N")
            self._index += 1
        return a_s + self.rr.rr_at(a_s)


class PausePlanner(SinusPlanner):
    """Sinus rhythm with sinus arrest: no P wave for ``pause_s`` seconds, every ``every_s`` seconds."""

    def __init__(self, ctx: SegmentContext, complex_: WaveSet, *, rate_bpm: float, pr_s: float,
                 pause_s: float, every_s: float) -> None:
        self.pause_s = pause_s
        self.every_s = every_s
        self._next_pause = ctx.start_s + every_s / 2
        super().__init__(ctx, complex_, rate_bpm=rate_bpm, pr_s=pr_s)

    def _cycle(self, a_s: float) -> float:
        v = self._conducted(a_s, self.p_wave, self.pr_s, self.label)
        if a_s < self._next_pause:
            return a_s + self.rr.rr_at(a_s)
        self._next_pause += self.every_s
        nxt = a_s + self.pause_s
        self.episodes.append(Episode(v, nxt + self._av_delay(self.pr_s), "pause"))
        return nxt


class RegularVentricularPlanner(Planner):
    """A regular ventricular rhythm (SVT, VT) at ``rate_bpm`` with 0.5 % RR jitter.

    ``dissociated_p``: sinus P waves march through independently (AV dissociation in VT).
    """

    def __init__(self, ctx: SegmentContext, complex_: WaveSet, *, rate_bpm: float, label: str,
                 dissociated_p: bool) -> None:
        self.qrs = complex_
        self.label = label
        p = ctx.patient
        self.p_wave = sinus_p(p) if dissociated_p else None
        self._sinus_rr = 60.0 / p.heart_rate_bpm
        super().__init__(ctx, 60.0 / rate_bpm)
        self._next_v = self._first_ventricular_time(self.mean_rr_s)
        self._next_p = ctx.start_s + float(self.rng.uniform(0.0, self._sinus_rr)) if dissociated_p else np.inf

    def _first_anchor(self) -> float:
        return min(self._next_v, self._next_p)

    def _cycle(self, anchor_s: float) -> float:
        if self._next_p < self._next_v and self.p_wave is not None:
            self._atrium(self._next_p, self.p_wave)
            self._next_p += self._sinus_rr
        else:
            self._ventricle(self._next_v, self.qrs, self.label)
            self._next_v += self.mean_rr_s * (1.0 + 0.005 * self.rng.standard_normal())
        return min(self._next_v, self._next_p)


class AtrialFibrillationPlanner(Planner):
    """AF: irregularly irregular QRS (log-normal RR with coefficient of variation ``cv``), f-waves, no P."""

    def __init__(self, ctx: SegmentContext, complex_: WaveSet, *, rate_bpm: float, cv: float,
                 f_hz: float, f_mv: float) -> None:
        self.qrs = complex_
        self.cv = cv
        self._waves = fibrillatory_waves(ctx.rng, f_hz, f_mv)
        super().__init__(ctx, 60.0 / rate_bpm)

    def _first_anchor(self) -> float:
        return self._first_ventricular_time(af_rr(self.rng, self.mean_rr_s, self.cv))

    def _cycle(self, v_s: float) -> float:
        self._ventricle(v_s, self.qrs, "N")
        return v_s + af_rr(self.rng, self.mean_rr_s, self.cv)

    def activity(self) -> ModulatedOscillators:
        return self._waves


class FlutterPlanner(Planner):
    """Atrial flutter: sawtooth F-waves at ``flutter_rate`` per minute, conducted ``block``:1.

    ``block`` 0 draws 2:1, 3:1 or 4:1 for every beat (variable block).
    """

    def __init__(self, ctx: SegmentContext, complex_: WaveSet, *, flutter_rate: float, block: int,
                 f_mv: float) -> None:
        self.qrs = complex_
        self.block = block
        self.period_s = 60.0 / flutter_rate
        self._waves = flutter_waves(ctx.rng, flutter_rate, f_mv)
        super().__init__(ctx, self.period_s * (block or 3))

    def _step(self) -> int:
        return self.block or int(self.rng.choice([2, 3, 4], p=[0.4, 0.2, 0.4]))

    def _first_anchor(self) -> float:
        return self._first_ventricular_time(self._step() * self.period_s)

    def _cycle(self, v_s: float) -> float:
        self._ventricle(v_s, self.qrs, "N")
        return v_s + self._step() * self.period_s

    def activity(self) -> ModulatedOscillators:
        return self._waves


class SilentPlanner(Planner):
    """No QRS at all: asystole (flat) or ventricular fibrillation (``vf_mv`` > 0)."""

    def __init__(self, ctx: SegmentContext, *, vf_mv: float = 0.0) -> None:
        self._waves = ventricular_fibrillation(ctx.rng, vf_mv) if vf_mv > 0 else None
        super().__init__(ctx, 1.0)

    def _first_anchor(self) -> float:
        return np.inf

    def _cycle(self, anchor_s: float) -> float:
        return np.inf

    def activity(self) -> ModulatedOscillators | None:
        return self._waves
