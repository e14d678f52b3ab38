"""Reading the gateway configuration: one TOML file, then ``ECGSTREAM_EDGE__…`` environment overrides.

Every problem raises :class:`ConfigError` with one line naming where the value
came from (the file, or the environment variable), the table and the key::

    edge.toml: [uplink] port 70000 is not a TCP port
    ECGSTREAM_EDGE__UPLINK__QOS: [uplink] qos must be an integer, got 'one'

Environment overrides: ``ECGSTREAM_EDGE__<TABLE>__…__<KEY>=value`` (double
underscores between levels, any case) replaces one key of the file; the text
is read as the key's type (integers, numbers, ``true``/``false``, strings,
paths; an empty value resets an optional key to its default). Unknown tables
and keys are errors, as in the file. Secrets (broker passwords) may only come
from the environment. Relative paths in the file are relative to the file's
folder; those from the environment or the defaults, to the working directory.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edge.config.schema import BleDeviceConfig, BrokerConfig, EdgeConfig, IngestConfig, ProcessingConfig
from protocol.errors import TopicError
from protocol.topics import validate_id

ENV_PREFIX = "ECGSTREAM_EDGE__"
_THRESHOLD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_BLE_ADDRESS = re.compile(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}|[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}")
_TOML_TYPES = {str: "string", int: "integer", float: "float", bool: "boolean", dict: "table", list: "array"}
_EXPECTED = {str: "a string", int: "an integer", bool: "true or false"}
_UNSET = object()


class ConfigError(ValueError):
    """The gateway configuration is missing, unreadable or invalid (one line, naming file, table and key)."""


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> EdgeConfig:
    """Read ``path`` (``None``: defaults only) and apply environment overrides (default ``os.environ``)."""
    if path is None:
        return parse_config("", source="defaults", env=env)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read config {path}: {reason}") from None
    return parse_config(text, source=str(path), base_dir=path.parent, env=env)


def parse_config(
    text: str, *, source: str = "<memory>", base_dir: Path | None = None, env: Mapping[str, str] | None = None
) -> EdgeConfig:
    """Validate TOML text plus environment overrides; relative file paths are taken from ``base_dir``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    origins: dict[tuple[str, ...], str] = {}
    _apply_env(doc, os.environ if env is None else env, origins)
    config = _build(EdgeConfig, doc, _Ctx(source, base_dir, origins))
    return replace(config, source=source)


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
    return ENV_PREFIX + "__".join(path).upper()


@dataclass(frozen=True)
class _Ctx:
    """Where in the document a value sits, for messages, and where relative paths start."""

    source: str
    base_dir: Path | None
    origins: Mapping[tuple[str, ...], str]
    path: tuple[str, ...] = ()
    label: str | None = None

    def sub(self, key: str) -> _Ctx:
        return replace(self, path=(*self.path, key), label=None)

    def item(self, key: str, index: int) -> _Ctx:
        return replace(self, path=(*self.path, key, str(index)), label=f"[[{'.'.join((*self.path, key))}]] #{index + 1}")

    @property
    def table(self) -> str:
        return self.label or (f"[{'.'.join(self.path)}]" if self.path else "")

    def from_env(self, key: str) -> bool:
        return (*self.path, key) in self.origins

    def fail(self, message: str, key: str | None = None) -> ConfigError:
        origin = self.origins.get((*self.path, key)) if key is not None else None
        where = f"{self.table} " if self.table else ""
        return ConfigError(f"{origin or self.source}: {where}{message}")


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_table(tp: Any) -> bool:
    """Whether ``tp`` is a dataclass type, i.e. a TOML table."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True); anything else → (tp, False)."""
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def _tname(value: Any) -> str:
    return next((name for kind, name in _TOML_TYPES.items() if type(value) is kind), type(value).__name__)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return repr(str(value)) if isinstance(value, str | Path) else str(value)


