"""In-process transport: devices publish BLE notifications into a hub, receivers read them.

:class:`LoopbackHub` stands in for the radio between a fleet of virtual
wearables and a gateway in the same process (tests, demos, benchmarks). Each
:class:`LoopbackTransport` publishes exactly the bytes its device would notify
over BLE — an ecgstream frame or a Polar PMD notification — plus status
reports as :mod:`protocol.messages` JSON. Receivers :meth:`~LoopbackHub.subscribe`
and get :class:`LoopbackMessage` ``(device_id, data, kind)`` tuples, in publish
order, from a bounded queue: a subscriber that falls behind loses messages
under its :class:`Overflow` policy, and every loss is counted
(:attr:`Subscription.dropped`). Publishing never blocks a device.

A link drop (:meth:`LoopbackTransport.disconnect`) is announced to receivers
with the device's last status marked ``connected=False``, as a gateway sees a
BLE disconnection (and as an MQTT last will does).

The hub belongs to one event loop and is not thread-safe. Use
:meth:`LoopbackHub.default` for the process-wide hub, or make your own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from enum import StrEnum
from types import TracebackType
from typing import ClassVar, NamedTuple

from firmware_sim.packetizer import encode_frame_for_wire
from firmware_sim.profiles import WireFormat
from firmware_sim.transports.base import DeviceTransport, TransportError
from protocol.ble_frame import EcgFrame
from protocol.messages import DeviceStatus, encode_message
from protocol.topics import validate_id


class MessageKind(StrEnum):
    """What a :class:`LoopbackMessage` carries."""

    FRAME = "frame"
    """One :mod:`protocol.ble_frame` frame."""
    PMD = "pmd"
    """One :mod:`protocol.polar_pmd` ECG notification."""
    STATUS = "status"
    """A :class:`~protocol.messages.DeviceStatus` as JSON."""


_KIND_OF_WIRE = {WireFormat.ECGSTREAM: MessageKind.FRAME, WireFormat.POLAR_PMD: MessageKind.PMD}


class LoopbackMessage(NamedTuple):
    device_id: str
    data: bytes
    kind: MessageKind = MessageKind.FRAME


class Overflow(StrEnum):
    """What a full subscriber queue does with one more message (the loss is counted either way)."""

    DROP_OLDEST = "drop_oldest"
    """Discard the oldest queued message: the receiver stays current (live monitoring)."""
    DROP_NEWEST = "drop_newest"
    """Discard the new message: what is queued stays contiguous."""


class Subscription:
    """One receiver's bounded queue. Iterate with ``async for``; ends after :meth:`close`."""

    def __init__(
        self, hub: LoopbackHub, device_ids: frozenset[str] | None, maxsize: int, overflow: Overflow
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"subscriber queue size must be >= 1, got {maxsize}")
        self.device_ids = device_ids
        self.maxsize = maxsize
        self.overflow = overflow
        self.delivered = 0
        """Messages queued for this subscriber."""
        self.dropped = 0
        """Messages lost because this subscriber's queue was full."""
        self._hub = hub
        self._queue: deque[LoopbackMessage] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def _put(self, message: LoopbackMessage) -> None:
        if len(self._queue) >= self.maxsize:
            self.dropped += 1
            if self.overflow is Overflow.DROP_NEWEST:
                return
            self._queue.popleft()
        self._queue.append(message)
        self.delivered += 1
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def get_nowait(self) -> LoopbackMessage:
        """The next message; raises :class:`asyncio.QueueEmpty` if none is queued."""
        if not self._queue:
            raise asyncio.QueueEmpty
        return self._queue.popleft()

    def drain(self, max_items: int | None = None) -> list[LoopbackMessage]:
        """Every queued message (at most ``max_items``), without waiting."""
        if max_items is None or max_items >= len(self._queue):
            out = list(self._queue)
            self._queue.clear()
            return out
        return [self._queue.popleft() for _ in range(max_items)]

    async def get(self) -> LoopbackMessage:
        """Wait for the next message; raises :class:`StopAsyncIteration` once closed and empty."""
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> LoopbackMessage:
        return await self.get()

    def close(self) -> None:
        """Stop receiving; queued messages can still be read."""
        if not self._closed:
            self._closed = True
            self._hub._unsubscribe(self)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class LoopbackHub:
    """Fan-out of device messages to subscribers, in publish order."""

    _default: ClassVar[LoopbackHub | None] = None

    def __init__(self, *, queue_size: int = 65536) -> None:
        self.queue_size = queue_size
        self.published = 0
        """Messages published by devices."""
        self._subscribers: list[Subscription] = []
        self._connected: set[str] = set()

    @classmethod
    def default(cls) -> LoopbackHub:
        """The process-wide hub."""
        if cls._default is None:
            cls._default = cls()
        return cls._default

    @property
    def connected_devices(self) -> frozenset[str]:
        """Devices whose loopback link is up."""
        return frozenset(self._connected)

    @property
    def dropped(self) -> int:
        """Messages lost to slow subscribers, over current subscribers."""
        return sum(s.dropped for s in self._subscribers)

    def subscribe(
        self,
        device_ids: Iterable[str] | None = None,
        *,
        maxsize: int | None = None,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> Subscription:
        """Receive messages of ``device_ids`` (all devices if None) from now on."""
        ids = None if device_ids is None else frozenset(device_ids)
        sub = Subscription(self, ids, self.queue_size if maxsize is None else maxsize, overflow)
        self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.remove(sub)

    def publish(self, device_id: str, data: bytes, kind: MessageKind = MessageKind.FRAME) -> None:
        """Hand a message to every matching subscriber; never blocks."""
        message = LoopbackMessage(device_id, data, kind)
        self.published += 1
        for sub in self._subscribers:
            if sub.device_ids is None or device_id in sub.device_ids:
                sub._put(message)

    def transport(self, device_id: str, *, wire: WireFormat = WireFormat.ECGSTREAM) -> LoopbackTransport:
        """A transport for ``device_id`` on this hub."""
        return LoopbackTransport(self, device_id, wire=wire)


class LoopbackTransport(DeviceTransport):
    """A device's link into a :class:`LoopbackHub`, sending ``wire``-format notifications."""

    def __init__(self, hub: LoopbackHub, device_id: str, *, wire: WireFormat = WireFormat.ECGSTREAM) -> None:
        self.hub = hub
        self.device_id = validate_id(device_id, "device id")
        self.wire = WireFormat(wire)
        self.frames_sent = 0
        self.statuses_sent = 0
        self._kind = _KIND_OF_WIRE[self.wire]
        self._connected = False
        self._last_status = DeviceStatus(device_id=self.device_id, t_device_us=0)

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self._connected = True
        self.hub._connected.add(self.device_id)

    async def disconnect(self) -> None:
        """Drop the link; receivers get the last status with ``connected=False``."""
        if not self._connected:
            return
        self._connected = False
        self.hub._connected.discard(self.device_id)
        gone = replace(self._last_status, connected=False)
        self.hub.publish(self.device_id, encode_message(gone), MessageKind.STATUS)

    async def send_frame(self, frame: EcgFrame) -> None:
        """Encode ``frame`` in this transport's wire format and publish it."""
        self.send_encoded(encode_frame_for_wire(frame, self.wire))

    def send_encoded(self, data: bytes) -> None:
        """Publish one notification already encoded in :attr:`wire` format (the fleet's fast path)."""
        if not self._connected:
            raise TransportError(f"loopback link of {self.device_id} is down")
        self.hub.publish(self.device_id, data, self._kind)
        self.frames_sent += 1

    async def send_status(self, status: DeviceStatus) -> None:
        if not self._connected:
            raise TransportError(f"loopback link of {self.device_id} is down")
        self._last_status = status
        self.hub.publish(self.device_id, encode_message(status), MessageKind.STATUS)
        self.statuses_sent += 1
