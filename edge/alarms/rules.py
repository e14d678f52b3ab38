"""One small rule per alarm condition, and every default threshold in :class:`AlarmConfig`.

A rule reads the :class:`~edge.alarms.evidence.EvidenceState` and answers with an
:class:`Assessment`: SET (the alarm condition is met now), CLEAR (it is clearly absent: the clear
threshold of the hysteresis band is met) or HOLD (in between, or not decidable). The engine turns
assessments into episodes: a SET must persist for the rule's ``persist_s`` before it raises, a CLEAR
for ``clear_s`` before it clears, and HOLD resets both, so a value wandering inside the hysteresis
band neither raises nor clears.

Priorities follow IEC 60601-1-8 (high: immediate response, the patient may die or be harmed within
minutes; medium: prompt response; low: awareness) and the red/yellow split of common adult bedside
monitors (Philips IntelliVue, GE CARESCAPE, Mindray): asystole, VF, VT and extreme brady/tachycardia
are red (high), pause, AF and ST change yellow (medium); technical alarms are medium when monitoring
of the analysed lead is lost (lead off, disconnected) and low otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from edge.alarms.evidence import EvidenceState, WindowEvidence
from protocol.messages import AlertCategory, Priority

RULES_VERSION = "2"
"""Version of the rules and their defaults; travels in every alert's ``model_versions['alarm_rules']``."""

PRIORITY_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2}


