"""What a virtual wearable needs from a link to the gateway.

A transport carries one device's :class:`~protocol.ble_frame.EcgFrame` objects
and status reports, encoding them as its medium requires: BLE frames for BLE
and loopback, samples payloads for MQTT. Devices and fault injectors talk to
this interface only, so a scenario runs unchanged over any medium.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType

from protocol.ble_frame import EcgFrame
from protocol.messages import DeviceStatus


class TransportError(Exception):
    """The link failed (not connected, broker gone, BLE link lost)."""


class DeviceTransport(ABC):
    """One device's uplink. Use as ``async with transport: await transport.send_frame(f)``."""

    #: Largest samples per lead the medium takes in one message (BLE: what fits 244 bytes).
    max_samples_per_message: int | None = None

    @property
    @abstractmethod
    def connected(self) -> bool:
        """True while frames can be sent."""

    @abstractmethod
    async def connect(self) -> None:
        """Open the link (advertise and wait for a central, connect to a broker, …)."""

    @abstractmethod
    async def disconnect(self) -> None:
        """Close the link; a later :meth:`connect` opens it again."""

    @abstractmethod
    async def send_frame(self, frame: EcgFrame) -> None:
        """Send one frame of samples. Raises :class:`TransportError` when not connected."""

    @abstractmethod
    async def send_status(self, status: DeviceStatus) -> None:
        """Send a status report (battery, lead-off, …)."""

    async def __aenter__(self) -> DeviceTransport:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.disconnect()
