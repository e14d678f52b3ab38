"""Escalation of unacknowledged alarms: :class:`Escalator`, a background task safe to run in every process,
and the delivery of escalations to staff away from the screen (:class:`DeliveryWorker` sending to the
``[[escalation.channels]]``: a signed webhook, e-mail, an ntfy-style push topic)."""

from cloud.escalation.channels import Channel, DeliveryError, build_channels
from cloud.escalation.delivery import DeliveryCounters, DeliveryWorker
from cloud.escalation.escalator import EscalationCounters, Escalator
from cloud.escalation.notice import Notice

__all__ = ["Channel", "DeliveryCounters", "DeliveryError", "DeliveryWorker", "EscalationCounters", "Escalator",
           "Notice", "build_channels"]
