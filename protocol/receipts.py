"""End-to-end receipts from the cloud to one gateway (schema v1).

After the cloud has committed (or refused) a batch of a gateway's alerts and windows it publishes one
:class:`Receipt` on ``ecgstream/v1/gateway/{gateway_id}/receipt``
(:func:`protocol.topics.gateway_receipt_topic`); the gateway deletes an outbox entry only on a receipt
for it, so delivery never rests on the broker's persistence or session behaviour. Compact UTF-8 JSON::

    {"schema_version": 1, "gateway_id": "gw-1",
     "items": [{"id": "<alert_id or window_id>", "status": "stored"},
               {"id": "...", "status": "duplicate"},
               {"id": "...", "status": "rejected", "reason": "malformed"}]}

``status``: ``stored`` (committed now), ``duplicate`` (already committed: a resend), ``rejected`` (the
cloud refused it for a fault of its own; ``reason`` is the cloud's rejection reason, a short
lower-case name; resending it cannot help). :func:`decode_receipt` is strict: unknown versions,
duplicate keys, NaN, missing or mistyped fields, a ``reason`` on anything but a rejection, and more
than :data:`MAX_ITEMS` items raise :class:`~protocol.errors.ProtocolError` subclasses only.

The publisher tells the gateway which message a receipt item answers by the message id the gateway
attached to it (MQTT 5 correlation data), else by :func:`message_id`, which reads the id out of an
alert or window payload without validating the rest (so a rejected, malformed message still gets
its receipt whenever its id can be read).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from protocol.errors import SchemaError, TopicError, UnsupportedVersionError
from protocol.strict_json import loads_strict
from protocol.topics import validate_id

RECEIPT_SCHEMA_VERSION = 1
MAX_ITEMS = 4096
"""Most items one receipt may carry (a cloud batch is far smaller)."""
MAX_RECEIPT_BYTES = 512 * 1024
_REASON = re.compile(r"[a-z][a-z0-9_]{0,63}")


class ReceiptStatus(StrEnum):
    """What the cloud did with one message."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class ReceiptItem:
    """One message's outcome; ``reason`` only (and always) for ``rejected``."""

    message_id: str
    status: ReceiptStatus
    reason: str | None = None

    @property
    def delivered(self) -> bool:
        """The cloud holds the message (stored now or before): the edge may forget it."""
        return self.status is not ReceiptStatus.REJECTED


@dataclass(frozen=True)
class Receipt:
    """The cloud's answer to one batch of one gateway's messages."""

    gateway_id: str
    items: tuple[ReceiptItem, ...]
    schema_version: int = RECEIPT_SCHEMA_VERSION


def encode_receipt(receipt: Receipt) -> bytes:
    """Validate and serialise to compact JSON (SchemaError for a receipt a gateway would refuse)."""
    obj = {
        "schema_version": receipt.schema_version,
        "gateway_id": receipt.gateway_id,
        "items": [{"id": i.message_id, "status": str(i.status), **({"reason": i.reason} if i.reason else {})}
                  for i in receipt.items],
    }
    _validate(obj)
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def decode_receipt(data: bytes | bytearray | memoryview | str) -> Receipt:
    """Parse a receipt; raises ProtocolError subclasses only."""
    obj = loads_strict(data, what="receipt", max_bytes=MAX_RECEIPT_BYTES)
    return _validate(obj)


def _validate(obj: Any) -> Receipt:
    if not isinstance(obj, dict):
        raise SchemaError("receipt must be a JSON object")
    version = obj.get("schema_version")
    if type(version) is not int:
        raise SchemaError("receipt: schema_version missing or not an integer")
    if version != RECEIPT_SCHEMA_VERSION:
        raise UnsupportedVersionError("receipt schema", version, (RECEIPT_SCHEMA_VERSION,))
    gateway_id = obj.get("gateway_id")
    try:
        validate_id(gateway_id, "gateway_id")  # type: ignore[arg-type]
    except TopicError as exc:
        raise SchemaError(f"receipt: {exc}") from None
    items = obj.get("items")
    if not isinstance(items, list):
        raise SchemaError("receipt: field 'items' must be a list")
    if len(items) > MAX_ITEMS:
        raise SchemaError(f"receipt: more than {MAX_ITEMS} items")
    return Receipt(gateway_id, tuple(_item(i, n) for n, i in enumerate(items)))  # type: ignore[arg-type]


def _item(obj: Any, n: int) -> ReceiptItem:
    where = f"receipt: items[{n}]"
    if not isinstance(obj, dict):
        raise SchemaError(f"{where} must be an object")
    try:
        message_id = validate_id(obj.get("id"), "id")  # type: ignore[arg-type]
    except TopicError as exc:
        raise SchemaError(f"{where}: {exc}") from None
    try:
        status = ReceiptStatus(str(obj.get("status")))
    except ValueError:
        raise SchemaError(f"{where}: status must be one of {', '.join(ReceiptStatus)}") from None
    reason = obj.get("reason")
    if status is ReceiptStatus.REJECTED:
        if not isinstance(reason, str) or not _REASON.fullmatch(reason):
            raise SchemaError(f"{where}: a rejection needs a reason (lower_case name, at most 64 characters)")
    elif reason is not None:
        raise SchemaError(f"{where}: only a rejection has a reason")
    return ReceiptItem(message_id, status, reason)


_WINDOW_ID = slice(4, 20)
"""Where a window payload (after its 4-byte envelope) keeps its window id (UUID bytes)."""


def message_id(channel: str, payload: bytes | bytearray | memoryview) -> str | None:
    """The id a receipt names an alert (``alert_id``) or window (``window_id``) payload by, read
    leniently (the rest of the payload is not validated); None when it cannot be read or for any
    other channel."""
    data = bytes(payload)
    if channel == "window":
        if len(data) < _WINDOW_ID.stop or data[:3] != b"ES\x02":
            return None
        return str(uuid.UUID(bytes=data[_WINDOW_ID]))
    if channel == "alert":
        try:
            obj = json.loads(data) if len(data) <= MAX_RECEIPT_BYTES else None
        except (ValueError, RecursionError):
            return None
        value = obj.get("alert_id") if isinstance(obj, dict) else None
        try:
            return validate_id(value, "alert_id") if isinstance(value, str) else None
        except TopicError:
            return None
    return None


__all__ = [
    "MAX_ITEMS", "RECEIPT_SCHEMA_VERSION", "Receipt", "ReceiptItem", "ReceiptStatus", "decode_receipt",
    "encode_receipt", "message_id",
]
