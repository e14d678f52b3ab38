"""JSON messages between tiers: alerts and status reports (schema v1).

Alerts and status are small and read by people as often as by programs, so
they travel as UTF-8 JSON with an explicit ``schema_version``. Parsing checks
every field's presence, type and range and raises
:class:`~protocol.errors.SchemaError` (or UnsupportedVersionError) with the
field's name; unknown extra fields are ignored so that a newer minor sender
does not break an older receiver.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from protocol.errors import SchemaError, TopicError, UnsupportedVersionError
from protocol.leads import ELECTRODES, STANDARD_LEADS
from protocol.topics import validate_id

MESSAGE_SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024


class Priority(StrEnum):
    """Alarm priority as in IEC 60601-1-8."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class AlertCategory(StrEnum):
    CLINICAL = "clinical"
    TECHNICAL = "technical"


@dataclass(frozen=True)
class Alert:
    """One alarm condition raised by the edge.

    ``reconstructed_leads`` maps each reconstructed lead the alert rests on to
    its mean uncertainty (mV, half-width of the 90 % band).
    """

    alert_id: str
    patient_id: str
    device_id: str
    alert_type: str
    category: AlertCategory
    priority: Priority
    onset_gateway_us: int
    onset_device_us: int | None = None
    window_id: str | None = None
    message: str = ""
    model_versions: dict[str, str] = field(default_factory=dict)
    reconstructed_leads: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    schema_version: int = MESSAGE_SCHEMA_VERSION

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())


@dataclass(frozen=True)
class DeviceStatus:
    """A wearable's periodic status (also derived by the edge for BLE devices)."""

    device_id: str
    t_device_us: int
    battery_pct: int | None = None
    connected: bool = True
    lead_off: tuple[str, ...] = ()
    profile: str = ""
    firmware: str = ""
    schema_version: int = MESSAGE_SCHEMA_VERSION


@dataclass(frozen=True)
class GatewayStatus:
    """An edge gateway's heartbeat."""

    gateway_id: str
    t_gateway_us: int
    streams: int = 0
    outbox_depth: int = 0
    software: str = ""
    schema_version: int = MESSAGE_SCHEMA_VERSION


Message = Alert | DeviceStatus | GatewayStatus
M = TypeVar("M", Alert, DeviceStatus, GatewayStatus)


def encode_message(message: Message) -> bytes:
    """Validate and serialise to compact UTF-8 JSON."""
    _validate(type(message), asdict(message))
    return json.dumps(asdict(message), separators=(",", ":"), sort_keys=True).encode()


