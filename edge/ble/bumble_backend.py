"""The bumble implementation of :class:`~edge.ble.link.BleCentralBackend`.

bumble is a Bluetooth host written in Python: it drives a controller over HCI
itself, with no operating-system stack in between. :class:`BumbleBackend` owns
one bumble device and connects to any number of wearables, one
:class:`BumbleLink` each. Where its controller is:

* a bumble transport spec it opens itself: ``"usb:0"`` (first USB dongle, needs
  access to the USB device and no kernel driver bound to it), ``"hci-socket:0"``
  (Linux ``hci0``, needs ``CAP_NET_ADMIN`` and the adapter down in BlueZ),
  ``"tcp-client:127.0.0.1:9000"`` (a remote HCI); see
  https://google.github.io/bumble/transports/;
* or a ready stack from the caller (``stack_opener``): any object with a
  powered-on ``device`` (:class:`bumble.device.Device`) and an async
  ``close()``. Tests and the simulator's demo pass an emulated controller this
  way (:func:`firmware_sim.transports.ble_emulated.open_ble_stack` on an
  ``EmulatedLink``), which keeps ``edge`` free of ``firmware_sim``.

Connecting negotiates ATT MTU 247 (by default refusing less), discovers the
profile's service and subscribes (see :mod:`edge.ble.link` for the profiles).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from bumble import att
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy, ServiceProxy
from bumble.hci import Address
from bumble.profiles.battery_service import BatteryServiceProxy
from bumble.transport import open_transport
from bumble.transport.common import Transport

from edge.ble.link import ATT_MTU, BleCentralBackend, BleError, BleLink, BleProfile
from protocol.gatt import ECG_INFO_CHAR_UUID

_T = TypeVar("_T")
_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}(/P)?$")


class BumbleStack(Protocol):
    """A powered-on bumble device and whatever must be released with it."""

    @property
    def device(self) -> Device: ...

    async def close(self) -> None: ...


StackOpener = Callable[[], Awaitable[BumbleStack]]
"""Makes the central's powered-on stack (called once, by :meth:`BumbleBackend.open`)."""


def gateway_address(name: str) -> str:
    """A random static address derived from ``name``, stable across restarts."""
    digest = bytearray(hashlib.sha256(name.encode()).digest()[:6])
    digest[0] |= 0xC0  # the two top bits of a random static address are 0b11
    return ":".join(f"{b:02X}" for b in digest)


@dataclass
class _TransportStack:
    device: Device
    transport: Transport

    async def close(self) -> None:
        try:
            await self.device.power_off()
        finally:
            await self.transport.close()


async def open_transport_stack(spec: str, name: str, address: str | None = None) -> BumbleStack:
    """Open the bumble transport ``spec`` and power on a device named ``name`` on it."""
    try:
        transport = await open_transport(spec)
    except Exception as exc:  # bumble raises many kinds (USB, OS, spec errors)
        raise BleError(f"cannot open HCI transport {spec!r}: {exc}") from exc
    device = Device.with_hci(name, Address(address or gateway_address(name)), transport.source, transport.sink)
    stack = _TransportStack(device, transport)
    try:
        await device.power_on()
    except Exception as exc:
        await stack.close()
        raise BleError(f"cannot power on BLE controller on {spec!r}: {exc}") from exc
    return stack


