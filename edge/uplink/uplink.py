"""Drain the outbox to the cloud broker: MQTT QoS 1, persistent session, nothing lost.

One asyncio task (:meth:`Uplink.run`) keeps a connection to the broker and
publishes the outbox in send order (alerts, then status, then windows; oldest
first). A message is deleted from the outbox only after its PUBACK: aiomqtt
2.x's ``await client.publish(..., qos=1)`` returns when paho-mqtt calls
``on_publish``, which for QoS 1 happens only on the broker's PUBACK
(``paho.mqtt.client.Client._handle_pubackcomp``); if the connection is down,
paho refuses the publish with ``MQTT_ERR_NO_CONN`` and aiomqtt raises.

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
from dataclasses import dataclass, replace

import aiomqtt

from edge.uplink.outbox import Kind, Outbox, OutboxMessage
from protocol.messages import Alert, DeviceStatus, GatewayStatus, encode_message
from protocol.topics import alert_topic, device_status_topic, gateway_status_topic, validate_id, window_topic
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


class Uplink:
    """Publishes an :class:`Outbox` to an MQTT broker, QoS 1, deleting only on PUBACK.

    Args:
        outbox: the store to drain (the uplink only reads, claims and acknowledges).
        hostname, port, username, password, tls_context: the broker.
        gateway_id: this gateway's id; also the MQTT client id of its persistent session.
        max_inflight: most messages published and not yet acknowledged.
        reserved_for_alerts: of those, send slots windows may not take, so that an alert (or status)
            never waits for windows' PUBACKs (a backlog of windows after an outage, a busy gateway);
            default a fifth of ``max_inflight``.
        heartbeat_s: period of the gateway status message (``None``: no heartbeat).
        device_statuses: called each heartbeat; each :class:`DeviceStatus` it gives is published on
            that device's status topic (battery, connection, leads off for the cloud's ward).
        ack_timeout_s: a PUBACK later than this means the link is dead: reconnect.
        backoff_initial_s, backoff_max_s: reconnect delay, doubled per failure up to the cap.
        poll_s: how often an idle uplink looks for messages put by others than :meth:`submit`
            (who may call :meth:`notify` instead, as the gateway does after every write).
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
        max_inflight: int = 20,
        reserved_for_alerts: int | None = None,
        heartbeat_s: float | None = 30.0,
        device_statuses: Callable[[], Sequence[DeviceStatus]] | None = None,
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
        self.outbox = outbox
        self.gateway_id = validate_id(gateway_id, "gateway id")
        self._hostname, self._port = hostname, port
        self._username, self._password, self._tls = username, password, tls_context
        self._max_inflight = max_inflight
        self._reserved = reserved_for_alerts
        self._heartbeat_s = heartbeat_s
        self._device_statuses = device_statuses
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
        self._ack_ready = asyncio.Event()
        self._ack_write: asyncio.Future[int] | None = None

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
        return replace(
            self._counters, depth=self.outbox.total_depth, evicted=sum(self.outbox.evicted().values())
        )

    # -- the task ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, drain, reconnect after any broker loss; runs until cancelled."""
        delay = self._backoff[0]
        ever_connected = False
        while True:
            try:
                async with self._client() as client:
                    if ever_connected:
                        self._count(reconnects=1)
                    ever_connected = True
                    self._counters = replace(self._counters, connected=True)
                    delay = self._backoff[0]
                    log.info("uplink %s connected to %s:%d", self.gateway_id, self._hostname, self._port)
                    await self._session(client)
            except* (aiomqtt.MqttError, TimeoutError, OSError) as group:
                self._count(connect_failures=0 if self._counters.connected else 1)
                log.warning("uplink %s lost the broker: %s; retry in %.1f s", self.gateway_id, group.exceptions[0], delay)
            finally:
                self._counters = replace(self._counters, connected=False)
                await self._settle()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._backoff[1])

    def _client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self._hostname,
            self._port,
            username=self._username,
            password=self._password,
            tls_context=self._tls,
            identifier=self.gateway_id,
            clean_session=False,
            keepalive=self._keepalive_s,
            timeout=self._ack_timeout_s,
            max_inflight_messages=self._max_inflight + 1,  # + the heartbeat
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        """One connection's life: the first task to fail (broker loss) ends it and cancels the rest."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch(client))
            tg.create_task(self._write_acks())
            tg.create_task(self._drain(client, tg))
            if self._heartbeat_s is not None:
                tg.create_task(self._heartbeat(client, self._heartbeat_s))

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        """Raise MqttError as soon as the connection drops (the uplink subscribes to nothing)."""
        async for _ in client.messages:
            pass

    async def _drain(self, client: aiomqtt.Client, tg: asyncio.TaskGroup) -> None:
        """Claim messages in send order and start one publish task each, keeping at most
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

    async def _publish(self, client: aiomqtt.Client, message: OutboxMessage) -> None:
        self._count(published=1, retries=1 if message.attempts > 0 else 0)
        try:
            await client.publish(message.topic, message.payload, qos=1, timeout=self._ack_timeout_s)
        except BaseException:
            self._inflight.discard(message.id)
            self._inflight_windows.discard(message.id)
            raise
        self._count(acked=1)
        self._acked.append(message.id)
        self._ack_ready.set()

    async def _write_acks(self) -> None:
        """Delete acknowledged messages in batches (one transaction each), then free their slots."""
        while True:
            await self._ack_ready.wait()
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        self._ack_ready.clear()
        ids, self._acked = self._acked, []
        if ids:
            # shielded: a session cancelled mid-write still deletes what the broker acknowledged
            self._ack_write = asyncio.ensure_future(asyncio.to_thread(self.outbox.ack, ids))
            await asyncio.shield(self._ack_write)
        self._inflight.difference_update(ids)
        self._inflight_windows.difference_update(ids)
        self._slot_free.set()
        self._wake.set()                 # freed window slots: more windows may be claimed

    async def _settle(self) -> None:
        """After a session: finish the ack write in progress, write the remaining acks, forget in-flight."""
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

    def _count(self, **deltas: int) -> None:
        c = self._counters
        self._counters = replace(c, **{k: getattr(c, k) + v for k, v in deltas.items()})
