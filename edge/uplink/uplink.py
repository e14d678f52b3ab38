"""Drain the outbox to the cloud broker: MQTT 5, QoS 1, end-to-end receipts, nothing lost.

One asyncio task (:meth:`Uplink.run`) keeps a connection to the broker and
publishes the outbox in send order (alerts, then status, then windows; oldest
first). ``await publish`` returns on the broker's PUBACK (paho-mqtt calls
``on_publish`` from ``_handle_pubackcomp``); if the connection is down, paho
refuses the publish with ``MQTT_ERR_NO_CONN`` and aiomqtt raises.

**Receipts** (``receipts=True``, the default). A PUBACK only says the broker took
the message; a broker restart while the cloud is offline can still lose it for
the cloud's shared subscription. So an alert or window is only marked
*published* on its PUBACK and deleted when the cloud's receipt
(:mod:`protocol.receipts`) names it as stored or duplicate; one the cloud
rejected is kept as *dead* (counted, never resent). Each publish carries the
MQTT 5 response topic ``ecgstream/v1/gateway/{id}/receipt`` and the message id
as correlation data; the uplink subscribes to that topic (QoS 1) on the same
connection, whose session outlives disconnects (``clean_start=False`` and a
session expiry), so receipts sent while it was away still arrive. A published
message without a receipt after ``receipt_timeout_s`` is sent again, the wait
doubling per attempt up to ``receipt_timeout_max_s``; the cloud de-duplicates by
id and answers ``duplicate``. Status messages (no id) go on PUBACK. With
``receipts=False`` every message is deleted on its PUBACK (a cloud without
receipts), and QoS 0 is allowed.

**Acks** (``downlink=``, the gateway's :class:`~edge.downlink.DownlinkListener`).
Staff acknowledgements come down on ``ecgstream/v1/gateway/{id}/ack``: the uplink
subscribes to that topic (QoS 1) beside the receipt topic, on the same connection
and persistent session (with MQTT 3.1.1 too: ``clean_session=False``), and hands
each message on it to ``downlink.take(topic, payload)``; one connection, one
broker account, client id = the account, as the broker's ACL demands. Every
message received (receipt or ack) is acknowledged to the broker (PUBACK) only
once it was handled, so one that arrives just before the gateway dies is
delivered again.

**Live display stream** (``live=``, the gateway's :class:`~edge.uplink.live.LiveFeed`). While
connected, every ``live.settings.period_s`` the uplink publishes each patient's pending display
chunks on ``ecgstream/v1/patient/{id}/live`` and the gateway status with every patient's vitals
(minor version 1), both at QoS 0 and never through the outbox: display data that is late is
worthless, and it must never hold up an alert. Counted in :attr:`UplinkCounters.live_chunks`,
``live_bytes`` and ``live_vitals``.

**Refusals.** MQTT 5 PUBACKs carry a reason code: one of 0x80 or more (0x87 not
authorized: the broker's ACL) means the message was *not* taken. It stays in the
outbox, is retried after ``refusal_backoff_s`` doubling per attempt up to
``refusal_backoff_max_s`` (never in a tight loop), is counted by reason, and
``on_refused(topic, reason)`` is called when a topic becomes refused
(``on_accepted(topic)`` when it is taken again): the gateway raises the technical
alarm ``uplink_refused`` through it. aiomqtt 2.5 drops paho's reason code, so the
uplink's client (:class:`~mqtt_client.ReasonClient`) records it in its own ``on_publish``.

Delivery is at least once: a message whose PUBACK was lost with the connection
(or with the process) is sent again, so receivers de-duplicate by id (alert id,
window id). On one connection messages leave in outbox order, at most
``max_inflight`` unacknowledged at a time; a resend after a reconnect may arrive
after messages that were queued behind it.

Broker loss is noticed at once through aiomqtt's message iterator (it raises
when the connection drops) or, for a half-open link, by the per-message
``ack_timeout_s``; the uplink then reconnects with capped exponential backoff
and jitter. The client id is the gateway id and the session is persistent
(``clean_session=False``), so the broker keeps the gateway's session across
reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.uplink.live import LiveSettings
from edge.uplink.outbox import Kind, Outbox, OutboxMessage, ReceiptOutcome
from mqtt_client import ReasonClient, reason_name
from protocol.errors import ProtocolError
from protocol.live_payload import LiveChunk, encode_live_chunk
from protocol.messages import (
    GATEWAY_STATUS_MINOR,
    Alert,
    DeviceStatus,
    GatewayStatus,
    PatientVitals,
    encode_message,
)
from protocol.receipts import Receipt, ReceiptStatus, decode_receipt
from protocol.topics import (
    alert_topic,
    device_status_topic,
    gateway_receipt_topic,
    gateway_status_topic,
    live_topic,
    validate_id,
    window_topic,
)
from protocol.window_payload import EcgWindow, encode_window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UplinkCounters:
    """What the uplink has done since it started (``evicted`` and ``depth`` come from the outbox)."""

    published: int = 0
    acked: int = 0
    retries: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    evicted: int = 0
    depth: int = 0
    connected: bool = False
    resends: int = 0
    """Messages sent again because their receipt did not come in time."""
    refused: dict[str, int] = field(default_factory=dict)
    """Publishes the broker refused (PUBACK reason code >= 0x80), by reason name (``not_authorized``)."""
    receipts: dict[str, int] = field(default_factory=dict)
    """Receipt items received, by status (``stored``, ``duplicate``, ``rejected``)."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Messages the cloud rejected (now dead in the outbox), by the cloud's reason."""
    bad_receipts: int = 0
    """Receipt messages that did not decode or named another gateway (ignored, logged)."""
    receipt_subscription_refused: int = 0
    """Connections on which the broker refused the subscription to the gateway's receipt topic (its ACL)."""
    live_chunks: int = 0
    """Live display chunks published (QoS 0)."""
    live_bytes: int = 0
    """Their payload bytes."""
    live_vitals: int = 0
    """Gateway statuses with vitals published (QoS 0)."""
    protocol: str = "5"
    """MQTT version of the current (or last) connection: ``5``, or ``3.1.1`` for a broker without MQTT 5."""


