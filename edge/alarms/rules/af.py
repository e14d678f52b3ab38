"""Atrial fibrillation: irregular RR, or the classifier."""

from __future__ import annotations

import math

from edge.alarms.evidence import EvidenceState
from edge.alarms.rules.base import CLEAR, HOLD, Assessment, Rule, State, fresh_rate, prob
from edge.alarms.rules.config import AlarmConfig
from protocol.messages import Priority


class AfRule(Rule):
    """Irregular RR for ``af_persist_s`` from the start of the irregular run, or the classifier's AF in
    consecutive windows."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        windows = s.latest_windows(c.af_windows, c.window_max_age_s)
        probs = [prob(w, "AF") for w in windows]
        if len(windows) == c.af_windows and all(p is not None and p >= c.af_prob for p in probs):
            return Assessment(State.SET, "af", Priority.MEDIUM, "atrial fibrillation (classifier)",
                              onset_s=windows[0].start_s, persist_s=0.0, window_id=windows[-1].window_id,
                              details={"probability": round(min(p for p in probs if p is not None), 3),
                                       "source": "classifier"})
        irr = s.rr_irregularity if not math.isnan(fresh_rate(s, c)) else math.nan
        if irr >= c.af_irregularity:
            return Assessment(State.SET, "af", Priority.MEDIUM, f"atrial fibrillation: irregular RR ({irr:.2f})",
                              began_s=s.irregular_since_s,
                              details={"rr_irregularity": round(irr, 3), "source": "rr"})
        classifier_clear = not probs or probs[-1] is None or probs[-1] < c.prob_clear
        return CLEAR if irr < c.af_clear_irregularity and classifier_clear else HOLD