@dataclass(frozen=True)
class AlarmConfig:
    """Thresholds (units in the names) and their clinical rationale.

    Arrhythmia analysis
        ``analysis_lead``: the lead the QRS detector runs on (II: tall R, visible P on the wearable).
        ``startup_s``: no silence counted before this stream time (the detector learns for 3 s).
        ``suppress_sqi``: below it (and not quiet) the analysed lead's beats are not trusted and no
        clinical condition accumulates time — artefact must not raise VT or asystole (the false
        alarms of the PhysioNet/CinC 2015 challenge). 0.3 sits under the SQI of VT/VF (≈ 0.5, not
        peaky) and above that of heavy muscle noise (≈ 0–0.2). ``quiet_rms_mv``: a lead whose RMS is
        below 0.1 mV cannot hide a QRS (sinus leads carry 0.1–0.3 mV RMS with ~1 mV R waves; artefact
        able to hide one is far above 0.1 mV RMS), so its low SQI does not suppress — asystole with
        residual noise is still an asystole.
        ``quality_recovery_s``: analysis resumes only after the lead has been good this long (two
        2-s quality windows), the hysteresis of suppression.

    Asystole / pause (Philips: asystole = no QRS for 4 s, pause threshold 2–3 s)
        ``asystole_s`` = 4.0 → high; ``pause_s`` = 3.0 → medium; a pause escalates to asystole.

    VT (Philips/GE: a run of ≥ 5–6 ventricular beats at ≥ 100 bpm)
        ``vt_run_beats`` = 6 consecutive beats with QRS ≥ ``vt_wide_ms`` = 120 ms (the ventricular
        criterion) at ≥ ``vt_rate_bpm`` = 100; clears below ``vt_clear_rate_bpm`` = 90 or when fewer
        than half of the last run are wide. Paced beats (a pace pulse before the QRS,
        :mod:`edge.signal.pacing`) are wide by nature and never count as ventricular. Or classifier
        ``VT`` ≥ ``vt_prob`` = 0.8. High.

    VF
        classifier ``VF`` ≥ ``vf_prob`` = 0.8 in the latest window (without a classifier, VF's
        fibrillatory waves reach the beat rules as fast wide irregular complexes → VT). High.

    Extreme tachycardia / bradycardia (red limits of adult monitors: 140–160 / 30–40 bpm)
        > ``tachy_bpm`` = 150 for ``rate_persist_s`` = 10 s, clears < 140 → high;
        < ``brady_bpm`` = 40 for 10 s, clears > 45 → high.

    AF onset (medium: not immediately life-threatening, needs prompt review)
        RR irregularity ≥ ``af_irregularity`` = 0.12 for ``af_persist_s`` = 30 s; the alert's onset is
        the estimated start of the irregular run (:meth:`EvidenceState.irregular_run_start`), some
        10–15 beats before the 32-RR irregularity crossed the threshold; clears < ``af_clear_irregularity`` = 0.08 for 60 s; or classifier ``AF`` ≥
        ``af_prob`` = 0.8 in ``af_windows`` = 2 consecutive windows. The irregularity is the robust,
        ectopy- and pattern-aware RMSSD / mean RR of the last 32 RR (:class:`edge.signal.rr.RrStats`:
        ≈ RMSSD / mean in AF; premature-beat pairs and repeating patterns — bigeminy, trigeminy,
        respiratory sinus arrhythmia — removed). Thresholds chosen on synthetic RR only (firmware_sim,
        20 patients × 150 s per rhythm): sinus 0.03 median, 0.10 at the 99th percentile; AF with the
        lowest RR variability of the catalogue (CV 0.15) 0.16 median, 0.095 at the 1st percentile.
        At 0.12, AF stayed above it for 30 s in every synthetic patient while sinus, sinus brady/
        tachycardia, 15–30 % PACs, 12–25 % PVCs, bigeminy and trigeminy never did; the clear level
        0.08 sits under AF's 1st percentile and above sinus's median, so AF does not clear by itself
        and sinus clears. (Version 1: non-robust RMSSD/mean of 16 RR ≥ 0.15, onset at the threshold
        crossing; it read frequent PACs/PVCs as AF.)

    ST change (medium; cf. the 4th universal definition of MI: ≥ 0.1 mV in two contiguous leads,
    ≥ 0.2 mV in V2–V3)
        |ST| ≥ ``st_mv`` = 0.1 (``st_v2_v3_mv`` = 0.2) in ≥ 2 contiguous leads of one sign for
        ``st_persist_s`` = 60 s; a reconstructed lead counts only if the near edge of its 90 %
        band, |ST| − uncertainty, still reaches the threshold. Clears when every lead is below half.

    Technical (kept apart from clinical alarms)
        lead off → medium when it takes the analysed lead, else low; poor signal: analysed lead SQI
        < ``poor_sqi`` = 0.5 for 10 s, clears after ``poor_clear_s`` = 6 s ≥ ``poor_clear_sqi`` = 0.5 (a
        time hysteresis: clean synthetic sinus scores 0.5–0.7, so a band above 0.5 would never clear)
        → low; battery < ``battery_pct`` = 20 %
        (clears ≥ 25) → low; no data for ``disconnect_s`` = 10 s → medium; a data gap ≥ ``gap_s`` =
        2 s → low, held ``gap_hold_s`` = 10 s.

    ``latching``: priorities of clinical alarms that stay active until acknowledged or cleared.
    """

    analysis_lead: str = "II"
    startup_s: float = 5.0
    suppress_sqi: float = 0.3
    quiet_rms_mv: float = 0.1
    quality_recovery_s: float = 4.0
    asystole_s: float = 4.0
    pause_s: float = 3.0
    vt_run_beats: int = 6
    vt_wide_ms: float = 120.0
    vt_rate_bpm: float = 100.0
    vt_clear_rate_bpm: float = 90.0
    vt_prob: float = 0.8
    vf_prob: float = 0.8
    prob_clear: float = 0.5
    tachy_bpm: float = 150.0
    tachy_clear_bpm: float = 140.0
    brady_bpm: float = 40.0
    brady_clear_bpm: float = 45.0
    rate_persist_s: float = 10.0
    beat_stale_s: float = 3.0
    af_irregularity: float = 0.12
    af_clear_irregularity: float = 0.08
    af_persist_s: float = 30.0
    af_clear_s: float = 60.0
    af_prob: float = 0.8
    af_windows: int = 2
    st_mv: float = 0.1
    st_v2_v3_mv: float = 0.2
    st_persist_s: float = 60.0
    st_clear_fraction: float = 0.5
    window_max_age_s: float = 15.0
    clinical_clear_s: float = 5.0
    poor_sqi: float = 0.5
    poor_clear_sqi: float = 0.5
    poor_clear_s: float = 6.0
    poor_persist_s: float = 10.0
    battery_pct: float = 20.0
    battery_clear_pct: float = 25.0
    disconnect_s: float = 10.0
    gap_s: float = 2.0
    gap_hold_s: float = 10.0
    latching: frozenset[Priority] = frozenset({Priority.HIGH})


class State(Enum):
    SET = "set"
    HOLD = "hold"
    CLEAR = "clear"


