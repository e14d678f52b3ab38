"""What the alarm engine consumes, per device, in *stream time*.

Stream time ``t_s`` is seconds from the first sample of the device's stream (sample index / fs of
the gateway's time base). Everything the engine decides is a function of stream time, never of the
wall clock, so a replay gives the same alerts as the live run. :class:`ClockMap` turns a stream time
into the device's and the gateway's clocks (µs) for the alert's onset fields.

Inputs (all immutable):

- :class:`BeatEvidence`: what the QRS detector decided on one packet of the analysed lead;
- :class:`WindowEvidence`: one analysis window (10 s): optional classifier probabilities and ST
  deviations per lead, measured or reconstructed (:class:`StMeasurement`, defined with the ST
  measurement in :mod:`edge.signal.st` and re-exported here);
- :class:`TechnicalState`: lead-off, SQI per lead over a quality window, battery, link, data gaps.

:class:`EvidenceState` accumulates them; the rules read only it.

**ECG with every clinical alarm.** :func:`with_evidence` names, in an alert that is raised or
escalated, the windows that cover its deciding samples: from its onset (for asystole and pause,
the last beat before the silence: the whole pause) to the sample that decided it (``at_s``),
plus :data:`EVIDENCE_CONTEXT_S` either side. The window grid is fixed (10 s windows every 5 s
of stream time) and window ids come from the grid slot, so the ids are known when the alert is
raised, before inference has produced those windows (late-bound by id): they travel in
``details["evidence_window_ids"]`` (oldest first) with the span in ``details["evidence_span_s"]``,
and ``window_id`` is the one of them centred nearest the deciding sample (the window the engine
had at hand, e.g. the classifier or ST window a rule decided on, is listed too).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from edge.signal.st import StMeasurement
from protocol.messages import Alert, AlertCategory

__all__ = [
    "Beat",
    "BeatEvidence",
    "ClockMap",
    "EvidenceState",
    "GapEvent",
    "LeadQuality",
    "LinearClock",
    "StMeasurement",
    "TechnicalState",
    "WindowEvidence",
    "with_evidence",
]

EVIDENCE_CONTEXT_S = 1.0
"""Signal kept either side of an alert's deciding span when choosing its evidence windows."""
MAX_EVIDENCE_WINDOWS = 12
"""Most windows one alert names (the latest ones, which hold the deciding sample; a 60 s span)."""
EVIDENCE_EVENTS = ("raised", "escalated")
IRREGULAR_HOLD_FRACTION = 0.8
"""An irregular run, once its RR irregularity reached the AF threshold, lasts while it stays at or
above this fraction of it (the AF rule's ``af_hold_irregularity`` is the same level)."""

class ClockMap(Protocol):
    """Maps stream time (s) to device and gateway clocks (µs); the edge's clock estimator implements it."""

    def device_us(self, t_s: float) -> int: ...

    def gateway_us(self, t_s: float) -> int: ...


@dataclass(frozen=True)
class LinearClock:
    """Stream time 0 at ``device_us0`` on the device clock and ``gateway_us0`` on the gateway clock.

    ``drift_ppm``: device clock rate error relative to the gateway (parts per million).
    """

    device_us0: int = 0
    gateway_us0: int = 0
    drift_ppm: float = 0.0

    def device_us(self, t_s: float) -> int:
        return self.device_us0 + round(t_s * 1e6 * (1.0 + self.drift_ppm * 1e-6))

    def gateway_us(self, t_s: float) -> int:
        return self.gateway_us0 + round(t_s * 1e6)


@dataclass(frozen=True)
class BeatEvidence:
    """The QRS detector's output for one packet.

    ``until_s``: stream time up to which the detector has seen samples (its ``samples_seen / fs``);
    ``beat_times_s``: R peaks reported now (s), in time order; ``qrs_width_ms``: one width per beat
    (ms, NaN unknown; :class:`edge.alarms.features.QrsWidthMeter`) or empty when not measured;
    ``heart_rate_bpm`` and ``rr_irregularity``: the detector's running figures (NaN until known);
    ``paced``: per beat, whether a pacemaker pulse precedes it (:mod:`edge.signal.pacing`), or empty
    when pace pulses are not looked for.
    """

    until_s: float
    beat_times_s: tuple[float, ...] = ()
    qrs_width_ms: tuple[float, ...] = ()
    heart_rate_bpm: float = math.nan
    rr_irregularity: float = math.nan
    paced: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        if self.qrs_width_ms and len(self.qrs_width_ms) != len(self.beat_times_s):
            raise ValueError("qrs_width_ms needs one width per beat (or none at all)")
        if self.paced and len(self.paced) != len(self.beat_times_s):
            raise ValueError("paced needs one flag per beat (or none at all)")


