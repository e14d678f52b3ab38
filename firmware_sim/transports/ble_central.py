"""The receiving side of a BLE link: a bumble GATT central that yields raw notifications.

:class:`BleCentral` owns one bumble device (an emulated controller on an
:class:`~firmware_sim.transports.ble_emulated.EmulatedLink`, or a real adapter
given by a bumble transport spec) and connects to any number of wearables, one
:class:`BleLink` each::

    async with BleCentral(link) as central:
        ble = await central.connect("wearable-01")          # advertised name or address
        async for payload in ble:                            # raw bytes, one per notification
            frame = protocol.decode_frame(payload)

Connecting negotiates ATT MTU 247, discovers the profile's service (the
ecgstream ECG service, or the Polar PMD service, to which it writes
:data:`~protocol.polar_pmd.START_ECG_COMMAND` and checks the PMD response) and
subscribes to its data notifications. Decoding belongs to the caller. When the
peripheral or the radio drops the link, iteration ends with
:class:`BleDisconnected` after every notification received before it has been
yielded; after a local :meth:`BleLink.disconnect` it simply stops. A consumer
that falls ``queue_size`` notifications behind loses the newest ones, counted
in :attr:`BleLink.dropped`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from bumble import att
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Connection, Peer
from bumble.gatt_client import CharacteristicProxy, ServiceProxy
from bumble.hci import Address
from bumble.profiles.battery_service import BatteryServiceProxy

from firmware_sim.transports.base import TransportError
from firmware_sim.transports.ble_emulated import ATT_MTU, BleProfile, BleStack, HciSpec, open_ble_stack
from protocol.gatt import (
    ECG_CONTROL_CHAR_UUID,
    ECG_DATA_CHAR_UUID,
    ECG_INFO_CHAR_UUID,
    ECG_SERVICE_UUID,
    POLAR_PMD_CONTROL_CHAR_UUID,
    POLAR_PMD_DATA_CHAR_UUID,
    POLAR_PMD_SERVICE_UUID,
    ControlCommand,
)
from protocol.polar_pmd import START_ECG_COMMAND, STOP_ECG_COMMAND

_T = TypeVar("_T")
_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}(/P)?$")
_PMD_RESPONSE = 0xF0
_PMD_RESPONSE_TIMEOUT_S = 5.0


class BleDisconnected(TransportError):
    """The peripheral or the radio dropped the link (``reason``: HCI error code)."""

    def __init__(self, address: str, reason: int) -> None:
        super().__init__(f"BLE link to {address} lost (HCI reason 0x{reason:02X})")
        self.address = address
        self.reason = reason


@dataclass(frozen=True)
class _LinkEnd:
    """Queue marker: the link is down; ``reason`` None when we closed it ourselves."""

    reason: int | None


class BleLink:
    """One connection to a wearable; iterate it for raw notification payloads."""

    def __init__(self, connection: Connection, profile: BleProfile, queue_size: int) -> None:
        self.profile = profile
        self.address = connection.peer_address.to_string(with_type_qualifier=False)
        self.received = 0
        """Notifications received from the data characteristic."""
        self.dropped = 0
        """Notifications dropped because the consumer was ``queue_size`` behind."""
        self.disconnect_reason: int | None = None
        self._connection = connection
        self._peer = Peer(connection)
        self._queue_size = queue_size
        self._queue: asyncio.Queue[bytes | _LinkEnd] = asyncio.Queue()
        self._pmd_responses: asyncio.Queue[bytes] = asyncio.Queue()
        self._closing = False
        self._up = True
        self._control: CharacteristicProxy[bytes] | None = None
        self._info: CharacteristicProxy[bytes] | None = None
        self._battery: BatteryServiceProxy | None = None
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)

    @property
    def connected(self) -> bool:
        """True until the link goes down, for whatever reason."""
        return self._up

    @property
    def mtu(self) -> int:
        """The negotiated ATT MTU."""
        return self._connection.att_mtu

    async def _setup(self, mtu: int, min_mtu: int) -> None:
        """Exchange MTU, discover the profile's services, subscribe, start a Polar stream."""
        mtu = await self._peer.request_mtu(mtu)
        if mtu < min_mtu:
            raise TransportError(f"{self.address} negotiated ATT MTU {mtu}, below the {min_mtu} this link needs")
        self._battery = await self._peer.discover_service_and_create_proxy(BatteryServiceProxy)
        if self.profile is BleProfile.POLAR_H10:
            service = await self._discover(POLAR_PMD_SERVICE_UUID)
            self._control = service.get_required_characteristic_by_uuid(UUID(POLAR_PMD_CONTROL_CHAR_UUID))
            await self._control.subscribe(self._pmd_responses.put_nowait, prefer_notify=False)
            await service.get_required_characteristic_by_uuid(UUID(POLAR_PMD_DATA_CHAR_UUID)).subscribe(
                self._on_notification
            )
            await self.start_stream()
        else:
            service = await self._discover(ECG_SERVICE_UUID)
            self._control = service.get_required_characteristic_by_uuid(UUID(ECG_CONTROL_CHAR_UUID))
            self._info = service.get_required_characteristic_by_uuid(UUID(ECG_INFO_CHAR_UUID))
            await service.get_required_characteristic_by_uuid(UUID(ECG_DATA_CHAR_UUID)).subscribe(
                self._on_notification
            )

    # -- control --------------------------------------------------------------------------

    async def start_stream(self) -> None:
        """Ask the wearable to stream (ecgstream ``START_STREAM``; Polar start-ECG command)."""
        if self.profile is BleProfile.POLAR_H10:
            await self._pmd_command(START_ECG_COMMAND)
        else:
            await self._write_control(bytes([ControlCommand.START_STREAM]))

    async def stop_stream(self) -> None:
        """Ask the wearable to pause its stream; the link stays up."""
        if self.profile is BleProfile.POLAR_H10:
            await self._pmd_command(STOP_ECG_COMMAND)
        else:
            await self._write_control(bytes([ControlCommand.STOP_STREAM]))

    async def set_time(self, gateway_time_us: int) -> None:
        """Send the gateway's clock (µs) with ``SET_TIME`` (ecgstream only)."""
        self._require_profile(BleProfile.ECGSTREAM, "SET_TIME")
        await self._write_control(bytes([ControlCommand.SET_TIME]) + gateway_time_us.to_bytes(8, "little"))

    async def write_control(self, value: bytes) -> None:
        """Write raw bytes to the control characteristic (or PMD control point)."""
        await self._write_control(value)

    async def read_battery(self) -> int:
        """The Battery service's level, 0-100."""
        if self._battery is None:
            raise TransportError(f"{self.address} has no Battery service")
        return int(await self._gatt(self._battery.battery_level.read_value()))

    async def read_info(self) -> dict[str, Any]:
        """The ecgstream info characteristic, parsed from JSON."""
        self._require_profile(BleProfile.ECGSTREAM, "the info characteristic")
        assert self._info is not None
        raw = await self._gatt(self._info.read_value())
        try:
            info = json.loads(raw)
        except ValueError as exc:
            raise TransportError(f"{self.address} info characteristic is not JSON: {raw[:40]!r}") from exc
        if not isinstance(info, dict):
            raise TransportError(f"{self.address} info characteristic is not a JSON object")
        return info

    async def disconnect(self) -> None:
        """Close the link; iteration stops after the notifications already received."""
        if not self._up:
            return
        self._closing = True
        try:
            await self._connection.disconnect()
        except Exception as exc:  # the link may have dropped concurrently
            if self._up:
                raise TransportError(f"cannot disconnect from {self.address}: {exc}") from exc

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
            if item.reason is None:
                return
            raise BleDisconnected(self.address, item.reason)

    def _on_notification(self, value: bytes) -> None:
        self.received += 1
        if self._queue.qsize() >= self._queue_size:
            self.dropped += 1
        else:
            self._queue.put_nowait(bytes(value))

    def _on_disconnection(self, reason: int) -> None:
        self._up = False
        self.disconnect_reason = reason
        self._queue.put_nowait(_LinkEnd(None if self._closing else reason))

    # -- helpers --------------------------------------------------------------------------

    async def _discover(self, uuid: str) -> ServiceProxy:
        services = await self._peer.discover_service(UUID(uuid))
        if not services:
            raise TransportError(f"{self.address} does not expose service {uuid} (wrong profile?)")
        await services[0].discover_characteristics()
        return services[0]

    async def _write_control(self, value: bytes) -> None:
        if self._control is None:
            raise TransportError(f"link to {self.address} is not set up")
        await self._gatt(self._control.write_value(value, with_response=True))

    async def _pmd_command(self, command: bytes) -> None:
        while not self._pmd_responses.empty():  # stale responses from earlier commands
            self._pmd_responses.get_nowait()
        await self._write_control(command)
        try:
            response = await asyncio.wait_for(self._pmd_responses.get(), _PMD_RESPONSE_TIMEOUT_S)
        except TimeoutError:
            raise TransportError(f"{self.address} sent no PMD response to {command.hex()}") from None
        if len(response) < 4 or response[0] != _PMD_RESPONSE or response[1] != command[0]:
            raise TransportError(f"{self.address} sent a malformed PMD response {response.hex()}")
        if response[3] != 0:
            raise TransportError(f"{self.address} refused PMD command {command.hex()} (status {response[3]})")

    async def _gatt(self, operation: Awaitable[_T]) -> _T:
        """Await a GATT operation, reporting ATT errors and a lost link as TransportError."""
        if not self._up:
            if asyncio.iscoroutine(operation):
                operation.close()
            raise TransportError(f"BLE link to {self.address} is down")
        try:
            return await operation
        except att.ATT_Error as exc:
            raise TransportError(f"{self.address} refused the request: {exc.error_name}") from exc
        except asyncio.CancelledError:  # bumble cancels pending requests when the link drops
            if not self._up:
                raise TransportError(f"BLE link to {self.address} went down during a request") from None
            raise

    def _require_profile(self, profile: BleProfile, what: str) -> None:
        if self.profile is not profile:
            raise TransportError(f"{what} needs the {profile} profile; {self.address} is {self.profile}")


