"""Escalation of unacknowledged alarms: :class:`Escalator`, a background task safe to run in every process."""

from cloud.escalation.escalator import EscalationCounters, Escalator

__all__ = ["EscalationCounters", "Escalator"]