CONNECT_PROBE_S = 3.0
"""How long an MQTT 5 CONNECT waits for its CONNACK before the uplink tries MQTT 3.1.1 (a broker that
speaks only 3.1.1, such as the embedded amqtt one, never answers an MQTT 5 CONNECT)."""
_PROTOCOL_REFUSED = {1, 0x84}
"""CONNACK codes refusing the protocol version (MQTT 3.1.1: 1; MQTT 5: 0x84 unsupported protocol version)."""


def _older_broker(error: BaseException) -> bool:
    """Whether a failed MQTT 5 connect looks like a broker without MQTT 5: it refused the protocol version,
    or it took the TCP connection and never answered the CONNECT."""
    if isinstance(error, MqttConnectError):
        code = error.rc.value if isinstance(error.rc, ReasonCode) else error.rc
        return isinstance(code, int) and code in _PROTOCOL_REFUSED
    return isinstance(error, aiomqtt.MqttError) and "timed out" in str(error)


class AckReceiver(Protocol):
    """Where the ack topic's messages go (:class:`edge.downlink.DownlinkListener` is one)."""

    @property
    def topic(self) -> str:
        """The ack topic to subscribe to."""
        ...

    def take(self, topic: str, payload: object) -> str:
        """Handle one message (never raises)."""
        ...

    def attached(self, subscribed: bool) -> None:
        """A connection is up: subscribed to :attr:`topic`, or the broker refused it."""
        ...

    def detached(self) -> None:
        """The connection ended."""
        ...


class LiveSource(Protocol):
    """What the uplink streams for display (:class:`edge.uplink.live.LiveFeed` is one)."""

    @property
    def settings(self) -> LiveSettings:
        """Its period (and what it streams)."""
        ...

    def chunks(self) -> list[LiveChunk]:
        """The chunks pending now (taken: the next call gives the ones after)."""
        ...

    def vitals(self) -> list[PatientVitals]:
        """Every patient's vitals now."""
        ...


