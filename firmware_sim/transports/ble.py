"""The wearable's BLE side: a bumble GATT server that streams ECG notifications.

:class:`BlePeripheralTransport` runs one virtual wearable as a BLE peripheral,
on an emulated radio (:class:`~firmware_sim.transports.ble_emulated.EmulatedLink`)
or on a real controller given as a bumble transport spec (``"usb:0"``…).

GATT layout, by :class:`~firmware_sim.transports.ble_emulated.BleProfile`:

``ECGSTREAM``
    the vendor ECG service of :mod:`protocol.gatt`: the data characteristic
    notifies one :func:`~protocol.ble_frame.encode_frame` frame per
    notification; the control characteristic takes one
    :class:`~protocol.gatt.ControlCommand` (``SET_TIME`` followed by a u64 µs
    clock) and rejects anything else with an ATT error; the info characteristic
    reads as UTF-8 JSON. Streaming is on as soon as the central subscribes;
    ``STOP_STREAM`` pauses it and ``START_STREAM`` resumes it.
``POLAR_H10``
    the Polar Measurement Data service: the central subscribes to the data
    characteristic, writes :data:`~protocol.polar_pmd.START_ECG_COMMAND` to the
    control point and gets a PMD response indication (``F0 op type status 00``);
    streaming runs until :data:`~protocol.polar_pmd.STOP_ECG_COMMAND`. Frames
    given to :meth:`~BlePeripheralTransport.send_frame` must hold one lead at
    130 Hz with ``lsb_nv == 1000`` (counts are µV), and are sent as
    :func:`~protocol.polar_pmd.encode_pmd_ecg` frames stamped with the device
    clock of their last sample in ns (``t0_us`` × 1000 + (n−1)/fs).

Both profiles also carry the standard Battery service (level: read, notify),
fed from each frame's ``battery_pct`` and from :meth:`send_status`.

Link policy: :meth:`connect` advertises (the device id as complete local name
in the advertisement, the profile's service UUID in the scan response) and returns once a central has connected, subscribed and, for
Polar, started the stream. While connected but not streaming (unsubscribed or
stopped by the central), frames are dropped and counted in
:attr:`BleTxStats.dropped_not_streaming`. After the link is lost,
:meth:`send_frame` raises :class:`TransportError` until :meth:`connect` is
called again. A frame larger than the negotiated ATT MTU allows is never
truncated: it is counted and :class:`TransportError` is raised.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from bumble import att
from bumble.core import UUID, AdvertisingData
from bumble.data_types import CompleteListOf128BitServiceUUIDs, CompleteLocalName, Flags
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.profiles.battery_service import BatteryService

from firmware_sim.transports.base import DeviceTransport, TransportError
from firmware_sim.transports.ble_emulated import BleProfile, BleStack, HciSpec, open_ble_stack
from protocol.ble_frame import (
    FRAME_VERSION,
    MAX_ATT_PAYLOAD,
    EcgFrame,
    SampleFormat,
    encode_frame,
    max_samples_per_frame,
)
from protocol.errors import FrameError
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
from protocol.leads import WEARABLE_LEADS
from protocol.messages import DeviceStatus
from protocol.polar_pmd import (
    POLAR_ECG_FS_HZ,
    START_ECG_COMMAND,
    STOP_ECG_COMMAND,
    PolarEcgFrame,
    encode_pmd_ecg,
)

logger = logging.getLogger(__name__)

_PMD_HEADER = 10
POLAR_MAX_SAMPLES = (MAX_ATT_PAYLOAD - _PMD_HEADER) // 3
"""Most 24-bit samples one PMD notification carries at ATT MTU 247."""
_MAX_NAME_BYTES = 26  # 31-byte advertisement minus flags (3) and the name's AD header (2)
_MAX_PENDING_PACKETS = 16  # ACL packets queued in the host before send_frame waits for the radio
_SET_TIME_SIZE = 9
_ADVERTISING_INTERVAL_MS = 100.0  # fast advertising while waiting for a central

# PMD control point response: F0, op code, measurement type, status, "more" flag.
_PMD_RESPONSE = 0xF0
_PMD_OK, _PMD_INVALID_OP_CODE, _PMD_INVALID_MEASUREMENT_TYPE, _PMD_INVALID_PARAMETER = 0x00, 0x01, 0x02, 0x05


@dataclass
class BleTxStats:
    """What happened to the frames given to one transport (never reset)."""

    frames_sent: int = 0
    dropped_not_streaming: int = 0
    """Connected, but the central had not subscribed or had stopped the stream."""
    rejected_oversize: int = 0
    """Larger than the negotiated ATT MTU allows; :class:`TransportError` was raised."""
    control_commands: int = 0
    control_rejected: int = 0
    """Control writes refused (unknown command, wrong length or parameters)."""


class BlePeripheralTransport(DeviceTransport):
    """One virtual wearable as a BLE GATT server (see the module docstring)."""

    def __init__(
        self,
        device_id: str,
        hci: HciSpec,
        *,
        profile: BleProfile = BleProfile.ECGSTREAM,
        address: str | None = None,
        leads: Sequence[str] = WEARABLE_LEADS,
        fs_hz: int = 250,
        sample_format: SampleFormat = SampleFormat.INT16,
        battery_pct: int = 100,
        connect_timeout: float | None = None,
    ) -> None:
        """``leads`` and ``fs_hz`` are what the info characteristic announces
        (ECGSTREAM) and every frame must match; the Polar profile fixes them to
        one lead at 130 Hz. ``connect_timeout`` bounds :meth:`connect` (None: wait
        for a central forever). ``address`` defaults to one derived from the id."""
        if len(device_id.encode()) > _MAX_NAME_BYTES:
            raise ValueError(f"device id {device_id!r} is longer than the {_MAX_NAME_BYTES} bytes BLE can advertise")
        if not 0 <= battery_pct <= 100:
            raise ValueError(f"battery_pct={battery_pct} outside 0..100")
        self.device_id = device_id
        self.profile = profile
        self._hci = hci
        self._address = address
        self._connect_timeout = connect_timeout
        if profile is BleProfile.POLAR_H10:
            self.leads: tuple[str, ...] | None = None  # any single lead
            self.fs_hz = POLAR_ECG_FS_HZ
            self.max_samples_per_message = POLAR_MAX_SAMPLES
        else:
            self.leads = tuple(leads)
            self.fs_hz = fs_hz
            self.max_samples_per_message = max_samples_per_frame(len(self.leads), sample_format)
        self._sample_format = sample_format
        self._battery_pct = battery_pct
        self.stats = BleTxStats()
        self.gateway_time_us: int | None = None
        """Last clock value a gateway wrote with ``SET_TIME`` (µs), if any."""
        self.last_disconnect_reason: int | None = None
        """HCI reason code of the last link loss, if any."""
        self._stack: BleStack | None = None
        self._connection: Connection | None = None
        self._subscribed = False
        self._started = False
        self._ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._battery_service = BatteryService(lambda _connection: self._battery_pct)
        self._data_char, self._control_char, self._ecg_service = self._build_ecg_service()

    # -- DeviceTransport ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a central is connected (frames are sent if it also streams)."""
        return self._connection is not None

    @property
    def streaming(self) -> bool:
        """True while frames reach the central: connected, subscribed and started."""
        return self._connection is not None and self._subscribed and self._started

    @property
    def address(self) -> str:
        """The peripheral's BLE address (valid once :meth:`connect` has been called)."""
        if self._stack is None:
            raise TransportError(f"BLE peripheral {self.device_id!r} is not open")
        return self._stack.address

    async def connect(self) -> None:
        """Advertise and wait until a central connects and streams; returns at once if it does.

        Raises :class:`TransportError` when the controller cannot be opened or no
        central is ready within ``connect_timeout``.
        """
        if self.streaming:
            return
        stack = await self._open()
        if self._connection is None:
            await stack.device.start_advertising(
                advertising_data=self._advertising_data(),
                scan_response_data=self._scan_response(),
                advertising_interval_min=_ADVERTISING_INTERVAL_MS,
                advertising_interval_max=_ADVERTISING_INTERVAL_MS,
            )
        try:
            await asyncio.wait_for(self._ready.wait(), self._connect_timeout)
        except TimeoutError:
            if self._connection is None:
                await stack.device.stop_advertising()
            raise TransportError(
                f"no central started streaming from {self.device_id!r} within {self._connect_timeout} s"
            ) from None

    async def disconnect(self) -> None:
        """Drop the central (it sees a remote disconnect), stop advertising, release the controller."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        try:
            if self._connection is not None:
                await self._connection.disconnect()
            await stack.device.stop_advertising()
        finally:
            self._on_link_down(None)
            for task in list(self._tasks):
                task.cancel()
            await stack.close()

    async def send_frame(self, frame: EcgFrame) -> None:
        """Notify one frame; raises :class:`TransportError` when not connected or the
        frame exceeds the ATT MTU, :class:`~protocol.errors.FrameError` when it does not
        fit the profile (leads, rate, resolution)."""
        payload = self._encode(frame)
        connection = self._require_connection()
        if frame.battery_pct is not None:
            await self._set_battery(frame.battery_pct)
        if not self.streaming:
            self.stats.dropped_not_streaming += 1
            return
        room = connection.att_mtu - 3
        if len(payload) > room:
            self.stats.rejected_oversize += 1
            raise TransportError(
                f"frame of {len(payload)} bytes does not fit ATT MTU {connection.att_mtu} "
                f"({room} bytes per notification); the central must negotiate MTU 247"
            )
        await self._guard(self._stack_device().notify_subscriber(connection, self._data_char, payload))
        self.stats.frames_sent += 1
        queue = connection.data_packet_queue
        if queue is not None and queue.pending >= _MAX_PENDING_PACKETS:
            await connection.drain()

    async def send_status(self, status: DeviceStatus) -> None:
        """Publish the battery level (the only status BLE carries: lead-off travels in
        every frame header). Raises :class:`TransportError` when not connected."""
        self._require_connection()
        if status.battery_pct is not None:
            await self._set_battery(status.battery_pct)

    # -- GATT database --------------------------------------------------------------------

    def _build_ecg_service(self) -> tuple[Characteristic[bytes], Characteristic[bytes], Service]:
        """The profile's ECG service: (data characteristic, control characteristic, service)."""
        if self.profile is BleProfile.POLAR_H10:
            control: Characteristic[bytes] = Characteristic(
                POLAR_PMD_CONTROL_CHAR_UUID,
                Characteristic.Properties.WRITE | Characteristic.Properties.INDICATE,
                Characteristic.WRITEABLE,
                CharacteristicValue(write=self._on_pmd_control_write),
            )
            data = Characteristic(
                POLAR_PMD_DATA_CHAR_UUID, Characteristic.Properties.NOTIFY, Characteristic.READABLE, b""
            )
            service = Service(POLAR_PMD_SERVICE_UUID, [control, data])
        else:
            data = Characteristic(ECG_DATA_CHAR_UUID, Characteristic.Properties.NOTIFY, Characteristic.READABLE, b"")
            control = Characteristic(
                ECG_CONTROL_CHAR_UUID,
                Characteristic.Properties.WRITE,
                Characteristic.WRITEABLE,
                CharacteristicValue(write=self._on_control_write),
            )
            info: Characteristic[bytes] = Characteristic(
                ECG_INFO_CHAR_UUID,
                Characteristic.Properties.READ,
                Characteristic.READABLE,
                CharacteristicValue(read=lambda _connection: self._info_json()),
            )
            service = Service(ECG_SERVICE_UUID, [data, control, info])
        data.on(Characteristic.EVENT_SUBSCRIPTION, self._on_data_subscription)
        return data, control, service

    def _info_json(self) -> bytes:
        info = {
            "device_id": self.device_id,
            "profile": str(self.profile),
            "frame_version": FRAME_VERSION,
            "fs_hz": self.fs_hz,
            "leads": list(self.leads or ()),
            "sample_format": self._sample_format.name.lower(),
        }
        return json.dumps(info).encode()

    def _advertising_data(self) -> bytes:
        """Flags and the name: bumble's emulated controller delivers no scan responses,
        so what a central must match on (the name) goes in the advertisement itself."""
        flags = AdvertisingData.Flags.LE_GENERAL_DISCOVERABLE_MODE | AdvertisingData.Flags.BR_EDR_NOT_SUPPORTED
        return bytes(AdvertisingData([Flags(flags), CompleteLocalName(self.device_id)]))

    def _scan_response(self) -> bytes:
        """The profile's service UUID, for active scanners on real radios."""
        service = ECG_SERVICE_UUID if self.profile is BleProfile.ECGSTREAM else POLAR_PMD_SERVICE_UUID
        return bytes(AdvertisingData([CompleteListOf128BitServiceUUIDs([UUID(service)])]))

    # -- link events ----------------------------------------------------------------------

    async def _open(self) -> BleStack:
        if self._stack is None:
            stack = await open_ble_stack(self._hci, self.device_id, self._address)
            stack.device.add_services([self._ecg_service, self._battery_service])
            stack.device.on(stack.device.EVENT_CONNECTION, self._on_connection)
            self._stack = stack
        return self._stack

    def _on_connection(self, connection: Connection) -> None:
        self._connection = connection
        self._subscribed = False
        self._started = self.profile is BleProfile.ECGSTREAM
        connection.on(connection.EVENT_DISCONNECTION, lambda reason: self._on_link_down(reason, connection))

    def _on_link_down(self, reason: int | None, connection: Connection | None = None) -> None:
        if connection is not None and connection is not self._connection:
            return
        if reason is not None:
            self.last_disconnect_reason = reason
        self._connection = None
        self._subscribed = False
        self._started = False
        self._update_ready()

    def _on_data_subscription(self, bearer: object, notify_enabled: bool, _indicate_enabled: bool) -> None:
        if bearer is self._connection:
            self._subscribed = notify_enabled
            self._update_ready()

    def _update_ready(self) -> None:
        if self.streaming:
            self._ready.set()
        else:
            self._ready.clear()

    # -- control --------------------------------------------------------------------------

    def _on_control_write(self, _connection: Connection, value: bytes) -> None:
        """ecgstream control characteristic: raise an ATT error for a bad command."""
        try:
            command = ControlCommand(value[0]) if value else None
        except ValueError:
            command = None
        if command is None:
            self.stats.control_rejected += 1
            raise att.ATT_Error(att.ErrorCode.VALUE_NOT_ALLOWED, message=f"unknown control command {value.hex()}")
        if len(value) != (_SET_TIME_SIZE if command is ControlCommand.SET_TIME else 1):
            self.stats.control_rejected += 1
            raise att.ATT_Error(att.ErrorCode.INVALID_ATTRIBUTE_LENGTH, message=f"bad {command.name} length")
        self.stats.control_commands += 1
        if command is ControlCommand.SET_TIME:
            self.gateway_time_us = int.from_bytes(value[1:], "little")
        else:
            self._started = command is ControlCommand.START_STREAM
            self._update_ready()

    def _on_pmd_control_write(self, connection: Connection, value: bytes) -> None:
        """PMD control point: act, then indicate a response as the H10 does."""
        op = value[0] if value else 0
        if value in (START_ECG_COMMAND, STOP_ECG_COMMAND):
            status = _PMD_OK
            self._started = value == START_ECG_COMMAND
            self._update_ready()
        elif op not in (START_ECG_COMMAND[0], STOP_ECG_COMMAND[0]):
            status = _PMD_INVALID_OP_CODE
        elif len(value) < 2 or value[1] != START_ECG_COMMAND[1]:
            status = _PMD_INVALID_MEASUREMENT_TYPE
        else:
            status = _PMD_INVALID_PARAMETER
        if status == _PMD_OK:
            self.stats.control_commands += 1
        else:
            self.stats.control_rejected += 1
        measurement = value[1] if len(value) > 1 else 0
        response = bytes([_PMD_RESPONSE, op, measurement, status, 0x00])
        indication = self._stack_device().indicate_subscriber(connection, self._control_char, response)
        self._spawn("PMD response indication", indication)

    # -- helpers --------------------------------------------------------------------------

    def _encode(self, frame: EcgFrame) -> bytes:
        if self.profile is BleProfile.POLAR_H10:
            return encode_pmd_ecg(polar_frame_from(frame))
        if frame.leads != self.leads or frame.fs_hz != self.fs_hz:
            raise FrameError(
                f"frame has leads {frame.leads} at {frame.fs_hz} Hz but {self.device_id!r} "
                f"announces {self.leads} at {self.fs_hz} Hz"
            )
        return encode_frame(frame)

    async def _set_battery(self, level: int) -> None:
        if not 0 <= level <= 100:
            raise ValueError(f"battery level {level} outside 0..100")
        if level == self._battery_pct:
            return
        self._battery_pct = level
        if self._connection is not None:
            characteristic = self._battery_service.battery_level_characteristic
            await self._guard(self._stack_device().notify_subscriber(self._connection, characteristic, level))

    def _require_connection(self) -> Connection:
        if self._connection is None:
            raise TransportError(f"BLE peripheral {self.device_id!r} has no central connected")
        return self._connection

    def _stack_device(self) -> Device:
        if self._stack is None:
            raise TransportError(f"BLE peripheral {self.device_id!r} is not open")
        return self._stack.device

    @staticmethod
    async def _guard(operation: Coroutine[Any, Any, None]) -> None:
        """Run a bumble GATT operation, reporting its failure as a lost link."""
        try:
            await operation
        except (asyncio.CancelledError, TransportError):
            raise
        except Exception as exc:
            raise TransportError(f"BLE notification failed: {exc}") from exc

    def _spawn(self, what: str, operation: Coroutine[Any, Any, None]) -> None:
        """Run a GATT operation after the current ATT request has been answered."""

        async def run() -> None:
            try:
                await operation
            except Exception as exc:  # nobody awaits this task: report here
                logger.warning("BLE peripheral %s: %s failed: %s", self.device_id, what, exc)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def polar_frame_from(frame: EcgFrame) -> PolarEcgFrame:
    """An ecgstream frame (one lead, 130 Hz, µV counts) as the PMD frame an H10 sends.

    The PMD stamp is the device clock of the *last* sample in ns. Raises
    :class:`~protocol.errors.FrameError` for any other lead count, rate or resolution.
    """
    if len(frame.leads) != 1 or frame.fs_hz != POLAR_ECG_FS_HZ or frame.lsb_nv != 1000:
        raise FrameError(
            f"a Polar H10 frame needs one lead at {POLAR_ECG_FS_HZ} Hz in µV (lsb_nv 1000), got "
            f"{len(frame.leads)} lead(s) at {frame.fs_hz} Hz, lsb_nv {frame.lsb_nv}"
        )
    last_ns = frame.t0_us * 1000 + round((frame.n_samples - 1) * 1e9 / frame.fs_hz)
    return PolarEcgFrame(timestamp_ns=last_ns, samples_uv=frame.samples[:, 0])
