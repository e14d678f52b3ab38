"""One settings reader: a TOML file (or none), then ``PREFIX__TABLE__KEY`` environment overrides, validated.

The settings are a tree of frozen dataclasses (pydantic dataclasses with the types of
:mod:`settings.fields`, or plain ones): each dataclass is one TOML table, each field one key, a
``tuple`` of dataclasses an array of tables (``[[ingest.ble]]``), a ``Mapping`` a table of free-named
entries (``[alarms.thresholds]``). A :class:`SettingsReader` for the root class reads and checks them;
every problem raises the reader's error type (a :class:`~settings.errors.SettingsError`) with ONE line
naming where the value came from (the file, or the environment variable), the table and the key::

    edge.toml: [uplink] port 70000 is not a TCP port
    ECGSTREAM_EDGE__UPLINK__QOS: [uplink] qos must be an integer, got 'one'

Environment overrides: ``<PREFIX><TABLE>__…__<KEY>=value`` (double underscores between levels, any
case) replaces one key of the file (the environment wins). The text is read as the key's type:
integers, numbers, ``true``/``false`` (also ``yes``/``no``, ``on``/``off``, ``1``/``0``), strings and
paths as they are; an empty value resets an optional key to its default. Unknown tables and keys
are errors, in the file and in the environment. Secret keys (field metadata
:data:`~settings.fields.SECRET`) may only come from the environment. Relative paths in the file are
relative to the file's folder; those from the environment or the defaults, to the working directory.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from settings.errors import SettingsError

T = TypeVar("T")
Key = tuple[str, ...]

_TOML_TYPES = {str: "string", int: "integer", float: "float", bool: "boolean", dict: "table", list: "array"}
_TABLE_ERRORS = {"dataclass_type", "dataclass_exact_type", "dict_type", "model_type", "mapping_type"}


@dataclasses.dataclass(frozen=True)
class Loaded(Generic[T]):
    """What a reader read: the settings, where they came from, and which keys the environment set."""

    value: T
    source: str
    base_dir: Path | None
    origins: Mapping[Key, str]
    """Key path (``("uplink", "port")``) → the environment variable that set it."""

    def from_env(self, *path: str) -> bool:
        """Whether the environment set the key at ``path``."""
        return tuple(path) in self.origins

    def origin(self, *path: str) -> str:
        """Where the key at ``path`` came from: its environment variable, else the source."""
        return self.origins.get(tuple(path), self.source)


class SettingsReader(Generic[T]):
    """Reads one kind of settings (the dataclass ``root``) with the overrides under ``prefix``.

    ``prefix`` is e.g. ``"ECGSTREAM_EDGE__"`` (``None``: no environment overrides); ``error`` is the
    exception type raised (a :class:`SettingsError` subclass, or a plain ``ValueError`` subclass).
    """

    def __init__(self, root: type[T], prefix: str | None = None, error: type[ValueError] = SettingsError) -> None:
        self.root = root
        self.prefix = prefix
        self.error = error
        self._adapter: TypeAdapter[T] = TypeAdapter(root)

    # -- entry points ----------------------------------------------------------------------------

    def load(self, path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Loaded[T]:
        """Read ``path`` (``None``: defaults only) and apply environment overrides (default ``os.environ``)."""
        if path is None:
            return self.parse("", source="defaults", env=env)
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise self.error(f"cannot read config {path}: {reason}") from None
        return self.parse(text, source=str(path), base_dir=path.parent, env=env)

    def parse(self, text: str, *, source: str = "<memory>", base_dir: Path | None = None,
              env: Mapping[str, str] | None = None) -> Loaded[T]:
        """Validate TOML text plus environment overrides; relative file paths are taken from ``base_dir``."""
        return self.validate(self.loads(text, source=source), source=source, base_dir=base_dir, env=env)

    def loads(self, text: str, *, source: str = "<memory>") -> dict[str, Any]:
        """The TOML document in ``text``, unchecked (an error naming ``source`` when it is not TOML)."""
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise self.error(f"{source}: not valid TOML: {exc}") from None

    def validate(self, doc: Mapping[str, Any], *, source: str = "<memory>", base_dir: Path | None = None,
                 env: Mapping[str, str] | None = None) -> Loaded[T]:
        """Validate an already-parsed document (a TOML-shaped mapping) plus environment overrides."""
        doc = _copy(doc)
        origins: dict[Key, str] = {}
        if self.prefix is not None:
            env = os.environ if env is None else env
            for var in sorted(env):
                if var.upper().startswith(self.prefix):
                    self._apply_env(doc, var, env[var], origins)
        _Prepare(self, source, base_dir, origins).table(doc, self.root, ())
        try:
            value = self._adapter.validate_python(doc)
        except ValidationError as exc:
            raise self.error(self._message(exc, source, origins)) from None
        return Loaded(value, source, base_dir, types.MappingProxyType(origins))

    def env_name(self, path: typing.Iterable[str]) -> str:
        """The environment variable that sets the key at ``path`` (e.g. ``ECGSTREAM_EDGE__UPLINK__PASSWORD``)."""
        return (self.prefix or "") + "__".join(path).upper()

    def fail(self, loaded: Loaded[Any], table: Key, message: str, key: str | None = None) -> ValueError:
        """An error about the settings as a whole: ``<origin>: [table] <message>``, origin from ``key``."""
        origin = loaded.origin(*table, key) if key is not None else loaded.source
        return self.error(f"{origin}: {_label(table)}{message}")

    # -- environment -----------------------------------------------------------------------------

    def _apply_env(self, doc: dict[str, Any], var: str, text: str, origins: dict[Key, str]) -> None:
        """Write one ``PREFIX…`` variable into ``doc`` as a value of its key's type."""
        assert self.prefix is not None
        parts = [p.lower() for p in var[len(self.prefix):].split("__")]
        cls: Any = self.root
        table: dict[str, Any] = doc
        path: Key = ()
        for i, part in enumerate(parts):
            where = _label(path)
            fields = _fields(cls)
            if part not in fields:
                if not path and all(_is_table(_bare(_hints(cls)[n])[0]) for n in fields):
                    raise self.error(f"{var}: expected {self.prefix}<TABLE>__<KEY> with a table of {', '.join(fields)}")
                raise self.error(f"{var}: {where}unknown key {part!r} (allowed: {', '.join(sorted(fields))})")
            tp, optional = _bare(_hints(cls)[part])
            rest = parts[i + 1:]
            if typing.get_origin(tp) is tuple:
                raise self.error(f"{var}: {where}{part} is an array of tables and can only be set in the file")
            if typing.get_origin(tp) is Mapping:
                if len(rest) != 1:
                    raise self.error(f"{var}: {_label((*path, part))}is set one entry at a time: "
                                     f"{self.env_name((*path, part))}__NAME=value")
                sub = table.setdefault(part, {})
                if isinstance(sub, dict):
                    value_tp = _bare(typing.get_args(tp)[1])[0]
                    sub[rest[0]] = self._env_value(text, value_tp, var, f"{_label((*path, part))}{rest[0]}")
                    origins[(*path, part, rest[0])] = var
                return
            if _is_table(tp):
                if not rest:
                    raise self.error(f"{var}: {_label((*path, part))}is a table; set one of its keys "
                                     f"({self.env_name((*path, part))}__KEY)")
                sub = table.setdefault(part, {})
                if not isinstance(sub, dict):
                    return  # the file's own value is wrong; validating reports it
                cls, table, path = tp, sub, (*path, part)
                continue
            if rest:
                raise self.error(f"{var}: {where}{part} is not a table")
            if optional and text == "":
                table.pop(part, None)
            else:
                table[part] = self._env_value(text, tp, var, f"{where}{part}")
            origins[(*path, part)] = var
            return

    def _env_value(self, text: str, tp: Any, var: str, what: str) -> Any:
        """Environment text → a value of the TOML type that ``tp`` expects (validated afterwards)."""
        clean = text.strip()
        if tp is bool:
            lowered = clean.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise self.error(f"{var}: {what} must be true or false, got {text!r}")
        if tp in (int, float):
            try:
                return tp(clean)
            except ValueError:
                kind = "an integer" if tp is int else "a number"
                raise self.error(f"{var}: {what} must be {kind}, got {text!r}") from None
        return text

    # -- messages --------------------------------------------------------------------------------

    def _message(self, exc: ValidationError, source: str, origins: Mapping[Key, str]) -> str:
        """The first validation error as one line: origin, table, key and what is wrong."""
        error = exc.errors(include_url=False)[0]
        ctx = error.get("ctx") or {}
        loc = (*error["loc"], *ctx.get("at", ()))
        place = _place(self.root, loc, table_error=error["type"] in _TABLE_ERRORS or error["type"] == "table")
        key = place.key if error["type"] != "table" else ctx.get("key")
        origin = origins.get((*place.path, key), source) if key is not None else source
        where = f"{place.label} " if place.label else ""
        return f"{origin}: {where}{_describe(error, place)}".replace("\n", " ")