@dataclass(frozen=True)
class WindowEvidence:
    """One analysis window ``[start_s, end_s)`` of stream time.

    ``window_id``: UUID of the window as sent upstream (the alert's evidence). ``probabilities``:
    classifier class probabilities (keys such as ``VT``, ``VF``, ``AF``, ``STE``, ``STD``), empty when
    no classifier ran. ``st``: ST deviation per lead (standard lead names). ``model_versions``: name →
    version of the models that produced it (classifier, reconstruction). ``thresholds``: the
    classifier's shipped operating threshold per class (from its artifact; chosen on real records),
    empty when the model ships none — rules then fall back to their own configured probability.
    """

    window_id: str
    start_s: float
    end_s: float
    probabilities: Mapping[str, float] = field(default_factory=dict)
    st: Mapping[str, StMeasurement] = field(default_factory=dict)
    model_versions: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LeadQuality:
    """Quality of one lead over a quality window.

    ``sqi`` in [0, 1] (:func:`edge.stream.quality.signal_quality`); ``lead_off``: an electrode of the
    lead is flagged off; ``flat``/``saturated`` as measured; ``rms_mv``: RMS of the filtered lead (mV),
    None if not measured — a quiet lead (asystole) has a low SQI without hiding any beat.
    """

    sqi: float
    lead_off: bool = False
    flat: bool = False
    saturated: bool = False
    rms_mv: float | None = None


