"""The gateway configuration as typed, frozen (pydantic) dataclasses, with their defaults and value rules.

Each dataclass is one TOML table; each field is one key. A field's type (from :mod:`settings.fields`)
decides how its TOML or environment value is read and checked (:mod:`settings.reader`); rules that
span keys are the tables' model validators. Defaults run with no set-up: an embedded broker for
devices, no cloud broker needed to load, the shipped model artifacts, metrics off.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import AfterValidator, model_validator
from pydantic.dataclasses import dataclass

import models
from protocol.errors import TopicError
from protocol.leads import STANDARD_LEADS
from protocol.topics import validate_id
from settings.broker import EMBEDDED, SECTION, BrokerConfig
from settings.fields import (
    INTERNAL,
    Bool,
    FilePath,
    Int,
    ListenPort,
    Number,
    PositiveNumber,
    Text,
    problem,
    rule,
)

ARTIFACTS = Path(models.__file__).resolve().parent / "artifacts"
"""Where the shipped ONNX artifacts live."""

Profile = Literal["ecgstream-250", "ecgstream-500", "polar-h10"]
BleBackend = Literal["bleak", "bumble"]
InferenceBackend = Literal["auto", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt", "torch-cuda"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["json", "text"]

_THRESHOLD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_BLE_ADDRESS = re.compile(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}|[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}")

__all__ = [
    "ARTIFACTS", "EMBEDDED", "AlarmsConfig", "BleDeviceConfig", "BrokerConfig", "EdgeConfig", "IngestConfig",
    "MqttIngestConfig", "ObservabilityConfig", "ProcessingConfig", "UplinkConfig",
]


def _default_gateway_id() -> str:
    """This host's name made topic-safe (``[A-Za-z0-9_.-]``, at most 64 characters), or ``edge``."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64]
    return name or "edge"


def _ident(value: str, name: str) -> str:
    """A topic-safe id, or the table's problem naming ``name``."""
    try:
        return validate_id(value, name)
    except TopicError as exc:
        raise problem(str(exc), name) from None


def _display_name(name: str, key: str) -> str:
    """A patient's display name: 1-200 printable characters (the cloud's limit)."""
    if not name.strip() or len(name) > 200 or not name.isprintable():
        raise problem(f"display name {name[:40]!r} must be 1-200 printable characters", key)
    return name


def _threshold_name(name: str) -> str:
    if not _THRESHOLD_NAME.fullmatch(name):
        raise problem(f"threshold name {name!r} must be lower_case_with_underscores", name)
    return name


def _frozen_mapping(value: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(value))


@dataclass(frozen=True, config=SECTION)
class MqttIngestConfig(BrokerConfig):
    """``[ingest.mqtt]``: the broker devices publish their samples to."""

    enabled: Bool = True


@dataclass(frozen=True, config=SECTION)
class BleDeviceConfig:
    """One ``[[ingest.ble]]`` entry: a wearable the gateway connects to over BLE."""

    patient: Text
    """Patient id (topic-safe) the device's stream belongs to."""
    patient_name: Text | None = None
    """The patient's display name (the same as an ``[ingest.patient_names]`` entry for ``patient``)."""
    address: Text | None = None
    """BLE address (``AA:BB:CC:DD:EE:FF``, or a CoreBluetooth UUID); this or ``name``."""
    name: Text | None = None
    """Advertised name to scan for; this or ``address``."""
    device_id: Text | None = None
    """Topic-safe device id (default: the address without colons, or the name)."""
    profile: Profile = "ecgstream-250"
    backend: BleBackend = "bleak"
    hci: Text | None = None
    """bleak: adapter (``hci0``; default the system's); bumble: transport spec (``usb:0``; default emulated)."""

    @model_validator(mode="after")
    def _check(self) -> BleDeviceConfig:
        if (self.address is None) == (self.name is None):
            raise problem("needs exactly one of address or name")
        if self.address is not None and not _BLE_ADDRESS.fullmatch(self.address):
            raise problem(f"address {self.address!r} is not a BLE address (AA:BB:CC:DD:EE:FF or a UUID)", "address")
        _ident(self.patient, "patient")
        if self.patient_name is not None:
            _display_name(self.patient_name, "patient_name")
        if self.device_id is not None:
            _ident(self.device_id, "device_id")
            return self
        derived = self.address.replace(":", "").lower() if self.address is not None else str(self.name)
        try:
            object.__setattr__(self, "device_id", validate_id(derived, "device id"))
        except TopicError:
            raise problem(f"name {self.name!r} is not a valid device id; set device_id", "name") from None
        return self


