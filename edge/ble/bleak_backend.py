"""The bleak implementation of :class:`~edge.ble.link.BleCentralBackend`, for hardware.

bleak talks to the operating system's Bluetooth stack (BlueZ over D-Bus on
Linux, CoreBluetooth on macOS, WinRT on Windows), so it is what a gateway runs
next to real wearables. It has no emulator: tests drive this module through
fake client and scanner *classes* (see ``tests/edge/test_ble_bleak.py``); the
same GATT logic runs for real on bumble's emulated link in
:mod:`edge.ble.bumble_backend`.

:meth:`BleakBackend.connect`:

1. finds the device: ``BleakScanner.find_device_by_address`` for a BLE address
   (or a CoreBluetooth UUID), ``find_device_by_name`` otherwise;
2. connects, retrying up to ``connect_attempts`` times with exponential
   backoff (:class:`~edge.ble.link.Backoff`), scanning again before each retry
   because BlueZ forgets devices that stop advertising; every failed attempt is
   counted in :attr:`BleakBackend.failed_attempts`;
3. sets the profile up: ``start_notify`` on the data characteristic (and, for a
   Polar H10, on the PMD control point for its responses), then the start
   command (ecgstream ``START_STREAM``; PMD start-ECG, response checked).

bleak's ``disconnected_callback`` ends the link's iteration with
:class:`~edge.ble.link.BleDisconnected` (bleak gives no HCI reason), and
:class:`~edge.ble.manager.BleIngest` reconnects and re-subscribes with backoff.
Several devices connect at once, one task each; the backend keeps no shared
connection state beyond the list of live links.

Not verified against hardware in this repository: BlueZ reports ATT MTU 23
unless the MTU is acquired, so :attr:`BleakLink.mtu` is best effort and
``min_mtu`` is only enforced when given.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from edge.ble.link import GATT_PROFILES, Backoff, BleCentralBackend, BleError, BleLink, BleProfile
from protocol.gatt import BATTERY_LEVEL_CHAR_UUID, BATTERY_SERVICE_UUID, ECG_INFO_CHAR_UUID

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_ADDRESS = re.compile(r"^([0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12})$")
"""A BLE address, or the UUID CoreBluetooth uses in its place."""


CONNECT_BACKOFF = Backoff(initial_s=0.5, factor=2.0, max_s=8.0)
"""Waits between the attempts of one :meth:`BleakBackend.connect`."""


def is_address(target: str) -> bool:
    """True when ``target`` is a BLE address or CoreBluetooth UUID, False for a name."""
    return bool(_ADDRESS.match(target))


class BleakLink(BleLink):
    """One bleak connection to a wearable (see :class:`~edge.ble.link.BleLink`)."""

    def __init__(self, profile: BleProfile, address: str, queue_size: int) -> None:
        super().__init__(profile, address, queue_size)
        self.client: Any = None
        """The connected ``BleakClient`` (set by the backend)."""
        self._on_close: Callable[[BleakLink], None] | None = None

    @property
    def mtu(self) -> int:
        try:
            return int(self.client.mtu_size)
        except Exception:  # not connected, or a backend that cannot tell
            return 23

    def _on_client_disconnected(self, _client: object) -> None:
        """bleak's ``disconnected_callback``: the link is gone (reason unknown)."""
        self._on_link_down(None)
        if self._on_close is not None:
            self._on_close(self)

    async def _setup(self, min_mtu: int | None) -> None:
        client = self.client
        services = client.services
        if services.get_service(self.gatt.service_uuid) is None:
            raise BleError(f"{self.address} does not expose service {self.gatt.service_uuid} (wrong profile?)")
        for uuid in (self.gatt.data_uuid, self.gatt.control_uuid):
            if services.get_characteristic(uuid) is None:
                raise BleError(f"{self.address} lacks characteristic {uuid} of the {self.profile} profile")
        await _acquire_mtu(client)
        if min_mtu is not None and self.mtu < min_mtu:
            raise BleError(f"{self.address} negotiated ATT MTU {self.mtu}, below the {min_mtu} this link needs")
        if self.gatt.control_responds:
            await self._gatt(client.start_notify(self.gatt.control_uuid, lambda _c, data: self._on_pmd_response(data)))
        await self._gatt(client.start_notify(self.gatt.data_uuid, lambda _c, data: self._on_notification(data)))
        await self.start_stream()

    async def read_battery(self) -> int:
        if self.client.services.get_characteristic(BATTERY_LEVEL_CHAR_UUID) is None:
            raise BleError(f"{self.address} has no Battery service")
        value = await self._gatt(self.client.read_gatt_char(BATTERY_LEVEL_CHAR_UUID))
        if len(value) != 1:
            raise BleError(f"{self.address} battery level is {len(value)} bytes, not 1")
        return int(value[0])

    async def _read_info(self) -> bytes:
        return bytes(await self._gatt(self.client.read_gatt_char(ECG_INFO_CHAR_UUID)))

    async def disconnect(self) -> None:
        if not self._up:
            return
        self._closing = True
        try:
            await self.client.disconnect()
        except Exception as exc:
            if self._up:
                raise BleError(f"cannot disconnect from {self.address}: {exc}") from exc
        # bleak calls disconnected_callback for a local disconnect too, but not on every
        # platform before disconnect() returns: end the link here as well (idempotent).
        self._on_client_disconnected(self.client)

    async def _write_control(self, value: bytes) -> None:
        await self._gatt(self.client.write_gatt_char(self.gatt.control_uuid, value, response=True))

    async def _gatt(self, operation: Awaitable[_T]) -> _T:
        """Await a bleak GATT operation, reporting its failure as BleError."""
        if not self._up:
            if asyncio.iscoroutine(operation):
                operation.close()
            raise BleError(f"BLE link to {self.address} is down")
        try:
            return await operation
        except BleError:
            raise
        except Exception as exc:  # BleakError, EOFError/DBusError from BlueZ, OSError
            if not self._up:
                raise BleError(f"BLE link to {self.address} went down during a request") from exc
            raise BleError(f"{self.address}: GATT request failed: {exc}") from exc


