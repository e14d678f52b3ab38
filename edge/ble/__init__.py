"""The gateway's BLE central: one interface (:mod:`edge.ble.link`), a bleak
implementation for hardware (:mod:`edge.ble.bleak_backend`), a bumble one for
emulated links and raw HCI adapters (:mod:`edge.ble.bumble_backend`), and
:class:`~edge.ble.manager.BleIngest`, which keeps many devices connected."""

from edge.ble.link import (
    ATT_MTU,
    GATT_PROFILES,
    Backoff,
    BleCentralBackend,
    BleDisconnected,
    BleError,
    BleLink,
    BleProfile,
    GattProfile,
    PayloadKind,
)
from edge.ble.manager import BleDeviceStats, BleIngest, default_backend

__all__ = [
    "ATT_MTU",
    "GATT_PROFILES",
    "Backoff",
    "BleCentralBackend",
    "BleDeviceStats",
    "BleDisconnected",
    "BleError",
    "BleIngest",
    "BleLink",
    "BleProfile",
    "GattProfile",
    "PayloadKind",
    "default_backend",
]
