"""Synthesis engine: rhythm timelines → 12-lead signals with ground truth, in one go or in chunks.

Everything is rendered chunk by chunk from state that depends only on absolute time and the seed,
so :class:`StreamSynthesizer` read in any chunk sizes gives exactly what :func:`synthesize_timeline`
returns for the whole duration, and a 24-hour stream never has to sit in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from firmware_sim.synthesis import dipole, projection
from firmware_sim.synthesis.activity import ModulatedOscillators
from firmware_sim.synthesis.affect import scripted_state
from firmware_sim.synthesis.errors import SynthesisError
from firmware_sim.synthesis.noise import NoiseSource, NoiseSpec, leads_reading
from firmware_sim.synthesis.patient import PatientProfile, random_patient
from firmware_sim.synthesis.planners import Planner, SegmentContext
from firmware_sim.synthesis.rhythms import check_segment, make_planner
from protocol.leads import STANDARD_LEADS

LOOKAHEAD_S = 1.0
"""Beats are planned this far beyond the end of the chunk being rendered (s)."""
FADE_S = 0.3
"""Fibrillation/flutter activity and noise episodes fade in and out over this time (s)."""


@dataclass(frozen=True)
class RhythmSegment:
    """A rhythm from ``start_s`` (s) until the next segment starts (or the stream ends)."""

    start_s: float
    rhythm: str
    params: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class NoiseEpisode:
    """Extra noise (and/or detached electrodes) from ``start_s`` to ``end_s`` (s)."""

    start_s: float
    end_s: float
    noise: NoiseSpec


@dataclass(frozen=True)
class GroundTruthEvent:
    """An interval of the truth (s): ``kind`` is ``rhythm`` (label: rhythm name), ``episode`` (e.g.
    ``pause``), ``noise`` (label: the noise kinds joined by ``+``), ``lead_off`` (label: electrodes) or
    ``state`` (label: the scripted affective state, ``stress`` or ``amusement``)."""

    onset_s: float
    offset_s: float
    kind: str
    label: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class Synthesis:
    """Synthesised 12-lead ECG with its ground truth.

    ``signals``: (n_samples, 12) float64 in mV, columns in ``protocol.leads.STANDARD_LEADS`` order;
    ``beats``: sample index of every QRS fiducial (R peak), counted from the start of the stream;
    ``beat_labels``: MIT-BIH beat symbols (N, L, R, A, V); ``events``: rhythm, episode, noise and
    lead-off intervals; ``start_sample``: index of the first row in the stream.
    """

    signals: np.ndarray
    fs: float
    beats: np.ndarray
    beat_labels: tuple[str, ...]
    events: list[GroundTruthEvent]
    patient: PatientProfile
    start_sample: int = 0
    lead_names: tuple[str, ...] = STANDARD_LEADS

    @property
    def duration_s(self) -> float:
        """Length of this synthesis (s)."""
        return self.signals.shape[0] / self.fs

    def lead(self, name: str) -> np.ndarray:
        """One lead's samples (mV)."""
        return self.signals[:, self.lead_names.index(name)]

    def rhythm_at(self, t_s: float) -> str | None:
        """Name of the rhythm at time ``t_s`` (s from the stream start), or None outside the events."""
        for e in self.events:
            if e.kind == "rhythm" and e.onset_s <= t_s < e.offset_s:
                return e.label
        return None

    def to_dict(self) -> dict[str, Any]:
        """Ground truth and metadata (not the samples) as JSON-ready data."""
        return {
            "fs": self.fs,
            "lead_names": list(self.lead_names),
            "start_sample": self.start_sample,
            "n_samples": int(self.signals.shape[0]),
            "beats": [{"sample": int(s), "label": lab} for s, lab in zip(self.beats, self.beat_labels, strict=True)],
            "events": [e.to_dict() for e in self.events],
            "patient": asdict(self.patient),
        }


@dataclass
class _ActiveSegment:
    start_s: float
    end_s: float
    planner: Planner
    activity: ModulatedOscillators | None