@dataclass(frozen=True, config=SECTION)
class IngestConfig:
    """``[ingest]``: where frames come from and how each stream is kept in order."""

    reorder_window: Annotated[Int, rule(lambda v: 1 <= v <= 4096, "must be 1-4096 frames")] = 8
    """Frames a late frame may lag the newest one and still be put in order."""
    interpolation_limit_ms: Annotated[Number, rule(lambda v: 0 <= v <= 1000, "must be 0-1000 ms")] = 150.0
    """Longest gap filled by linear interpolation; longer gaps are marked, never bridged."""
    mqtt: MqttIngestConfig = field(default_factory=MqttIngestConfig)
    ble: tuple[BleDeviceConfig, ...] = ()
    patients: Annotated[Mapping[str, Text], AfterValidator(_frozen_mapping)] = field(
        default_factory=lambda: MappingProxyType({}))
    """``[ingest.patients]``: device id → patient id, for devices on every transport (MQTT wearables, replays);
    a ``[[ingest.ble]]`` entry's ``patient`` is the same mapping for that device. Others are their own patient."""
    patient_names: Annotated[Mapping[str, Text], AfterValidator(_frozen_mapping)] = field(
        default_factory=lambda: MappingProxyType({}))
    """``[ingest.patient_names]``: patient id → display name (what the ward shows), for the patients of
    ``[ingest.patients]``, ``[[ingest.ble]]`` or any other; ``ecgstream cloud registry import-edge``
    registers them with these names. A patient without one is shown by its id."""
    allowed_devices: tuple[Text, ...] = ()
    """Device ids accepted besides the mapped ones (empty and no file: any device, up to ``max_sessions``)."""
    allowed_devices_file: FilePath | None = None
    """A file of more allowed device ids, one a line (``#`` starts a comment)."""
    only_known_devices: Bool = False
    """Accept only devices of ``[ingest.patients]``, ``[[ingest.ble]]`` and the allow-list; others are refused."""
    max_sessions: Annotated[Int, rule(lambda v: 1 <= v <= 100_000, "must be 1-100000")] = 1000
    """Most device streams kept at once; a new device beyond it is refused (``rejected{reason="too_many_devices"}``)."""
    new_devices_per_s: Annotated[Number, rule(lambda v: v > 0, "must be > 0")] = 10.0
    """New device ids accepted per second per transport (a burst of ``max(1, 5 × rate)`` first); more are
    refused (``rejected{reason="new_device_rate"}``)."""

    def device_patients(self) -> dict[str, str]:
        """Device id → patient id for every mapped device (``[ingest.patients]`` and ``[[ingest.ble]]``)."""
        return {**dict(self.patients), **{str(d.device_id): d.patient for d in self.ble}}

    def display_names(self) -> dict[str, str]:
        """Patient id → display name (``[ingest.patient_names]`` and each BLE entry's ``patient_name``)."""
        return {**{d.patient: d.patient_name for d in self.ble if d.patient_name is not None},
                **dict(self.patient_names)}

    def allowed_device_ids(self) -> frozenset[str] | None:
        """The allow-list (mapped devices, ``allowed_devices``, the file), or None when any device may come
        (``only_known_devices`` false and no list given). Raises OSError when the file cannot be read."""
        listed = set(self.allowed_devices)
        if self.allowed_devices_file is not None:
            for line in Path(self.allowed_devices_file).read_text(encoding="utf-8").splitlines():
                ident = line.split("#", 1)[0].strip()
                if ident:
                    listed.add(ident)
        if not listed and not self.only_known_devices:
            return None
        mapped = {str(d.device_id) for d in self.ble} | set(self.patients)
        return frozenset(listed | mapped)

    @model_validator(mode="after")
    def _check(self) -> IngestConfig:
        for device_id, patient_id in self.patients.items():
            _ident(device_id, "patients")
            _ident(patient_id, "patients")
        for i, ble in enumerate(self.ble):
            other = self.patients.get(str(ble.device_id))
            if other is not None and other != ble.patient:
                raise problem(f"device {ble.device_id!r} is mapped to patient {other!r} in [ingest.patients] "
                              f"and to {ble.patient!r} here", "patient", at=("ble", i))
        for patient_id, name in self.patient_names.items():
            _ident(patient_id, "patient_names")
            _display_name(name, "patient_names")
        for i, ble in enumerate(self.ble):
            named = self.patient_names.get(ble.patient)
            if ble.patient_name is not None and named is not None and named != ble.patient_name:
                raise problem(f"patient {ble.patient!r} is named {named!r} in [ingest.patient_names] and "
                              f"{ble.patient_name!r} here", "patient_name", at=("ble", i))
        for ident in self.allowed_devices:
            _ident(ident, "allowed_devices")
        for key in ("device_id", "address", "name"):
            seen: set[str] = set()
            for i, device in enumerate(self.ble):
                value = getattr(device, key)
                if value is None:
                    continue
                if value.lower() in seen:
                    raise problem(f"{key} {value!r} is used twice", key, at=("ble", i))
                seen.add(value.lower())
        return self


