"""ST change from the patient's own baseline in contiguous leads."""

from __future__ import annotations

import math

from edge.alarms.evidence import EvidenceState
from edge.alarms.rules.base import CLEAR, HOLD, Assessment, Rule, State
from edge.alarms.rules.config import AlarmConfig
from protocol.messages import Priority

_CONTIGUOUS = (("aVL", "I", "aVR", "II", "aVF", "III"), ("V1", "V2", "V3", "V4", "V5", "V6"))
"""Contiguous leads: neighbours in the Cabrera limb sequence (aVR standing for −aVR) and V1–V6."""


class StRule(Rule):
    """ST deviation minus the patient's baseline (:attr:`EvidenceState.st_baseline`) beyond
    ``st_mv`` in two contiguous leads of one sign (reconstructed leads: the near edge of the
    uncertainty band must reach it). Nothing is decided while the baseline is learned: an early, tall
    T wave or the normal J elevation of V2–V3 is the patient's normal, not a change."""

    def assess(self, s: EvidenceState, c: AlarmConfig) -> Assessment:
        base = s.st_baseline
        windows = [w for w in s.latest_windows(1, c.window_max_age_s) if w.st]
        if base is None or not windows:
            return HOLD
        w = windows[-1]
        change = {lead: m.deviation_mv - base[lead] for lead, m in w.st.items() if lead in base}

        def sign(lead: str) -> int:
            if lead not in change:
                return 0
            m = w.st[lead]
            dev = -change[lead] if lead == "aVR" else change[lead]
            confident = abs(dev) - (m.uncertainty_mv if m.reconstructed else 0.0)
            return int(math.copysign(1, dev)) if confident >= c.st_mv else 0

        signs = {lead: sign(lead) for seq in _CONTIGUOUS for lead in seq}
        involved: set[str] = set()
        for seq in _CONTIGUOUS:
            for a, b in zip(seq, seq[1:], strict=False):
                if signs[a] != 0 and signs[a] == signs[b]:
                    involved |= {a, b}
        if involved:
            leads = [n for seq in _CONTIGUOUS for n in seq if n in involved]
            recon = {n: w.st[n].uncertainty_mv for n in leads if w.st[n].reconstructed}
            return Assessment(State.SET, "st_change", Priority.MEDIUM, f"ST change in {', '.join(leads)}",
                              window_id=w.window_id, reconstructed_leads=recon,
                              details={"st_mv": {n: round(w.st[n].deviation_mv, 3) for n in leads},
                                       "st_change_mv": {n: round(change[n], 3) for n in leads},
                                       "st_baseline_mv": {n: round(base[n], 3) for n in leads}})
        if all(abs(d) < c.st_clear_fraction * c.st_mv for d in change.values()):
            return CLEAR
        return HOLD
