"""JSON messages between tiers: alerts and status reports (schema v1).

**Minor versions.** A change that only adds optional fields keeps ``schema_version`` 1 (readers of
v1 ignore unknown fields, so they keep working) and raises the message's ``minor_version``: a
gateway status of minor version 1 (:data:`GATEWAY_STATUS_MINOR`) adds ``patients``, each patient's
vitals (:class:`PatientVitals`), sent every second for the ward's tiles. A status without the field
reads as minor version 0 with no vitals.

Alerts and status are small and read by people as often as by programs, so
they travel as UTF-8 JSON with an explicit ``schema_version``. Parsing checks
every field's presence, type and range and raises
:class:`~protocol.errors.SchemaError` (or UnsupportedVersionError) with the
field's name; unknown extra fields are ignored so that a newer minor sender
does not break an older receiver.

What every receiver (and a database behind it) can rely on in a message that
decodes, and what :func:`encode_message` refuses to send:

- the JSON is strict: no ``NaN``/``Infinity`` (nor a number that overflows to
  infinity), no object with the same key twice;
- every string, anywhere (``details`` and ``model_versions`` included, keys
  too), is valid Unicode without a NUL character (PostgreSQL text and JSONB
  cannot hold either); every number is finite; ``details`` nests at most
  :data:`MAX_DETAILS_DEPTH` levels;
- ids are whole matches of :func:`protocol.topics.validate_id` (no trailing
  newline); times and counts are 0 ≤ value < 2^63 (a signed 64-bit column);
- an alert's ``details['event']``, when present, is one of :data:`ALERT_EVENTS`,
  ``details['episode_id']`` a UUID and ``details['family']`` a name of at most
  :data:`MAX_TEXT` characters.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from protocol.errors import SchemaError, TopicError, UnsupportedVersionError
from protocol.leads import ELECTRODES, STANDARD_LEADS
from protocol.strict_json import loads_strict
from protocol.topics import validate_id

MESSAGE_SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
MAX_INT = (1 << 63) - 1
"""Largest time or count a message may carry (signed 64-bit, what the cloud's columns hold)."""
MAX_TEXT = 64
"""Longest ``alert_type``, ``profile``, ``firmware`` and ``software`` string."""
MAX_STREAMS = (1 << 31) - 1
"""Largest ``streams`` count of a gateway status."""
MAX_DETAILS_DEPTH = 16
"""Deepest nesting of lists and objects inside ``details``."""
GATEWAY_STATUS_MINOR = 1
"""Minor version of the gateway status this build writes (1: ``patients`` vitals)."""
MAX_VITALS = 1024
"""Most patients one gateway status may carry vitals for."""
ALERT_EVENTS = ("raised", "escalated", "cleared")
"""``details['event']`` values of an alert: the edge alarm engine's episode events."""


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
class PatientVitals:
    """One patient's vitals as the gateway sees them now (a ward tile's numbers).

    ``heart_rate_bpm`` and ``sqi`` (signal quality of ``analysis_lead``, 0-1) are None while unknown;
    ``connected`` whether the device's data arrives; ``last_data_age_s`` seconds since its last data
    (None before any).
    """

    patient_id: str
    device_id: str
    heart_rate_bpm: float | None = None
    sqi: float | None = None
    analysis_lead: str | None = None
    battery_pct: int | None = None
    connected: bool = True
    last_data_age_s: float | None = None
    lead_off: tuple[str, ...] = ()


@dataclass(frozen=True)
class GatewayStatus:
    """An edge gateway's heartbeat; from minor version 1 with each patient's vitals."""

    gateway_id: str
    t_gateway_us: int
    streams: int = 0
    outbox_depth: int = 0
    software: str = ""
    patients: tuple[PatientVitals, ...] = ()
    minor_version: int = 0
    """0: a status without vitals (as every v1 sender before them); 1: ``patients`` may be present."""
    schema_version: int = MESSAGE_SCHEMA_VERSION


Message = Alert | DeviceStatus | GatewayStatus
M = TypeVar("M", Alert, DeviceStatus, GatewayStatus)


def encode_message(message: Message) -> bytes:
    """Validate and serialise to compact UTF-8 JSON (SchemaError for a message a receiver would refuse)."""
    _validate(type(message), asdict(message))
    try:
        return json.dumps(asdict(message), separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
    except (ValueError, TypeError, RecursionError) as exc:
        raise SchemaError(f"{_NAME[type(message)]}: cannot be sent as JSON: {exc}") from None


def decode_message(data: bytes | bytearray | memoryview | str, cls: type[M]) -> M:
    """Parse JSON into ``cls`` (Alert, DeviceStatus or GatewayStatus). Raises ProtocolError only."""
    obj = loads_strict(data, what="message", max_bytes=MAX_MESSAGE_BYTES)
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


def _nonneg(value: int, key: str, what: str, limit: int = MAX_INT) -> int:
    if not 0 <= value <= limit:
        raise SchemaError(f"{what}: field {key!r} out of range (0 to {limit})")
    return value


def _bad_text(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (a NUL, or a lone surrogate that is not Unicode), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode (a lone surrogate)"
    return None


def _text(value: str, key: str, what: str, *, limit: int | None = None) -> str:
    if (why := _bad_text(value)) is not None:
        raise SchemaError(f"{what}: field {key!r} {why}")
    if limit is not None and len(value) > limit:
        raise SchemaError(f"{what}: field {key!r} is longer than {limit} characters")
    return value


def _json_value(value: Any, path: str, what: str, depth: int = 0) -> None:
    """SchemaError unless ``value`` is plain JSON a database can hold: str keys, clean text, finite numbers."""
    if isinstance(value, str):
        if (why := _bad_text(value)) is not None:
            raise SchemaError(f"{what}: {path} {why}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise SchemaError(f"{what}: {path} is not a finite number")
    elif value is None or isinstance(value, bool | int):
        pass
    elif isinstance(value, dict | list | tuple):
        if depth >= MAX_DETAILS_DEPTH:
            raise SchemaError(f"{what}: {path} nests deeper than {MAX_DETAILS_DEPTH} levels")
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise SchemaError(f"{what}: {path} has a key that is not a string: {k!r}")
                if (why := _bad_text(k)) is not None:
                    raise SchemaError(f"{what}: a key of {path} {why}")
                _json_value(v, f"{path}.{k}", what, depth + 1)
        else:
            for i, v in enumerate(value):
                _json_value(v, f"{path}[{i}]", what, depth + 1)
    else:
        raise SchemaError(f"{what}: {path} has type {type(value).__name__}, which JSON cannot carry")


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
    alert_type = _text(_get(obj, "alert_type", str, w), "alert_type", w)
    if not 0 < len(alert_type) <= MAX_TEXT:
        raise SchemaError(f"{w}: field 'alert_type' must be 1-{MAX_TEXT} characters")
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
    out["message"] = _text(_get(obj, "message", str, w, default=""), "message", w)
    versions = _get(obj, "model_versions", dict, w, default={})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
        raise SchemaError(f"{w}: field 'model_versions' must map names to version strings")
    _json_value(versions, "model_versions", w)
    out["model_versions"] = dict(versions)
    recon = _get(obj, "reconstructed_leads", dict, w, default={})
    for lead, unc in recon.items():
        if lead not in STANDARD_LEADS or isinstance(unc, bool) or not isinstance(unc, int | float) \
                or not 0 <= unc < math.inf:
            raise SchemaError(f"{w}: field 'reconstructed_leads' must map standard leads to finite uncertainties >= 0")
    out["reconstructed_leads"] = {k: float(v) for k, v in recon.items()}
    details = dict(_get(obj, "details", dict, w, default={}))
    _json_value(details, "details", w)
    event = details.get("event")
    if event is not None and event not in ALERT_EVENTS:
        raise SchemaError(f"{w}: details.event {event!r} is not one of {', '.join(ALERT_EVENTS)}")
    family = details.get("family")
    if family is not None and not (isinstance(family, str) and len(family) <= MAX_TEXT):
        raise SchemaError(f"{w}: details.family must be a name of at most {MAX_TEXT} characters")
    if details.get("episode_id") is not None:
        if not isinstance(details["episode_id"], str):
            raise SchemaError(f"{w}: details.episode_id is not a UUID")
        _uuid(details["episode_id"], "details.episode_id", w)
    out["details"] = details
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
    out["profile"] = _text(_get(obj, "profile", str, w, default=""), "profile", w, limit=MAX_TEXT)
    out["firmware"] = _text(_get(obj, "firmware", str, w, default=""), "firmware", w, limit=MAX_TEXT)
    return out


def _validate_gateway_status(obj: dict[str, Any]) -> dict[str, Any]:
    w = "gateway status"
    out: dict[str, Any] = {"schema_version": MESSAGE_SCHEMA_VERSION}
    out["gateway_id"] = _ident(_get(obj, "gateway_id", str, w), "gateway_id", w)
    out["t_gateway_us"] = _nonneg(_get(obj, "t_gateway_us", int, w), "t_gateway_us", w)
    out["streams"] = _nonneg(_get(obj, "streams", int, w, default=0), "streams", w, MAX_STREAMS)
    out["outbox_depth"] = _nonneg(_get(obj, "outbox_depth", int, w, default=0), "outbox_depth", w)
    out["software"] = _text(_get(obj, "software", str, w, default=""), "software", w, limit=MAX_TEXT)
    out["minor_version"] = _nonneg(_get(obj, "minor_version", int, w, default=0), "minor_version", w, 0xFFFF)
    patients = _get(obj, "patients", (list, tuple), w, default=[])
    if len(patients) > MAX_VITALS:
        raise SchemaError(f"{w}: field 'patients' lists more than {MAX_VITALS} patients")
    out["patients"] = tuple(_vitals(p, i) for i, p in enumerate(patients))
    return out


def _finite(obj: dict[str, Any], key: str, what: str, lo: float, hi: float) -> float | None:
    value = _get(obj, key, (int, float), what, default=None)
    if value is None:
        return None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise SchemaError(f"{what}: field {key!r} must be a number in {lo:g}-{hi:g}")
    return float(value)


def _vitals(obj: object, i: int) -> PatientVitals:
    w = f"gateway status: patients[{i}]"
    if not isinstance(obj, dict):
        raise SchemaError(f"{w} must be an object")
    battery = _get(obj, "battery_pct", int, w, default=None)
    if battery is not None and not 0 <= battery <= 100:
        raise SchemaError(f"{w}: field 'battery_pct' must be 0-100")
    lead = _get(obj, "analysis_lead", str, w, default=None)
    if lead is not None and lead not in STANDARD_LEADS:
        raise SchemaError(f"{w}: field 'analysis_lead' must be one of {STANDARD_LEADS}")
    lead_off = _get(obj, "lead_off", (list, tuple), w, default=[])
    if not all(e in ELECTRODES for e in lead_off):
        raise SchemaError(f"{w}: field 'lead_off' must list electrode names from {ELECTRODES}")
    return PatientVitals(
        patient_id=_ident(_get(obj, "patient_id", str, w), "patient_id", w),
        device_id=_ident(_get(obj, "device_id", str, w), "device_id", w),
        heart_rate_bpm=_finite(obj, "heart_rate_bpm", w, 0.0, 1000.0), sqi=_finite(obj, "sqi", w, 0.0, 1.0),
        analysis_lead=lead, battery_pct=battery, connected=_get(obj, "connected", bool, w, default=True),
        last_data_age_s=_finite(obj, "last_data_age_s", w, 0.0, float(MAX_INT)), lead_off=tuple(lead_off))