@dataclass(frozen=True, config=SECTION)
class ProcessingConfig:
    """``[processing]``: windows and the models run on them."""

    window_s: PositiveNumber = 10.0
    hop_s: PositiveNumber = 5.0
    """Seconds between window starts; at most ``window_s``."""
    reconstruction_model: FilePath = ARTIFACTS / "reconstruction_vae.onnx"
    classifier_model: FilePath = ARTIFACTS / "classifier_mamba.onnx"
    """A missing model file means rules only, not an error."""
    calibration_dir: FilePath = Path("out/edge/calibrations")
    """Patient calibrations of the reconstruction, ``<patient_id>.json`` each (``ecgstream models calibrate
    reconstruction``); a patient without one, or a missing folder, gets the generic model."""
    backend: InferenceBackend = "auto"
    max_batch: Annotated[Int, rule(lambda v: 1 <= v <= 65536, "must be 1-65536")] = 64
    latency_deadline_ms: PositiveNumber = 200.0
    """Longest a window waits for its micro-batch to fill."""

    @model_validator(mode="after")
    def _check(self) -> ProcessingConfig:
        if self.hop_s > self.window_s:
            raise problem(f"hop_s {self.hop_s:g} must be at most window_s ({self.window_s:g})", "hop_s")
        return self


@dataclass(frozen=True, config=SECTION)
class AlarmsConfig:
    """``[alarms]``: ``[alarms.thresholds]`` overrides the alarm engine's defaults by name."""

    thresholds: Annotated[Mapping[Annotated[str, AfterValidator(_threshold_name)], Number],
                          AfterValidator(_frozen_mapping)] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, config=SECTION)
class UplinkConfig(BrokerConfig):
    """``[uplink]``: the cloud broker and the outbox in front of it.

    ``client_id`` is the MQTT client id of the persistent session; :func:`edge.config.load_config` fills in
    the gateway id when none is given."""

    qos: Annotated[Int, rule(lambda v: v in (0, 1, 2), "must be 0, 1 or 2")] = 1
    """MQTT QoS of every uplink publish: 1 (default) or 2; 0 only with ``receipts = false``."""
    receipts: Bool = True
    """Delete an alert or window from the outbox only on the cloud's end-to-end receipt, resending it
    when none comes; false: on the broker's PUBACK (a cloud that sends no receipts)."""
    receipt_timeout_s: Annotated[Number, rule(lambda v: 1 <= v <= 3600, "must be 1-3600 s")] = 30.0
    """A published message without a receipt after this long is sent again (the wait doubles per resend)."""
    refusal_backoff_s: Annotated[Number, rule(lambda v: 0.1 <= v <= 3600, "must be 0.1-3600 s")] = 5.0
    """A message the broker refused (MQTT 5 reason code, e.g. not authorized) is retried after this
    long, doubling per attempt up to 5 minutes."""
    session_expiry_s: Annotated[Int, rule(lambda v: 60 <= v <= 4294967295, "must be 60-4294967295 s")] = 604800
    """How long the broker keeps the uplink's session (and the receipts sent to it) while the gateway is away."""
    live: Bool = True
    """Stream each patient's ECG (``live_leads`` at ``live_rate_hz``, ~1 s chunks, QoS 0, never through the
    outbox) and vitals every second for the central-station ward (protocol.live_payload)."""
    live_rate_hz: Annotated[Number, rule(lambda v: 25 <= v <= 500, "must be 25-500 Hz")] = 125.0
    live_leads: tuple[str, ...] = ("II", "V1", "V5")
    """Leads of the live stream (standard names; those a device does not send are left out)."""
    outbox_path: FilePath = Path("out/edge/outbox.sqlite")
    disk_budget_mb: PositiveNumber = 512.0
    """Outbox budget; over it the oldest windows are evicted (and counted), never alerts."""
    restore_max_age_s: Annotated[Number, rule(lambda v: 0 < v <= 86400, "must be 0-86400 s")] = 600.0
    """A restarted gateway goes on with each device's saved alarm episodes and window grid (kept in the
    outbox) when they are at most this old; older state is dropped with a log line."""

    @model_validator(mode="after")
    def _check_delivery(self) -> UplinkConfig:
        if self.qos == 0 and self.receipts:
            raise problem("qos 0 must be 1 or 2 while receipts = true (qos 0 is allowed only with receipts = false: "
                          "nothing would confirm delivery)", "qos")
        unknown = [lead for lead in self.live_leads if lead not in STANDARD_LEADS]
        if unknown or not self.live_leads:
            raise problem(f"live_leads must be standard lead names (got {', '.join(unknown) or 'none'})", "live_leads")
        return self


@dataclass(frozen=True, config=SECTION)
class ObservabilityConfig:
    """``[observability]``: metrics, logs and the status file."""

    metrics_port: ListenPort = 0
    """Prometheus exporter port (also serves ``/status``); 0 = off."""
    metrics_host: Text = "127.0.0.1"
    log_level: LogLevel = "info"
    log_format: LogFormat = "text"
    status_file: FilePath = Path("out/edge/status.json")
    status_interval_s: PositiveNumber = 2.0


@dataclass(frozen=True, config=SECTION)
class EdgeConfig:
    """The whole gateway configuration (one TOML file)."""

    gateway_id: Text = field(default_factory=_default_gateway_id)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)
    alarms: AlarmsConfig = field(default_factory=AlarmsConfig)
    uplink: UplinkConfig = field(default_factory=UplinkConfig)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    source: str = field(default="defaults", compare=False, metadata=INTERNAL)
    """Where it was read from (for error messages); not a TOML key."""

    @model_validator(mode="after")
    def _check(self) -> EdgeConfig:
        _ident(self.gateway_id, "gateway_id")
        return self
