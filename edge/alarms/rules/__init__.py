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
of the analysed lead is lost (lead off, disconnected) and low otherwise. SVT is high, as the extreme
tachycardia it names more precisely; atrial flutter is medium, as AF (rationale in :class:`AlarmConfig`).

Supersession (one rhythm, one alarm): VT supersedes extreme tachycardia; SVT and extreme
tachycardia supersede each other (SVT is evaluated first and counts from the run's first beat, so it
comes no later than the generic alarm when its criteria are met); AF and atrial flutter supersede each
other, and so do atrial flutter and SVT (whichever raised first holds); AF supersedes SVT.
"""
from __future__ import annotations

from edge.alarms.rules.af import AfRule
from edge.alarms.rules.base import (
    CLEAR,
    HOLD,
    PRIORITY_RANK,
    RULES_VERSION,
    Assessment,
    Rule,
    State,
)
from edge.alarms.rules.config import AlarmConfig
from edge.alarms.rules.flutter import FlutterRule
from edge.alarms.rules.rate import AsystoleRule, BradyRule, TachyRule, VfRule, VtRule
from edge.alarms.rules.st import StRule
from edge.alarms.rules.svt import SvtRule
from edge.alarms.rules.technical import (
    DataGapRule,
    DisconnectedRule,
    LeadOffRule,
    LowBatteryRule,
    PoorSignalRule,
)
from protocol.messages import AlertCategory

__all__ = [
    "CLEAR", "HOLD", "PRIORITY_RANK", "RULES_VERSION", "AfRule", "AlarmConfig", "Assessment", "AsystoleRule",
    "BradyRule", "DataGapRule", "DisconnectedRule", "FlutterRule", "LeadOffRule", "LowBatteryRule",
    "PoorSignalRule", "Rule", "State", "StRule", "SvtRule", "TachyRule", "VfRule", "VtRule", "default_rules",
]


def default_rules(c: AlarmConfig) -> tuple[Rule, ...]:
    """Every rule with its persistence and clear time (s); order is evaluation order (VF before VT …)."""
    clin, tech = AlertCategory.CLINICAL, AlertCategory.TECHNICAL
    return (
        VfRule("vf", clin, 0.0, c.clinical_clear_s),
        VtRule("vt", clin, 0.0, c.clinical_clear_s, superseded_by=("vf",)),
        AsystoleRule("asystole", clin, 0.0, c.clinical_clear_s, superseded_by=("vf",)),
        SvtRule("svt", clin, c.rate_persist_s, c.clinical_clear_s,
                superseded_by=("vf", "vt", "af", "aflutter", "extreme_tachycardia")),
        TachyRule("extreme_tachycardia", clin, c.rate_persist_s, c.clinical_clear_s,
                  superseded_by=("vf", "vt", "svt")),
        BradyRule("extreme_bradycardia", clin, c.rate_persist_s, c.clinical_clear_s, superseded_by=("vf", "asystole")),
        AfRule("af", clin, c.af_persist_s, c.af_clear_s, superseded_by=("vf", "vt", "asystole", "aflutter")),
        FlutterRule("aflutter", clin, 0.0, c.clinical_clear_s, superseded_by=("vf", "vt", "asystole", "af", "svt")),
        StRule("st_change", clin, c.st_persist_s, c.st_persist_s, superseded_by=("vf", "asystole")),
        LeadOffRule("lead_off", tech, 0.0, 2.0),
        PoorSignalRule("poor_signal", tech, c.poor_persist_s, c.poor_clear_s),
        LowBatteryRule("low_battery", tech, 0.0, 0.0),
        DisconnectedRule("device_disconnected", tech, 0.0, 0.0),
        DataGapRule("data_gap", tech, 0.0, 0.0),
    )
