"""Rules on heart rate and beats: asystole/pause, VT, VF, extreme tachycardia and bradycardia."""

from __future__ import annotations

import math

from edge.alarms.evidence import EvidenceState
from edge.alarms.rules.base import CLEAR, HOLD, Assessment, Rule, State, fresh_rate, prob
from edge.alarms.rules.config import AlarmConfig
from protocol.messages import Priority


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
        p = prob(windows[-1], "VT") if windows else None
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
        p = prob(windows[-1], "VF") if windows else None
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
        hr = fresh_rate(s, c)
        if hr > c.tachy_bpm:
            return Assessment(State.SET, "extreme_tachycardia", Priority.HIGH, f"extreme tachycardia, {hr:.0f} bpm",
                              details={"heart_rate_bpm": round(hr, 1)})
        return CLEAR if not hr >= c.tachy_clear_bpm else HOLD


class BradyRule(Rule):
    """Heart rate below ``brady_bpm`` (hysteresis up to ``brady_clear_bpm``)."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        hr = fresh_rate(s, c)
        if hr < c.brady_bpm:
            return Assessment(State.SET, "extreme_bradycardia", Priority.HIGH, f"extreme bradycardia, {hr:.0f} bpm",
                              details={"heart_rate_bpm": round(hr, 1)})
        return CLEAR if not hr <= c.brady_clear_bpm else HOLD
