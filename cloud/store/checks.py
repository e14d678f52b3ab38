"""The store's own checks on wire values, beyond the protocol's: 63-bit range, canonical UUIDs, episodes.

They raise :class:`protocol.errors.SchemaError` (a ProtocolError, so the ingest counts the message
as malformed) before anything is written.
"""

from __future__ import annotations

import uuid
from typing import Any

from protocol.errors import SchemaError
from protocol.messages import ALERT_EVENTS, MAX_INT, Alert

EVENTS = ALERT_EVENTS
"""``details['event']`` values of the edge's alarm engine (the protocol's list)."""


def check_range(value: int | None, what: str) -> None:
    """SchemaError if ``value`` does not fit the store's signed 64-bit columns."""
    if value is not None and value > MAX_INT:
        raise SchemaError(f"{what} {value} exceeds the store's 63-bit range")


def canonical_uuid(value: Any, what: str) -> str:
    """``value`` as a lower-case hyphenated UUID string; SchemaError if it is not a UUID."""
    if not isinstance(value, str):
        raise SchemaError(f"alert: {what} must be a UUID string")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise SchemaError(f"alert: {what} {value!r} is not a UUID") from None


def episode_of(alert: Alert) -> tuple[str, str]:
    """``(episode_id, event)`` of an alert message; raises SchemaError for an unknown event or bad id."""
    event = alert.details.get("event", "raised")
    if event not in EVENTS:
        raise SchemaError(f"alert: details.event {event!r} is not one of {', '.join(EVENTS)}")
    episode = alert.details.get("episode_id", alert.alert_id)
    return canonical_uuid(episode, "details.episode_id"), event


__all__ = ["EVENTS", "MAX_INT", "canonical_uuid", "check_range", "episode_of"]
