"""The vocabulary every rule shares: :class:`Assessment` (SET/HOLD/CLEAR), :class:`Rule` and the
small readers of the evidence state the rules have in common."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from edge.alarms.evidence import EvidenceState, WindowEvidence
from protocol.messages import AlertCategory, Priority

if TYPE_CHECKING:
    from edge.alarms.rules.config import AlarmConfig

RULES_VERSION = "4"  # 4: AF supported by a classifier leaning to AF; fast AF confirmed on beats
"""Version of the rules and their defaults; travels in every alert's ``model_versions['alarm_rules']``."""

PRIORITY_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2}

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


def fresh_rate(s: EvidenceState, c: AlarmConfig) -> float:
    """The detector's heart rate (bpm), NaN when unknown or when no beat came for ``beat_stale_s``."""
    last = s.last_beat_s()
    if last is None or s.beats_until_s - last > c.beat_stale_s:
        return math.nan
    return s.heart_rate_bpm


def prob(w: WindowEvidence, key: str) -> float | None:
    return w.probabilities.get(key)
