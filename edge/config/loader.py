"""Reading the gateway configuration: one TOML file, then ``ECGSTREAM_EDGE__…`` environment overrides.

A thin layer over :mod:`settings.reader` (which documents the file, environment and error rules);
every problem raises :class:`ConfigError` with one line naming where the value came from (the
file, or the environment variable), the table and the key::

    edge.toml: [uplink] port 70000 is not a TCP port
    ECGSTREAM_EDGE__UPLINK__QOS: [uplink] qos must be an integer, got 'one'

Secrets (broker passwords) may only come from the environment (``ECGSTREAM_EDGE__UPLINK__PASSWORD``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from edge.config.schema import EdgeConfig
from edge.errors import EdgeError
from settings.errors import SettingsError
from settings.reader import Loaded, SettingsReader

ENV_PREFIX = "ECGSTREAM_EDGE__"


class ConfigError(SettingsError, EdgeError):
    """The gateway configuration is missing, unreadable or invalid (one line, naming file, table and key)."""


_READER = SettingsReader(EdgeConfig, ENV_PREFIX, ConfigError)


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> EdgeConfig:
    """Read ``path`` (``None``: defaults only) and apply environment overrides (default ``os.environ``)."""
    return _finish(_READER.load(path, env=env))


def parse_config(
    text: str, *, source: str = "<memory>", base_dir: Path | None = None, env: Mapping[str, str] | None = None
) -> EdgeConfig:
    """Validate TOML text plus environment overrides; relative file paths are taken from ``base_dir``."""
    return _finish(_READER.parse(text, source=source, base_dir=base_dir, env=env))


def check_alarm_thresholds(config: EdgeConfig, known: Iterable[str]) -> dict[str, float]:
    """The ``[alarms.thresholds]`` overrides, after checking each name is one the alarm engine ``known``s."""
    names = set(known)
    for name in config.alarms.thresholds:
        if name not in names:
            raise ConfigError(
                f"{config.source}: [alarms.thresholds] unknown threshold {name!r} (known: {', '.join(sorted(names))})"
            )
    return dict(config.alarms.thresholds)


def env_name(path: Iterable[str]) -> str:
    """The environment variable that sets the key at ``path`` (e.g. ``ECGSTREAM_EDGE__UPLINK__PASSWORD``)."""
    return _READER.env_name(path)


def _finish(loaded: Loaded[EdgeConfig]) -> EdgeConfig:
    """Where the configuration came from, and the uplink's client id (default: the gateway id)."""
    config = loaded.value
    uplink = config.uplink if config.uplink.client_id is not None else replace(config.uplink,
                                                                                client_id=config.gateway_id)
    return replace(config, uplink=uplink, source=loaded.source)
