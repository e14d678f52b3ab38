"""Cloud service settings: one TOML file (``docs/cloud.example.toml``) with ``ECGSTREAM_CLOUD__…`` overrides.

:func:`load_settings` returns a :class:`CloudSettings` (frozen dataclasses, one per table) or raises
:class:`ConfigError` with one line naming the file (or environment variable), the table and the key::

    cloud.toml: [http] port 70000 is not a TCP port
    ECGSTREAM_CLOUD__ESCALATION__HIGH_S: [escalation] high_s must be a number, got 'soon'

Environment overrides mirror the edge's (``edge/config``): ``ECGSTREAM_CLOUD__<TABLE>__<KEY>=value``
replaces one key, read as the key's type (integers, numbers, ``true``/``false``, strings; an empty value
resets an optional key). Unknown tables and keys are errors, in the file and in the environment.
Secrets (the broker password) may only come from the environment. A relative SQLite path in the file
is relative to the file's folder; from the environment or the defaults, to the working directory.

Defaults need no system service: SQLite under ``./var``, HTTP on 127.0.0.1:8080, ingest from a broker
on 127.0.0.1:1883 (when none answers, the service says so and keeps serving the API).
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "ECGSTREAM_CLOUD__"
DEFAULT_DATABASE_URL = "sqlite:///var/ecgstream-cloud.db"

LogLevel = Literal["debug", "info", "warning", "error"]


class ConfigError(ValueError):
    """The cloud settings are missing, unreadable or invalid (one line, naming file, table and key)."""


def _rule(check: typing.Callable[[Any], bool], problem: str) -> dict[str, Any]:
    return {"check": check, "problem": problem}


def _positive() -> dict[str, Any]:
    return _rule(lambda v: v > 0 and math.isfinite(v), "must be > 0")


def _port(allow_zero: bool = False) -> dict[str, Any]:
    return _rule(lambda v: (0 if allow_zero else 1) <= v <= 65535, "is not a TCP port")


@dataclass(frozen=True)
class DatabaseConfig:
    """Where the store lives: ``sqlite:///path.db`` (default) or ``postgresql://user@host/db``."""

    url: str = DEFAULT_DATABASE_URL
    migrate: bool = True
    """Run the Alembic migrations at start-up (every process may: Alembic serialises them)."""


@dataclass(frozen=True)
class BrokerConfig:
    """The MQTT 5 broker the ingest workers share (Mosquitto, EMQX, HiveMQ, VerneMQ)."""

    host: str = "127.0.0.1"
    port: int = field(default=1883, metadata=_port())
    """1883 by default, 8883 when ``tls`` is on and no port is given."""
    username: str | None = None
    password: str | None = field(default=None, repr=False, metadata={"secret": True})
    tls: bool = False
    cafile: str | None = None
    group: str = "cloud"
    """The shared-subscription group: every worker with the same group splits the traffic."""
    client_id: str | None = None
    """MQTT client id (default ``cloud-<host>-<pid>``); keep it stable across restarts for a persistent session."""
    session_expiry_s: int = field(default=3600, metadata=_positive())
    enforce_registry: bool = True
    """Reject messages from devices that are not registered to the payload's patient."""


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata=_port(allow_zero=True))
    """0: any free port (the chosen one is logged)."""
    cookie_secure: bool = False
    """Mark the session cookie ``Secure`` (turn on behind HTTPS)."""
    max_body_bytes: int = field(default=65536, metadata=_positive())
    forwarded_allow_ips: str | None = None
    """Comma-separated addresses of reverse proxies whose ``X-Forwarded-For`` is trusted, so that audit
    entries and the login limiter see the real client address (default: none; behind a proxy every
    client would otherwise share the proxy's address, and its login limit)."""


@dataclass(frozen=True)
class AccountsConfig:
    session_ttl_s: float = field(default=12 * 3600.0, metadata=_positive())
    login_max_failures: int = field(default=5, metadata=_positive())
    """Failed sign-ins for one user name (or from one client address) …"""
    login_window_s: float = field(default=300.0, metadata=_positive())
    """… within this many seconds, after which sign-in is refused (429) until the oldest ages out."""
    argon2_time_cost: int = field(default=3, metadata=_positive())
    argon2_memory_kib: int = field(default=65536, metadata=_rule(lambda v: v >= 8, "must be >= 8"))
    argon2_parallelism: int = field(default=1, metadata=_positive())


@dataclass(frozen=True)
class EscalationConfig:
    """An active clinical episode nobody acknowledged is escalated after its priority's time, and again
    after the same time, up to ``max_level``."""

    high_s: float = field(default=60.0, metadata=_positive())
    medium_s: float = field(default=180.0, metadata=_positive())
    low_s: float = field(default=600.0, metadata=_positive())
    max_level: int = field(default=3, metadata=_positive())
    check_interval_s: float = field(default=1.0, metadata=_positive())

    def after_us(self) -> dict[str, int]:
        """Waiting time per priority, µs."""
        return {"high": int(self.high_s * 1e6), "medium": int(self.medium_s * 1e6), "low": int(self.low_s * 1e6)}


