"""What a delivery says: :class:`Notice`, one alarm episode told to one channel, as a title, a plain text
(e-mail body, push text) and a JSON object (the webhook body).

Plain words first: who, what, how urgent, for how long nobody acknowledged it. It names the patient
(display name and id) because staff must know where to go; nothing else about the patient is sent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

NOTICE_VERSION = 1
"""The webhook body's ``version`` (a receiver may check it)."""


def _utc(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Notice:
    """One episode told to one channel (built by :class:`cloud.escalation.delivery.DeliveryWorker`)."""

    delivery_id: int
    channel: str
    event: Literal["raised", "escalated"]
    """``raised``: the episode was just raised (an ``on_raise`` channel); ``escalated``: nobody acknowledged it."""
    episode_id: str
    alert_id: str | None
    patient_id: str
    patient_name: str
    alert_type: str
    category: str
    priority: str
    level: int
    role: str | None
    """Who this level is for (``[escalation] level_roles``), if configured."""
    message: str
    onset_gateway_us: int
    first_received_us: int
    sent_us: int

    @property
    def patient(self) -> str:
        """``Name (id)``, or the id alone."""
        return f"{self.patient_name} ({self.patient_id})" if self.patient_name else self.patient_id

    @property
    def unacknowledged_s(self) -> int:
        """Seconds since the cloud received the episode."""
        return max(0, (self.sent_us - self.first_received_us) // 1_000_000)

    def title(self) -> str:
        """One line: ``ESCALATED L2 - HIGH alarm vt - Jane Doe (pat-1)`` (subject, push title)."""
        head = "ALARM" if self.event == "raised" else f"ESCALATED L{self.level}"
        return f"{head} - {self.priority.upper()} alarm {self.alert_type} - {self.patient}"

    def text(self) -> str:
        """A few plain lines (e-mail body, push text)."""
        lines = [
            f"{self.priority.capitalize()}-priority {self.category} alarm: {self.alert_type}",
            f"Patient: {self.patient}",
        ]
        if self.message:
            lines.append(f"Alarm: {self.message}")
        lines.append(f"Onset: {_utc(self.onset_gateway_us)}")
        if self.event == "escalated":
            lines.append(f"Not acknowledged for {self.unacknowledged_s} s: escalation level {self.level}"
                         + (f" (for: {self.role})" if self.role else ""))
        else:
            lines.append("Just raised" + (f" (for: {self.role})" if self.role else ""))
        lines.append("Acknowledge it on the ecgstream dashboard"
                     + (f" (alert {self.alert_id})." if self.alert_id else "."))
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        """The webhook body: every field, plus ``version``, ``title`` and ``text``."""
        return {"version": NOTICE_VERSION, **asdict(self), "unacknowledged_s": self.unacknowledged_s,
                "title": self.title(), "text": self.text()}


__all__ = ["NOTICE_VERSION", "Notice"]