async def _acquire_mtu(client: Any) -> None:
    """BlueZ reports MTU 23 until asked; bleak's own example asks through a private hook."""
    acquire = getattr(getattr(client, "_backend", None), "_acquire_mtu", None)
    if acquire is None:
        return
    try:
        await acquire()
    except Exception as exc:  # best effort: the link works with whatever MTU BlueZ chose
        logger.debug("could not acquire ATT MTU: %s", exc)


def _default_classes() -> tuple[Any, Any]:
    try:
        from bleak import BleakClient, BleakScanner
    except ImportError as exc:  # pragma: no cover - bleak is in the edge extra
        raise BleError("the bleak backend needs bleak: pip install 'ecgstream[edge]'") from exc
    return BleakClient, BleakScanner


class BleakBackend(BleCentralBackend):
    """A bleak GATT central on one adapter (see the module docstring).

    ``adapter`` is BlueZ's adapter name (``hci0``; None: the system default).
    ``client_class`` and ``scanner_class`` default to bleak's ``BleakClient`` and
    ``BleakScanner``; tests pass fakes with the same methods, because bleak has
    no emulator. ``sleep`` is what waits between attempts.
    """

    name = "bleak"

    def __init__(
        self,
        adapter: str | None = None,
        *,
        connect_attempts: int = 3,
        backoff: Backoff = CONNECT_BACKOFF,
        client_class: Any = None,
        scanner_class: Any = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if connect_attempts < 1:
            raise ValueError("connect_attempts must be at least 1")
        self.adapter = adapter
        self.connect_attempts = connect_attempts
        self.backoff = backoff
        self._client_class = client_class
        self._scanner_class = scanner_class
        self._sleep = sleep
        self.failed_attempts = 0
        """Connection attempts that failed (each retry counts), over this backend's life."""
        self.links: list[BleakLink] = []
        """Links opened by :meth:`connect` that are still up."""

    def _classes(self) -> tuple[Any, Any]:
        if self._client_class is None or self._scanner_class is None:
            client, scanner = _default_classes()
            self._client_class = self._client_class or client
            self._scanner_class = self._scanner_class or scanner
        return self._client_class, self._scanner_class

    def _bluez(self) -> dict[str, Any]:
        return {"bluez": {"adapter": self.adapter}} if self.adapter else {}

    async def open(self) -> None:
        self._classes()  # fail early when bleak is missing; the OS stack needs no opening

    async def close(self) -> None:
        for link in list(self.links):
            try:
                await link.disconnect()
            except BleError as exc:
                logger.warning("closing %s: %s", link.address, exc)
        self.links.clear()

    async def find(self, target: str, timeout: float) -> Any:
        """Scan for ``target`` (address or advertised name); a ``BLEDevice`` or :class:`BleError`."""
        _, scanner = self._classes()
        try:
            if is_address(target):
                device = await scanner.find_device_by_address(target, timeout=timeout, **self._bluez())
            else:
                device = await scanner.find_device_by_name(target, timeout=timeout, **self._bluez())
        except BleError:
            raise
        except Exception as exc:  # adapter off, BlueZ not running, permissions
            raise BleError(f"cannot scan for {target!r}: {exc}") from exc
        if device is None:
            raise BleError(f"no BLE device {target!r} advertised within {timeout} s")
        return device

    async def connect(
        self,
        target: str,
        *,
        profile: BleProfile = BleProfile.ECGSTREAM,
        timeout: float = 10.0,
        min_mtu: int | None = None,
        queue_size: int = 4096,
    ) -> BleakLink:
        client_class, _ = self._classes()
        last: BleError | None = None
        for attempt in range(self.connect_attempts):
            if attempt:
                await self._sleep(self.backoff.delay(attempt - 1))
            try:
                device = await self.find(target, timeout)
                link = BleakLink(profile, str(getattr(device, "address", target)), queue_size)
                link.client = client_class(
                    device,
                    disconnected_callback=link._on_client_disconnected,
                    services=[profile_service(profile), BATTERY_SERVICE_UUID],
                    timeout=timeout,
                    **self._bluez(),
                )
                await link._gatt(link.client.connect())
            except Exception as exc:  # BleError from find/_gatt; BleakError etc. from the constructor
                last = exc if isinstance(exc, BleError) else BleError(f"cannot connect to {target!r}: {exc}")
                self.failed_attempts += 1
                logger.info("BLE connect to %r failed (attempt %d/%d): %s", target, attempt + 1,
                            self.connect_attempts, last)
                continue
            try:
                await link._setup(min_mtu)
            except BaseException as exc:
                try:
                    await link.disconnect()
                except BleError:
                    pass
                if isinstance(exc, BleError | asyncio.CancelledError):
                    raise
                raise BleError(f"cannot set up BLE link to {target!r}: {exc}") from exc
            self.links.append(link)
            link._on_close = self._forget
            return link
        raise BleError(f"cannot connect to {target!r} after {self.connect_attempts} attempts: {last}")

    def _forget(self, link: BleakLink) -> None:
        if link in self.links:
            self.links.remove(link)


def profile_service(profile: BleProfile) -> str:
    """The GATT service a profile streams from (what bleak should discover)."""
    return GATT_PROFILES[profile].service_uuid
