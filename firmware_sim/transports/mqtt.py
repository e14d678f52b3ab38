"""A wearable that publishes straight to an MQTT broker (Wi-Fi/LTE devices, or a phone relaying one).

Each frame becomes one :mod:`protocol.samples_payload` message on
:func:`protocol.topics.samples_topic`; status reports go as JSON to
:func:`protocol.topics.device_status_topic`. The MQTT client id is the device id,
so a broker ACL can pin each device to its own ``device/{id}/`` branch.

The connection carries a last will: the device's last status with
``connected=False``, which the broker publishes if the device vanishes; a
graceful :meth:`MqttDeviceTransport.disconnect` publishes the same message
itself. When the broker drops the connection, a supervisor reconnects with
exponential backoff (``reconnect_min_s`` doubling up to ``reconnect_max_s``);
drops and reconnects are counted. Frames sent while the link is down raise
:class:`~firmware_sim.transports.base.TransportError` (the device counts them
as failed); nothing is queued behind the caller's back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import replace

import aiomqtt

from firmware_sim.transports.base import DeviceTransport, TransportError
from protocol.ble_frame import EcgFrame
from protocol.messages import DeviceStatus, encode_message
from protocol.samples_payload import encode_samples_payload
from protocol.topics import device_status_topic, samples_topic, validate_id

log = logging.getLogger(__name__)


class MqttDeviceTransport(DeviceTransport):
    """One device's MQTT uplink. ``samples_per_message`` (per lead) sets the frame size the device uses."""

    def __init__(
        self,
        device_id: str,
        *,
        hostname: str = "127.0.0.1",
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        samples_qos: int = 1,
        status_qos: int = 1,
        retain_status: bool = True,
        samples_per_message: int = 50,
        keepalive_s: int = 30,
        timeout_s: float = 5.0,
        reconnect_min_s: float = 0.25,
        reconnect_max_s: float = 8.0,
    ) -> None:
        self.device_id = validate_id(device_id, "device id")
        if samples_qos not in (0, 1, 2) or status_qos not in (0, 1, 2):
            raise ValueError("MQTT QoS must be 0, 1 or 2")
        if not 0 < samples_per_message <= 0xFFFF:
            raise ValueError(f"samples_per_message must be 1-65535, got {samples_per_message}")
        if not 0 < reconnect_min_s <= reconnect_max_s:
            raise ValueError("reconnect backoff needs 0 < reconnect_min_s <= reconnect_max_s")
        self.hostname = hostname
        self.port = port
        self.samples_qos = samples_qos
        self.status_qos = status_qos
        self.retain_status = retain_status
        self.samples_per_message = samples_per_message
        """Samples per lead in each message: the device frames its stream to this size."""
        self.max_samples_per_message = 0xFFFF
        self.timeout_s = timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.samples_topic = samples_topic(self.device_id)
        self.status_topic = device_status_topic(self.device_id)
        self._username = username
        self._password = password
        self._tls_context = tls_context
        self._keepalive_s = keepalive_s
        self.messages_published = 0
        self.drops = 0
        """Connections the broker (or network) dropped."""
        self.reconnects = 0
        """Successful reconnections after a drop."""
        self._last_status = DeviceStatus(device_id=self.device_id, t_device_us=0)
        self._client: aiomqtt.Client | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lost: asyncio.Future[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._up = False

    @property
    def connected(self) -> bool:
        return self._up

    async def connect(self) -> None:
        """Connect (raises TransportError if the broker is unreachable) and start the reconnect supervisor."""
        if self._supervisor is not None:
            return
        await self._open()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"mqtt-supervisor-{self.device_id}")

    async def disconnect(self) -> None:
        """Publish the offline status, then close the connection gracefully."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        if self._up:
            with contextlib.suppress(TransportError):
                await self._publish(self.status_topic, self._offline_payload(), self.status_qos, self.retain_status)
        await self._close()

    async def send_frame(self, frame: EcgFrame) -> None:
        """Publish one samples payload (QoS ``samples_qos``)."""
        await self._publish(self.samples_topic, encode_samples_payload(frame), self.samples_qos, False)

    async def send_status(self, status: DeviceStatus) -> None:
        """Publish a status report (retained if ``retain_status``); it also becomes the next last will."""
        self._last_status = status
        await self._publish(self.status_topic, encode_message(status), self.status_qos, self.retain_status)

    # -- internals ----------------------------------------------------------------------------------

    def _offline_payload(self) -> bytes:
        return encode_message(replace(self._last_status, connected=False))

    async def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if not self._up or self._client is None or self._lost is None:
            raise TransportError(f"MQTT link of {self.device_id} to {self.hostname}:{self.port} is down")
        publish = asyncio.ensure_future(self._client.publish(topic, payload, qos=qos, retain=retain))
        await asyncio.wait((publish, self._lost), return_when=asyncio.FIRST_COMPLETED)
        if not publish.done():
            publish.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await publish
            raise TransportError(f"MQTT link of {self.device_id} dropped during a publish")
        try:
            publish.result()
        except aiomqtt.MqttError as exc:
            raise TransportError(f"MQTT publish of {self.device_id} failed: {exc}") from exc
        self.messages_published += 1

    async def _open(self) -> None:
        will = aiomqtt.Will(self.status_topic, self._offline_payload(), qos=self.status_qos, retain=self.retain_status)
        client = aiomqtt.Client(
            self.hostname, self.port, identifier=self.device_id, will=will, username=self._username,
            password=self._password, tls_context=self._tls_context, keepalive=self._keepalive_s, timeout=self.timeout_s,
        )
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(client)
        except aiomqtt.MqttError as exc:
            raise TransportError(f"cannot connect {self.device_id} to MQTT broker {self.hostname}:{self.port}: {exc}") from exc
        self._client, self._stack = client, stack
        self._lost = asyncio.get_running_loop().create_future()
        self._up = True

    async def _close(self) -> None:
        self._up = False
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await stack.aclose()

    async def _supervise(self) -> None:
        while True:
            client = self._client
            assert client is not None
            with contextlib.suppress(aiomqtt.MqttError):
                async for _ in client.messages:  # never subscribed: this only ends when the link drops
                    pass
            self.drops += 1
            log.warning("%s: MQTT connection to %s:%d lost; reconnecting", self.device_id, self.hostname, self.port)
            await self._close()
            delay = self.reconnect_min_s
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._open()
                except TransportError as exc:
                    delay = min(2 * delay, self.reconnect_max_s)
                    log.info("%s: reconnect failed (%s); next try in %.2f s", self.device_id, exc, delay)
                    continue
                self.reconnects += 1
                log.info("%s: MQTT reconnected after %d drop(s)", self.device_id, self.drops)
                break
