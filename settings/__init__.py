"""Typed settings for every tier: TOML files plus environment overrides, the MQTT broker and TLS.

- :mod:`settings.reader`: one TOML file (or none) plus ``PREFIX__TABLE__KEY`` environment overrides,
  validated into frozen (pydantic) dataclasses; every problem is one line naming the key.
- :mod:`settings.fields`: the field types and value rules tables are written with.
- :mod:`settings.broker`: :class:`BrokerConfig`, shared by the edge and the cloud.
- :mod:`settings.tls`: :func:`client_tls_context`, the one TLS helper.

This is the bottom layer: it imports only the standard library and pydantic.
"""

from settings.broker import EMBEDDED, MQTT_PORT, MQTTS_PORT, BrokerConfig, default_port
from settings.errors import SettingsError
from settings.tls import client_tls_context

__all__ = [
    "EMBEDDED",
    "MQTTS_PORT",
    "MQTT_PORT",
    "BrokerConfig",
    "SettingsError",
    "client_tls_context",
    "default_port",
]