class StreamSynthesizer:
    """Chunked synthesis of a rhythm timeline lasting ``seconds`` (s) at ``fs`` (Hz).

    ``read(n)`` returns the next ``n`` samples as a :class:`Synthesis` whose ``beats`` and
    ``events`` are those within that chunk. Deterministic for ``seed``; the default patient is
    ``random_patient(seed)``.
    """

    def __init__(
        self,
        segments: Sequence[RhythmSegment],
        *,
        seconds: float,
        fs: float = 500.0,
        seed: int = 0,
        patient: PatientProfile | None = None,
        noise: NoiseSpec | None = None,
        noise_episodes: Sequence[NoiseEpisode] = (),
    ) -> None:
        _check(segments, seconds, fs, noise_episodes)
        self.fs = float(fs)
        self.seconds = float(seconds)
        self.seed = seed
        self.patient = random_patient(seed) if patient is None else patient
        self._transfer = self.patient.transfer()
        self.n_samples = int(round(seconds * fs))
        self._segments = list(segments)
        self._ends = [s.start_s for s in self._segments[1:]] + [self.seconds]
        self._noise: list[tuple[float, float, NoiseSource]] = []
        if noise is not None and not noise.is_silent:
            self._noise.append((0.0, self.seconds, NoiseSource(noise, (seed, 2, 0), self.patient.resp_rate_hz)))
        for j, ep in enumerate(noise_episodes, start=1):
            self._noise.append((ep.start_s, ep.end_s, NoiseSource(ep.noise, (seed, 2, j), self.patient.resp_rate_hz)))
        self._active: list[_ActiveSegment] = []
        self._next_segment = 0
        self._pending: list[dipole.Placement] = []
        self._episodes: list[GroundTruthEvent] = []
        self._position = 0
        self._static_events = self._known_events(noise, noise_episodes)

    @property
    def position(self) -> int:
        """Samples read so far."""
        return self._position

    @property
    def remaining(self) -> int:
        """Samples left until the end of the timeline."""
        return self.n_samples - self._position

    def read(self, n_samples: int) -> Synthesis:
        """The next ``n_samples`` (fewer at the end of the timeline)."""
        if n_samples < 0:
            raise SynthesisError(f"cannot read {n_samples} samples")
        n0 = self._position
        n = min(n_samples, self.remaining)
        t0, t1 = n0 / self.fs, (n0 + n) / self.fs
        self._plan_until(t1 + LOOKAHEAD_S)
        self._active = [a for a in self._active[:-1] if a.end_s > t0] + self._active[-1:]
        self._pending = [p for p in self._pending if p.extent_s[1] >= t0]
        visible = [p for p in self._pending if p.extent_s[0] < t1]
        dip = dipole.render(visible, n0, n, self.fs)
        self._add_activity(dip, n0, n)
        ind = projection.dipole_to_independent(dip, self._transfer)
        ind = self._add_noise(ind, n0, n)
        signals = projection.independent_to_standard(ind)
        self._apply_lead_off(signals, n0, n)
        beats = [(int(round(p.time_s * self.fs)), p.label) for p in visible if p.label]
        beats = sorted(b for b in beats if n0 <= b[0] < n0 + n)
        self._position = n0 + n
        events = [e for e in self._static_events + self._episodes if e.onset_s < t1 and e.offset_s > t0]
        return Synthesis(
            signals=signals,
            fs=self.fs,
            beats=np.array([b[0] for b in beats], dtype=np.int64),
            beat_labels=tuple(b[1] for b in beats),
            events=sorted(events, key=lambda e: (e.onset_s, e.kind)),
            patient=self.patient,
            start_sample=n0,
        )

    def _known_events(self, noise: NoiseSpec | None, episodes: Sequence[NoiseEpisode]) -> list[GroundTruthEvent]:
        events = [GroundTruthEvent(s.start_s, e, "rhythm", s.rhythm) for s, e in zip(self._segments, self._ends, strict=True)]
        for s, e in zip(self._segments, self._ends, strict=True):
            state = scripted_state(s.params)
            if state is not None:
                events.append(GroundTruthEvent(s.start_s, e, "state", state[0]))
        spans = [(0.0, self.seconds, noise)] if noise is not None else []
        spans += [(ep.start_s, ep.end_s, ep.noise) for ep in episodes]
        for start, end, spec in spans:
            if spec.active_kinds():
                events.append(GroundTruthEvent(start, end, "noise", "+".join(spec.active_kinds())))
            if spec.lead_off:
                events.append(GroundTruthEvent(start, end, "lead_off", ",".join(spec.lead_off)))
        return events

    def _plan_until(self, t_s: float) -> None:
        while True:
            if self._active:
                seg = self._active[-1]
                self._pending.extend(seg.planner.plan_until(t_s))
                self._episodes.extend(GroundTruthEvent(e.onset_s, e.offset_s, "episode", e.label)
                                      for e in seg.planner.episodes)
                seg.planner.episodes.clear()
                if not seg.planner.finished:
                    return
            i = self._next_segment
            if i >= len(self._segments) or self._segments[i].start_s > t_s:
                return
            last_v = self._active[-1].planner.last_ventricular_s if self._active else None
            s = self._segments[i]
            ctx = SegmentContext(self.patient, np.random.default_rng([self.seed, 1, i]), s.start_s,
                                 self._ends[i], dict(s.params), last_v)
            planner = make_planner(s.rhythm, ctx)
            self._active.append(_ActiveSegment(s.start_s, self._ends[i], planner, planner.activity()))
            self._next_segment += 1

    def _add_activity(self, dip: np.ndarray, n0: int, n: int) -> None:
        t = (n0 + np.arange(n)) / self.fs
        for seg in self._active:
            if seg.activity is None or seg.end_s <= t[0] or seg.start_s >= t[-1] + 1.0 / self.fs:
                continue
            i0, i1 = np.searchsorted(t, [seg.start_s, seg.end_s])
            tt = t[i0:i1]
            dip[i0:i1] += seg.activity(tt) * _fade(tt, seg.start_s, seg.end_s)[:, None]

    def _add_noise(self, ind: np.ndarray, n0: int, n: int) -> np.ndarray:
        t = (n0 + np.arange(n)) / self.fs
        live = [(a, b, src) for a, b, src in self._noise if a < t[-1] + 1 / self.fs and b > t[0]]
        if not live:
            return ind
        el = projection.independent_to_electrodes(ind)
        for a, b, src in live:
            weight = np.ones(n) if (a, b) == (0.0, self.seconds) else _fade(t, a, b)
            el += src.render(n0, n, self.fs) * weight[:, None]
        return projection.electrodes_to_independent(el)

    def _apply_lead_off(self, signals: np.ndarray, n0: int, n: int) -> None:
        t = (n0 + np.arange(n)) / self.fs
        for a, b, src in self._noise:
            if not src.spec.lead_off:
                continue
            cols = np.array([STANDARD_LEADS.index(name) for name in leads_reading(src.spec.lead_off)])
            rows = np.flatnonzero((t >= a) & (t < b))
            signals[np.ix_(rows, cols)] = 0.0


