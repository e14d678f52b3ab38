"""Gateway configuration: one TOML file (``docs/edge.example.toml``) with environment overrides.

:func:`load_config` returns an :class:`EdgeConfig` (frozen dataclasses, one
per table, in :mod:`.schema`) or raises :class:`ConfigError` naming the file,
table and key; :mod:`.loader` does the reading and checking.
"""

from edge.config.loader import (
    ENV_PREFIX,
    ConfigError,
    check_alarm_thresholds,
    env_name,
    load_config,
    parse_config,
)
from edge.config.schema import (
    ARTIFACTS,
    EMBEDDED,
    AlarmsConfig,
    BleDeviceConfig,
    BrokerConfig,
    EdgeConfig,
    IngestConfig,
    MqttIngestConfig,
    ObservabilityConfig,
    ProcessingConfig,
    UplinkConfig,
)

__all__ = [
    "ARTIFACTS",
    "EMBEDDED",
    "ENV_PREFIX",
    "AlarmsConfig",
    "BleDeviceConfig",
    "BrokerConfig",
    "ConfigError",
    "EdgeConfig",
    "IngestConfig",
    "MqttIngestConfig",
    "ObservabilityConfig",
    "ProcessingConfig",
    "UplinkConfig",
    "check_alarm_thresholds",
    "env_name",
    "load_config",
    "parse_config",
]
