"""The gateway configuration as typed, frozen dataclasses, with their defaults and value rules.

Each dataclass is one TOML table; each field is one key. A field's type decides
how its TOML or environment value is read (:mod:`edge.config.loader`), and its
``metadata`` may carry a value rule (:func:`rule`) or mark it as a secret that
may only come from the environment (:func:`secret`). Defaults run with no
set-up: an embedded broker for devices, no cloud broker needed to load, the
shipped model artifacts, metrics off.
"""

from __future__ import annotations

import math
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import models

ARTIFACTS = Path(models.__file__).resolve().parent / "artifacts"
"""Where the shipped ONNX artifacts live."""

Profile = Literal["ecgstream-250", "ecgstream-500", "polar-h10"]
BleBackend = Literal["bleak", "bumble"]
InferenceBackend = Literal["auto", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt", "torch-cuda"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["json", "text"]

EMBEDDED = "embedded"
"""Broker host meaning: an in-process broker on this gateway (zero set-up; MQTT 3.1.1 only)."""


def rule(check: Callable[[Any], bool], problem: str) -> dict[str, Any]:
    """Field metadata: ``check(value)`` must hold, else the error says ``<field> <value> <problem>``."""
    return {"check": check, "problem": problem}


def secret() -> dict[str, Any]:
    """Field metadata: a secret, read from the environment only and never shown."""
    return {"secret": True}


def _tcp_port(allow_zero: bool = False) -> dict[str, Any]:
    return rule(lambda v: (0 if allow_zero else 1) <= v <= 65535, "is not a TCP port")


def _positive() -> dict[str, Any]:
    return rule(lambda v: v > 0 and math.isfinite(v), "must be > 0")


def _default_gateway_id() -> str:
    """This host's name made topic-safe (``[A-Za-z0-9_.-]``, at most 64 characters), or ``edge``."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64]
    return name or "edge"


@dataclass(frozen=True)
class BrokerConfig:
    """An MQTT broker: ``host = "embedded"`` is an in-process broker, anything else a real one."""

    host: str = EMBEDDED
    port: int = field(default=1883, metadata=_tcp_port())
    """1883 by default, 8883 when ``tls`` is on and no port is given."""
    username: str | None = None
    password: str | None = field(default=None, repr=False, metadata=secret())
    tls: bool = False
    cafile: Path | None = None
    """CA bundle for TLS (default: the system's)."""

    @property
    def embedded(self) -> bool:
        """Whether this is the in-process broker."""
        return self.host == EMBEDDED


@dataclass(frozen=True)
class MqttIngestConfig(BrokerConfig):
    """``[ingest.mqtt]``: the broker devices publish their samples to."""

    enabled: bool = True


@dataclass(frozen=True)
class BleDeviceConfig:
    """One ``[[ingest.ble]]`` entry: a wearable the gateway connects to over BLE."""

    patient: str
    """Patient id (topic-safe) the device's stream belongs to."""
    address: str | None = None
    """BLE address (``AA:BB:CC:DD:EE:FF``, or a CoreBluetooth UUID); this or ``name``."""
    name: str | None = None
    """Advertised name to scan for; this or ``address``."""
    device_id: str | None = None
    """Topic-safe device id (default: the address without colons, or the name)."""
    profile: Profile = "ecgstream-250"
    backend: BleBackend = "bleak"
    hci: str | None = None
    """bleak: adapter (``hci0``; default the system's); bumble: transport spec (``usb:0``; default emulated)."""


@dataclass(frozen=True)
class IngestConfig:
    """``[ingest]``: where frames come from and how each stream is kept in order."""

    reorder_window: int = field(default=8, metadata=rule(lambda v: 1 <= v <= 4096, "must be 1-4096 frames"))
    """Frames a late frame may lag the newest one and still be put in order."""
    interpolation_limit_ms: float = field(
        default=150.0, metadata=rule(lambda v: 0 <= v <= 1000, "must be 0-1000 ms")
    )
    """Longest gap filled by linear interpolation; longer gaps are marked, never bridged."""
    mqtt: MqttIngestConfig = field(default_factory=MqttIngestConfig)
    ble: tuple[BleDeviceConfig, ...] = ()


@dataclass(frozen=True)
class ProcessingConfig:
    """``[processing]``: windows and the models run on them."""

    window_s: float = field(default=10.0, metadata=_positive())
    hop_s: float = field(default=5.0, metadata=_positive())
    """Seconds between window starts; at most ``window_s``."""
    reconstruction_model: Path = ARTIFACTS / "reconstruction_vae.onnx"
    classifier_model: Path = ARTIFACTS / "classifier_mamba.onnx"
    """A missing model file means rules only, not an error."""
    calibration_dir: Path = Path("out/edge/calibrations")
    """Patient calibrations of the reconstruction, ``<patient_id>.json`` each (``ecgstream models calibrate
    reconstruction``); a patient without one, or a missing folder, gets the generic model."""
    backend: InferenceBackend = "auto"
    max_batch: int = field(default=64, metadata=rule(lambda v: 1 <= v <= 65536, "must be 1-65536"))
    latency_deadline_ms: float = field(default=200.0, metadata=_positive())
    """Longest a window waits for its micro-batch to fill."""


@dataclass(frozen=True)
class AlarmsConfig:
    """``[alarms]``: ``[alarms.thresholds]`` overrides the alarm engine's defaults by name."""

    thresholds: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class UplinkConfig(BrokerConfig):
    """``[uplink]``: the cloud broker and the outbox in front of it."""

    client_id: str | None = None
    """MQTT client id of the persistent session (default: the gateway id)."""
    qos: int = field(default=1, metadata=rule(lambda v: v in (1, 2), "must be 1 or 2 (alerts need an acknowledgement)"))
    outbox_path: Path = Path("out/edge/outbox.sqlite")
    disk_budget_mb: float = field(default=512.0, metadata=_positive())
    """Outbox budget; over it the oldest windows are evicted (and counted), never alerts."""


@dataclass(frozen=True)
class ObservabilityConfig:
    """``[observability]``: metrics, logs and the status file."""

    metrics_port: int = field(default=0, metadata=_tcp_port(allow_zero=True))
    """Prometheus exporter port (also serves ``/status``); 0 = off."""
    metrics_host: str = "127.0.0.1"
    log_level: LogLevel = "info"
    log_format: LogFormat = "text"
    status_file: Path = Path("out/edge/status.json")
    status_interval_s: float = field(default=2.0, metadata=_positive())


@dataclass(frozen=True)
class EdgeConfig:
    """The whole gateway configuration (one TOML file)."""

    gateway_id: str = field(default_factory=_default_gateway_id)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)
    alarms: AlarmsConfig = field(default_factory=AlarmsConfig)
    uplink: UplinkConfig = field(default_factory=UplinkConfig)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    source: str = field(default="defaults", compare=False)
    """Where it was read from (for error messages); not a TOML key."""
