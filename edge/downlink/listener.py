"""Apply the acknowledgements that arrive on the gateway's ack topic: release acknowledged alarm episodes.

The listener has no connection of its own: the gateway's :class:`~edge.uplink.Uplink` subscribes, QoS 1,
to ``ecgstream/v1/gateway/{gateway_id}/ack`` (:func:`protocol.topics.gateway_ack_topic`, :attr:`topic`)
beside its receipt topic, on its own connection and in its persistent session (client id = the
gateway's broker account, ``clean_start=False`` with a session expiry), and hands each message on that
topic to :meth:`DownlinkListener.take`. So an acknowledgement the cloud published while the gateway was
away is delivered when it returns, as long as the gateway had subscribed once before; and the broker's
ACL (``ecgstream cloud broker-auth``, which binds each account to client id = username) needs no second
client for the gateway. The uplink acknowledges each message to the broker (PUBACK) only after
:meth:`take` returned, so one that arrives just before the gateway dies is delivered again.

Handling one message (:meth:`DownlinkListener.take`): decode it (:func:`protocol.downlink.decode_alarm_ack`)
and call ``target.acknowledge(episode_id)`` (:meth:`edge.agent.EdgeAgent.acknowledge`). Outcomes,
counted in :class:`DownlinkCounters` and, given a Prometheus registry, in
``ecgstream_edge_downlink_acks_total{outcome}``:

- ``applied``: an episode of that id was shown here and is released (cleared now if latched and its
  condition has ended; else it clears when the condition ends);
- ``unknown``: no such episode here (already cleared, a repeated ack: delivery is at least once);
- ``malformed`` / ``unsupported_version`` / ``invalid_topic``: the message is logged and ignored,
  nothing else is disturbed;
- ``internal``: the target raised; logged with its traceback, the listener goes on.

The uplink reports its connection through :meth:`attached` (subscribed, or the broker refused the
subscription: its ACL) and :meth:`detached`; :attr:`subscribed` is set while the subscription holds.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter

from edge.observability.logging import log_event
from protocol.downlink import decode_alarm_ack
from protocol.errors import ProtocolError, UnsupportedVersionError
from protocol.topics import gateway_ack_topic, validate_id

log = logging.getLogger(__name__)

OUTCOMES = ("applied", "unknown", "malformed", "unsupported_version", "invalid_topic", "internal")
"""Every outcome of one downlink message (the metric's ``outcome`` label)."""


class AckTarget(Protocol):
    """What acknowledgements are applied to (:class:`edge.agent.EdgeAgent` is one)."""

    def acknowledge(self, episode_id: str) -> bool:
        """Release episode ``episode_id``; whether it was shown here."""
        ...


@dataclass
class DownlinkCounters:
    """What the listener has seen since it started."""

    received: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    """Messages by outcome (see the module docstring)."""
    connects: int = 0
    """Uplink connections on which the ack topic was subscribed."""
    subscription_refused: int = 0
    """Uplink connections on which the broker refused the subscription to the ack topic (its ACL)."""
    connected: bool = False
    """Whether the uplink's connection is up and subscribed to the ack topic now."""

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class DownlinkListener:
    """Apply the acks the uplink hands over (:meth:`take`) to ``target``.

    Args:
        target: where acknowledgements go (the agent).
        gateway_id: this gateway's id: the topic is :func:`~protocol.topics.gateway_ack_topic` of it.
        registry: a Prometheus registry for ``ecgstream_edge_downlink_acks_total`` (the gateway's).
    """

    def __init__(self, target: AckTarget, *, gateway_id: str, registry: CollectorRegistry | None = None) -> None:
        self.target = target
        self.gateway_id = validate_id(gateway_id, "gateway id")
        self.topic = gateway_ack_topic(gateway_id)
        """The topic the uplink subscribes to for this listener."""
        self.counters = DownlinkCounters()
        self.subscribed = asyncio.Event()
        """Set while the uplink is subscribed to :attr:`topic` (tests and the gateway wait on it)."""
        self._metric: Any = None
        if registry is not None:
            self._metric = Counter("ecgstream_edge_downlink_acks", "Staff acknowledgements received from the "
                                   "cloud, by outcome.", ["outcome"], registry=registry)
            for outcome in OUTCOMES:
                self._metric.labels(outcome)

    # -- the uplink's connection -----------------------------------------------------------------------

    def attached(self, subscribed: bool) -> None:
        """The uplink connected and subscribed to :attr:`topic` (``subscribed``), or the broker refused it."""
        if subscribed:
            self.counters.connects += 1
            self.counters.connected = True
            self.subscribed.set()
        else:
            self.counters.subscription_refused += 1

    def detached(self) -> None:
        """The uplink's connection ended."""
        self.counters.connected = False
        self.subscribed.clear()

    # -- one message ---------------------------------------------------------------------------------

    def take(self, topic: str, payload: object) -> str:
        """Handle one downlink message (never raises); returns its outcome."""
        self.counters.received += 1
        outcome = self._apply(topic, payload)
        self.counters.count(outcome)
        if self._metric is not None:
            self._metric.labels(outcome).inc()
        return outcome

    def _apply(self, topic: str, payload: object) -> str:
        if topic != self.topic:
            log_event(log, "downlink_rejected", level=logging.WARNING, reason="invalid_topic", topic=topic[:200])
            return "invalid_topic"
        data = bytes(payload) if isinstance(payload, bytes | bytearray | memoryview) else payload
        try:
            ack = decode_alarm_ack(data if isinstance(data, bytes | str) else b"")
        except UnsupportedVersionError as exc:
            log_event(log, "downlink_rejected", level=logging.WARNING, reason="unsupported_version", error=str(exc))
            return "unsupported_version"
        except ProtocolError as exc:
            log_event(log, "downlink_rejected", level=logging.WARNING, reason="malformed", error=str(exc)[:300])
            return "malformed"
        try:
            shown = self.target.acknowledge(ack.episode_id)
        except Exception:  # noqa: BLE001 - one bad ack must not stop the listener
            log.exception("downlink_internal_error episode_id=%s", ack.episode_id)
            return "internal"
        log_event(log, "downlink_ack", episode_id=ack.episode_id, patient_id=ack.patient_id,
                  acknowledged_by=ack.acknowledged_by, at_us=ack.at_us, shown=shown)
        return "applied" if shown else "unknown"


__all__ = ["OUTCOMES", "AckTarget", "DownlinkCounters", "DownlinkListener"]