class Uplink:
    """Publishes an :class:`Outbox` to an MQTT 5 broker (module docstring).

    Args:
        outbox: the store to drain (the uplink claims, settles and applies receipts).
        hostname, port, username, password, tls_context: the broker.
        gateway_id: this gateway's id; also the MQTT client id of its persistent session.
        qos: 1 (default) or 2; 0 only with ``receipts=False`` (nothing would confirm delivery).
        receipts: delete alerts and windows only on the cloud's receipt (default); False: on PUBACK.
        receipt_timeout_s, receipt_timeout_max_s: wait for a receipt before a resend, doubled per
            attempt up to the cap.
        refusal_backoff_s, refusal_backoff_max_s: wait before retrying a refused message, doubled per
            attempt up to the cap.
        on_refused: called ``(topic, reason)`` when publishes on a topic start being refused.
        on_accepted: called ``(topic)`` when a topic that was refused is accepted again.
        downlink: where the messages on the gateway's ack topic go (module docstring); None: no ack
            subscription.
        session_expiry_s: how long the broker keeps the session (and the receipts for it) while away.
        mqtt5: False for a broker known to speak MQTT 3.1.1 only (the embedded one): connect with 3.1.1 at
            once rather than after a timed-out MQTT 5 CONNECT (:meth:`run`).
        max_inflight: most messages published and not yet acknowledged.
        reserved_for_alerts: of those, send slots windows may not take, so that an alert (or status)
            never waits for windows' PUBACKs (a backlog of windows after an outage, a busy gateway);
            default a fifth of ``max_inflight``.
        heartbeat_s: period of the gateway status message (``None``: no heartbeat).
        live: the live display stream and vitals to publish each period while connected (module
            docstring); None: none.
        device_statuses: called each heartbeat; each :class:`DeviceStatus` it gives is published on
            that device's status topic (battery, connection, leads off for the cloud's ward).
        ack_timeout_s: a PUBACK later than this means the link is dead: reconnect.
        backoff_initial_s, backoff_max_s: reconnect delay, doubled per failure up to the cap.
        poll_s: how often an idle uplink looks for messages put by others than :meth:`submit`
            (who may call :meth:`notify` instead, as the gateway does after every write), and for
            messages that came due (receipt overdue, refusal backoff over).
        keepalive_s: MQTT keepalive.
        software: software version reported in the heartbeat.
    """

    def __init__(
        self,
        outbox: Outbox,
        *,
        hostname: str,
        gateway_id: str,
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        qos: int = 1,
        receipts: bool = True,
        receipt_timeout_s: float = 30.0,
        receipt_timeout_max_s: float = 600.0,
        refusal_backoff_s: float = 5.0,
        refusal_backoff_max_s: float = 300.0,
        on_refused: Callable[[str, str], None] | None = None,
        on_accepted: Callable[[str], None] | None = None,
        downlink: AckReceiver | None = None,
        session_expiry_s: int = 7 * 24 * 3600,
        mqtt5: bool = True,
        max_inflight: int = 20,
        reserved_for_alerts: int | None = None,
        heartbeat_s: float | None = 30.0,
        device_statuses: Callable[[], Sequence[DeviceStatus]] | None = None,
        live: LiveSource | None = None,
        ack_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        poll_s: float = 0.5,
        keepalive_s: int = 30,
        software: str = "",
    ) -> None:
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1, got {max_inflight}")
        if reserved_for_alerts is None:
            reserved_for_alerts = max_inflight // 5
        if not 0 <= reserved_for_alerts < max_inflight:
            raise ValueError(f"reserved_for_alerts must be in [0, max_inflight), got {reserved_for_alerts}")
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("backoff must satisfy 0 < backoff_initial_s <= backoff_max_s")
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        if qos == 0 and receipts:
            raise ValueError("qos 0 is allowed only with receipts off (nothing would confirm delivery)")
        if not 0 < receipt_timeout_s <= receipt_timeout_max_s:
            raise ValueError("receipt timeouts must satisfy 0 < receipt_timeout_s <= receipt_timeout_max_s")
        if not 0 < refusal_backoff_s <= refusal_backoff_max_s:
            raise ValueError("refusal backoff must satisfy 0 < refusal_backoff_s <= refusal_backoff_max_s")
        self.outbox = outbox
        self.gateway_id = validate_id(gateway_id, "gateway id")
        self.receipt_topic = gateway_receipt_topic(self.gateway_id)
        self._hostname, self._port = hostname, port
        self._username, self._password, self._tls = username, password, tls_context
        self.qos, self.receipts = qos, receipts
        self._receipt_timeout = (receipt_timeout_s, receipt_timeout_max_s)
        self._refusal_backoff = (refusal_backoff_s, refusal_backoff_max_s)
        self._on_refused, self._on_accepted = on_refused, on_accepted
        self.downlink = downlink
        self._manual_ack = False
        self._session_expiry_s = session_expiry_s
        self._try_v5 = mqtt5
        self._max_inflight = max_inflight
        self._reserved = reserved_for_alerts
        self._heartbeat_s = heartbeat_s
        self._device_statuses = device_statuses
        self.live = live
        self._ack_timeout_s = ack_timeout_s
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._poll_s = poll_s
        self._keepalive_s = keepalive_s
        self._software = software
        self._counters = UplinkCounters()
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._inflight: set[int] = set()
        self._inflight_windows: set[int] = set()
        self._acked: list[int] = []
        self._published: list[tuple[int, int]] = []
        self._refused_ids: list[tuple[int, str, int]] = []
        self._ack_ready = asyncio.Event()
        self._ack_write: asyncio.Future[int] | None = None
        self._v5 = True
        self.refused_topics: dict[str, str] = {}
        """Topics whose last publish was refused, with the reason (cleared when one is accepted)."""

    # -- producers ---------------------------------------------------------------------------------

    async def submit(self, kind: Kind | str, topic: str, payload: bytes) -> int:
        """Store a message durably in the outbox (off the event loop) and wake the sender."""
        message_id = await asyncio.to_thread(self.outbox.put, kind, topic, payload)
        self._wake.set()
        return message_id

    def notify(self) -> None:
        """Wake the sender now: a message was put into the outbox by someone else (the agent's
        :class:`~edge.agent.OutboxSink` writes alerts directly). Without it the sender finds such a
        message only at its next ``poll_s`` look. Call from the event loop's thread."""
        self._wake.set()

    async def submit_alert(self, alert: Alert) -> int:
        """Queue an alert on its patient's alert topic."""
        return await self.submit(Kind.ALERT, alert_topic(alert.patient_id), encode_message(alert))

    async def submit_window(self, window: EcgWindow) -> int:
        """Queue a window (int16, delta, zlib: :mod:`protocol.window_payload`) on its patient's window topic."""
        return await self.submit(Kind.WINDOW, window_topic(window.patient_id), encode_window(window))

    # -- observation -------------------------------------------------------------------------------

    @property
    def counters(self) -> UplinkCounters:
        """A snapshot of the counters, with the outbox's current depth and eviction total."""
        c = self._counters
        return replace(c, depth=self.outbox.total_depth, evicted=sum(self.outbox.evicted().values()),
                       refused=dict(c.refused), receipts=dict(c.receipts), rejected=dict(c.rejected))

    # -- the task ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, drain, reconnect after any broker loss; runs until cancelled.

        Every connection is tried with MQTT 5 first. A broker that does not answer an MQTT 5 CONNECT
        (the embedded amqtt broker speaks 3.1.1 only) or refuses its protocol version is tried with
        3.1.1 at once; on such a connection refusals are invisible and no receipt can be asked for,
        so messages are deleted on PUBACK, as with ``receipts=False`` (logged as an error)."""
        delay = self._backoff[0]
        ever_connected = False
        v5 = self._try_v5
        while True:
            connected = fallback = False
            try:
                async with self._client(v5) as client:
                    connected = True
                    client.timeout = self._ack_timeout_s
                    if ever_connected:
                        self._count(reconnects=1)
                    ever_connected = True
                    self._counters = replace(self._counters, connected=True, protocol="5" if v5 else "3.1.1")
                    delay = self._backoff[0]
                    log.info("uplink %s connected to %s:%d (MQTT %s)", self.gateway_id, self._hostname, self._port,
                             "5" if v5 else "3.1.1")
                    if not v5:   # an error only where receipts were asked for (the demo's embedded broker asks none)
                        log.log(logging.ERROR if self.receipts else logging.WARNING,
                                "uplink %s: the broker at %s:%d speaks MQTT 3.1.1 only: broker refusals are "
                                "invisible and the cloud cannot send receipts; messages are deleted on PUBACK",
                                self.gateway_id, self._hostname, self._port)
                    await self._session(client, v5)
            except* (aiomqtt.MqttError, TimeoutError, OSError) as group:
                self._count(connect_failures=0 if self._counters.connected else 1)
                if not connected and v5 and _older_broker(group.exceptions[0]):
                    log.warning("uplink %s: no MQTT 5 CONNACK from %s:%d (%s); trying MQTT 3.1.1", self.gateway_id,
                                self._hostname, self._port, group.exceptions[0])
                    fallback = True
                else:
                        log.warning("uplink %s lost the broker: %s; retry in %.1f s", self.gateway_id, group.exceptions[0],
                                delay)
            finally:
                self._counters = replace(self._counters, connected=False)
                if self.downlink is not None:
                    self.downlink.detached()
                await self._settle()
            if fallback:
                v5 = False
                continue
            v5 = self._try_v5              # every new connection tries MQTT 5 first (unless known not to speak it)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._backoff[1])

    def _client(self, v5: bool = True) -> ReasonClient:
        props = None
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._session_expiry_s
        client = ReasonClient(
            self._hostname,
            self._port,
            username=self._username,
            password=self._password,
            tls_context=self._tls,
            identifier=self.gateway_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_start=False if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            clean_session=None if v5 else False,
            properties=props,
            keepalive=self._keepalive_s,
            timeout=min(self._ack_timeout_s, CONNECT_PROBE_S) if v5 else self._ack_timeout_s,
            max_inflight_messages=self._max_inflight + 1,  # + the heartbeat
        )
        inner: Any = getattr(client, "_client", None)
        self._manual_ack = hasattr(inner, "manual_ack_set") and hasattr(inner, "ack")
        if self._manual_ack:
            inner.manual_ack_set(True)    # PUBACK once a receipt or ack is handled: a crash before it gets a redelivery
        return client

    async def _session(self, client: ReasonClient, v5: bool = True) -> None:
        """One connection's life: the first task to fail (broker loss) ends it and cancels the rest."""
        self._v5 = v5
        if self.receipts and v5:
            codes = await client.subscribe(self.receipt_topic, qos=1)
            if any(getattr(c, "value", c) >= 0x80 for c in codes):
                # alerts must still reach the cloud: publish on, they stay in the outbox and are resent
                self._count(receipt_subscription_refused=1)
                log.error("uplink %s: the broker refused the subscription to %s (%s): no receipt can arrive, so "
                          "every message stays in the outbox and is resent; the broker's ACL must let this gateway "
                          "read its receipt topic", self.gateway_id, self.receipt_topic, codes)
        if self.downlink is not None:
            topic = self.downlink.topic
            codes = await client.subscribe(topic, qos=1)
            refused = any(getattr(c, "value", c) >= 0x80 for c in codes)
            if refused:
                log.error("uplink %s: the broker refused the subscription to %s (%s): staff acknowledgements "
                          "cannot reach this gateway; the broker's ACL must let it read its ack topic",
                          self.gateway_id, topic, codes)
            else:
                log.info("uplink %s subscribed to %s", self.gateway_id, topic)
            self.downlink.attached(not refused)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._listen(client))
            tg.create_task(self._write_acks())
            tg.create_task(self._drain(client, tg))
            if self._heartbeat_s is not None:
                tg.create_task(self._heartbeat(client, self._heartbeat_s))
            if self.live is not None:
                tg.create_task(self._live(client, self.live))

    async def _listen(self, client: aiomqtt.Client) -> None:
        """Apply receipts and hand acks on as they come, each PUBACKed once handled; raises MqttError as
        soon as the connection drops."""
        async for message in client.messages:
            topic = str(message.topic)
            if self.downlink is not None and topic == self.downlink.topic:
                self.downlink.take(topic, message.payload)
            elif topic == self.receipt_topic:
                await self._receipt(message.payload)
            self._puback(client, message)

    async def _receipt(self, data: object) -> None:
        payload = data if isinstance(data, bytes | bytearray) else b""
        try:
            receipt = decode_receipt(payload)
        except ProtocolError as exc:
            self._count(bad_receipts=1)
            log.warning("uplink %s: a receipt that does not decode was ignored: %s", self.gateway_id, exc)
            return
        await self.apply_receipt(receipt)

    def _puback(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        if self._manual_ack and message.qos > 0:
            client._client.ack(message.mid, message.qos)  # noqa: SLF001 - paho's manual ack (see _client)

    async def apply_receipt(self, receipt: Receipt) -> ReceiptOutcome:
        """Delete what the cloud holds, mark dead what it rejected; counted by status and reason."""
        if receipt.gateway_id != self.gateway_id:
            self._count(bad_receipts=1)
            log.warning("uplink %s: a receipt for gateway %s was ignored", self.gateway_id, receipt.gateway_id)
            return ReceiptOutcome()
        outcome = await asyncio.to_thread(self.outbox.receipt, receipt.items)
        c = self._counters
        receipts, rejected = dict(c.receipts), dict(c.rejected)
        for item in receipt.items:
            receipts[item.status.value] = receipts.get(item.status.value, 0) + 1
            if item.status is ReceiptStatus.REJECTED and item.reason is not None:
                rejected[item.reason] = rejected.get(item.reason, 0) + 1
                log.error("uplink %s: the cloud rejected message %s (%s); kept as dead in the outbox",
                          self.gateway_id, item.message_id, item.reason)
        self._counters = replace(self._counters, receipts=receipts, rejected=rejected)
        return outcome

    async def _drain(self, client: ReasonClient, tg: asyncio.TaskGroup) -> None:
        """Claim due messages in send order and start one publish task each, keeping at most
        ``max_inflight`` unacknowledged, of them at most ``max_inflight − reserved_for_alerts``
        windows; publish() is called in task-start order, so on the wire messages keep outbox order."""
        while True:
            free = self._max_inflight - len(self._inflight)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            self._wake.clear()
            window_room = self._max_inflight - self._reserved - len(self._inflight_windows)
            batch = await asyncio.to_thread(self.outbox.claim, free, exclude=set(self._inflight),
                                            max_windows=max(0, window_room))
            if not batch:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s)
                except TimeoutError:
                    pass
                continue
            for message in batch:
                self._inflight.add(message.id)
                if message.kind is Kind.WINDOW:
                    self._inflight_windows.add(message.id)
                publish = self._publish(client, message)
                try:
                    tg.create_task(publish)
                except RuntimeError:          # the session is ending (broker lost): the message stays stored
                    publish.close()
                    raise

    def _properties(self, message: OutboxMessage) -> Properties | None:
        if not (self.receipts and self._v5) or message.message_id is None:
            return None            # status messages have no id: deleted on PUBACK, no receipt asked for
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.receipt_topic
        props.CorrelationData = message.message_id.encode()
        return props

    async def _publish(self, client: ReasonClient, message: OutboxMessage) -> None:
        resend = message.attempts > 0 and message.state == "published"
        self._count(published=1, retries=1 if message.attempts > 0 else 0, resends=int(resend))
        try:
            code = await client.publish_with_reason(message.topic, message.payload, qos=self.qos,
                                                    properties=self._properties(message), timeout=self._ack_timeout_s)
        except BaseException:
            self._inflight.discard(message.id)
            self._inflight_windows.discard(message.id)
            raise
        now = time.time_ns() // 1000
        if code >= 0x80:
            self._refused(message, reason_name(code), now)
        else:
            self._count(acked=1)
            if message.topic in self.refused_topics:
                del self.refused_topics[message.topic]
                log.warning("uplink %s: %s is accepted again", self.gateway_id, message.topic)
                if self._on_accepted is not None:
                    self._on_accepted(message.topic)
            if self.receipts and self._v5 and message.message_id is not None:
                self._published.append((message.id, now + _doubled(self._receipt_timeout, message.attempts)))
            else:
                self._acked.append(message.id)
        self._ack_ready.set()

    def _refused(self, message: OutboxMessage, reason: str, now_us: int) -> None:
        refused = dict(self._counters.refused)
        refused[reason] = refused.get(reason, 0) + 1
        self._counters = replace(self._counters, refused=refused)
        self._refused_ids.append((message.id, reason, now_us + _doubled(self._refusal_backoff, message.attempts)))
        if self.refused_topics.get(message.topic) != reason:
            self.refused_topics[message.topic] = reason
            log.error("uplink %s: the broker refused a %s on %s (%s); it stays in the outbox and is retried later",
                      self.gateway_id, message.kind, message.topic, reason)
            if self._on_refused is not None:
                self._on_refused(message.topic, reason)

    async def _write_acks(self) -> None:
        """Write the broker's answers in batches (one transaction each), then free their slots."""
        while True:
            await self._ack_ready.wait()
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        self._ack_ready.clear()
        acked, self._acked = self._acked, []
        published, self._published = self._published, []
        refused, self._refused_ids = self._refused_ids, []
        if acked or published or refused:
            # shielded: a session cancelled mid-write still records what the broker answered
            self._ack_write = asyncio.ensure_future(asyncio.to_thread(
                self.outbox.settle, acked=acked, published=published, refused=refused))
            await asyncio.shield(self._ack_write)
        done = acked + [i for i, _ in published] + [i for i, _, _ in refused]
        self._inflight.difference_update(done)
        self._inflight_windows.difference_update(done)
        self._slot_free.set()
        self._wake.set()                 # freed window slots: more windows may be claimed

    async def _settle(self) -> None:
        """After a session: finish the write in progress, write the remaining answers, forget in-flight."""
        if self._ack_write is not None:
            await self._ack_write
            self._ack_write = None
        await self._flush_acks()
        self._inflight.clear()
        self._inflight_windows.clear()

    async def _heartbeat(self, client: aiomqtt.Client, period_s: float) -> None:
        """Publish GatewayStatus (with the outbox depth), and each device's status when the gateway was
        given ``device_statuses``, now and every ``period_s``; live only, never stored: a heartbeat
        that waited out an outage would report a stale state."""
        while True:
            status = GatewayStatus(
                gateway_id=self.gateway_id,
                t_gateway_us=time.time_ns() // 1000,
                outbox_depth=self.outbox.total_depth,
                software=self._software,
            )
            await client.publish(gateway_status_topic(self.gateway_id), encode_message(status), qos=1)
            for device in self._device_statuses() if self._device_statuses is not None else ():
                await client.publish(device_status_topic(device.device_id), encode_message(device), qos=1)
            await asyncio.sleep(period_s)

    async def _live(self, client: aiomqtt.Client, live: LiveSource) -> None:
        """Each period: the pending display chunks, then the status with every patient's vitals, QoS 0."""
        period = live.settings.period_s
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            chunks = live.chunks()
            sent = 0
            for chunk in chunks:
                payload = encode_live_chunk(chunk)
                await client.publish(live_topic(chunk.patient_id), payload, qos=0)
                sent += len(payload)
            vitals = tuple(live.vitals())
            status = GatewayStatus(gateway_id=self.gateway_id, t_gateway_us=time.time_ns() // 1000,
                                   streams=len(vitals), outbox_depth=self.outbox.total_depth,
                                   software=self._software, patients=vitals, minor_version=GATEWAY_STATUS_MINOR)
            await client.publish(gateway_status_topic(self.gateway_id), encode_message(status), qos=0)
            self._count(live_chunks=len(chunks), live_bytes=sent, live_vitals=1)
            due = max(due + period, loop.time())
            await asyncio.sleep(due - loop.time())

    def _count(self, **deltas: int) -> None:
        c = self._counters
        self._counters = replace(c, **{k: getattr(c, k) + v for k, v in deltas.items()})


def _doubled(limits: tuple[float, float], attempts: int) -> int:
    """Microseconds to wait after the ``attempts``-th try: the first limit doubled per earlier try, capped."""
    first, cap = limits
    return int(min(first * 2.0 ** max(0, min(attempts - 1, 30)), cap) * 1e6)