class BleCentral:
    """A bumble GATT central that connects to wearables (see the module docstring)."""

    def __init__(self, hci: HciSpec, *, name: str = "ecgstream-gateway", address: str | None = None) -> None:
        self._hci = hci
        self._name = name
        self._address = address
        self._stack: BleStack | None = None
        self._connect_lock = asyncio.Lock()
        self.links: list[BleLink] = []
        """Links opened by :meth:`connect` that are still up."""

    async def open(self) -> None:
        """Power on the central's controller (:meth:`connect` does this when needed)."""
        if self._stack is None:
            self._stack = await open_ble_stack(self._hci, self._name, self._address)

    async def close(self) -> None:
        """Disconnect every link and release the controller."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        try:
            for link in list(self.links):
                await link.disconnect()
        finally:
            await stack.close()

    async def __aenter__(self) -> BleCentral:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(
        self,
        target: str,
        *,
        profile: BleProfile = BleProfile.ECGSTREAM,
        timeout: float = 10.0,
        mtu: int = ATT_MTU,
        min_mtu: int | None = None,
        queue_size: int = 4096,
    ) -> BleLink:
        """Connect to ``target`` (``XX:XX:XX:XX:XX:XX`` random, ``…/P`` public, or an
        advertised name), set the link up and return it, subscribed.

        ``mtu`` is the ATT MTU requested, ``min_mtu`` (default ``mtu``) the smallest
        accepted: a real Polar H10 offers 232, so pass ``min_mtu=232`` for one.
        Raises :class:`TransportError` when the device is not found within
        ``timeout`` s, refuses the connection or lacks the profile's service.
        """
        await self.open()
        assert self._stack is not None
        device = self._stack.device
        async with self._connect_lock:  # bumble allows one pending LE connection at a time
            address = await self._resolve(target, timeout)
            try:
                connection = await device.connect(address, timeout=timeout)
            except Exception as exc:
                raise TransportError(f"cannot connect to {target!r}: {exc}") from exc
        link = BleLink(connection, profile, queue_size)
        try:
            await link._setup(mtu, mtu if min_mtu is None else min_mtu)
        except BaseException as exc:
            await link.disconnect()
            if isinstance(exc, TransportError | asyncio.CancelledError):
                raise
            raise TransportError(f"cannot set up BLE link to {target!r}: {exc}") from exc
        self.links.append(link)
        connection.on(connection.EVENT_DISCONNECTION, self._forget(link))
        return link

    async def _resolve(self, target: str, timeout: float) -> Address:
        if _ADDRESS.match(target):
            return Address(target)
        try:
            return await asyncio.wait_for(self._find_by_name(target), timeout)
        except TimeoutError:
            raise TransportError(f"no BLE device named {target!r} advertised within {timeout} s") from None

    async def _find_by_name(self, name: str) -> Address:
        """Scan until a device advertises ``name`` as its local name."""
        assert self._stack is not None
        device = self._stack.device
        found: asyncio.Future[Address] = asyncio.get_running_loop().create_future()

        def on_advertisement(advertisement: Advertisement) -> None:
            data = advertisement.data
            advertised = data.get(AdvertisingData.Type.COMPLETE_LOCAL_NAME) or data.get(
                AdvertisingData.Type.SHORTENED_LOCAL_NAME
            )
            if advertised == name and not found.done():
                found.set_result(advertisement.address)

        device.on(device.EVENT_ADVERTISEMENT, on_advertisement)
        try:
            await device.start_scanning(filter_duplicates=True)
            return await found
        finally:
            device.remove_listener(device.EVENT_ADVERTISEMENT, on_advertisement)
            await device.stop_scanning()

    def _forget(self, link: BleLink) -> Callable[[int], None]:
        def on_disconnection(_reason: int) -> None:
            if link in self.links:
                self.links.remove(link)

        return on_disconnection
