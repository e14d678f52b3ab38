"""End-to-end receipts: after a batch is committed, tell each gateway what became of its messages.

The ingest worker calls :meth:`ReceiptPublisher.publish_batch` with a batch's MQTT messages and the
outcome of each (``stored``, ``duplicate``, ``stale`` or a rejection reason) once the batch is
committed and before it acknowledges them. One :class:`protocol.receipts.Receipt` per gateway per
batch goes out on that gateway's receipt topic, QoS 1, on the worker's own client; the gateway deletes
an outbox entry only on it (``stored``, ``duplicate``) or keeps it as dead (``rejected``), so
delivery never rests on the broker's persistence or its shared-subscription session behaviour.

**Which gateway, which message.** Alerts and windows do not name their gateway, and a topic is the
patient's. The edge's uplink publishes each with the MQTT 5 *response topic*
``ecgstream/v1/gateway/{id}/receipt`` and the message id as *correlation data* (the MQTT 5
request/response pattern), so the receipt goes where the publish asked, naming the id it gave. A
response topic that is not a gateway receipt topic is ignored (counted as ``bad_response_topic``):
the cloud publishes receipts nowhere else. Without correlation data the id is read from the payload
(:func:`protocol.receipts.message_id`); a message without a response topic (an edge without
receipts) gets no receipt. Status messages (``stale`` or stored gateway/device status) have no id
and get none.

If a receipt cannot be published (the connection is gone) the error propagates: the worker then
leaves the batch unacknowledged, the broker redelivers it, and the redelivery's receipt says
``duplicate``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol.errors import TopicError
from protocol.receipts import MAX_ITEMS, Receipt, ReceiptItem, ReceiptStatus, encode_receipt, message_id
from protocol.topics import Channel, Scope, gateway_receipt_topic, parse_topic, validate_id

log = logging.getLogger(__name__)

NO_RECEIPT = frozenset({"stale"})
"""Outcomes that get no receipt (status messages: they carry no id and the edge sends them once)."""
_RECEIPTED = frozenset({"alert", "window"})
"""The channels whose messages get a receipt (the rest, status, have no id)."""


class Publisher(Protocol):
    """What publishes a receipt (an :class:`aiomqtt.Client`)."""

    async def publish(self, topic: str, payload: bytes, qos: int = ...) -> None: ...


@dataclass
class ReceiptCounters:
    """What the publisher did; ``items`` by status."""

    receipts: int = 0
    items: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in ReceiptStatus})
    without_gateway: int = 0
    """Alerts and windows that asked for no receipt (no response topic: an edge without receipts)."""
    bad_response_topic: int = 0
    """Messages whose response topic is not a gateway receipt topic (no receipt sent there)."""
    without_id: int = 0
    """Messages whose id could not be read (a rejected, unreadable payload): no receipt item."""

    def as_dict(self) -> dict[str, Any]:
        return {"receipts": self.receipts, "items": dict(self.items), "without_gateway": self.without_gateway,
                "bad_response_topic": self.bad_response_topic, "without_id": self.without_id}


def _status(outcome: str) -> tuple[ReceiptStatus, str | None]:
    if outcome == "stored":
        return ReceiptStatus.STORED, None
    if outcome == "duplicate":
        return ReceiptStatus.DUPLICATE, None
    return ReceiptStatus.REJECTED, outcome


class ReceiptPublisher:
    """Publishes one receipt per gateway per committed batch (module docstring)."""

    def __init__(self, *, qos: int = 1) -> None:
        self.qos = qos
        self.counters = ReceiptCounters()

    def gateway_of(self, message: Any) -> str | None:
        """The gateway a message asked its receipt for (from its MQTT 5 response topic), or None."""
        response = getattr(getattr(message, "properties", None), "ResponseTopic", None)
        if not response:
            self.counters.without_gateway += 1
            return None
        try:
            parsed = parse_topic(str(response))
        except TopicError:
            parsed = None
        if parsed is None or parsed.scope is not Scope.GATEWAY or parsed.channel is not Channel.RECEIPT:
            self.counters.bad_response_topic += 1
            log.warning("ingest: a message on %s asked for its receipt on %r, not a gateway receipt topic; "
                        "no receipt sent", message.topic, response)
            return None
        return parsed.ident

    def id_of(self, message: Any, payload: bytes) -> str | None:
        """The message id the edge gave (correlation data), else read from the payload."""
        data = getattr(getattr(message, "properties", None), "CorrelationData", None)
        if data:
            try:
                return validate_id(bytes(data).decode("utf-8"), "message id")
            except (UnicodeDecodeError, TopicError):
                pass
        channel = str(getattr(message, "topic", "")).rsplit("/", 1)[-1]
        return message_id(channel, payload)

    def receipts_for(self, messages: Sequence[Any], outcomes: Sequence[str]) -> dict[str, list[ReceiptItem]]:
        """Group a batch's outcomes by gateway as receipt items (messages that get none left out)."""
        by_gateway: dict[str, list[ReceiptItem]] = {}
        for message, outcome in zip(messages, outcomes, strict=True):
            if outcome in NO_RECEIPT or str(getattr(message, "topic", "")).rsplit("/", 1)[-1] not in _RECEIPTED:
                continue
            gateway = self.gateway_of(message)
            if gateway is None:
                continue
            payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
            mid = self.id_of(message, bytes(payload))
            if mid is None:
                self.counters.without_id += 1
                continue
            status, reason = _status(outcome)
            by_gateway.setdefault(gateway, []).append(ReceiptItem(mid, status, reason))
        return by_gateway

    async def publish(self, client: Publisher, gateway_id: str, items: Sequence[ReceiptItem]) -> None:
        """Publish one receipt to ``gateway_id`` (QoS 1: returns on the broker's PUBACK)."""
        for start in range(0, len(items), MAX_ITEMS):
            receipt = Receipt(gateway_id, tuple(items[start : start + MAX_ITEMS]))
            await client.publish(gateway_receipt_topic(gateway_id), encode_receipt(receipt), qos=self.qos)
            self.counters.receipts += 1
        for item in items:
            self.counters.items[item.status.value] += 1

    async def publish_batch(self, client: Publisher, messages: Sequence[Any], outcomes: Sequence[str]) -> None:
        """Publish the receipts of one committed batch: one per gateway, items in batch order."""
        for gateway_id, items in self.receipts_for(messages, outcomes).items():
            await self.publish(client, gateway_id, items)


__all__ = ["NO_RECEIPT", "ReceiptCounters", "ReceiptPublisher"]
