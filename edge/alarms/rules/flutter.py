"""Atrial flutter: the classifier's ``AFL`` in consecutive windows."""

from __future__ import annotations

from edge.alarms.evidence import EvidenceState, WindowEvidence
from edge.alarms.rules.base import CLEAR, HOLD, Assessment, Rule, State, prob
from edge.alarms.rules.config import AlarmConfig
from protocol.messages import Priority


def aflutter_threshold(w: WindowEvidence, c: AlarmConfig) -> float:
    """The classifier's shipped ``AFL`` threshold for this window, else ``aflutter_prob``."""
    return w.thresholds.get("AFL", c.aflutter_prob)


class FlutterRule(Rule):
    """``AFL`` ≥ its threshold in ``aflutter_windows`` consecutive windows (thresholds and rationale:
    :class:`~edge.alarms.rules.config.AlarmConfig`). The flutter waves themselves (≈ 300/min sawtooth)
    are not measured on the edge: at its 125 Hz, on a wearable's three leads, the classifier's view of
    the reconstructed 12 leads is the better detector."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        n = int(c.aflutter_windows)            # an [alarms.thresholds] override arrives as a float
        windows = s.latest_windows(n, c.window_max_age_s)
        probs = [prob(w, "AFL") for w in windows]
        if len(windows) == n and all(
                p is not None and p >= aflutter_threshold(w, c) for p, w in zip(probs, windows, strict=True)):
            return Assessment(State.SET, "aflutter", Priority.MEDIUM, "atrial flutter (classifier)",
                              onset_s=windows[0].start_s, persist_s=0.0, window_id=windows[-1].window_id,
                              details={"probability": round(min(p for p in probs if p is not None), 3),
                                       "threshold": round(aflutter_threshold(windows[-1], c), 3),
                                       "source": "classifier"})
        if not probs or probs[-1] is None:
            return CLEAR
        return CLEAR if probs[-1] < min(c.prob_clear, 0.5 * aflutter_threshold(windows[-1], c)) else HOLD