@dataclass(frozen=True)
class FeedConfig:
    poll_s: float = field(default=0.25, metadata=_positive())
    """How often a live-feed connection reads the store for other processes' writes."""
    keepalive_s: float = field(default=15.0, metadata=_positive())


@dataclass(frozen=True)
class WardConfig:
    offline_after_s: float = field(default=60.0, metadata=_positive())
    """A patient with nothing heard for this long shows as ``offline``."""


@dataclass(frozen=True)
class ModelWorkerConfig:
    """The heavy models run on the windows behind stored alerts (:mod:`cloud.model_worker`).

    ``models``: ``[[model_worker.models]]`` tables (name, path, kind, threshold, …; see
    :class:`cloud.model_worker.ModelSpec`); left out, the shipped full-precision edge classifier is
    hosted when its artifact exists. ``partition``: ``"i/n"``, this process takes the alerts whose
    sequence number is i modulo n (n processes split the work; "0/1" takes all).
    """

    poll_s: float = field(default=0.5, metadata=_positive())
    max_batch: int = field(default=16, metadata=_positive())
    window_wait_s: float = field(default=60.0, metadata=_rule(lambda v: v >= 0, "must be >= 0"))
    partition: str = field(default="0/1", metadata=_rule(
        lambda v: len(p := v.split("/")) == 2 and all(x.isdigit() for x in p) and int(p[0]) < int(p[1]),
        "must be i/n with 0 <= i < n"))
    models: tuple[Any, ...] | None = None

    def partition_tuple(self) -> tuple[int, int]:
        i, n = self.partition.split("/")
        return int(i), int(n)


@dataclass(frozen=True)
class RunConfig:
    """Which parts this process runs (several processes may split them, or all run everything)."""

    ingest: bool = True
    api: bool = True
    escalation: bool = True
    models: bool = True


@dataclass(frozen=True)
class LogConfig:
    level: LogLevel = "info"


@dataclass(frozen=True)
class CloudSettings:
    """Everything ``ecgstream cloud run`` needs, one field per TOML table."""

    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    escalation: EscalationConfig = field(default_factory=EscalationConfig)
    feed: FeedConfig = field(default_factory=FeedConfig)
    ward: WardConfig = field(default_factory=WardConfig)
    run: RunConfig = field(default_factory=RunConfig)
    log: LogConfig = field(default_factory=LogConfig)
    model_worker: ModelWorkerConfig = field(default_factory=ModelWorkerConfig)
    source: str = "defaults"

    def client_id(self) -> str:
        """The configured MQTT client id, or ``cloud-<host>-<pid>`` (topic-safe, ≤ 64 characters)."""
        if self.broker.client_id:
            return self.broker.client_id
        host = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())[:40]
        return f"cloud-{host or 'host'}-{os.getpid()}"


# -- reading -------------------------------------------------------------------------------------