class BumbleLink(BleLink):
    """One bumble connection to a wearable (see :class:`~edge.ble.link.BleLink`)."""

    def __init__(self, connection: Connection, profile: BleProfile, queue_size: int) -> None:
        super().__init__(profile, connection.peer_address.to_string(with_type_qualifier=False), queue_size)
        self._connection = connection
        self._peer = Peer(connection)
        self._control: CharacteristicProxy[bytes] | None = None
        self._info: CharacteristicProxy[bytes] | None = None
        self._battery: BatteryServiceProxy | None = None
        connection.on(connection.EVENT_DISCONNECTION, self._on_link_down)

    @property
    def mtu(self) -> int:
        return self._connection.att_mtu

    async def _setup(self, mtu: int, min_mtu: int) -> None:
        """Exchange MTU, discover the profile's services, subscribe, start the stream."""
        mtu = await self._peer.request_mtu(mtu)
        if mtu < min_mtu:
            raise BleError(f"{self.address} negotiated ATT MTU {mtu}, below the {min_mtu} this link needs")
        self._battery = await self._peer.discover_service_and_create_proxy(BatteryServiceProxy)
        service = await self._discover(self.gatt.service_uuid)
        self._control = service.get_required_characteristic_by_uuid(UUID(self.gatt.control_uuid))
        if self.gatt.control_responds:
            await self._control.subscribe(self._on_pmd_response, prefer_notify=False)
        if self.profile is BleProfile.ECGSTREAM:
            self._info = service.get_required_characteristic_by_uuid(UUID(ECG_INFO_CHAR_UUID))
        data = service.get_required_characteristic_by_uuid(UUID(self.gatt.data_uuid))
        await data.subscribe(self._on_notification)
        await self.start_stream()

    async def read_battery(self) -> int:
        if self._battery is None:
            raise BleError(f"{self.address} has no Battery service")
        return int(await self._gatt(self._battery.battery_level.read_value()))

    async def _read_info(self) -> bytes:
        assert self._info is not None
        return bytes(await self._gatt(self._info.read_value()))

    async def disconnect(self) -> None:
        if not self._up:
            return
        self._closing = True
        try:
            await self._connection.disconnect()
        except Exception as exc:  # the link may have dropped concurrently
            if self._up:
                raise BleError(f"cannot disconnect from {self.address}: {exc}") from exc

    async def _write_control(self, value: bytes) -> None:
        if self._control is None:
            raise BleError(f"link to {self.address} is not set up")
        await self._gatt(self._control.write_value(value, with_response=True))

    async def _discover(self, uuid: str) -> ServiceProxy:
        services = await self._peer.discover_service(UUID(uuid))
        if not services:
            raise BleError(f"{self.address} does not expose service {uuid} (wrong profile?)")
        await services[0].discover_characteristics()
        return services[0]

    async def _gatt(self, operation: Awaitable[_T]) -> _T:
        """Await a GATT operation, reporting ATT errors and a lost link as BleError."""
        if not self._up:
            if asyncio.iscoroutine(operation):
                operation.close()
            raise BleError(f"BLE link to {self.address} is down")
        try:
            return await operation
        except att.ATT_Error as exc:
            raise BleError(f"{self.address} refused the request: {exc.error_name}") from exc
        except asyncio.CancelledError:  # bumble cancels pending requests when the link drops
            if not self._up:
                raise BleError(f"BLE link to {self.address} went down during a request") from None
            raise