def _fade(t: np.ndarray, start: float, end: float) -> np.ndarray:
    """Raised-cosine window: 0 outside [start, end), ramps of FADE_S inside."""
    x = np.clip(np.minimum(t - start, end - t) / FADE_S, 0.0, 1.0)
    return np.where((t >= start) & (t < end), 0.5 - 0.5 * np.cos(np.pi * x), 0.0)


def _check(segments: Sequence[RhythmSegment], seconds: float, fs: float,
           episodes: Sequence[NoiseEpisode]) -> None:
    if not np.isfinite(fs) or fs < 50.0:
        raise SynthesisError(f"fs must be at least 50 Hz, not {fs!r}")
    if not np.isfinite(seconds) or seconds <= 0:
        raise SynthesisError(f"seconds must be > 0, not {seconds!r}")
    if not segments:
        raise SynthesisError("a timeline needs at least one RhythmSegment")
    if segments[0].start_s != 0.0:
        raise SynthesisError(f"the first segment must start at 0 s, not {segments[0].start_s!r}")
    starts = [s.start_s for s in segments]
    if any(b <= a for a, b in zip(starts, starts[1:], strict=False)) or starts[-1] >= seconds:
        raise SynthesisError(f"segment starts must increase and lie before {seconds} s: {starts}")
    for s in segments:
        check_segment(s.rhythm, s.params)
    for ep in episodes:
        if not 0.0 <= ep.start_s < ep.end_s:
            raise SynthesisError(f"noise episode {ep.start_s}–{ep.end_s} s must have 0 ≤ start < end")


def synthesize_timeline(
    segments: Sequence[RhythmSegment],
    *,
    seconds: float,
    fs: float = 500.0,
    seed: int = 0,
    patient: PatientProfile | None = None,
    noise: NoiseSpec | None = None,
    noise_episodes: Sequence[NoiseEpisode] = (),
) -> Synthesis:
    """Synthesise a whole timeline of rhythm segments (see :class:`StreamSynthesizer`)."""
    stream = StreamSynthesizer(segments, seconds=seconds, fs=fs, seed=seed, patient=patient, noise=noise,
                               noise_episodes=noise_episodes)
    return stream.read(stream.n_samples)


def synthesize(
    rhythm: str,
    *,
    seconds: float,
    fs: float = 500.0,
    seed: int = 0,
    patient: PatientProfile | None = None,
    noise: NoiseSpec | None = None,
    heart_rate: float | None = None,
    params: Mapping[str, float] | None = None,
) -> Synthesis:
    """Synthesise ``seconds`` (s) of one rhythm at ``fs`` (Hz); ``heart_rate`` in beats/min.

    ``params`` are the rhythm's parameters (``rhythm_names()`` lists rhythms; unknown names raise
    :class:`~firmware_sim.synthesis.errors.UnknownRhythmError`).
    """
    p = dict(params or {})
    if heart_rate is not None:
        p["heart_rate"] = heart_rate
    return synthesize_timeline([RhythmSegment(0.0, rhythm, p)], seconds=seconds, fs=fs, seed=seed,
                               patient=patient, noise=noise)