@dataclass(frozen=True)
class Assessment:
    """A rule's answer now. For SET: the alert's type and priority; ``onset_s`` when the rule knows
    when the condition began (else the engine uses the start of persistence); ``persist_s`` overrides
    the rule's persistence (evidence that carries its own, such as two classifier windows);
    ``began_s``: an estimate of when the condition really began, earlier than the evidence could show
    it (an AF run is seen only once a window of RR has filled): the alert's onset, while persistence
    still counts from ``onset_s`` or the first SET, so the estimate cannot shorten it."""

    state: State
    alert_type: str = ""
    priority: Priority = Priority.LOW
    message: str = ""
    onset_s: float | None = None
    persist_s: float | None = None
    began_s: float | None = None
    window_id: str | None = None
    reconstructed_leads: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)


HOLD = Assessment(State.HOLD)
CLEAR = Assessment(State.CLEAR)


@dataclass(frozen=True)
class Rule:
    """An alarm condition: ``family`` names its episodes (a pause escalating to asystole is one
    episode of family ``asystole``); ``superseded_by``: families whose active alarm keeps this one
    from being raised (VT makes extreme tachycardia redundant)."""

    family: str
    category: AlertCategory
    persist_s: float
    clear_s: float
    superseded_by: tuple[str, ...] = ()

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        raise NotImplementedError


def _fresh_rate(s: EvidenceState, c: AlarmConfig) -> float:
    """The detector's heart rate (bpm), NaN when unknown or when no beat came for ``beat_stale_s``."""
    last = s.last_beat_s()
    if last is None or s.beats_until_s - last > c.beat_stale_s:
        return math.nan
    return s.heart_rate_bpm


def _prob(w: WindowEvidence, key: str) -> float | None:
    return w.probabilities.get(key)


class AsystoleRule(Rule):
    """No QRS on the analysed lead for ``pause_s`` (medium) / ``asystole_s`` (high), counting only
    analysable time after start-up."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        anchor = max(s.last_beat_s() or -math.inf, s.unusable_until_s, c.startup_s)
        silence = s.beats_until_s - anchor
        details = {"no_qrs_s": round(silence, 2)}
        if silence >= c.asystole_s:
            return Assessment(State.SET, "asystole", Priority.HIGH, f"asystole: no QRS for {silence:.1f} s",
                              onset_s=anchor, details=details)
        if silence >= c.pause_s:
            return Assessment(State.SET, "pause", Priority.MEDIUM, f"pause: no QRS for {silence:.1f} s",
                              onset_s=anchor, details=details)
        return CLEAR


class VtRule(Rule):
    """A run of wide, fast, unpaced beats, all after start-up and after the lead was last unusable, or
    the classifier's VT probability."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        run = list(s.beats)[-c.vt_run_beats :]
        rate, wide = math.nan, 0
        trusted = bool(run) and run[0].t_s >= max(c.startup_s, s.unusable_until_s)
        if (trusted and len(run) == c.vt_run_beats and s.beats_until_s - run[-1].t_s <= c.beat_stale_s
                and run[-1].t_s > run[0].t_s):
            rate = 60.0 * (len(run) - 1) / (run[-1].t_s - run[0].t_s)
            wide = sum(b.width_ms >= c.vt_wide_ms and not b.paced for b in run)
        windows = s.latest_windows(1, c.window_max_age_s)
        p = _prob(windows[-1], "VT") if windows else None
        if wide == len(run) and rate >= c.vt_rate_bpm:
            return Assessment(State.SET, "vt", Priority.HIGH, f"ventricular tachycardia, {rate:.0f} bpm, wide QRS",
                              onset_s=run[0].t_s, details={"rate_bpm": round(rate, 1), "source": "beats"})
        if p is not None and p >= c.vt_prob:
            return Assessment(State.SET, "vt", Priority.HIGH, f"ventricular tachycardia (classifier p={p:.2f})",
                              onset_s=windows[-1].start_s, window_id=windows[-1].window_id,
                              details={"probability": round(p, 3), "source": "classifier"})
        beats_clear = not (rate >= c.vt_clear_rate_bpm and 2 * wide >= len(run))
        if beats_clear and (p is None or p < c.prob_clear):
            return CLEAR
        return HOLD


