"""Alarm rules engine: beats, windows and signal quality in; IEC 60601-1-8 prioritised alerts out.

- :mod:`edge.alarms.evidence`: what the engine consumes (beats, windows, technical state, clock);
- :mod:`edge.alarms.features`: beat features the QRS detector does not give (QRS width);
- :mod:`edge.alarms.rules`: one small rule per alarm condition, thresholds in :class:`AlarmConfig`;
- :mod:`edge.alarms.engine`: :class:`AlarmEngine`, persistence, hysteresis, latching, de-duplication,
  escalation, suppression during artefact, and the :class:`protocol.messages.Alert` messages.
"""

from edge.alarms.engine import AlarmEngine, AlarmEvent
from edge.alarms.evidence import (
    BeatEvidence,
    ClockMap,
    GapEvent,
    LeadQuality,
    LinearClock,
    StMeasurement,
    TechnicalState,
    WindowEvidence,
)
from edge.alarms.features import QrsWidthMeter
from edge.alarms.rules import RULES_VERSION, AlarmConfig

__all__ = [
    "RULES_VERSION",
    "AlarmConfig",
    "AlarmEngine",
    "AlarmEvent",
    "BeatEvidence",
    "ClockMap",
    "GapEvent",
    "LeadQuality",
    "LinearClock",
    "QrsWidthMeter",
    "StMeasurement",
    "TechnicalState",
    "WindowEvidence",
]
