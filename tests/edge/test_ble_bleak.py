"""The bleak backend without a radio: backoff, profile set-up, connection retries and the
reconnect state machine of BleIngest.

bleak has no emulator (it needs BlueZ, CoreBluetooth or WinRT and a real adapter), so these
tests give :class:`~edge.ble.bleak_backend.BleakBackend` a thin fake ``BleakClient`` class and
a fake ``BleakScanner`` class with the same methods, and drive the link by calling the
callbacks bleak would call (notification callbacks, ``disconnected_callback``). The same GATT
logic runs against a real GATT server on bumble's emulated radio in ``test_ble_bumble.py``.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from edge.ble import Backoff, BleDisconnected, BleError, BleIngest, BleProfile
from edge.ble.bleak_backend import BleakBackend, is_address, profile_service
from edge.config.schema import BleDeviceConfig
from protocol.gatt import (
    BATTERY_LEVEL_CHAR_UUID,
    BATTERY_SERVICE_UUID,
    ECG_CONTROL_CHAR_UUID,
    ECG_DATA_CHAR_UUID,
    ECG_INFO_CHAR_UUID,
    ECG_SERVICE_UUID,
    POLAR_PMD_CONTROL_CHAR_UUID,
    POLAR_PMD_DATA_CHAR_UUID,
    POLAR_PMD_SERVICE_UUID,
    ControlCommand,
)
from protocol.polar_pmd import START_ECG_COMMAND
from tests.ble_support import take

WAIT_S = 5.0
GATT = {
    BleProfile.ECGSTREAM: {ECG_SERVICE_UUID: [ECG_DATA_CHAR_UUID, ECG_CONTROL_CHAR_UUID, ECG_INFO_CHAR_UUID]},
    BleProfile.POLAR_H10: {POLAR_PMD_SERVICE_UUID: [POLAR_PMD_CONTROL_CHAR_UUID, POLAR_PMD_DATA_CHAR_UUID]},
}


@dataclass
class FakeDevice:
    """What ``BleakScanner.find_device_*`` returns (bleak's ``BLEDevice``)."""

    address: str
    name: str
    profile: BleProfile
    visible: bool = True
    hidden_for: int = 0
    """Scans that still miss the device (it is out of range for that many scans)."""
    pmd_status: int = 0

    def seen(self) -> bool:
        if self.hidden_for > 0:
            self.hidden_for -= 1
            return False
        return self.visible


@dataclass
class FakeRadio:
    """The world the fake classes see: devices in range, scripted connection failures."""

    devices: list[FakeDevice] = field(default_factory=list)
    fail_connects: int = 0
    finds: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    clients: list[FakeClient] = field(default_factory=list)

    def classes(self) -> tuple[type, type]:
        radio = self

        class Scanner:
            @classmethod
            async def find_device_by_address(cls, address: str, timeout: float = 10.0, **kw: Any) -> FakeDevice | None:
                radio.finds.append(("address", address, kw))
                return next((d for d in radio.devices if d.address == address and d.seen()), None)

            @classmethod
            async def find_device_by_name(cls, name: str, timeout: float = 10.0, **kw: Any) -> FakeDevice | None:
                radio.finds.append(("name", name, kw))
                return next((d for d in radio.devices if d.name == name and d.seen()), None)

        class Client(FakeClient):
            def __init__(self, device: FakeDevice, disconnected_callback: Callable[[Any], None] | None = None,
                         services: list[str] | None = None, **kw: Any) -> None:
                super().__init__(radio, device, disconnected_callback, services, kw)

        return Client, Scanner

    def client_of(self, name: str) -> FakeClient:
        """The newest client connected to device ``name``."""
        return [c for c in self.clients if c.device.name == name][-1]


class FakeServices:
    def __init__(self, profile: BleProfile) -> None:
        self._services = {**GATT[profile], BATTERY_SERVICE_UUID: [BATTERY_LEVEL_CHAR_UUID]}

    def get_service(self, uuid: str) -> object | None:
        return uuid if uuid in self._services else None

    def get_characteristic(self, uuid: str) -> object | None:
        return uuid if any(uuid in chars for chars in self._services.values()) else None


class FakeClient:
    """Stands in for ``bleak.BleakClient``: records calls; ``notify``/``drop`` play the peripheral."""

    mtu_size = 247

    def __init__(self, radio: FakeRadio, device: FakeDevice, disconnected_callback: Callable[[Any], None] | None,
                 services: list[str] | None, kwargs: dict[str, Any]) -> None:
        self.radio, self.device, self.kwargs, self.service_filter = radio, device, kwargs, services
        self._disconnected_callback = disconnected_callback
        self.is_connected = False
        self.notify_callbacks: dict[str, Callable[[Any, bytearray], None]] = {}
        self.writes: list[tuple[str, bytes]] = []
        self.services = FakeServices(device.profile)

    async def connect(self) -> None:
        if self.radio.fail_connects > 0:
            self.radio.fail_connects -= 1
            raise OSError("le-connection-abort-by-local")
        self.is_connected = True
        self.radio.clients.append(self)

    async def disconnect(self) -> None:
        if self.is_connected:
            self.drop()

    async def start_notify(self, uuid: str, callback: Callable[[Any, bytearray], None]) -> None:
        self.notify_callbacks[uuid] = callback

    async def write_gatt_char(self, uuid: str, data: bytes, response: bool | None = None) -> None:
        self.writes.append((uuid, bytes(data)))
        if uuid == POLAR_PMD_CONTROL_CHAR_UUID:  # the H10 answers on the control point
            reply = bytearray([0xF0, data[0], data[1], self.device.pmd_status, 0])
            asyncio.get_running_loop().call_soon(self.notify_callbacks[uuid], uuid, reply)

    async def read_gatt_char(self, uuid: str) -> bytearray:
        if uuid == BATTERY_LEVEL_CHAR_UUID:
            return bytearray([77])
        if uuid == ECG_INFO_CHAR_UUID:
            return bytearray(b'{"device_id": "%s"}' % self.device.name.encode())
        raise OSError(f"no characteristic {uuid}")

    # the peripheral's side
    def notify(self, data: bytes) -> None:
        uuid = ECG_DATA_CHAR_UUID if self.device.profile is BleProfile.ECGSTREAM else POLAR_PMD_DATA_CHAR_UUID
        self.notify_callbacks[uuid](uuid, bytearray(data))

    def drop(self) -> None:
        """The link is lost: bleak calls ``disconnected_callback(client)``."""
        self.is_connected = False
        if self._disconnected_callback is not None:
            self._disconnected_callback(self)


class Sleeps:
    """A recording ``sleep``: the backoff delays asked for, without waiting them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def backend(radio: FakeRadio, **kwargs: Any) -> BleakBackend:
    client, scanner = radio.classes()
    return BleakBackend(client_class=client, scanner_class=scanner, **kwargs)


# -- pieces ------------------------------------------------------------------------------


def test_backoff_schedule_is_exponential_capped_and_jittered_within_bounds() -> None:
    backoff = Backoff(initial_s=0.5, factor=2.0, max_s=8.0, jitter=0.0)
    assert backoff.schedule(7) == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert [backoff.delay(n) for n in range(7)] == backoff.schedule(7)
    jittered = Backoff(initial_s=1.0, factor=2.0, max_s=30.0, jitter=0.2)
    rng = random.Random(7)
    for n in range(10):
        base = min(2.0**n, 30.0)
        assert base * 0.8 <= jittered.delay(n, rng) <= min(base * 1.2, 30.0)
    assert jittered.delay(10_000) <= 30.0  # no overflow for a device gone for days
    with pytest.raises(ValueError):
        Backoff(initial_s=2.0, max_s=1.0)
    with pytest.raises(ValueError):
        Backoff(jitter=1.5)


def test_targets_and_profiles() -> None:
    assert is_address("A0:9E:1A:12:34:56") and is_address("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    assert not is_address("Polar H10 12345678") and not is_address("wearable-01")
    assert profile_service(BleProfile.ECGSTREAM) == ECG_SERVICE_UUID
    assert profile_service(BleProfile.POLAR_H10) == POLAR_PMD_SERVICE_UUID
    with pytest.raises(ValueError):
        BleakBackend(connect_attempts=0)
    assert BleakBackend("hci1").adapter == "hci1"


# -- the backend -------------------------------------------------------------------------


async def test_ecgstream_link_subscribes_starts_and_yields_in_order() -> None:
    radio = FakeRadio([FakeDevice("C0:11:22:33:44:55", "wearable-01", BleProfile.ECGSTREAM)])
    central = backend(radio, connect_attempts=1)
    link = await central.connect("wearable-01", profile=BleProfile.ECGSTREAM, timeout=1.0)
    client = radio.client_of("wearable-01")

    assert radio.finds == [("name", "wearable-01", {})]
    assert client.service_filter == [ECG_SERVICE_UUID, BATTERY_SERVICE_UUID]
    assert set(client.notify_callbacks) == {ECG_DATA_CHAR_UUID}
    assert client.writes == [(ECG_CONTROL_CHAR_UUID, bytes([ControlCommand.START_STREAM]))]
    assert link.address == "C0:11:22:33:44:55" and link.mtu == 247 and link.kind == "frame"

    await link.set_time(1_722_000_000_123_456)
    assert client.writes[-1] == (ECG_CONTROL_CHAR_UUID, bytes([3]) + (1_722_000_000_123_456).to_bytes(8, "little"))
    assert await link.read_battery() == 77
    assert (await link.read_info())["device_id"] == "wearable-01"
    for i in range(5):
        client.notify(bytes([i]) * 10)
    assert await take(link, 5) == [bytes([i]) * 10 for i in range(5)]
    assert link.received == 5 and central.links == [link]

    await link.disconnect()
    assert [p async for p in link] == [] and central.links == []  # a local close ends quietly


async def test_polar_link_by_address_writes_pmd_start_and_checks_the_response() -> None:
    radio = FakeRadio([FakeDevice("A0:9E:1A:12:34:56", "Polar H10 1234", BleProfile.POLAR_H10)])
    central = BleakBackend("hci1", client_class=radio.classes()[0], scanner_class=radio.classes()[1])
    link = await central.connect("A0:9E:1A:12:34:56", profile=BleProfile.POLAR_H10)
    client = radio.client_of("Polar H10 1234")

    assert radio.finds == [("address", "A0:9E:1A:12:34:56", {"bluez": {"adapter": "hci1"}})]
    assert client.kwargs["bluez"] == {"adapter": "hci1"}
    assert set(client.notify_callbacks) == {POLAR_PMD_CONTROL_CHAR_UUID, POLAR_PMD_DATA_CHAR_UUID}
    assert client.writes == [(POLAR_PMD_CONTROL_CHAR_UUID, START_ECG_COMMAND)]
    assert link.kind == "pmd"
    with pytest.raises(BleError, match="ecgstream profile"):
        await link.set_time(0)

    radio.devices[0].pmd_status = 5  # the strap refuses (invalid parameter)
    with pytest.raises(BleError, match="refused PMD command"):
        await link.start_stream()


async def test_wrong_profile_is_a_clear_error_without_retries() -> None:
    radio = FakeRadio([FakeDevice("C0:11:22:33:44:55", "wearable-01", BleProfile.ECGSTREAM)])
    central = backend(radio)
    with pytest.raises(BleError, match="does not expose service"):
        await central.connect("wearable-01", profile=BleProfile.POLAR_H10)
    assert central.failed_attempts == 0 and not radio.clients[0].is_connected and central.links == []


async def test_connection_is_retried_with_backoff_then_given_up() -> None:
    radio = FakeRadio([FakeDevice("C0:11:22:33:44:55", "wearable-01", BleProfile.ECGSTREAM)], fail_connects=2)
    sleeps = Sleeps()
    central = backend(radio, connect_attempts=3, backoff=Backoff(0.5, 2.0, 8.0, jitter=0.0), sleep=sleeps)
    link = await central.connect("wearable-01")
    assert link.connected and central.failed_attempts == 2 and sleeps.delays == [0.5, 1.0]
    assert len(radio.finds) == 3  # scanned again before each retry

    radio.fail_connects = 5
    with pytest.raises(BleError, match="after 3 attempts.*le-connection-abort"):
        await central.connect("wearable-01")
    assert central.failed_attempts == 5 and sleeps.delays == [0.5, 1.0, 0.5, 1.0]
    with pytest.raises(BleError, match="no BLE device 'nobody'"):
        await central.connect("nobody")


# -- the reconnect state machine (BleIngest over the bleak backend) ------------------------


async def test_ingest_reconnects_and_resubscribes_after_a_drop_with_counted_backoff() -> None:
    radio = FakeRadio([FakeDevice("C0:11:22:33:44:55", "wearable-01", BleProfile.ECGSTREAM),
                       FakeDevice("A0:9E:1A:12:34:56", "Polar H10 1234", BleProfile.POLAR_H10)])
    client_class, scanner_class = radio.classes()
    sleeps = Sleeps()
    payloads: dict[str, list[tuple[bytes, str]]] = defaultdict(list)
    drops: list[tuple[str, BleError]] = []
    configs = [
        BleDeviceConfig(patient="p1", name="wearable-01", device_id="w1"),
        BleDeviceConfig(patient="p2", address="A0:9E:1A:12:34:56", device_id="h10", profile="polar-h10"),
    ]
    ingest = BleIngest(
        configs, lambda d, data, kind, t: payloads[d].append((data, kind)),
        on_disconnect=lambda d, err: drops.append((d, err)),
        backend_factory=lambda kind, hci: BleakBackend(hci, client_class=client_class, scanner_class=scanner_class,
                                                       connect_attempts=1),
        backoff=Backoff(0.01, 2.0, 1.0, jitter=0.0), sleep=sleeps, gateway_time_us=lambda: 42,
    )
    async with ingest:
        await ingest.wait_connected(timeout=WAIT_S)
        assert len(ingest.backends) == 1  # both devices on the system adapter share one backend
        first = radio.client_of("wearable-01")
        assert first.writes[-1] == (ECG_CONTROL_CHAR_UUID, bytes([3]) + (42).to_bytes(8, "little"))
        first.notify(b"f0")
        first.notify(b"f1")
        radio.client_of("Polar H10 1234").notify(b"p0")

        radio.devices[0].hidden_for = 2  # out of range: the next two scans find nothing
        first.drop()
        await asyncio.wait_for(_until(lambda: bool(drops)), WAIT_S)
        assert [d for d, _ in drops] == ["w1"] and isinstance(drops[0][1], BleDisconnected)
        await ingest.wait_connected("w1", timeout=WAIT_S)  # back after two failed scans

        second = radio.client_of("wearable-01")
        assert second is not first
        assert set(second.notify_callbacks) == {ECG_DATA_CHAR_UUID}  # subscribed again on the new link
        assert (ECG_CONTROL_CHAR_UUID, bytes([ControlCommand.START_STREAM])) in second.writes
        first.notify(b"stale")  # a callback from the dead client is ignored: its link is closed
        second.notify(b"f2")
        await asyncio.wait_for(_until(lambda: len(payloads["w1"]) == 3), WAIT_S)

        assert payloads["w1"] == [(b"f0", "frame"), (b"f1", "frame"), (b"f2", "frame")]
        assert payloads["h10"] == [(b"p0", "pmd")]
        assert sleeps.delays == [0.01, 0.02, 0.04]  # after the drop, then after each failed attempt
        w1, h10 = ingest.stats["w1"], ingest.stats["h10"]
        assert (w1.connects, w1.reconnects, w1.disconnects, w1.connect_failures) == (2, 1, 1, 2)
        assert w1.last_disconnect_reason is None  # bleak gives no reason
        assert (h10.connects, h10.reconnects, h10.disconnects) == (1, 0, 0)
    assert not second.is_connected and not radio.client_of("Polar H10 1234").is_connected


async def test_bumble_without_a_transport_spec_needs_the_callers_backend() -> None:
    ingest = BleIngest([BleDeviceConfig(patient="p", name="w", device_id="w", backend="bumble")], print)
    with pytest.raises(BleError, match="transport spec"):
        await ingest.start()


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.001)