def load_settings(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> CloudSettings:
    """Read ``path`` (``None``: defaults only) and apply environment overrides (default ``os.environ``)."""
    if path is None:
        return parse_settings("", source="defaults", env=env)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read config {path}: {reason}") from None
    return parse_settings(text, source=str(path), base_dir=path.parent, env=env)


def parse_settings(text: str, *, source: str = "<memory>", base_dir: Path | None = None,
                   env: Mapping[str, str] | None = None) -> CloudSettings:
    """Validate TOML text plus environment overrides."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    origins: dict[tuple[str, str], str] = {}
    for var in sorted(os.environ if env is None else env):
        if var.upper().startswith(ENV_PREFIX):
            _apply_env(doc, var, (os.environ if env is None else env)[var], origins)
    tables: dict[str, Any] = {}
    hints = typing.get_type_hints(CloudSettings)
    for name, value in doc.items():
        if name not in hints or name == "source":
            raise ConfigError(f"{source}: unknown table [{name}] (allowed: {', '.join(_tables())})")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {name} must be a table [{name}]")
        models = value.pop("models", None) if name == "model_worker" else None
        tables[name] = _build(hints[name], value, name, source, origins)
        if models is not None:
            tables[name] = replace(tables[name], models=_model_specs(models, source, base_dir))
    settings = CloudSettings(**tables, source=source)
    return _finish(settings, doc, source, base_dir, origins)


def _model_specs(raw: Any, source: str, base_dir: Path | None) -> tuple[Any, ...]:
    """``[[model_worker.models]]`` tables → :class:`cloud.model_worker.ModelSpec` (checked now, loaded at start)."""
    from cloud.model_worker import ModelConfigError, ModelSpec

    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        raise ConfigError(f"{source}: [model_worker] models must be an array of tables ([[model_worker.models]])")
    try:
        specs = tuple(ModelSpec.from_mapping(m, base_dir=base_dir) for m in raw)
    except (ModelConfigError, TypeError) as exc:
        raise ConfigError(f"{source}: [model_worker] {exc}") from None
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: [model_worker] model names must be unique, got {names}")
    return specs


def _tables() -> list[str]:
    return [f.name for f in dataclasses.fields(CloudSettings) if f.name != "source"]


def _apply_env(doc: dict[str, Any], var: str, text: str, origins: dict[tuple[str, str], str]) -> None:
    parts = [p.lower() for p in var[len(ENV_PREFIX):].split("__")]
    hints = typing.get_type_hints(CloudSettings)
    if len(parts) != 2 or parts[0] not in hints or parts[0] == "source":
        raise ConfigError(f"{var}: expected {ENV_PREFIX}<TABLE>__<KEY> with a table of "
                          f"{', '.join(_tables())}")
    table, key = parts
    cls = hints[table]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        raise ConfigError(f"{var}: [{table}] unknown key {key!r} (allowed: {', '.join(sorted(fields))})")
    tp, optional = _optional(typing.get_type_hints(cls)[key])
    sub = doc.setdefault(table, {})
    if not isinstance(sub, dict):
        return  # the file's own value is wrong; building reports it
    origins[(table, key)] = var
    if optional and text == "":
        sub.pop(key, None)
        return
    sub[key] = _env_value(text.strip(), tp, var, f"[{table}] {key}")


def _env_value(text: str, tp: Any, var: str, what: str) -> Any:
    if tp is bool:
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{var}: {what} must be true or false, got {text!r}")
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            raise ConfigError(f"{var}: {what} must be {'an integer' if tp is int else 'a number'}, "
                              f"got {text!r}") from None
    return text


def _optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        return next(a for a in typing.get_args(tp) if a is not type(None)), True
    return tp, False


def _build(cls: type, raw: dict[str, Any], table: str, source: str, origins: Mapping[tuple[str, str], str]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = origins.get((table, key), source)
        if key not in fields:
            raise ConfigError(f"{where}: [{table}] unknown key {key!r} (allowed: {', '.join(sorted(fields))})")
        f = fields[key]
        if f.metadata.get("secret") and (table, key) not in origins:
            raise ConfigError(f"{where}: [{table}] {key} is a secret: set it in the environment "
                              f"({ENV_PREFIX}{table.upper()}__{key.upper()}), not in the file")
        values[key] = _value(value, hints[key], f, f"[{table}] {key}", where)
    return cls(**values)


def _value(value: Any, tp: Any, f: dataclasses.Field[Any], what: str, where: str) -> Any:
    tp, _ = _optional(tp)
    if typing.get_origin(tp) is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {what} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if tp is float:
        if type(value) not in (int, float):
            raise ConfigError(f"{where}: {what} must be a number, got {type(value).__name__}")
        value = float(value)
    elif type(value) is not tp:
        kind = {str: "a string", int: "an integer", bool: "true or false"}.get(tp, str(tp))
        raise ConfigError(f"{where}: {what} must be {kind}, got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise ConfigError(f"{where}: {what} must not be empty")
    check = f.metadata.get("check")
    if check is not None and not check(value):
        raise ConfigError(f"{where}: {what} {value} {f.metadata['problem']}")
    return value


def _finish(settings: CloudSettings, doc: Mapping[str, Any], source: str, base_dir: Path | None,
            origins: Mapping[tuple[str, str], str]) -> CloudSettings:
    db = settings.database
    where = origins.get(("database", "url"), source)
    try:
        url = make_url(db.url)
    except ArgumentError:
        raise ConfigError(f"{where}: [database] url {db.url!r} is not a database URL") from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"{where}: [database] url must be sqlite:///… or postgresql://…, got {backend!r}")
    if backend == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        if not path.is_absolute() and base_dir is not None and ("database", "url") not in origins:
            path = base_dir / path
            settings = replace(settings, database=replace(db, url=url.set(database=str(path)).render_as_string(
                hide_password=False)))
    broker = settings.broker
    raw_broker = doc.get("broker", {})
    if broker.host == "embedded" and settings.run.ingest:
        raise ConfigError(f"{origins.get(('broker', 'host'), source)}: [broker] host 'embedded' is the edge demo's "
                          f"MQTT 3.1.1 broker, which cannot serve the cloud's shared subscription; give an MQTT 5 "
                          f"broker (Mosquitto, EMQX, …) or set [run] ingest = false")
    if broker.cafile is not None and not broker.tls:
        raise ConfigError(f"{origins.get(('broker', 'cafile'), source)}: [broker] cafile needs tls = true")
    if broker.tls and "port" not in raw_broker:
        settings = replace(settings, broker=replace(broker, port=8883))
    return settings


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (None for PostgreSQL or an in-memory database)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


__all__ = [
    "DEFAULT_DATABASE_URL", "ENV_PREFIX", "AccountsConfig", "BrokerConfig", "CloudSettings", "ConfigError",
    "DatabaseConfig", "EscalationConfig", "FeedConfig", "HttpConfig", "LogConfig", "ModelWorkerConfig", "RunConfig",
    "WardConfig",
    "load_settings", "parse_settings", "sqlite_path",
]