def _build(cls: type, raw: Any, ctx: _Ctx) -> Any:
    """One table → one dataclass, checking keys, types, rules and the table's own constraints."""
    if not isinstance(raw, dict):
        raise ctx.fail(f"must be a table, got {_tname(raw)}")
    fields, hints = _fields(cls), _hints(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ctx.fail(f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(fields))})", key=unknown[0])
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if f.metadata.get("secret") and name in raw and not ctx.from_env(name):
            raise ctx.fail(f"{name} must not be in the file; set {env_name((*ctx.path, name))} in the environment", name)
        if name in raw:
            values[name] = _value(raw[name], hints[name], name, ctx)
            check = f.metadata.get("check")
            if check is not None and not check(values[name]):
                raise ctx.fail(f"{name} {_show(values[name])} {f.metadata['problem']}", name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ctx.fail(f"{name} is required", name)
        elif _is_table(hints[name]):
            values[name] = _build(hints[name], {}, ctx.sub(name))
    obj = cls(**values)
    if isinstance(obj, BrokerConfig):
        return _finish_broker(obj, raw, ctx)
    finish = _FINISH.get(cls)
    return finish(obj, ctx) if finish else obj


def _value(value: Any, tp: Any, name: str, ctx: _Ctx) -> Any:
    """Check one TOML value against a field type and convert it (paths, numbers, nested tables)."""
    tp, _ = _optional(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices or type(value) is not type(choices[0]):
            raise ctx.fail(f"{name} {_show(value)} is not one of {', '.join(map(str, choices))}", name)
        return value
    if _is_table(tp):
        return _build(tp, value, ctx.sub(name))
    if origin is tuple:
        if not isinstance(value, list):
            raise ctx.fail(f"{name} must be an array of tables ([[{'.'.join((*ctx.path, name))}]]), got {_tname(value)}", name)
        return tuple(_build(typing.get_args(tp)[0], item, ctx.item(name, i)) for i, item in enumerate(value))
    if origin is Mapping:
        return _thresholds(value, name, ctx)
    if tp is float:
        return _number(value, name, ctx)
    kind = str if tp is Path else tp
    if type(value) is not kind:
        raise ctx.fail(f"{name} must be {_EXPECTED[kind]}, got {_tname(value)}", name)
    if isinstance(value, str) and not value.strip():
        raise ctx.fail(f"{name} must not be empty", name)
    if tp is Path:
        path = Path(value)
        return ctx.base_dir / path if ctx.base_dir is not None and not path.is_absolute() and not ctx.from_env(name) else path
    return value


def _number(value: Any, name: str, ctx: _Ctx) -> float:
    if type(value) not in (int, float):
        raise ctx.fail(f"{name} must be a number, got {_tname(value)}", name)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ctx.fail(f"{name} {value} is not a finite number", name)
    return number


def _thresholds(value: Any, name: str, ctx: _Ctx) -> Mapping[str, float]:
    sub = ctx.sub(name)
    if not isinstance(value, dict):
        raise sub.fail(f"must be a table, got {_tname(value)}")
    for key in value:
        if not _THRESHOLD_NAME.fullmatch(key):
            raise sub.fail(f"threshold name {key!r} must be lower_case_with_underscores", key)
    return types.MappingProxyType({key: _number(v, key, sub) for key, v in value.items()})


def _ident(value: str, name: str, ctx: _Ctx) -> str:
    try:
        return validate_id(value, name)
    except TopicError as exc:
        raise ctx.fail(str(exc), name) from None


def _finish_broker(broker: BrokerConfig, raw: Mapping[str, Any], ctx: _Ctx) -> BrokerConfig:
    if broker.embedded and (broker.tls or broker.username or broker.password or broker.cafile):
        raise ctx.fail("tls, username, password and cafile need a real broker (host is 'embedded')",
                       next((k for k in ("tls", "username", "password", "cafile") if k in raw), None))
    if broker.cafile is not None and not broker.tls:
        raise ctx.fail("cafile needs tls = true", "cafile")
    if "port" not in raw and broker.tls:
        return replace(broker, port=8883)
    return broker


def _finish_ble(device: BleDeviceConfig, ctx: _Ctx) -> BleDeviceConfig:
    if (device.address is None) == (device.name is None):
        raise ctx.fail("needs exactly one of address or name")
    if device.address is not None and not _BLE_ADDRESS.fullmatch(device.address):
        raise ctx.fail(f"address {device.address!r} is not a BLE address (AA:BB:CC:DD:EE:FF or a UUID)", "address")
    _ident(device.patient, "patient", ctx)
    if device.device_id is not None:
        return replace(device, device_id=_ident(device.device_id, "device_id", ctx))
    derived = device.address.replace(":", "").lower() if device.address is not None else str(device.name)
    try:
        return replace(device, device_id=validate_id(derived, "device id"))
    except TopicError:
        raise ctx.fail(f"name {device.name!r} is not a valid device id; set device_id", "name") from None


def _finish_ingest(ingest: IngestConfig, ctx: _Ctx) -> IngestConfig:
    for key in ("device_id", "address", "name"):
        seen: set[str] = set()
        for i, device in enumerate(ingest.ble):
            value = getattr(device, key)
            if value is None:
                continue
            if value.lower() in seen:
                raise ctx.item("ble", i).fail(f"{key} {value!r} is used twice", key)
            seen.add(value.lower())
    return ingest


def _finish_processing(processing: ProcessingConfig, ctx: _Ctx) -> ProcessingConfig:
    if processing.hop_s > processing.window_s:
        raise ctx.fail(f"hop_s {_show(processing.hop_s)} must be at most window_s ({_show(processing.window_s)})", "hop_s")
    return processing


def _finish_edge(config: EdgeConfig, ctx: _Ctx) -> EdgeConfig:
    _ident(config.gateway_id, "gateway_id", ctx)
    if config.uplink.client_id is None:
        return replace(config, uplink=replace(config.uplink, client_id=config.gateway_id))
    return config


_FINISH: dict[type, Any] = {
    BleDeviceConfig: _finish_ble,
    IngestConfig: _finish_ingest,
    ProcessingConfig: _finish_processing,
    EdgeConfig: _finish_edge,
}


def _apply_env(doc: dict[str, Any], env: Mapping[str, str], origins: dict[tuple[str, ...], str]) -> None:
    """Write every ``ECGSTREAM_EDGE__…`` variable into ``doc`` as a value of its key's type."""
    for var in sorted(env):
        if var.upper().startswith(ENV_PREFIX):
            _apply_one(doc, var, env[var], origins)


def _apply_one(doc: dict[str, Any], var: str, text: str, origins: dict[tuple[str, ...], str]) -> None:
    parts = [p.lower() for p in var[len(ENV_PREFIX):].split("__")]
    cls: type = EdgeConfig
    table: dict[str, Any] = doc
    path: tuple[str, ...] = ()
    for i, part in enumerate(parts):
        where = f"[{'.'.join(path)}] " if path else ""
        fields = _fields(cls)
        if part not in fields:
            raise ConfigError(f"{var}: {where}unknown field {part!r} (allowed: {', '.join(sorted(fields))})")
        tp, optional = _optional(_hints(cls)[part])
        rest = parts[i + 1:]
        if typing.get_origin(tp) is tuple:
            raise ConfigError(f"{var}: {where}{part} is an array of tables and can only be set in the file")
        if typing.get_origin(tp) is Mapping:
            if len(rest) != 1:
                raise ConfigError(f"{var}: [{'.'.join((*path, part))}] is set one entry at a time: "
                                  f"{env_name((*path, part))}__NAME=value")
            sub = table.setdefault(part, {})
            if isinstance(sub, dict):
                sub[rest[0]] = _env_value(text, float, var, f"[{'.'.join((*path, part))}] {rest[0]}")
                origins[(*path, part, rest[0])] = var
            return
        if _is_table(tp):
            if not rest:
                raise ConfigError(f"{var}: [{'.'.join((*path, part))}] is a table; set one of its keys "
                                  f"({env_name((*path, part))}__KEY)")
            sub = table.setdefault(part, {})
            if not isinstance(sub, dict):
                return  # the file's own value is wrong; building reports it
            cls, table, path = tp, sub, (*path, part)
            continue
        if rest:
            raise ConfigError(f"{var}: {where}{part} is not a table")
        if optional and text == "":
            table.pop(part, None)
        else:
            table[part] = _env_value(text, tp, var, f"{where}{part}")
        origins[(*path, part)] = var
        return


def _env_value(text: str, tp: Any, var: str, what: str) -> Any:
    """Environment text → a value of the TOML type that ``tp`` expects (checked again when building)."""
    clean = text.strip()
    if tp is bool:
        lowered = clean.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{var}: {what} must be true or false, got {text!r}")
    if tp in (int, float):
        try:
            return tp(clean)
        except ValueError:
            raise ConfigError(f"{var}: {what} must be {'an integer' if tp is int else 'a number'}, got {text!r}") from None
    return text
