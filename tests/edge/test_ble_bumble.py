"""The gateway's bumble central and BleIngest over bumble's emulated radio, against the
simulator's BLE wearables (ecgstream profile and Polar H10): real GATT traffic, no mocks."""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict
from collections.abc import AsyncIterator

import numpy as np
import pytest
from bumble.controller import Controller
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

from edge.ble import Backoff, BleDisconnected, BleError, BleIngest, BleProfile
from edge.ble.bumble_backend import BumbleBackend
from edge.config.schema import BleDeviceConfig
from firmware_sim.transports.base import TransportError
from firmware_sim.transports.ble import BlePeripheralTransport
from firmware_sim.transports.ble_emulated import EmulatedLink
from protocol.ble_frame import decode_frame
from protocol.polar_pmd import POLAR_ECG_FS_HZ, decode_pmd_ecg
from tests.ble_support import FS_HZ, WAIT_S, drain_until_end, ecg_frame, emulated_central, pair, take, until

FAST = Backoff(initial_s=0.01, factor=2.0, max_s=0.2, jitter=0.0)


@pytest.fixture
async def radio() -> AsyncIterator[tuple[EmulatedLink, BumbleBackend]]:
    link = EmulatedLink()
    central = emulated_central(link)
    await central.open()
    yield link, central
    await central.close()


@pytest.fixture
async def wearable(radio: tuple[EmulatedLink, BumbleBackend]) -> AsyncIterator[BlePeripheralTransport]:
    peripheral = BlePeripheralTransport("wearable-01", radio[0], fs_hz=FS_HZ, battery_pct=80)
    yield peripheral
    await peripheral.disconnect()


# -- the central -------------------------------------------------------------------------


async def test_central_refuses_link_below_required_mtu(radio, wearable) -> None:
    advertising = asyncio.create_task(wearable.connect())
    with pytest.raises(BleError, match="MTU"):
        await radio[1].connect("wearable-01", mtu=100, min_mtu=247, timeout=WAIT_S)
    advertising.cancel()


async def test_central_expecting_other_profile_gets_clear_error(radio) -> None:
    polar = BlePeripheralTransport("polar-h10-02", radio[0], profile=BleProfile.POLAR_H10)
    advertising = asyncio.create_task(polar.connect())
    try:
        with pytest.raises(BleError, match="does not expose service"):
            await radio[1].connect("polar-h10-02", profile=BleProfile.ECGSTREAM, timeout=WAIT_S)
    finally:
        advertising.cancel()
        await polar.disconnect()


async def test_peripheral_disconnect_is_detected_and_device_reconnects(radio, wearable) -> None:
    central = radio[1]
    link = await pair(central, wearable)
    await wearable.send_frame(ecg_frame(0))
    await wearable.disconnect()

    received: list[bytes] = []

    async def consume() -> None:
        async for payload in link:
            received.append(payload)

    with pytest.raises(BleDisconnected) as lost:
        await asyncio.wait_for(consume(), WAIT_S)
    assert [decode_frame(p).seq for p in received] == [0]  # nothing sent before the drop is lost
    assert not link.connected and central.links == []
    assert lost.value.reason == link.disconnect_reason and isinstance(lost.value.reason, int)

    again = await pair(central, wearable)
    await wearable.send_frame(ecg_frame(1))
    assert [decode_frame(p).seq for p in await take(again, 1)] == [1]


async def test_central_disconnect_stops_device_until_it_reconnects(radio, wearable) -> None:
    central = radio[1]
    link = await pair(central, wearable)
    await link.disconnect()
    assert await drain_until_end(link) == []  # a local close ends iteration without error
    assert link.disconnect_reason is None

    await until(lambda: not wearable.connected, "the wearable to notice the disconnect")
    with pytest.raises(TransportError, match="no central"):
        await wearable.send_frame(ecg_frame(0))

    again = await pair(central, wearable)
    await wearable.send_frame(ecg_frame(1))
    assert [decode_frame(p).seq for p in await take(again, 1)] == [1]


async def test_three_wearables_stream_to_one_central(radio) -> None:
    emulated, central = radio
    wearables = [BlePeripheralTransport(f"wearable-{i}", emulated, fs_hz=FS_HZ) for i in range(3)]
    try:
        links = [await pair(central, w) for w in wearables]
        assert len({link.address for link in links}) == 3
        for seq in range(30):  # interleaved, as three live devices would be
            for i, w in enumerate(wearables):
                await w.send_frame(ecg_frame(seq, seed=i))

        for i, link in enumerate(links):
            payloads = await take(link, 30)
            assert [decode_frame(p) for p in payloads] == [ecg_frame(seq, seed=i) for seq in range(30)]
    finally:
        for w in wearables:
            await w.disconnect()


