"""GATT services and characteristics the wearables expose.

The ecgstream wearable has one vendor service with a notify characteristic for
:mod:`protocol.ble_frame` frames and a write characteristic for control
commands, plus the standard Battery and Device Information services. Polar H10
UUIDs are those of Polar's public Measurement Data (PMD) service.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

ATT_MTU = 247
"""ATT MTU both sides of a link ask for: a 244-byte notification plus the 3-byte ATT header."""


class BleProfile(StrEnum):
    """Which GATT layout a wearable exposes (and a central expects)."""

    ECGSTREAM = "ecgstream"
    """The ecgstream wearable: vendor ECG service with :mod:`protocol.ble_frame` frames."""
    POLAR_H10 = "polar_h10"
    """A Polar H10 chest strap: Polar Measurement Data service, single-lead ECG at 130 Hz."""


# ecgstream wearable (vendor 128-bit UUIDs, one base, 16-bit slot in bytes 2-3)
ECG_SERVICE_UUID = "e5c90001-8c3b-4b5e-9a52-2f1d6c0e7a10"
ECG_DATA_CHAR_UUID = "e5c90002-8c3b-4b5e-9a52-2f1d6c0e7a10"
"""Notify: one BLE ECG frame v1 per notification."""
ECG_CONTROL_CHAR_UUID = "e5c90003-8c3b-4b5e-9a52-2f1d6c0e7a10"
"""Write: one :class:`ControlCommand` byte, then arguments."""
ECG_INFO_CHAR_UUID = "e5c90004-8c3b-4b5e-9a52-2f1d6c0e7a10"
"""Read: UTF-8 JSON with device id, profile, rate, leads, frame version."""

BATTERY_SERVICE_UUID = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL_CHAR_UUID = "00002a19-0000-1000-8000-00805f9b34fb"
DEVICE_INFO_SERVICE_UUID = "0000180a-0000-1000-8000-00805f9b34fb"

# Polar H10 Measurement Data service
POLAR_PMD_SERVICE_UUID = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
POLAR_PMD_CONTROL_CHAR_UUID = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
POLAR_PMD_DATA_CHAR_UUID = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"


class ControlCommand(IntEnum):
    """First byte written to :data:`ECG_CONTROL_CHAR_UUID`."""

    START_STREAM = 0x01
    STOP_STREAM = 0x02
    SET_TIME = 0x03
    """Followed by the gateway's clock as u64 µs, little-endian."""
