"""Supraventricular tachycardia: a paroxysmal run of narrow, regular beats at ≥ 150 bpm."""

from __future__ import annotations

import math

import numpy as np

from edge.alarms.evidence import EvidenceState
from edge.alarms.rules.base import CLEAR, HOLD, Assessment, Rule, State, fresh_rate, prob
from edge.alarms.rules.config import AlarmConfig
from protocol.messages import Priority

RUN_TOLERANCE = 1.1
"""An RR belongs to the fast run while it is at most this × 60 / ``svt_bpm`` (a run at the limit
itself jitters around it)."""
REGULARITY_RR = 16
"""The regularity of the run is measured over at most its last this many RR."""
ONSET_RR = 4
"""RR before the run whose median is compared with the run's first RR (at least 2 needed)."""


class SvtRule(Rule):
    """Narrow-complex regular tachycardia ≥ ``svt_bpm`` with an abrupt onset or the classifier's SVT
    (thresholds and rationale: :class:`~edge.alarms.rules.config.AlarmConfig`)."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        hr = fresh_rate(s, c)
        if not hr >= c.tachy_clear_bpm:                         # below the clear level, or no fresh beats
            return CLEAR
        beats = list(s.beats)
        if len(beats) < c.svt_beats + 1:
            return HOLD
        t = np.fromiter((b.t_s for b in beats), dtype=np.float64)
        rr = np.diff(t)
        fast = rr <= RUN_TOLERANCE * 60.0 / c.svt_bpm
        k = int(np.argmin(fast[::-1])) if not fast.all() else int(fast.size)  # trailing fast RR
        # the run's extent counts every beat (its onset may precede start-up or a noise burst: the engine
        # counts persistence from no earlier than the lead became usable), its criteria only trusted ones
        trusted_from = max(c.startup_s, s.unusable_until_s)
        m = min(k, int((t[-k - 1:] >= trusted_from).sum()) - 1) if k else 0
        if m < c.svt_beats:
            return HOLD
        run_rr, run = rr[-m:], beats[-m - 1:]
        rate = 60.0 / float(np.median(run_rr))
        widths = np.array([b.width_ms for b in run], dtype=np.float64)
        known = widths[np.isfinite(widths)]
        narrow = (known.size * 2 >= len(run) and float(np.median(known)) < c.svt_narrow_ms
                  and 4 * int((known < c.svt_narrow_ms).sum()) >= 3 * known.size and not any(b.paced for b in run))
        last = run_rr[-REGULARITY_RR:]
        regularity = float(np.median(np.abs(np.diff(last)))) / float(np.median(last))
        if not (rate >= c.svt_bpm and narrow and regularity <= c.svt_regularity):
            return HOLD
        before = rr[:-k][-ONSET_RR:]
        seen = m == k and before.size >= 2 and t[-k - 1 - before.size] >= trusted_from
        onset_ratio = float(np.median(before)) / float(rr[-k]) if seen else math.nan
        windows = s.latest_windows(1, c.window_max_age_s)
        w = windows[-1] if windows else None
        p = None if w is None else prob(w, "SVT")
        threshold = c.svt_prob if w is None else w.thresholds.get("SVT", c.svt_prob)
        abrupt = onset_ratio >= c.svt_onset_ratio
        classified = p is not None and p >= threshold
        if not (abrupt or classified):
            return HOLD                                          # sinus tachycardia, or an onset not seen
        details: dict[str, object] = {
            "heart_rate_bpm": round(rate, 1), "qrs_ms": round(float(np.median(known)), 1),
            "rr_regularity": round(regularity, 3), "source": "beats" if abrupt else "classifier",
        }
        if abrupt:
            details["onset_rr_ratio"] = round(onset_ratio, 2)
        if p is not None:
            details["probability"] = round(p, 3)
        return Assessment(State.SET, "svt", Priority.HIGH,
                          f"supraventricular tachycardia, {rate:.0f} bpm, narrow QRS",
                          onset_s=float(t[-k]), window_id=None if w is None or not classified else w.window_id,
                          details=details)