class VfRule(Rule):
    """The classifier's VF probability in the latest window."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        windows = s.latest_windows(1, c.window_max_age_s)
        p = _prob(windows[-1], "VF") if windows else None
        if p is None or p < c.prob_clear:
            return CLEAR
        if p >= c.vf_prob:
            w = windows[-1]
            return Assessment(State.SET, "vf", Priority.HIGH, f"ventricular fibrillation (classifier p={p:.2f})",
                              onset_s=w.start_s, window_id=w.window_id, details={"probability": round(p, 3)})
        return HOLD


class TachyRule(Rule):
    """Heart rate above ``tachy_bpm`` (hysteresis down to ``tachy_clear_bpm``)."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        hr = _fresh_rate(s, c)
        if hr > c.tachy_bpm:
            return Assessment(State.SET, "extreme_tachycardia", Priority.HIGH, f"extreme tachycardia, {hr:.0f} bpm",
                              details={"heart_rate_bpm": round(hr, 1)})
        return CLEAR if not hr >= c.tachy_clear_bpm else HOLD


class BradyRule(Rule):
    """Heart rate below ``brady_bpm`` (hysteresis up to ``brady_clear_bpm``)."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        hr = _fresh_rate(s, c)
        if hr < c.brady_bpm:
            return Assessment(State.SET, "extreme_bradycardia", Priority.HIGH, f"extreme bradycardia, {hr:.0f} bpm",
                              details={"heart_rate_bpm": round(hr, 1)})
        return CLEAR if not hr <= c.brady_clear_bpm else HOLD


class AfRule(Rule):
    """Irregular RR for ``af_persist_s`` from the start of the irregular run, or the classifier's AF in
    consecutive windows."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        windows = s.latest_windows(c.af_windows, c.window_max_age_s)
        probs = [_prob(w, "AF") for w in windows]
        if len(windows) == c.af_windows and all(p is not None and p >= c.af_prob for p in probs):
            return Assessment(State.SET, "af", Priority.MEDIUM, "atrial fibrillation (classifier)",
                              onset_s=windows[0].start_s, persist_s=0.0, window_id=windows[-1].window_id,
                              details={"probability": round(min(p for p in probs if p is not None), 3),
                                       "source": "classifier"})
        irr = s.rr_irregularity if not math.isnan(_fresh_rate(s, c)) else math.nan
        if irr >= c.af_irregularity:
            return Assessment(State.SET, "af", Priority.MEDIUM, f"atrial fibrillation: irregular RR ({irr:.2f})",
                              began_s=s.irregular_since_s,
                              details={"rr_irregularity": round(irr, 3), "source": "rr"})
        classifier_clear = not probs or probs[-1] is None or probs[-1] < c.prob_clear
        return CLEAR if irr < c.af_clear_irregularity and classifier_clear else HOLD


_CONTIGUOUS = (("aVL", "I", "aVR", "II", "aVF", "III"), ("V1", "V2", "V3", "V4", "V5", "V6"))
"""Contiguous leads: neighbours in the Cabrera limb sequence (aVR standing for −aVR) and V1–V6."""


class StRule(Rule):
    """ST deviation beyond threshold in two contiguous leads of one sign (reconstructed leads: the
    near edge of the uncertainty band must reach the threshold)."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        windows = [w for w in s.latest_windows(1, c.window_max_age_s) if w.st]
        if not windows:
            return HOLD
        w = windows[-1]

        def threshold(lead: str) -> float:
            return c.st_v2_v3_mv if lead in ("V2", "V3") else c.st_mv

        def sign(lead: str) -> int:
            m = w.st.get(lead)
            if m is None:
                return 0
            dev = -m.deviation_mv if lead == "aVR" else m.deviation_mv
            confident = abs(dev) - (m.uncertainty_mv if m.reconstructed else 0.0)
            return int(math.copysign(1, dev)) if confident >= threshold(lead) else 0

        involved: set[str] = set()
        for seq in _CONTIGUOUS:
            for a, b in zip(seq, seq[1:], strict=False):
                if sign(a) != 0 and sign(a) == sign(b):
                    involved |= {a, b}
        if involved:
            leads = [n for seq in _CONTIGUOUS for n in seq if n in involved]
            recon = {n: w.st[n].uncertainty_mv for n in leads if w.st[n].reconstructed}
            return Assessment(State.SET, "st_change", Priority.MEDIUM, f"ST change in {', '.join(leads)}",
                              window_id=w.window_id, reconstructed_leads=recon,
                              details={"st_mv": {n: round(w.st[n].deviation_mv, 3) for n in leads}})
        if all(abs(m.deviation_mv) < c.st_clear_fraction * threshold(n) for n, m in w.st.items()):
            return CLEAR
        return HOLD


class LeadOffRule(Rule):
    """Electrodes flagged off: medium when the analysed lead is lost, else low."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        t = s.technical
        if t is None or not t.lead_off_electrodes:
            return CLEAR
        q = s.analysis_quality
        lost = q is not None and q.lead_off
        return Assessment(State.SET, "lead_off", Priority.MEDIUM if lost else Priority.LOW,
                          f"lead off: {', '.join(t.lead_off_electrodes)}" + ("; ECG analysis suspended" if lost else ""),
                          details={"electrodes": list(t.lead_off_electrodes), "analysis_lead_lost": lost})


