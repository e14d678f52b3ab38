"""ST change in contiguous leads."""

from __future__ import annotations

import math

from edge.alarms.evidence import EvidenceState
from edge.alarms.rules.base import CLEAR, HOLD, Assessment, Rule, State
from edge.alarms.rules.config import AlarmConfig
from protocol.messages import Priority

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