class BumbleBackend(BleCentralBackend):
    """A bumble GATT central (see the module docstring).

    Give exactly one of ``hci`` (a bumble transport spec, opened here) and
    ``stack_opener`` (makes a ready stack, e.g. on an emulated link).
    """

    name = "bumble"

    def __init__(
        self,
        hci: str | None = None,
        *,
        stack_opener: StackOpener | None = None,
        device_name: str = "ecgstream-gateway",
        address: str | None = None,
    ) -> None:
        if (hci is None) == (stack_opener is None):
            raise ValueError("give the bumble backend exactly one of a transport spec (hci) or a stack_opener")
        self.hci = hci
        self._opener: StackOpener = stack_opener or (lambda: open_transport_stack(str(hci), device_name, address))
        self._stack: BumbleStack | None = None
        self._connect_lock = asyncio.Lock()
        self._open_lock = asyncio.Lock()
        self._scan_lock = asyncio.Lock()
        self._wanted: dict[str, list[asyncio.Future[Address]]] = {}
        self._listening = False
        self.links: list[BumbleLink] = []
        """Links opened by :meth:`connect` that are still up."""

    async def open(self) -> None:
        async with self._open_lock:  # devices connecting at once share one stack
            if self._stack is not None:
                return
            try:
                self._stack = await self._opener()
            except BleError:
                raise
            except Exception as exc:  # the caller's opener reports in its own terms
                raise BleError(f"cannot open the BLE central's controller: {exc}") from exc

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        for waiters in self._wanted.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(BleError("the BLE central was closed"))
        self._wanted.clear()
        self._listening = False
        try:
            for link in list(self.links):
                await link.disconnect()
        finally:
            await stack.close()

    async def connect(
        self,
        target: str,
        *,
        profile: BleProfile = BleProfile.ECGSTREAM,
        timeout: float = 10.0,
        min_mtu: int | None = None,
        queue_size: int = 4096,
        mtu: int = ATT_MTU,
    ) -> BumbleLink:
        """As :meth:`BleCentralBackend.connect`; ``target`` is ``XX:XX:XX:XX:XX:XX``
        (random address), ``…/P`` (public) or an advertised name. ``mtu`` is the
        ATT MTU requested, ``min_mtu`` (default ``mtu``) the smallest accepted: a
        real Polar H10 offers 232, so pass ``min_mtu=232`` for one."""
        await self.open()
        assert self._stack is not None
        device = self._stack.device
        address = await self._resolve(target, timeout)
        async with self._connect_lock:  # bumble allows one pending LE connection at a time
            try:
                connection = await device.connect(address, timeout=timeout)
            except Exception as exc:
                raise BleError(f"cannot connect to {target!r}: {exc}") from exc
        link = BumbleLink(connection, profile, queue_size)
        try:
            await link._setup(mtu, mtu if min_mtu is None else min_mtu)
        except BaseException as exc:
            await link.disconnect()
            if isinstance(exc, BleError | asyncio.CancelledError):
                raise
            raise BleError(f"cannot set up BLE link to {target!r}: {exc}") from exc
        self.links.append(link)
        connection.on(connection.EVENT_DISCONNECTION, self._forget(link))
        return link

    async def _resolve(self, target: str, timeout: float) -> Address:
        if _ADDRESS.match(target):
            return Address(target)
        return await self._find_by_name(target, timeout)

    async def _find_by_name(self, name: str, timeout: float) -> Address:
        """Wait until a device advertises ``name`` as its local name. One scan serves
        every device being looked for; it stops when nobody is looking any more."""
        found: asyncio.Future[Address] = asyncio.get_running_loop().create_future()
        self._wanted.setdefault(name, []).append(found)
        try:
            await self._update_scanning()
            return await asyncio.wait_for(asyncio.shield(found), timeout)
        except TimeoutError:
            raise BleError(f"no BLE device named {name!r} advertised within {timeout} s") from None
        finally:
            waiting = self._wanted.get(name, [])
            if found in waiting:
                waiting.remove(found)
                if not waiting:
                    del self._wanted[name]
            await self._update_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = advertisement.data
        advertised = data.get(AdvertisingData.Type.COMPLETE_LOCAL_NAME) or data.get(
            AdvertisingData.Type.SHORTENED_LOCAL_NAME
        )
        if not isinstance(advertised, str):
            return
        for waiter in self._wanted.pop(advertised, []):
            if not waiter.done():
                waiter.set_result(advertisement.address)

    async def _update_scanning(self) -> None:
        """Scan while someone waits for a name; not otherwise."""
        async with self._scan_lock:
            if self._stack is None:
                return
            device = self._stack.device
            if self._wanted and not device.is_scanning:
                if not self._listening:
                    device.on(device.EVENT_ADVERTISEMENT, self._on_advertisement)
                    self._listening = True
                await device.start_scanning(filter_duplicates=False)
            elif not self._wanted and device.is_scanning:
                await device.stop_scanning()

    def _forget(self, link: BumbleLink) -> Callable[[int], None]:
        def on_disconnection(_reason: int) -> None:
            if link in self.links:
                self.links.remove(link)

        return on_disconnection
