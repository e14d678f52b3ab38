"""The simulated wearable's BLE side over bumble's emulated radio, seen through the
gateway's bumble central (:mod:`edge.ble.bumble_backend`; its own tests are
``tests/edge/test_ble_bumble.py``)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import numpy as np
import pytest
from bumble.controller import Controller
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

from edge.ble.bumble_backend import BumbleBackend
from edge.ble.link import BleError
from firmware_sim.transports.base import TransportError
from firmware_sim.transports.ble import BlePeripheralTransport
from firmware_sim.transports.ble_emulated import BleProfile, EmulatedLink
from protocol.ble_frame import SampleFormat, decode_frame, encode_frame
from protocol.errors import FrameError
from protocol.leads import WEARABLE_LEADS
from protocol.messages import DeviceStatus
from protocol.polar_pmd import POLAR_ECG_FS_HZ, decode_pmd_ecg
from tests.ble_support import FS_HZ, SAMPLES, ecg_frame, emulated_central, pair, take


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


async def test_hundred_frames_arrive_in_order_byte_identical(radio, wearable) -> None:
    link = await pair(radio[1], wearable)
    frames = [ecg_frame(seq) for seq in range(100)]
    for frame in frames:
        await wearable.send_frame(frame)

    payloads = await take(link, 100)

    assert payloads == [encode_frame(frame) for frame in frames]
    assert [decode_frame(p) for p in payloads] == frames
    assert link.mtu == 247
    assert wearable.stats.frames_sent == 100
    assert link.dropped == 0 and wearable.stats.dropped_not_streaming == 0


async def test_info_and_battery_are_readable_and_battery_follows_device(radio, wearable) -> None:
    link = await pair(radio[1], wearable)

    info = await link.read_info()
    assert info["device_id"] == "wearable-01"
    assert info["leads"] == list(WEARABLE_LEADS) and info["fs_hz"] == FS_HZ
    assert await link.read_battery() == 80

    await wearable.send_status(DeviceStatus(device_id="wearable-01", t_device_us=0, battery_pct=42))
    assert await link.read_battery() == 42
    await wearable.send_frame(ecg_frame(0, battery=37))
    assert await link.read_battery() == 37


async def test_stop_stream_pauses_and_start_resumes(radio, wearable) -> None:
    link = await pair(radio[1], wearable)
    for seq in range(5):
        await wearable.send_frame(ecg_frame(seq))
    await link.stop_stream()
    assert wearable.connected and not wearable.streaming
    for seq in range(5, 10):
        await wearable.send_frame(ecg_frame(seq))  # the central asked for silence: dropped, counted
    await link.start_stream()
    for seq in range(10, 15):
        await wearable.send_frame(ecg_frame(seq))

    received = [decode_frame(p).seq for p in await take(link, 10)]

    assert received == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    assert wearable.stats.dropped_not_streaming == 5
    assert wearable.stats.frames_sent == 10


async def test_set_time_reaches_device_and_bad_commands_are_refused(radio, wearable) -> None:
    link = await pair(radio[1], wearable)

    await link.set_time(1_722_000_000_123_456)
    assert wearable.gateway_time_us == 1_722_000_000_123_456

    with pytest.raises(BleError, match="refused"):
        await link.write_control(bytes([0x7F]))  # no such command
    with pytest.raises(BleError, match="refused"):
        await link.write_control(bytes([0x03, 0x01]))  # SET_TIME without its 8-byte clock
    assert wearable.stats.control_rejected == 2
    assert wearable.streaming  # refused commands change nothing


async def test_frame_larger_than_negotiated_mtu_is_refused_not_truncated(radio, wearable) -> None:
    link = await pair(radio[1], wearable, mtu=100)
    assert link.mtu == 100

    with pytest.raises(TransportError, match="MTU"):
        await wearable.send_frame(ecg_frame(0))  # 242 bytes > 97
    small = ecg_frame(1, n=10)  # 86 bytes
    await wearable.send_frame(small)

    assert await take(link, 1) == [encode_frame(small)]
    assert wearable.stats.rejected_oversize == 1


async def test_polar_h10_mode_streams_pmd_frames(radio) -> None:
    polar = BlePeripheralTransport("polar-h10-01", radio[0], profile=BleProfile.POLAR_H10)
    try:
        link = await pair(radio[1], polar)  # subscribes and writes START_ECG_COMMAND
        assert polar.streaming
        frames = [ecg_frame(seq, n=73, leads=("II",), fs_hz=POLAR_ECG_FS_HZ) for seq in range(20)]
        for frame in frames:
            await polar.send_frame(frame)

        decoded = [decode_pmd_ecg(p) for p in await take(link, 20)]

        for frame, pmd in zip(frames, decoded, strict=True):
            np.testing.assert_array_equal(pmd.samples_uv, frame.samples[:, 0])
            assert pmd.first_sample_ns() == frame.t0_us * 1000
        with pytest.raises(FrameError):
            await polar.send_frame(ecg_frame(99))  # three leads cannot travel as PMD ECG
        await link.stop_stream()
        assert polar.connected and not polar.streaming
        assert await link.read_battery() == 100
    finally:
        await polar.disconnect()


async def test_errors_without_a_central(radio) -> None:
    lonely = BlePeripheralTransport("lonely-01", radio[0], connect_timeout=0.3)
    try:
        with pytest.raises(TransportError, match="no central"):
            await lonely.send_frame(ecg_frame(0))
        with pytest.raises(TransportError, match="within"):
            await lonely.connect()
    finally:
        await lonely.disconnect()


async def test_frame_not_matching_announced_layout_is_rejected(radio, wearable) -> None:
    await pair(radio[1], wearable)
    with pytest.raises(FrameError):
        await wearable.send_frame(ecg_frame(0, fs_hz=500))
    with pytest.raises(FrameError):
        await wearable.send_frame(ecg_frame(0, leads=("II",)))
    assert wearable.stats.frames_sent == 0


async def test_transport_spec_string_drives_a_controller_over_serialized_hci(radio) -> None:
    """The real-adapter path (``usb:0`` etc.): HCI packets go through a bumble transport,
    here a TCP socket to an emulated controller, instead of an in-process pipe."""
    emulated, central = radio
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = await open_tcp_server_transport_with_socket(listening)
    Controller("remote-hci", host_source=server.source, host_sink=server.sink, link=emulated.local_link)
    wearable = BlePeripheralTransport("tcp-wearable", f"tcp-client:127.0.0.1:{port}", fs_hz=FS_HZ)
    try:
        link = await pair(central, wearable)
        frames = [ecg_frame(seq) for seq in range(10)]
        for frame in frames:
            await wearable.send_frame(frame)
        assert [decode_frame(p) for p in await take(link, 10)] == frames
    finally:
        await wearable.disconnect()
        await server.close()
        server.server.close()  # type: ignore[attr-defined]  # bumble's close() leaves it listening


async def test_unusable_transport_spec_is_a_transport_error() -> None:
    with pytest.raises(TransportError, match="cannot open HCI transport"):
        await BlePeripheralTransport("w", "no-such-transport:0").connect()


def test_constructor_limits() -> None:
    link = EmulatedLink()
    with pytest.raises(ValueError, match="advertise"):
        BlePeripheralTransport("x" * 27, link)
    int24 = BlePeripheralTransport("w", link, sample_format=SampleFormat.INT24)
    assert int24.max_samples_per_message == 24
    assert BlePeripheralTransport("w", link).max_samples_per_message == SAMPLES