async def test_device_not_advertising_is_a_clear_error(radio) -> None:
    with pytest.raises(BleError, match="no BLE device named 'nobody-here'"):
        await radio[1].connect("nobody-here", timeout=0.3)
    assert not radio[1]._wanted  # the shared scan stopped with its last waiter


async def test_central_on_a_transport_spec_drives_its_controller_over_serialized_hci() -> None:
    """The real-adapter path (``usb:0``, ``hci-socket:0``): the central opens the spec itself;
    here ``tcp-client`` to an emulated controller serving HCI over a socket."""
    emulated = EmulatedLink()
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = await open_tcp_server_transport_with_socket(listening)
    Controller("gateway-hci", host_source=server.source, host_sink=server.sink, link=emulated.local_link)
    central = BumbleBackend(f"tcp-client:127.0.0.1:{port}")
    wearable = BlePeripheralTransport("spec-wearable", emulated, fs_hz=FS_HZ)
    try:
        link = await pair(central, wearable)
        frames = [ecg_frame(seq) for seq in range(10)]
        for frame in frames:
            await wearable.send_frame(frame)
        assert [decode_frame(p) for p in await take(link, 10)] == frames
    finally:
        await wearable.disconnect()
        await central.close()
        await server.close()
        server.server.close()  # type: ignore[attr-defined]  # bumble's close() leaves it listening


async def test_backend_construction_and_unusable_spec() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        BumbleBackend()
    with pytest.raises(BleError, match="cannot open HCI transport"):
        await BumbleBackend("no-such-transport:0").open()


# -- BleIngest on the bumble backend -------------------------------------------------------


def device(device_id: str, profile: str = "ecgstream-250") -> BleDeviceConfig:
    return BleDeviceConfig(patient=f"p-{device_id}", name=device_id, device_id=device_id, profile=profile,
                           backend="bumble")


class Sink:
    """What ``on_payload`` and ``on_disconnect`` received, per device."""

    def __init__(self) -> None:
        self.payloads: dict[str, list[bytes]] = defaultdict(list)
        self.kinds: dict[str, set[str]] = defaultdict(set)
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.disconnects: list[tuple[str, BleError]] = []

    def on_payload(self, device_id: str, data: bytes, kind: str, arrival_s: float) -> None:
        self.payloads[device_id].append(data)
        self.kinds[device_id].add(kind)
        self.arrivals[device_id].append(arrival_s)

    def on_disconnect(self, device_id: str, error: BleError) -> None:
        self.disconnects.append((device_id, error))


def ingest_on(link: EmulatedLink, configs: list[BleDeviceConfig], sink: Sink, **kwargs: object) -> BleIngest:
    made: list[tuple[str, str | None]] = []

    def factory(kind: str, hci: str | None) -> BumbleBackend:
        made.append((kind, hci))
        return emulated_central(link)

    ingest = BleIngest(configs, sink.on_payload, on_disconnect=sink.on_disconnect, backend_factory=factory,
                       backoff=FAST, connect_timeout=2.0, **kwargs)  # type: ignore[arg-type]
    ingest.made = made  # type: ignore[attr-defined]
    return ingest


async def test_ingest_receives_every_frame_from_three_wearables_and_a_polar_in_order() -> None:
    emulated = EmulatedLink()
    wearables = [BlePeripheralTransport(f"wearable-{i}", emulated, fs_hz=FS_HZ) for i in range(3)]
    polar = BlePeripheralTransport("polar-h10-01", emulated, profile=BleProfile.POLAR_H10)
    peripherals = [*wearables, polar]
    sink = Sink()
    ingest = ingest_on(emulated, [device(w.device_id) for w in wearables] + [device(polar.device_id, "polar-h10")],
                       sink, gateway_time_us=lambda: 1_722_000_000_000_000)
    advertising = [asyncio.create_task(p.connect()) for p in peripherals]
    try:
        async with ingest:
            await ingest.wait_connected(timeout=WAIT_S)
            await asyncio.wait_for(asyncio.gather(*advertising), WAIT_S)
            assert ingest.made == [("bumble", None)]  # one central serves the four devices
            n = 40
            polar_frames = [ecg_frame(seq, n=73, leads=("II",), fs_hz=POLAR_ECG_FS_HZ) for seq in range(n)]
            for seq in range(n):  # interleaved, as live devices would be
                for i, w in enumerate(wearables):
                    await w.send_frame(ecg_frame(seq, seed=i))
                await polar.send_frame(polar_frames[seq])
            await until(lambda: sum(len(v) for v in sink.payloads.values()) == 4 * n, "every notification")

            for i, w in enumerate(wearables):
                got = [decode_frame(p) for p in sink.payloads[w.device_id]]
                assert got == [ecg_frame(seq, seed=i) for seq in range(n)]
                assert sink.kinds[w.device_id] == {"frame"}
                assert w.gateway_time_us == 1_722_000_000_000_000  # SET_TIME with the gateway clock
            pmd = [decode_pmd_ecg(p) for p in sink.payloads[polar.device_id]]
            for frame, got in zip(polar_frames, pmd, strict=True):
                np.testing.assert_array_equal(got.samples_uv, frame.samples[:, 0])
            assert sink.kinds[polar.device_id] == {"pmd"}
            assert all(np.all(np.diff(a) >= 0) for a in sink.arrivals.values())
            for stats in ingest.stats.values():
                assert (stats.connects, stats.reconnects, stats.disconnects, stats.dropped) == (1, 0, 0, 0)
                assert stats.received == n and stats.connected
        assert not ingest.links and all(not s.connected for s in ingest.stats.values())
        assert sink.disconnects == []  # a local stop is not a drop
    finally:
        for task in advertising:
            task.cancel()
        for p in peripherals:
            await p.disconnect()