class PoorSignalRule(Rule):
    """The analysed lead's SQI below ``poor_sqi`` (not off, not quiet): artefact, analysis suspended."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        q = s.analysis_quality
        if q is None or q.lead_off:
            return CLEAR
        quiet = q.flat or (q.rms_mv is not None and q.rms_mv < c.quiet_rms_mv)
        if not quiet and (q.sqi < c.poor_sqi or q.saturated):
            return Assessment(State.SET, "poor_signal", Priority.LOW,
                              f"poor signal on {c.analysis_lead} (SQI {q.sqi:.2f})",
                              details={"sqi": round(q.sqi, 3), "saturated": q.saturated,
                                       "analysis_suspended": not s.analysable})
        return CLEAR if quiet or q.sqi >= c.poor_clear_sqi else HOLD


class LowBatteryRule(Rule):
    """Battery below ``battery_pct`` (hysteresis up to ``battery_clear_pct``)."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        b = None if s.technical is None else s.technical.battery_pct
        if b is None:
            return HOLD
        if b < c.battery_pct:
            return Assessment(State.SET, "low_battery", Priority.LOW, f"low battery ({b:.0f} %)",
                              details={"battery_pct": b})
        return CLEAR if b >= c.battery_clear_pct else HOLD


class DisconnectedRule(Rule):
    """No data from the device for ``disconnect_s`` (stream time of the gateway's clock)."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        silent = s.now_s - s.data_until_s
        if silent >= c.disconnect_s:
            return Assessment(State.SET, "device_disconnected", Priority.MEDIUM, f"no data for {silent:.0f} s",
                              onset_s=s.data_until_s, details={"no_data_s": round(silent, 1)})
        return CLEAR


class DataGapRule(Rule):
    """A gap of ≥ ``gap_s`` in the samples, held for ``gap_hold_s`` after it ended."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        gaps = [g for g in s.recent_gaps if g.duration_s >= c.gap_s and s.now_s - g.end_s <= c.gap_hold_s]
        if not gaps:
            return CLEAR
        g = gaps[0]
        return Assessment(State.SET, "data_gap", Priority.LOW, f"{g.duration_s:.1f} s of data missing",
                          onset_s=g.start_s, details={"gap_s": round(g.duration_s, 3), "gaps": len(gaps)})


def default_rules(c: AlarmConfig) -> tuple[Rule, ...]:
    """Every rule with its persistence and clear time (s); order is evaluation order (VF before VT …)."""
    clin, tech = AlertCategory.CLINICAL, AlertCategory.TECHNICAL
    return (
        VfRule("vf", clin, 0.0, c.clinical_clear_s),
        VtRule("vt", clin, 0.0, c.clinical_clear_s, superseded_by=("vf",)),
        AsystoleRule("asystole", clin, 0.0, c.clinical_clear_s, superseded_by=("vf",)),
        TachyRule("extreme_tachycardia", clin, c.rate_persist_s, c.clinical_clear_s, superseded_by=("vf", "vt")),
        BradyRule("extreme_bradycardia", clin, c.rate_persist_s, c.clinical_clear_s, superseded_by=("vf", "asystole")),
        AfRule("af", clin, c.af_persist_s, c.af_clear_s, superseded_by=("vf", "vt", "asystole")),
        StRule("st_change", clin, c.st_persist_s, c.st_persist_s, superseded_by=("vf", "asystole")),
        LeadOffRule("lead_off", tech, 0.0, 2.0),
        PoorSignalRule("poor_signal", tech, c.poor_persist_s, c.poor_clear_s),
        LowBatteryRule("low_battery", tech, 0.0, 0.0),
        DisconnectedRule("device_disconnected", tech, 0.0, 0.0),
        DataGapRule("data_gap", tech, 0.0, 0.0),
    )
