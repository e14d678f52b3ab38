"""Atrial fibrillation: the RR detector's irregular run, fused with the classifier when windows come."""

from __future__ import annotations

import math

from edge.alarms.evidence import EvidenceState, WindowEvidence
from edge.alarms.rules.base import CLEAR, HOLD, Assessment, Rule, State, fresh_rate, prob
from edge.alarms.rules.config import AlarmConfig
from protocol.messages import Priority


def af_threshold(w: WindowEvidence, c: AlarmConfig) -> float:
    """The classifier's shipped ``AF`` threshold for this window, else ``af_prob``."""
    return w.thresholds.get("AF", c.af_prob)


def _confident_sinus(w: WindowEvidence | None, c: AlarmConfig) -> bool:
    """A calibrated classifier (one that ships thresholds) calls this window sinus rhythm and not AF."""
    if w is None or "NSR" not in w.thresholds:
        return False
    nsr, af = prob(w, "NSR"), prob(w, "AF")
    return nsr is not None and nsr >= w.thresholds["NSR"] and (af is None or af < af_threshold(w, c))


def _leans_af(w: WindowEvidence, c: AlarmConfig) -> bool:
    """A calibrated classifier (one that ships thresholds) calls this window not sinus rhythm and gives AF
    at least ``af_lean_fraction`` of its threshold: weaker support than AF at its threshold."""
    if "NSR" not in w.thresholds:
        return False
    nsr, af = prob(w, "NSR"), prob(w, "AF")
    return (af is not None and af >= c.af_lean_fraction * af_threshold(w, c)
            and (nsr is None or nsr < w.thresholds["NSR"]))


def _beats_since(s: EvidenceState, t_s: float) -> list[float]:
    """Times (s) of the beats at or after ``t_s`` among those the state keeps (its last ``beats_kept``)."""
    return [b.t_s for b in s.beats if b.t_s >= t_s]


def _span_of_beats(s: EvidenceState, since_s: float, n: int) -> float | None:
    """The time (s) the first ``n`` kept beats at or after ``since_s`` took, None before there are ``n``:
    the persistence of ``n`` beats, counted by the engine like any other from the run's start (and
    from no earlier than an explicit clear)."""
    t = _beats_since(s, since_s)
    return None if len(t) < n else t[n - 1] - t[0]


class AfRule(Rule):
    """AF from the RR detector's irregular run (:attr:`EvidenceState.irregular_since_s`) for
    ``af_persist_s``, or the classifier's AF in ``af_windows`` consecutive windows; a classifier AF
    window supports a less irregular, shorter RR run, a calibrated confident sinus window vetoes a
    borderline one (thresholds and rationale: :class:`~edge.alarms.rules.config.AlarmConfig`)."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        windows = s.latest_windows(c.af_windows, c.window_max_age_s)
        probs = [prob(w, "AF") for w in windows]
        if len(windows) == c.af_windows and all(
                p is not None and p >= af_threshold(w, c) for p, w in zip(probs, windows, strict=True)):
            return Assessment(State.SET, "af", Priority.MEDIUM, "atrial fibrillation (classifier)",
                              onset_s=windows[0].start_s, persist_s=0.0, window_id=windows[-1].window_id,
                              details={"probability": round(min(p for p in probs if p is not None), 3),
                                       "threshold": round(af_threshold(windows[-1], c), 3), "source": "classifier"})
        latest = windows[-1] if windows else None
        p_latest = probs[-1] if probs else None
        irr = s.rr_irregularity if not math.isnan(fresh_rate(s, c)) else math.nan
        supported = latest is not None and p_latest is not None and p_latest >= af_threshold(latest, c)
        leaning = len(windows) == c.af_windows and all(_leans_af(w, c) for w in windows)
        details = {"rr_irregularity": round(irr, 3) if math.isfinite(irr) else None, "source": "rr"}
        if (supported or leaning) and irr >= c.af_supported_irregularity:
            began = s.irregular_since_s if s.irregular_since_s is not None else s.irregular_run_start()
            return Assessment(State.SET, "af", Priority.MEDIUM,
                              f"atrial fibrillation: irregular RR ({irr:.2f}) and classifier AF ({p_latest:.2f})",
                              onset_s=began, persist_s=c.af_supported_persist_s,
                              details={**details, "probability": round(float(p_latest or 0.0), 3),
                                       "source": "rr+classifier" if supported else "rr+classifier (leaning)"})
        if s.irregular_since_s is not None and s.irregular_seen_s is not None and irr >= c.af_hold_irregularity:
            if irr < c.af_veto_irregularity and _confident_sinus(latest, c):
                return HOLD                    # borderline RR run, calibrated classifier sure of sinus rhythm
            span = _span_of_beats(s, s.irregular_since_s, c.af_persist_beats)
            if irr >= c.af_beats_irregularity and span is not None and \
                    len(_beats_since(s, s.irregular_seen_s)) >= c.af_min_run_beats:
                return Assessment(State.SET, "af", Priority.MEDIUM,   # enough beats of evidence (fast AF)
                                  f"atrial fibrillation: irregular RR ({irr:.2f})", onset_s=s.irregular_since_s,
                                  persist_s=min(span, c.af_persist_s), details=details)
            if s.now_s - s.irregular_seen_s < c.af_min_run_s:
                return HOLD                    # not yet irregular for long enough on the detector itself
            return Assessment(State.SET, "af", Priority.MEDIUM, f"atrial fibrillation: irregular RR ({irr:.2f})",
                              onset_s=s.irregular_since_s, details=details)
        classifier_clear = (latest is None or p_latest is None
                            or p_latest < min(c.prob_clear, 0.5 * af_threshold(latest, c)))
        return CLEAR if irr < c.af_clear_irregularity and classifier_clear else HOLD