@dataclasses.dataclass(frozen=True)
class _Place:
    """Where a validation error points: the table's label and path, the key and its type."""

    label: str
    path: Key
    key: str | None
    tp: Any
    table: Any = None
    """The table's (dataclass) type when the error is about a whole table."""


def _place(root: Any, loc: tuple[Any, ...], *, table_error: bool) -> _Place:
    tp: Any = root
    path: Key = ()
    label = ""
    parts = [p for p in loc if p != "[key]"]
    while parts:
        part = parts.pop(0)
        bare = _bare(tp)[0]
        origin = typing.get_origin(bare)
        if _is_table(bare) and isinstance(part, str) and part in _fields(bare):
            field_tp = _bare(_hints(bare)[part])[0]
            if typing.get_origin(field_tp) is tuple and parts and isinstance(parts[0], int):
                item = _bare(typing.get_args(field_tp)[0])[0]
                if not _is_table(item):  # an array of values: name the entry
                    return _Place(label, path, f"{part}[{parts[0]}]", item)
            into_table = _is_table(field_tp) or typing.get_origin(field_tp) is Mapping
            if parts or (table_error and into_table):
                tp, path, label = field_tp, (*path, part), _label((*path, part)).strip()
                continue
            return _Place(label, path, part, field_tp)
        if origin is tuple and isinstance(part, int):
            label = f"[[{'.'.join(path)}]] #{part + 1}"
            tp, path = typing.get_args(bare)[0], (*path, str(part))
            continue
        if origin is Mapping:
            return _Place(label, path, str(part), _bare(typing.get_args(bare)[1])[0])
        return _Place(label, path, str(part), Any)
    return _Place(label, path, None, Any, table=_bare(tp)[0])


