"""The gateway's BLE interface: one central API, two implementations.

A :class:`BleCentralBackend` connects to wearables and returns one
:class:`BleLink` per connection::

    async with BumbleBackend("usb:0") as central:        # or BleakBackend("hci0")
        link = await central.connect("wearable-01", profile=BleProfile.ECGSTREAM)
        async for payload in link:                        # raw bytes, one per notification
            frame = protocol.decode_frame(payload)

Two implementations, because no single library covers both jobs:

* :class:`~edge.ble.bleak_backend.BleakBackend`: bleak, the operating system's
  Bluetooth stack (BlueZ, CoreBluetooth, WinRT). This is what a gateway runs on
  hardware. bleak has no emulator and cannot reach an emulated controller
  without BlueZ.
* :class:`~edge.ble.bumble_backend.BumbleBackend`: bumble, a Bluetooth host in
  Python that drives a controller itself, either a real adapter given as a
  bumble transport spec (``usb:0``, ``hci-socket:0``) or an emulated one handed
  in by the caller (tests and the simulator's in-process demo).

Profiles (:class:`~protocol.gatt.BleProfile`), set up by ``connect``:

``ECGSTREAM``
    subscribe to the ECG data characteristic (one :mod:`protocol.ble_frame`
    frame per notification), then write ``START_STREAM`` so a wearable paused
    by an earlier session resumes; :meth:`BleLink.set_time` sends the gateway
    clock with ``SET_TIME``.
``POLAR_H10``
    subscribe to the PMD control point's indications and to the PMD data
    characteristic, write :data:`~protocol.polar_pmd.START_ECG_COMMAND` and
    check the PMD response.

Iterating a link yields notifications in arrival order. When the peripheral or
the radio drops the link, iteration ends with :class:`BleDisconnected` after
every notification received before the drop has been yielded; after a local
:meth:`BleLink.disconnect` it simply stops. A consumer that falls
``queue_size`` notifications behind loses the newest ones, counted in
:attr:`BleLink.dropped`. Reconnecting is the caller's job (a link is one
connection); :class:`~edge.ble.manager.BleIngest` does it with backoff.
"""

from __future__ import annotations

import asyncio
import json
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Literal

from edge.errors import EdgeError
from protocol.gatt import (
    ATT_MTU,
    ECG_CONTROL_CHAR_UUID,
    ECG_DATA_CHAR_UUID,
    ECG_SERVICE_UUID,
    POLAR_PMD_CONTROL_CHAR_UUID,
    POLAR_PMD_DATA_CHAR_UUID,
    POLAR_PMD_SERVICE_UUID,
    BleProfile,
    ControlCommand,
)
from protocol.polar_pmd import START_ECG_COMMAND, STOP_ECG_COMMAND

__all__ = [
    "ATT_MTU",
    "GATT_PROFILES",
    "Backoff",
    "BleCentralBackend",
    "BleDisconnected",
    "BleError",
    "BleLink",
    "BleProfile",
    "GattProfile",
    "PayloadKind",
]

PayloadKind = Literal["frame", "pmd"]
"""What a notification carries: a :mod:`protocol.ble_frame` frame or a Polar PMD ECG frame."""

_PMD_RESPONSE = 0xF0
PMD_RESPONSE_TIMEOUT_S = 5.0


class BleError(EdgeError):
    """A BLE operation failed: device not found, connection refused, wrong profile, GATT error."""


class BleDisconnected(BleError):
    """The peripheral or the radio dropped the link.

    ``reason`` is the HCI error code where the backend knows it (bumble), None
    where it does not (bleak reports no reason)."""

    def __init__(self, address: str, reason: int | None) -> None:
        why = f"HCI reason 0x{reason:02X}" if reason is not None else "reason unknown"
        super().__init__(f"BLE link to {address} lost ({why})")
        self.address = address
        self.reason = reason


@dataclass(frozen=True)
class GattProfile:
    """Where a profile's stream lives in GATT and how it is started and stopped."""

    profile: BleProfile
    service_uuid: str
    data_uuid: str
    control_uuid: str
    start_command: bytes
    stop_command: bytes
    kind: PayloadKind
    control_responds: bool
    """The control point answers each command with an indication (Polar PMD)."""