def decode_message(data: bytes | bytearray | memoryview | str, cls: type[M]) -> M:
    """Parse JSON into ``cls`` (Alert, DeviceStatus or GatewayStatus). Raises ProtocolError only."""
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) > MAX_MESSAGE_BYTES:
            raise SchemaError(f"message of {len(data)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise SchemaError("message is not UTF-8") from None
    elif isinstance(data, str):
        text = data
    else:
        raise SchemaError(f"message must be bytes or str, got {type(data).__name__}")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SchemaError(f"message is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise SchemaError("message must be a JSON object")
    return cls(**_validate(cls, obj))


_NAME = {Alert: "alert", DeviceStatus: "device status", GatewayStatus: "gateway status"}


def _validate(cls: type, obj: dict[str, Any]) -> dict[str, Any]:
    what = _NAME[cls]
    version = obj.get("schema_version")
    if type(version) is not int:
        raise SchemaError(f"{what}: schema_version missing or not an integer")
    if version != MESSAGE_SCHEMA_VERSION:
        raise UnsupportedVersionError(f"{what} schema", version, (MESSAGE_SCHEMA_VERSION,))
    if cls is Alert:
        return _validate_alert(obj)
    if cls is DeviceStatus:
        return _validate_device_status(obj)
    return _validate_gateway_status(obj)


def _get(obj: dict[str, Any], key: str, kinds: type | tuple[type, ...], what: str, *, default: Any = ...) -> Any:
    if key not in obj or obj[key] is None:
        if default is ...:
            raise SchemaError(f"{what}: field {key!r} is required")
        return default
    value = obj[key]
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise SchemaError(f"{what}: field {key!r} must not be a boolean")
    if not isinstance(value, kinds):
        raise SchemaError(f"{what}: field {key!r} has type {type(value).__name__}")
    return value


def _uuid(value: str, key: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise SchemaError(f"{what}: field {key!r} is not a UUID") from None


def _nonneg(value: int, key: str, what: str) -> int:
    if value < 0 or value >= 1 << 64:
        raise SchemaError(f"{what}: field {key!r} out of range")
    return value


def _ident(value: str, key: str, what: str) -> str:
    try:
        return validate_id(value, key)
    except TopicError as exc:
        raise SchemaError(f"{what}: {exc}") from None


def _validate_alert(obj: dict[str, Any]) -> dict[str, Any]:
    w = "alert"
    out: dict[str, Any] = {"schema_version": MESSAGE_SCHEMA_VERSION}
    out["alert_id"] = _uuid(_get(obj, "alert_id", str, w), "alert_id", w)
    out["patient_id"] = _ident(_get(obj, "patient_id", str, w), "patient_id", w)
    out["device_id"] = _ident(_get(obj, "device_id", str, w), "device_id", w)
    alert_type = _get(obj, "alert_type", str, w)
    if not 0 < len(alert_type) <= 64:
        raise SchemaError(f"{w}: field 'alert_type' must be 1-64 characters")
    out["alert_type"] = alert_type
    try:
        out["category"] = AlertCategory(_get(obj, "category", str, w))
        out["priority"] = Priority(_get(obj, "priority", str, w))
    except ValueError as exc:
        raise SchemaError(f"{w}: {exc}") from None
    out["onset_gateway_us"] = _nonneg(_get(obj, "onset_gateway_us", int, w), "onset_gateway_us", w)
    onset_dev = _get(obj, "onset_device_us", int, w, default=None)
    out["onset_device_us"] = None if onset_dev is None else _nonneg(onset_dev, "onset_device_us", w)
    wid = _get(obj, "window_id", str, w, default=None)
    out["window_id"] = None if wid is None else _uuid(wid, "window_id", w)
    out["message"] = _get(obj, "message", str, w, default="")
    versions = _get(obj, "model_versions", dict, w, default={})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
        raise SchemaError(f"{w}: field 'model_versions' must map names to version strings")
    out["model_versions"] = dict(versions)
    recon = _get(obj, "reconstructed_leads", dict, w, default={})
    for lead, unc in recon.items():
        if lead not in STANDARD_LEADS or isinstance(unc, bool) or not isinstance(unc, int | float) or unc < 0:
            raise SchemaError(f"{w}: field 'reconstructed_leads' must map standard leads to uncertainties >= 0")
    out["reconstructed_leads"] = {k: float(v) for k, v in recon.items()}
    out["details"] = dict(_get(obj, "details", dict, w, default={}))
    return out


def _validate_device_status(obj: dict[str, Any]) -> dict[str, Any]:
    w = "device status"
    out: dict[str, Any] = {"schema_version": MESSAGE_SCHEMA_VERSION}
    out["device_id"] = _ident(_get(obj, "device_id", str, w), "device_id", w)
    out["t_device_us"] = _nonneg(_get(obj, "t_device_us", int, w), "t_device_us", w)
    battery = _get(obj, "battery_pct", int, w, default=None)
    if battery is not None and not 0 <= battery <= 100:
        raise SchemaError(f"{w}: field 'battery_pct' must be 0-100")
    out["battery_pct"] = battery
    out["connected"] = _get(obj, "connected", bool, w, default=True)
    lead_off = _get(obj, "lead_off", (list, tuple), w, default=[])
    if not all(e in ELECTRODES for e in lead_off):
        raise SchemaError(f"{w}: field 'lead_off' must list electrode names from {ELECTRODES}")
    out["lead_off"] = tuple(lead_off)
    out["profile"] = _get(obj, "profile", str, w, default="")
    out["firmware"] = _get(obj, "firmware", str, w, default="")
    return out


def _validate_gateway_status(obj: dict[str, Any]) -> dict[str, Any]:
    w = "gateway status"
    out: dict[str, Any] = {"schema_version": MESSAGE_SCHEMA_VERSION}
    out["gateway_id"] = _ident(_get(obj, "gateway_id", str, w), "gateway_id", w)
    out["t_gateway_us"] = _nonneg(_get(obj, "t_gateway_us", int, w), "t_gateway_us", w)
    out["streams"] = _nonneg(_get(obj, "streams", int, w, default=0), "streams", w)
    out["outbox_depth"] = _nonneg(_get(obj, "outbox_depth", int, w, default=0), "outbox_depth", w)
    out["software"] = _get(obj, "software", str, w, default="")
    return out