def _describe(error: ErrorDetails, place: _Place) -> str:
    kind, value = error["type"], error["input"]
    ctx = error.get("ctx") or {}
    key = place.key or ""
    if kind == "table":
        return str(ctx["message"])
    if kind in _TABLE_ERRORS and place.key is None:
        return f"must be a table, got {_tname(value)}"
    if kind == "missing":
        return f"{key} is required"
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return f"unknown key {key!r}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{key} must be an integer, got {_tname(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{key} must be true or false, got {_tname(value)}"
    if kind in ("string_type", "path_type"):
        return f"{key} must be a string, got {_tname(value)}"
    if kind in ("float_type", "float_parsing"):
        if type(value) is int:  # too large for a float
            return f"{key} {value} is not a finite number"
        return f"{key} must be a number, got {_tname(value)}"
    if kind == "finite_number":
        return f"{key} {value} is not a finite number"
    if kind == "literal_error":
        choices = typing.get_args(place.tp) if typing.get_origin(place.tp) is typing.Literal else ()
        listed = ", ".join(map(str, choices)) if choices else str(ctx.get("expected"))
        return f"{key} must be one of {listed}, got {_show(value)}"
    if kind == "rule":
        shown = float(value) if place.tp is float and type(value) is int else value
        return f"{key} {repr(shown) if isinstance(shown, str) else shown} {ctx['problem']}"
    if kind == "empty":
        return f"{key} must not be empty"
    if kind in ("tuple_type", "list_type"):
        item = _bare(typing.get_args(place.tp)[0])[0] if typing.get_args(place.tp) else Any
        if _is_table(item) or item is Any or typing.get_origin(item) is Mapping:
            array = ".".join((*place.path, key))
            return f"{key} must be an array of tables ([[{array}]]), got {_tname(value)}"
        return f"{key} must be an array, got {_tname(value)}"
    return f"{key} {error['msg'][:1].lower()}{error['msg'][1:]}".strip()