GATT_PROFILES: dict[BleProfile, GattProfile] = {
    BleProfile.ECGSTREAM: GattProfile(
        BleProfile.ECGSTREAM, ECG_SERVICE_UUID, ECG_DATA_CHAR_UUID, ECG_CONTROL_CHAR_UUID,
        bytes([ControlCommand.START_STREAM]), bytes([ControlCommand.STOP_STREAM]), "frame", False,
    ),
    BleProfile.POLAR_H10: GattProfile(
        BleProfile.POLAR_H10, POLAR_PMD_SERVICE_UUID, POLAR_PMD_DATA_CHAR_UUID, POLAR_PMD_CONTROL_CHAR_UUID,
        START_ECG_COMMAND, STOP_ECG_COMMAND, "pmd", True,
    ),
}


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: attempt ``n`` (0-based) waits ``min(initial_s * factor**n, max_s)``,
    spread by ±``jitter`` (a fraction) so many gateways or devices do not retry in step."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < self.initial_s or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError(f"invalid backoff {self}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0 = the first retry)."""
        base = min(self.initial_s * self.factor ** min(attempt, 64), self.max_s)
        if self.jitter == 0:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return min(base * (1 + spread), self.max_s)

    def schedule(self, attempts: int) -> list[float]:
        """The first ``attempts`` delays without jitter (for logs and tests)."""
        return [min(self.initial_s * self.factor**n, self.max_s) for n in range(attempts)]


@dataclass(frozen=True)
class _LinkEnd:
    """Queue marker: the link is down; ``error`` None when we closed it ourselves."""

    error: BleDisconnected | None


class BleLink(ABC):
    """One connection to a wearable; iterate it for raw notification payloads.

    Backends implement the GATT operations (:meth:`_write_control`,
    :meth:`read_battery`, :meth:`_read_info`, :meth:`disconnect`, :attr:`mtu`)
    and call :meth:`_on_notification`, :meth:`_on_pmd_response` and
    :meth:`_on_link_down` from their callbacks; queueing, ordering, counting and
    the profile's commands are shared here."""

    def __init__(self, profile: BleProfile, address: str, queue_size: int) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.profile = profile
        self.gatt = GATT_PROFILES[profile]
        self.address = address
        self.received = 0
        """Notifications received from the data characteristic."""
        self.dropped = 0
        """Notifications dropped because the consumer was ``queue_size`` behind."""
        self.disconnect_reason: int | None = None
        """HCI reason of the drop (bumble); None while up, after a local close or where unknown (bleak)."""
        self._queue_size = queue_size
        self._queue: asyncio.Queue[bytes | _LinkEnd] = asyncio.Queue()
        self._pmd_responses: asyncio.Queue[bytes] = asyncio.Queue()
        self._closing = False
        self._up = True

    @property
    def kind(self) -> PayloadKind:
        """What each notification carries (``frame`` or ``pmd``)."""
        return self.gatt.kind

    @property
    def connected(self) -> bool:
        """True until the link goes down, for whatever reason."""
        return self._up

    @property
    @abstractmethod
    def mtu(self) -> int:
        """The negotiated ATT MTU (as the backend reports it)."""

    # -- control --------------------------------------------------------------------------

    async def start_stream(self) -> None:
        """Ask the wearable to stream (ecgstream ``START_STREAM``; Polar start-ECG command)."""
        await self._command(self.gatt.start_command)

    async def stop_stream(self) -> None:
        """Ask the wearable to pause its stream; the link stays up."""
        await self._command(self.gatt.stop_command)

    async def set_time(self, gateway_time_us: int) -> None:
        """Send the gateway's clock (µs) with ``SET_TIME`` (ecgstream only)."""
        self._require_profile(BleProfile.ECGSTREAM, "SET_TIME")
        await self._write_control(bytes([ControlCommand.SET_TIME]) + gateway_time_us.to_bytes(8, "little"))

    async def write_control(self, value: bytes) -> None:
        """Write raw bytes to the control characteristic (or PMD control point)."""
        await self._write_control(value)

    @abstractmethod
    async def read_battery(self) -> int:
        """The Battery service's level, 0-100."""

    async def read_info(self) -> dict[str, Any]:
        """The ecgstream info characteristic, parsed from JSON."""
        self._require_profile(BleProfile.ECGSTREAM, "the info characteristic")
        raw = await self._read_info()
        try:
            info = json.loads(raw)
        except ValueError as exc:
            raise BleError(f"{self.address} info characteristic is not JSON: {raw[:40]!r}") from exc
        if not isinstance(info, dict):
            raise BleError(f"{self.address} info characteristic is not a JSON object")
        return info

    @abstractmethod
    async def disconnect(self) -> None:
        """Close the link; iteration stops after the notifications already received."""

    @abstractmethod
    async def _write_control(self, value: bytes) -> None:
        """Write ``value`` with response to the profile's control characteristic."""

    @abstractmethod
    async def _read_info(self) -> bytes:
        """Raw value of the ecgstream info characteristic."""

    # -- notifications --------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if isinstance(item, bytes):
                yield item
                continue
            self._queue.put_nowait(item)  # every later iteration ends the same way
            if item.error is None:
                return
            raise item.error

    def _on_notification(self, value: bytes | bytearray) -> None:
        self.received += 1
        if self._queue.qsize() >= self._queue_size:
            self.dropped += 1
        else:
            self._queue.put_nowait(bytes(value))

    def _on_pmd_response(self, value: bytes | bytearray) -> None:
        self._pmd_responses.put_nowait(bytes(value))

    def _on_link_down(self, reason: int | None) -> None:
        """The link is gone (called once by the backend, whoever closed it)."""
        if not self._up:
            return
        self._up = False
        if self._closing:
            self._queue.put_nowait(_LinkEnd(None))
        else:
            self.disconnect_reason = reason
            self._queue.put_nowait(_LinkEnd(BleDisconnected(self.address, reason)))

    # -- helpers --------------------------------------------------------------------------

    async def _command(self, command: bytes) -> None:
        if not self.gatt.control_responds:
            await self._write_control(command)
            return
        while not self._pmd_responses.empty():  # stale responses from earlier commands
            self._pmd_responses.get_nowait()
        await self._write_control(command)
        try:
            response = await asyncio.wait_for(self._pmd_responses.get(), PMD_RESPONSE_TIMEOUT_S)
        except TimeoutError:
            raise BleError(f"{self.address} sent no PMD response to {command.hex()}") from None
        if len(response) < 4 or response[0] != _PMD_RESPONSE or response[1] != command[0]:
            raise BleError(f"{self.address} sent a malformed PMD response {response.hex()}")
        if response[3] != 0:
            raise BleError(f"{self.address} refused PMD command {command.hex()} (status {response[3]})")

    def _require_profile(self, profile: BleProfile, what: str) -> None:
        if self.profile is not profile:
            raise BleError(f"{what} needs the {profile} profile; {self.address} is {self.profile}")


class BleCentralBackend(ABC):
    """A BLE central that connects to wearables; one per adapter, any number of links."""

    name: ClassVar[str]
    """``bleak`` or ``bumble``."""

    @abstractmethod
    async def open(self) -> None:
        """Get the adapter ready (:meth:`connect` does this when needed)."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect every link and release the adapter."""

    @abstractmethod
    async def connect(
        self,
        target: str,
        *,
        profile: BleProfile = BleProfile.ECGSTREAM,
        timeout: float = 10.0,
        min_mtu: int | None = None,
        queue_size: int = 4096,
    ) -> BleLink:
        """Find ``target`` (a BLE address, or an advertised name), connect, set the
        profile up (subscribe, start) and return the link.

        Raises :class:`BleError` when the device is not found within ``timeout``
        s, refuses the connection, lacks the profile's service or offers an ATT
        MTU below ``min_mtu``.
        """

    async def __aenter__(self) -> BleCentralBackend:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