async def test_ingest_reconnects_and_resubscribes_after_the_wearable_drops() -> None:
    emulated = EmulatedLink()
    wearable = BlePeripheralTransport("wearable-07", emulated, fs_hz=FS_HZ)
    other = BlePeripheralTransport("wearable-08", emulated, fs_hz=FS_HZ)
    sink = Sink()
    ingest = ingest_on(emulated, [device("wearable-07"), device("wearable-08")], sink)
    advertising = [asyncio.create_task(p.connect()) for p in (wearable, other)]
    try:
        async with ingest:
            await asyncio.wait_for(asyncio.gather(*advertising), WAIT_S)
            for seq in range(5):
                await wearable.send_frame(ecg_frame(seq))
                await other.send_frame(ecg_frame(seq, seed=8))
            await until(lambda: len(sink.payloads["wearable-07"]) == 5, "the frames before the drop")

            await wearable.disconnect()  # the wearable goes away (out of range, battery swap)
            await until(lambda: len(sink.disconnects) == 1, "the drop to be reported")
            assert sink.disconnects[0][0] == "wearable-07"
            assert isinstance(sink.disconnects[0][1], BleDisconnected)
            assert not ingest.stats["wearable-07"].connected

            await asyncio.wait_for(wearable.connect(), WAIT_S)  # back: advertises until re-subscribed
            for seq in range(5, 10):
                await wearable.send_frame(ecg_frame(seq))
                await other.send_frame(ecg_frame(seq, seed=8))
            await until(lambda: len(sink.payloads["wearable-07"]) == 10, "frames after the reconnect")
            await until(lambda: len(sink.payloads["wearable-08"]) == 10, "the other wearable's frames")

            assert [decode_frame(p).seq for p in sink.payloads["wearable-07"]] == list(range(10))
            assert [decode_frame(p) for p in sink.payloads["wearable-08"]] == [
                ecg_frame(seq, seed=8) for seq in range(10)]
            dropped, steady = ingest.stats["wearable-07"], ingest.stats["wearable-08"]
            assert (dropped.connects, dropped.reconnects, dropped.disconnects) == (2, 1, 1)
            assert dropped.connected and isinstance(dropped.last_disconnect_reason, int)
            assert (steady.connects, steady.reconnects, steady.disconnects) == (1, 0, 0)
    finally:
        for task in advertising:
            task.cancel()
        for p in (wearable, other):
            await p.disconnect()


async def test_a_failing_callback_is_counted_and_the_stream_goes_on() -> None:
    emulated = EmulatedLink()
    wearable = BlePeripheralTransport("wearable-09", emulated, fs_hz=FS_HZ)
    seen: list[int] = []

    def on_payload(device_id: str, data: bytes, kind: str, arrival_s: float) -> None:
        seq = decode_frame(data).seq
        if seq == 1:
            raise RuntimeError("the consumer choked on frame 1")
        seen.append(seq)

    ingest = BleIngest([device("wearable-09")], on_payload, backend_factory=lambda k, h: emulated_central(emulated),
                       backoff=FAST)
    advertising = asyncio.create_task(wearable.connect())
    try:
        async with ingest:
            await asyncio.wait_for(advertising, WAIT_S)
            for seq in range(4):
                await wearable.send_frame(ecg_frame(seq))
            await until(lambda: len(seen) == 3, "the frames after the failure")
            assert seen == [0, 2, 3]
            stats = ingest.stats["wearable-09"]
            assert stats.callback_errors == 1 and stats.received == 4 and stats.disconnects == 0
    finally:
        advertising.cancel()
        await wearable.disconnect()
