"""Listen on the gateway's ack topic and release acknowledged alarm episodes.

One aiomqtt client (MQTT 5) subscribes, QoS 1, to ``ecgstream/v1/gateway/{gateway_id}/ack``
(:func:`protocol.topics.gateway_ack_topic`). The session is persistent (``clean_start=False`` with a
session expiry of ``session_expiry_s``, client id ``{client id}-downlink`` by default), so an
acknowledgement the cloud published while the gateway was away is delivered when it returns, as long
as the gateway had subscribed once before. Each message is acknowledged to the broker (PUBACK) only
after it was handled, so one that arrives just before the gateway dies is delivered again.

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

The connection is kept with capped exponential backoff and jitter, like the uplink's. With
``mqtt5=None`` (the default) a broker that does not answer an MQTT 5 CONNECT (the demo's embedded
MQTT 3.1.1 broker lets it time out) is tried next with MQTT 3.1.1 (``clean_session=False``: a
persistent session too); once one version connected, the listener keeps it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import CollectorRegistry, Counter

from edge.observability.logging import log_event
from protocol.downlink import decode_alarm_ack
from protocol.errors import ProtocolError, UnsupportedVersionError
from protocol.topics import gateway_ack_topic, validate_id

log = logging.getLogger(__name__)

OUTCOMES = ("applied", "unknown", "malformed", "unsupported_version", "invalid_topic", "internal")
"""Every outcome of one downlink message (the metric's ``outcome`` label)."""
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600
"""How long the broker keeps the listener's session (and the acks queued in it) while the gateway is away."""


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
    connect_failures: int = 0
    connected: bool = False

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class DownlinkListener:
    """Subscribe to one gateway's ack topic and apply what arrives until cancelled (:meth:`run`).

    Args:
        target: where acknowledgements go (the agent).
        gateway_id: this gateway's id: the topic is :func:`~protocol.topics.gateway_ack_topic` of it.
        hostname, port, username, password, tls_context: the broker (the uplink's).
        client_id: MQTT client id of the persistent session (default ``{gateway_id}-downlink``).
        session_expiry_s: how long the broker keeps the session while the gateway is away.
        registry: a Prometheus registry for ``ecgstream_edge_downlink_acks_total`` (the gateway's).
        mqtt5: True: MQTT 5 only; False: MQTT 3.1.1 only; None: MQTT 5, else 3.1.1 (module docstring).
        connect_timeout_s: how long a CONNECT (and the SUBSCRIBE) may take.
    """

    def __init__(self, target: AckTarget, *, gateway_id: str, hostname: str, port: int = 1883,
                 client_id: str | None = None, username: str | None = None, password: str | None = None,
                 tls_context: ssl.SSLContext | None = None, session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
                 keepalive_s: int = 30, backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0,
                 registry: CollectorRegistry | None = None, mqtt5: bool | None = None,
                 connect_timeout_s: float = 5.0) -> None:
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("backoff must satisfy 0 < backoff_initial_s <= backoff_max_s")
        self.target = target
        self.gateway_id = validate_id(gateway_id, "gateway id")
        self.topic = gateway_ack_topic(gateway_id)
        self.client_id = client_id or f"{gateway_id}-downlink"
        self._hostname, self._port = hostname, port
        self._username, self._password, self._tls = username, password, tls_context
        self._session_expiry_s = session_expiry_s
        self._keepalive_s = keepalive_s
        self._backoff = (backoff_initial_s, backoff_max_s)
        self.counters = DownlinkCounters()
        self.subscribed = asyncio.Event()
        """Set while subscribed (tests and the gateway wait on it)."""
        self._metric: Any = None
        self._manual_ack = False
        self._mqtt5 = mqtt5
        self._use_v5 = mqtt5 is not False
        self._timeout_s = connect_timeout_s
        if registry is not None:
            self._metric = Counter("ecgstream_edge_downlink_acks", "Staff acknowledgements received from the "
                                   "cloud, by outcome.", ["outcome"], registry=registry)
            for outcome in OUTCOMES:
                self._metric.labels(outcome)

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

    # -- the connection ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, subscribe, apply; reconnect after any broker loss. Runs until cancelled."""
        delay = self._backoff[0]
        while True:
            try:
                async with self._client() as client:
                    self.counters.connects += 1
                    self.counters.connected = True
                    self._mqtt5 = self._use_v5          # this version works: keep it
                    delay = self._backoff[0]
                    (code,) = await client.subscribe(self.topic, qos=1)
                    if _refused(code):
                        raise aiomqtt.MqttError(f"the broker refused the subscription to {self.topic}: {code}")
                    self.subscribed.set()
                    log.info("downlink %s subscribed to %s at %s:%d", self.client_id, self.topic, self._hostname,
                             self._port)
                    async for message in client.messages:
                        self.take(str(message.topic), message.payload)
                        self._ack(client, message)
            except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
                if not self.counters.connected:
                    self.counters.connect_failures += 1
                    if self._mqtt5 is None:             # not settled yet: try the other version next
                        self._use_v5 = not self._use_v5
                log.warning("downlink %s lost the broker %s:%d: %s; retry in %.1f s", self.client_id, self._hostname,
                            self._port, exc, delay)
            finally:
                self.counters.connected = False
                self.subscribed.clear()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._backoff[1])

    def _client(self) -> aiomqtt.Client:
        common: dict[str, Any] = dict(identifier=self.client_id, username=self._username, password=self._password,
                                      tls_context=self._tls, keepalive=self._keepalive_s, timeout=self._timeout_s)
        if self._use_v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._session_expiry_s
            client = aiomqtt.Client(self._hostname, self._port, protocol=aiomqtt.ProtocolVersion.V5, clean_start=False,
                                    properties=props, **common)
        else:
            client = aiomqtt.Client(self._hostname, self._port, protocol=aiomqtt.ProtocolVersion.V311,
                                    clean_session=False, **common)
        paho: Any = getattr(client, "_client", None)
        self._manual_ack = hasattr(paho, "manual_ack_set") and hasattr(paho, "ack")
        if self._manual_ack:
            paho.manual_ack_set(True)     # PUBACK once the ack is applied: a crash before it gets a redelivery
        return client

    def _ack(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        if self._manual_ack and message.qos > 0:
            client._client.ack(message.mid, message.qos)  # noqa: SLF001 - paho's manual ack (see _client)


def _refused(code: object) -> bool:
    """A SUBACK reason code (MQTT 5 ReasonCode, or a 3.1.1 granted QoS int) that refuses the subscription."""
    value = getattr(code, "value", code)
    return isinstance(value, int) and value >= 0x80


__all__ = ["OUTCOMES", "AckTarget", "DownlinkCounters", "DownlinkListener"]