@dataclass(frozen=True)
class GapEvent:
    """Samples missing (not interpolated) from ``start_s`` to ``end_s`` of stream time."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class TechnicalState:
    """Device and signal state over the quality window ``[start_s, end_s)``.

    ``leads``: quality per lead name (the analysed lead at least); ``lead_off_electrodes``: electrode
    names flagged off (``protocol.leads.ELECTRODES``); ``battery_pct``: 0–100 or None; ``connected``:
    the link is up; ``gaps``: data gaps found since the previous state.
    """

    start_s: float
    end_s: float
    leads: Mapping[str, LeadQuality] = field(default_factory=dict)
    lead_off_electrodes: tuple[str, ...] = ()
    battery_pct: float | None = None
    connected: bool = True
    gaps: tuple[GapEvent, ...] = ()


@dataclass(frozen=True)
class Beat:
    """One accepted beat: R peak time (s), QRS width (ms, NaN unknown), and whether it was paced."""

    t_s: float
    width_ms: float
    paced: bool = False


class EvidenceState:
    """Everything the rules read, accumulated from the inputs of one device's stream.

    ``analysis_lead``: the lead the QRS detector runs on; clinical rules trust its beats only while
    it is *analysable* — quality known, not off, not saturated and either SQI ≥ ``suppress_sqi`` or
    quiet (flat, or RMS < ``quiet_rms_mv``: nothing there that could hide a QRS) — and has been
    so for ``recovery_s`` after it last was not (artefact flickers: one clean quality window inside a
    noise burst must not let noise beats through). ``unusable_until_s`` is the end of that recovery
    (or of the latest data gap); no clinical condition may count time before it.

    ``irregular_since_s``: the estimated start of the irregular run (else None), so an AF alarm
    raised after persistence points at when the rhythm became irregular, not at when the AF
    detector's averagers had risen enough to show it (see :meth:`irregular_run_start`). Fixed when
    ``rr_irregularity`` first reaches ``irregular_threshold``; the run goes on while it stays at or
    above ``irregular_hold`` (default :data:`IRREGULAR_HOLD_FRACTION` × the threshold) and ends below
    it or at NaN — a hysteresis, so AF's wobble around the threshold does not restart persistence.
    ``irregular_seen_s``: when that run reached the threshold (the evidence's ``until_s``), or None.

    ``st_baseline``: the patient's own ST level per lead (mV), against which the ST rule measures
    change, or None while it is being learned: the per-lead median of the first
    ``st_baseline_windows`` windows with an ST measurement that began while the analysed lead was
    usable (``st_learning`` holds them until then), or what :meth:`set_st_baseline` gave (a
    calibration ECG). A median of several windows, so one noisy or ectopic window does not move it;
    fixed once learned (an ischaemic change must not become the new normal).
    """

    def __init__(self, analysis_lead: str, *, suppress_sqi: float, quiet_rms_mv: float, recovery_s: float,
                 beats_kept: int = 64, windows_kept: int = 16, irregular_threshold: float = math.inf,
                 irregular_window: int = 48, irregular_hold: float | None = None, st_baseline_windows: int = 6) -> None:
        self.analysis_lead = analysis_lead
        self.recovery_s = recovery_s
        self.suppress_sqi = suppress_sqi
        self.quiet_rms_mv = quiet_rms_mv
        self.now_s = 0.0
        self.data_until_s = 0.0      # latest stream time any data covered (disconnection)
        self.beats_until_s = 0.0     # latest stream time the QRS detector has examined (silence)
        self.beats: deque[Beat] = deque(maxlen=beats_kept)
        self.heart_rate_bpm = math.nan
        self.rr_irregularity = math.nan
        self.windows: deque[WindowEvidence] = deque(maxlen=windows_kept)
        self.technical: TechnicalState | None = None
        self.analysable = False
        self.unusable_until_s = 0.0
        self.recent_gaps: deque[GapEvent] = deque(maxlen=16)
        self.irregular_threshold = irregular_threshold
        self.irregular_hold = IRREGULAR_HOLD_FRACTION * irregular_threshold if irregular_hold is None else irregular_hold
        self.irregular_window = irregular_window
        self.irregular_since_s: float | None = None
        self.irregular_seen_s: float | None = None
        self.st_baseline_windows = max(1, st_baseline_windows)
        self.st_learning: list[dict[str, float]] = []
        self.st_baseline: dict[str, float] | None = None

    # -- ingestion -------------------------------------------------------------------------------

    def add_beats(self, ev: BeatEvidence) -> None:
        widths = ev.qrs_width_ms or (math.nan,) * len(ev.beat_times_s)
        paced = ev.paced or (False,) * len(ev.beat_times_s)
        self.beats.extend(Beat(t, w, p) for t, w, p in zip(ev.beat_times_s, widths, paced, strict=True))
        self.beats_until_s = max(self.beats_until_s, ev.until_s)
        self.data_until_s = max(self.data_until_s, ev.until_s)
        self.heart_rate_bpm, self.rr_irregularity = ev.heart_rate_bpm, ev.rr_irregularity
        if not ev.rr_irregularity >= self.irregular_hold:                # below the hold level, or NaN
            self.irregular_since_s = self.irregular_seen_s = None
        elif self.irregular_since_s is None and ev.rr_irregularity >= self.irregular_threshold:
            self.irregular_since_s = self.irregular_run_start()
            self.irregular_seen_s = ev.until_s

    def add_window(self, ev: WindowEvidence) -> None:
        self.windows.append(ev)
        if self.st_baseline is None and ev.st and ev.start_s >= self.unusable_until_s:
            self.st_learning.append({lead: m.deviation_mv for lead, m in ev.st.items()})
            if len(self.st_learning) >= self.st_baseline_windows:
                leads = dict.fromkeys(lead for w in self.st_learning for lead in w)
                self.set_st_baseline({lead: float(np.median([w[lead] for w in self.st_learning if lead in w]))
                                      for lead in leads})

    def set_st_baseline(self, baseline_mv: Mapping[str, float]) -> None:
        """Fix the patient's ST baseline per lead (mV): learned (:meth:`add_window`), restored after a
        gateway restart, or measured on the patient's calibration ECG."""
        self.st_baseline = {str(lead): float(v) for lead, v in baseline_mv.items()}
        self.st_learning = []

    def add_technical(self, ev: TechnicalState) -> None:
        self.technical = ev
        self.data_until_s = max(self.data_until_s, ev.end_s)
        for gap in ev.gaps:
            self.recent_gaps.append(gap)
            self.unusable_until_s = max(self.unusable_until_s, gap.end_s)
        if not (ev.connected and self.lead_analysable(ev.leads.get(self.analysis_lead))):
            self.unusable_until_s = max(self.unusable_until_s, ev.end_s + self.recovery_s)
        self.analysable = ev.end_s >= self.unusable_until_s

    def lead_analysable(self, q: LeadQuality | None) -> bool:
        """Whether beats found on a lead of quality ``q`` can be trusted (see the class docstring)."""
        if q is None or q.lead_off or q.saturated:
            return False
        quiet = q.flat or (q.rms_mv is not None and q.rms_mv < self.quiet_rms_mv)
        return quiet or q.sqi >= self.suppress_sqi

    # -- views for the rules --------------------------------------------------------------------

    @property
    def analysis_quality(self) -> LeadQuality | None:
        return None if self.technical is None else self.technical.leads.get(self.analysis_lead)

    def last_beat_s(self) -> float | None:
        return self.beats[-1].t_s if self.beats else None

    def irregular_run_start(self) -> float | None:
        """Estimated start (s) of the irregular RR run that the irregularity has just detected.

        The AF detector (:mod:`edge.signal.af_detector`: 8-beat window, 10-beat exponential
        averager) crosses its threshold some 8–30 beats into AF. The start is the change point of log |ΔRR| (floored at 1 % of the mean RR, about the
        fiducial jitter) over the last ``irregular_window`` RR: the split
        into an earlier and a later part, the later the more irregular, with the least squared error
        about the two parts' means (a one-change least-squares segmentation, vectorised with cumulative
        sums); the onset is the first beat of the later part that came at an irregular time (the end of
        its first RR: the beat before belongs to the rhythm that preceded, whose annotation ends there). Chosen on 30 synthetic
        sinus → AF transitions (CV 0.15–0.3) against |ΔRR|, √|ΔRR| and a thresholded |ΔRR|: error (then
        taken at the beat before) median −0.2 s, 10th–90th percentile −1.4 … +3.9 s (|ΔRR| itself: up
        to +10 s at the 90th); about one beat later as now taken.
        """
        if len(self.beats) < 5:
            return None
        t = np.fromiter((b.t_s for b in list(self.beats)[-(self.irregular_window + 1):]), dtype=np.float64)
        rr = np.diff(t)
        d = np.log(np.abs(np.diff(rr)) + 0.01 * float(rr.mean()))   # log |ΔRR|; d[j]: RR[j+1] − RR[j]
        n = d.size
        c1, c2 = np.cumsum(d), np.cumsum(d * d)
        k = np.arange(1, n)                                # split: d[:k] | d[k:]
        left_sse = c2[k - 1] - c1[k - 1] ** 2 / k
        right_sum, right_sq = c1[-1] - c1[k - 1], c2[-1] - c2[k - 1]
        right_sse = right_sq - right_sum ** 2 / (n - k)
        rising = right_sum / (n - k) > c1[k - 1] / k
        if not rising.any():
            return float(t[0])
        best = int(k[rising][np.argmin((left_sse + right_sse)[rising])])
        return float(t[best + 2])                          # the beat ending RR[best+1]: the first mistimed one

    def latest_windows(self, n: int, max_age_s: float) -> list[WindowEvidence]:
        """The last ``n`` windows (oldest first) that ended within ``max_age_s`` of now."""
        recent = [w for w in self.windows if self.now_s - w.end_s <= max_age_s]
        return recent[-n:]

    def window_for(self, onset_s: float) -> WindowEvidence | None:
        """The latest window at hand overlapping ``[onset_s, now]`` (its model versions go in the alert).

        It usually ends before the deciding sample (the window holding that sample is cut only
        ``margin_s`` after it and inferred later still): the alert's evidence is named by grid slot
        (:func:`with_evidence`), which also picks the window shown first.
        """
        for w in reversed(self.windows):
            if w.end_s >= onset_s and w.start_s <= self.now_s:
                return w
        return None


def with_evidence(alert: Alert, window_ids: Callable[[float, float], list[str]], *,
                  model_versions: Mapping[str, str] | None = None, context_s: float = EVIDENCE_CONTEXT_S,
                  max_windows: int = MAX_EVIDENCE_WINDOWS) -> Alert:
    """``alert`` with the ids of the windows covering its deciding samples (see the module docstring).

    ``window_ids(start_s, end_s)``: ids of the grid windows overlapping that span of stream time, in
    slot order (:meth:`edge.ingest.session.DeviceSession.evidence_window_ids`); ``model_versions``:
    the models that will produce those windows, added to the alert's (its own win). Technical
    alerts, cleared events and alerts without ``onset_s``/``at_s`` in their details come back unchanged.
    """
    d = alert.details
    onset, at = d.get("onset_s"), d.get("at_s")
    if (alert.category is not AlertCategory.CLINICAL or d.get("event") not in EVIDENCE_EVENTS
            or not isinstance(onset, int | float) or not isinstance(at, int | float)
            or not (math.isfinite(onset) and math.isfinite(at))):
        return alert
    start, end = min(onset, at), max(onset, at)
    ids = window_ids(start - context_s, end + context_s)[-max_windows:]
    if not ids:
        return alert
    covering_end = window_ids(end, end)
    primary = alert.window_id
    if covering_end and primary not in covering_end:    # the window at hand ended before the deciding sample
        primary = covering_end[0] if len(covering_end) == 1 else _centred(covering_end, window_ids, end)
    ids = [*ids, *(w for w in dict.fromkeys((primary, alert.window_id)) if w is not None and w not in ids)]
    details = {**d, "evidence_window_ids": ids, "evidence_span_s": [round(start, 3), round(end, 3)]}
    versions = {**(model_versions or {}), **alert.model_versions}
    return replace(alert, window_id=primary, details=details, model_versions=versions)


def _centred(candidates: list[str], window_ids: Callable[[float, float], list[str]], t_s: float) -> str:
    """Of the windows containing ``t_s``, the one whose centre is nearest to it."""
    # a window containing t_s also contains t_s ± d for d up to its distance from the nearer edge:
    # probe outward in small steps; the last candidate still covering both sides is the centred one
    best, step = candidates[0], 0.25
    for k in range(1, 41):
        left, right = set(window_ids(t_s - k * step, t_s - k * step)), set(window_ids(t_s + k * step, t_s + k * step))
        still = [c for c in candidates if c in left and c in right]
        if not still:
            break
        best = still[0]
    return best