class _Prepare:
    """Checks made before validation: unknown keys and tables, secrets, paths relative to the file."""

    def __init__(self, reader: SettingsReader[Any], source: str, base_dir: Path | None,
                 origins: Mapping[Key, str]) -> None:
        self.reader, self.source, self.base_dir, self.origins = reader, source, base_dir, origins

    def fail(self, path: Key, key: str, message: str, label: str | None = None) -> ValueError:
        origin = self.origins.get((*path, key), self.source)
        where = label + " " if label else _label(path)
        return self.reader.error(f"{origin}: {where}{message}")

    def table(self, raw: Any, cls: Any, path: Key, label: str | None = None) -> None:
        if not isinstance(raw, dict):
            return  # validation says it must be a table
        fields, hints = _fields(cls), _hints(cls)
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            name = unknown[0]
            if isinstance(raw[name], dict) and not path:
                raise self.fail(path, name, f"unknown table [{name}] (allowed: {', '.join(sorted(fields))})")
            raise self.fail(path, name, f"unknown key {name!r} (allowed: {', '.join(sorted(fields))})", label)
        for name, f in fields.items():
            if name not in raw:
                continue
            if f.metadata.get("secret") and (*path, name) not in self.origins:
                env = self.reader.env_name((*path, name))
                raise self.fail(path, name, f"{name} must not be in the file; set {env} in the environment (it is a secret)", label)
            tp = _bare(hints[name])[0]
            value = raw[name]
            if _is_table(tp):
                self.table(value, tp, (*path, name))
            elif typing.get_origin(tp) is tuple and isinstance(value, list | tuple):
                item = _bare(typing.get_args(tp)[0])[0]
                if _is_table(item):
                    for i, entry in enumerate(value):
                        self.table(entry, item, (*path, name, str(i)), f"[[{'.'.join((*path, name))}]] #{i + 1}")
            elif (tp is Path and isinstance(value, str) and value.strip() and self.base_dir is not None
                  and not Path(value).is_absolute() and (*path, name) not in self.origins):
                raw[name] = str(self.base_dir / value)


# -- types -----------------------------------------------------------------------------------------


@functools.cache
def _fields(cls: Any) -> dict[str, dataclasses.Field[Any]]:
    """The settings keys of a table: its dataclass fields, less the internal ones."""
    return {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _bare(tp: Any) -> tuple[Any, bool]:
    """``Annotated[X | None, …]`` → (X without annotations, True); anything else → (tp, False)."""
    optional = False
    while True:
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) in (types.UnionType, typing.Union):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(tp))
            tp = args[0]
        else:
            return tp, optional


def _is_table(tp: Any) -> bool:
    """Whether ``tp`` is a dataclass type, i.e. a TOML table."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _label(path: Key) -> str:
    return f"[{'.'.join(path)}] " if path else ""


def _tname(value: Any) -> str:
    return next((name for kind, name in _TOML_TYPES.items() if type(value) is kind), type(value).__name__)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    return repr(value)


def _copy(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A deep enough copy of a document: its tables and arrays (the reader writes into them)."""
    def copy(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: copy(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [copy(v) for v in value]
        return value
    return {k: copy(v) for k, v in doc.items()}
