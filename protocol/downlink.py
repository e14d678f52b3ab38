"""Cloud → edge downlink messages (schema v1): staff acknowledged an alarm episode.

When a member of staff acknowledges an alarm in the dashboard, the cloud publishes an
:class:`AlarmAck` on the gateway's ack topic (:func:`protocol.topics.gateway_ack_topic`,
``ecgstream/v1/gateway/{gateway_id}/ack``, QoS 1). The gateway's alarm engine then releases the
episode's latch: a latched episode whose condition has ended clears at once (the edge sends the
``cleared`` alert message, ``details['reason'] = "acknowledged"``); one whose condition is still
present clears by itself when it ends.

Wire form: compact UTF-8 JSON, one object::

    {"schema_version": 1, "episode_id": "<uuid>", "patient_id": "bed-02",
     "acknowledged_by": "dr.osei", "at_us": 1733600000000000, "note": "called the ward"}

``note`` is optional (default ""). :func:`decode_alarm_ack` is strict, as
:func:`protocol.messages.decode_message` is: strict JSON (no NaN/Infinity, no repeated key), UTF-8,
at most :data:`MAX_ACK_BYTES`; every field present, of its type and in range; text without NUL or
other control characters (a newline is allowed in the note only); the episode id a UUID (returned
canonical: lower case, hyphenated); the patient id a valid topic id. Unknown extra fields are ignored
so that a newer minor sender does not break an older gateway. It raises only
:class:`~protocol.errors.ProtocolError` (:class:`SchemaError`, :class:`UnsupportedVersionError`);
:func:`encode_alarm_ack` refuses, with the same errors, anything the decoder would refuse.

Delivery is at least once: an ack may arrive twice or for an episode the gateway has already
cleared; acknowledging is idempotent on the edge.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from protocol.errors import SchemaError, TopicError, UnsupportedVersionError
from protocol.strict_json import loads_strict
from protocol.topics import validate_id

DOWNLINK_SCHEMA_VERSION = 1
MAX_ACK_BYTES = 8 * 1024
"""Largest encoded :class:`AlarmAck` (the note is the only free text)."""
MAX_USER = 128
"""Longest ``acknowledged_by``."""
MAX_NOTE = 2000
"""Longest ``note`` (what the dashboard accepts)."""
MAX_INT = (1 << 63) - 1


@dataclass(frozen=True)
class AlarmAck:
    """Staff acknowledged alarm episode ``episode_id`` of ``patient_id`` at ``at_us`` (cloud clock, µs
    since the Unix epoch)."""

    episode_id: str
    patient_id: str
    acknowledged_by: str
    at_us: int
    note: str = ""
    schema_version: int = DOWNLINK_SCHEMA_VERSION


def encode_alarm_ack(ack: AlarmAck) -> bytes:
    """Validate and serialise to compact UTF-8 JSON (SchemaError for what a gateway would refuse)."""
    obj = asdict(ack)
    _validate(obj)
    data = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")
    if len(data) > MAX_ACK_BYTES:
        raise SchemaError(f"alarm ack: {len(data)} bytes exceeds the {MAX_ACK_BYTES}-byte limit")
    return data


def decode_alarm_ack(data: bytes | bytearray | memoryview | str) -> AlarmAck:
    """Parse one downlink ack; raises ProtocolError (only) for anything that is not a valid v1 ack."""
    obj = loads_strict(data, what=_W, max_bytes=MAX_ACK_BYTES)
    if not isinstance(obj, dict):
        raise SchemaError("alarm ack must be a JSON object")
    return AlarmAck(**_validate(obj))


# -- checks ------------------------------------------------------------------------------------------

_W = "alarm ack"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _validate(obj: dict[str, Any]) -> dict[str, Any]:
    version = obj.get("schema_version")
    if type(version) is not int:
        raise SchemaError(f"{_W}: schema_version missing or not an integer")
    if version != DOWNLINK_SCHEMA_VERSION:
        raise UnsupportedVersionError(f"{_W} schema", version, (DOWNLINK_SCHEMA_VERSION,))
    episode = _field(obj, "episode_id", str)
    if not _UUID.fullmatch(episode):
        raise SchemaError(f"{_W}: episode_id {episode[:64]!r} is not a hyphenated UUID")
    episode_id = str(uuid.UUID(episode))
    patient = _field(obj, "patient_id", str)
    try:
        validate_id(patient, "patient id")
    except TopicError as exc:
        raise SchemaError(f"{_W}: {exc}") from None
    by = _text(_field(obj, "acknowledged_by", str), "acknowledged_by", MAX_USER, newline=False)
    if not by.strip():
        raise SchemaError(f"{_W}: acknowledged_by is empty")
    at_us = _field(obj, "at_us", int)
    if not 0 <= at_us <= MAX_INT:
        raise SchemaError(f"{_W}: at_us {at_us} is out of range [0, 2^63)")
    note = obj.get("note", "")
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise SchemaError(f"{_W}: field 'note' must be a string")
    note = _text(note, "note", MAX_NOTE, newline=True)
    return {"episode_id": episode_id, "patient_id": patient, "acknowledged_by": by, "at_us": at_us, "note": note,
            "schema_version": version}


def _field(obj: dict[str, Any], key: str, kind: type) -> Any:
    if key not in obj or obj[key] is None:
        raise SchemaError(f"{_W}: field {key!r} is required")
    value = obj[key]
    if kind is int and (type(value) is not int):      # bool is not an int here
        raise SchemaError(f"{_W}: field {key!r} must be an integer")
    if kind is str and not isinstance(value, str):
        raise SchemaError(f"{_W}: field {key!r} must be a string")
    return value


def _text(value: str, key: str, limit: int, *, newline: bool) -> str:
    if len(value) > limit:
        raise SchemaError(f"{_W}: {key} is longer than {limit} characters")
    allowed = "\n\t" if newline else ""
    for ch in value:
        code = ord(ch)
        if (code < 0x20 and ch not in allowed) or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            raise SchemaError(f"{_W}: {key} contains the control or surrogate character {ch!r}")
    return value


__all__ = ["DOWNLINK_SCHEMA_VERSION", "MAX_ACK_BYTES", "MAX_NOTE", "MAX_USER", "AlarmAck", "decode_alarm_ack",
           "encode_alarm_ack"]
