"""Publish staff acknowledgements to the gateway that raised the episode (MQTT 5, QoS 1).

:meth:`AckPublisher.acknowledged` is called by the ack route after the store committed the
acknowledgement. It finds the gateway (:func:`gateway_of`: ``details['gateway_id']`` of the message
the user acted on, else of any message of the episode), builds the :class:`~protocol.downlink.AlarmAck`
and queues it; it never raises into the route, whose answer (the ack is stored) does not depend on the
broker. :meth:`AckPublisher.run` keeps one MQTT 5 connection and publishes the queue in order, QoS 1,
removing an ack only once the broker acknowledged it (PUBACK with a success reason code); a lost
connection or a refused publish leaves it queued, and it is sent again after the reconnection (capped
exponential backoff with jitter). A publish the broker refuses (PUBACK reason code 0x80 or more, e.g.
not authorised by its ACL) is counted by reason and moved behind the other queued acks, so it never
blocks them; when every queued ack was refused in a row the publisher waits (doubling, up to a minute)
before trying again. Delivery is at least once: the edge ignores an ack it already applied.

The queue lives in memory: acks queued while no broker answers are lost with the process (the
acknowledgement itself is stored, and the edge still clears an acknowledged episode when staff act on
it again). Over ``max_queue`` the oldest queued ack is dropped and counted.

Counters (:class:`DownlinkCounters`, exported by the API as ``ecgstream_cloud_downlink_<key>_total``):
``queued``, ``published``, ``unroutable`` (no gateway known for the episode), ``dropped`` (queue
overflow), ``failed`` (publish attempts that failed with the connection and are retried),
``refused`` (by reason), ``connects`` and ``connection_errors``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import ssl
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.store import AckRecord, StoredAlert
from mqtt_client import ReasonClient, reason_name
from protocol.downlink import AlarmAck, encode_alarm_ack
from protocol.errors import ProtocolError, TopicError
from protocol.topics import gateway_ack_topic, validate_id

log = logging.getLogger("cloud.downlink")


@dataclass
class DownlinkCounters:
    """What the publisher has done since this process started (see the module docstring)."""

    queued: int = 0
    published: int = 0
    unroutable: int = 0
    dropped: int = 0
    failed: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    """Publishes the broker refused, by reason (``not_authorized``, …)."""
    connects: int = 0
    connection_errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class EpisodeAlerts(Protocol):
    """The part of :class:`cloud.store.Store` the publisher reads."""

    async def alerts_of_episode(self, episode_id: str) -> list[StoredAlert]: ...


def gateway_of(alerts: Sequence[StoredAlert]) -> str | None:
    """The gateway that sent these alert messages: the first valid ``details['gateway_id']``, or None."""
    for stored in alerts:
        gw = stored.alert.details.get("gateway_id")
        if isinstance(gw, str):
            try:
                return validate_id(gw, "gateway id")
            except TopicError:
                continue
    return None


class AckPublisher:
    """Queues acknowledgements and publishes them to each gateway's ack topic (module docstring).

    Args:
        hostname, port, tls_context: the MQTT 5 broker (the cloud's ``[broker]``).
        username, password: the publisher's own broker account, ``<service>-downlink`` (``[downlink]``;
            ``ecgstream cloud broker-auth`` lets only it publish acks), never the ingest worker's.
        client_id: MQTT client id: the username (the broker binds each account to client id = username;
            :meth:`cloud.config.CloudSettings.downlink_account`).
        max_queue: most acks waiting for the broker; over it the oldest is dropped (counted).
        publish_timeout_s: a PUBACK later than this counts as a failed attempt (reconnect, send again).
    """

    def __init__(self, *, hostname: str, client_id: str, port: int = 1883, username: str | None = None,
                 password: str | None = None, tls_context: ssl.SSLContext | None = None, max_queue: int = 10_000,
                 publish_timeout_s: float = 10.0, keepalive_s: int = 30, backoff_initial_s: float = 0.5,
                 backoff_max_s: float = 30.0) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("backoff must satisfy 0 < backoff_initial_s <= backoff_max_s")
        self.hostname, self.port, self.client_id = hostname, port, client_id
        self._username, self._password, self._tls = username, password, tls_context
        self._max_queue = max_queue
        self._timeout_s = publish_timeout_s
        self._keepalive_s = keepalive_s
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self._wake = asyncio.Event()
        self.counters = DownlinkCounters()
        self.connected = asyncio.Event()
        """Set while connected to the broker."""
        self.mqtt5 = True
        """Whether the next connection speaks MQTT 5 (a broker that refuses it, such as the demo's embedded
        MQTT 3.1.1 broker, is tried with 3.1.1 next, and so on in turn)."""

    @property
    def pending(self) -> int:
        """Acks queued and not yet acknowledged by the broker."""
        return len(self._queue)

    # -- producers ------------------------------------------------------------------------------------

    async def acknowledged(self, store: EpisodeAlerts, acted_on: StoredAlert, ack: AckRecord) -> str | None:
        """Send ``ack`` (just stored for the episode of ``acted_on``) to the episode's gateway; the
        gateway id it was queued for, or None (unroutable: counted and logged). Never raises."""
        try:
            gateway = gateway_of([acted_on])
            if gateway is None:
                gateway = gateway_of(await store.alerts_of_episode(ack.episode_id))
            if gateway is None:
                self.counters.unroutable += 1
                log.warning("downlink: no gateway is known for episode %s (its alerts carry no details.gateway_id); "
                            "the acknowledgement is stored but cannot reach the edge", ack.episode_id)
                return None
            self.submit(gateway, AlarmAck(episode_id=ack.episode_id, patient_id=acted_on.alert.patient_id,
                                          acknowledged_by=ack.user, at_us=ack.at_us, note=ack.note))
            return gateway
        except Exception:  # noqa: BLE001 - the acknowledgement is stored; its answer must not fail
            self.counters.unroutable += 1
            log.exception("downlink: could not queue the acknowledgement of episode %s", ack.episode_id)
            return None

    def submit(self, gateway_id: str, ack: AlarmAck) -> None:
        """Queue one ack for ``gateway_id`` (SchemaError/TopicError, both ProtocolError, for an ack or
        gateway id the edge would refuse)."""
        topic, payload = gateway_ack_topic(gateway_id), encode_alarm_ack(ack)
        if len(self._queue) >= self._max_queue:
            self._queue.popleft()
            self.counters.dropped += 1
            log.error("downlink: %d acknowledgements wait for the broker; the oldest was dropped", self._max_queue)
        self._queue.append((topic, payload))
        self.counters.queued += 1
        self._wake.set()

    # -- the connection -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, publish the queue, reconnect after any broker loss; runs until cancelled."""
        delay = self._backoff[0]
        warned = False
        while True:
            connected = False
            try:
                async with self._client() as client:
                    connected = True
                    self.counters.connects += 1
                    self.connected.set()
                    delay, warned = self._backoff[0], False
                    log.info("downlink: connected to %s:%d as %s", self.hostname, self.port, self.client_id)
                    await self._drain(client)
            except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
                self.counters.connection_errors += 1
                if not connected and isinstance(exc, aiomqtt.MqttError):
                    self.mqtt5 = not self.mqtt5         # refused or unanswered CONNECT: the other version next
                level = logging.DEBUG if warned else logging.WARNING
                log.log(level, "downlink: no broker at %s:%d (%s); %d acknowledgement(s) queued, retrying",
                        self.hostname, self.port, exc, len(self._queue))
                warned = True
            finally:
                self.connected.clear()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._backoff[1])

    def _client(self) -> ReasonClient:
        v5 = self.mqtt5
        return ReasonClient(self.hostname, self.port, identifier=self.client_id, username=self._username,
                            password=self._password, tls_context=self._tls,
                            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
                            clean_start=True if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
                            clean_session=None if v5 else True,
                            keepalive=self._keepalive_s, timeout=self._timeout_s)

    async def _drain(self, client: ReasonClient) -> None:
        watch = asyncio.create_task(_watch(client))
        refused_in_a_row, pause = 0, 1.0
        try:
            while True:
                if self._queue and refused_in_a_row >= len(self._queue):
                    await asyncio.sleep(pause * random.uniform(0.8, 1.2))       # every queued ack was refused
                    refused_in_a_row, pause = 0, min(pause * 2, 60.0)
                if not self._queue:
                    self._wake.clear()
                    waiter = asyncio.create_task(self._wake.wait())
                    done, _ = await asyncio.wait({waiter, watch}, return_when=asyncio.FIRST_COMPLETED)
                    if watch in done:
                        waiter.cancel()
                        watch.result()                         # raises the connection loss
                        raise aiomqtt.MqttError("the connection ended")
                    continue
                topic, payload = self._queue[0]
                try:
                    # MQTT 3.1.1 has no reason codes: its PUBACK is the acceptance (0)
                    props = Properties(PacketTypes.PUBLISH) if self.mqtt5 else None
                    code = await client.publish_with_reason(topic, payload, properties=props, timeout=self._timeout_s)
                except (aiomqtt.MqttError, ProtocolError) as exc:
                    self.counters.failed += 1
                    raise aiomqtt.MqttError(f"publishing to {topic} failed: {exc}") from exc
                if self._queue and self._queue[0] == (topic, payload):
                    self._queue.popleft()
                if code >= 0x80:                          # refused: behind the others, tried again later
                    reason = reason_name(code)
                    self.counters.refused[reason] = self.counters.refused.get(reason, 0) + 1
                    log.warning("downlink: the broker refused the acknowledgement on %s (%s); kept queued", topic,
                                reason)
                    self._queue.append((topic, payload))
                    refused_in_a_row += 1
                    continue
                refused_in_a_row, pause = 0, 1.0
                self.counters.published += 1
                log.info("downlink: acknowledgement published on %s", topic)
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)


async def _watch(client: aiomqtt.Client) -> Any:
    """Return (or raise) when the connection drops (the publisher subscribes to nothing)."""
    async for _ in client.messages:
        pass


__all__ = ["AckPublisher", "DownlinkCounters", "EpisodeAlerts", "gateway_of"]
