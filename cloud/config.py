"""Cloud service settings: one TOML file (``docs/cloud.example.toml``) with ``ECGSTREAM_CLOUD__…`` overrides.

:func:`load_settings` returns a :class:`CloudSettings` (frozen dataclasses, one per table) or raises
:class:`ConfigError` with one line naming the file (or environment variable), the table and the key::

    cloud.toml: [http] port 70000 is not a TCP port
    ECGSTREAM_CLOUD__ESCALATION__HIGH_S: [escalation] high_s must be a number, got 'soon'

A thin layer over :mod:`settings.reader`, which the edge's configuration shares (it documents the
environment rules: ``ECGSTREAM_CLOUD__<TABLE>__<KEY>=value`` replaces one key, read as the key's type;
an empty value resets an optional key; unknown tables and keys are errors). Secrets (the broker
password, the ``[downlink]`` one) may only come from the environment. A relative SQLite path or CA bundle in the file is
relative to the file's folder; from the environment or the defaults, to the working directory.

Defaults need no system service: SQLite under ``./var``, HTTP on 127.0.0.1:8080, ingest from a broker
on 127.0.0.1:1883 (when none answers, the service says so and keeps serving the API).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, model_validator
from pydantic.dataclasses import dataclass
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cloud.errors import CloudError
from settings import broker as shared
from settings.broker import SECTION
from settings.errors import SettingsError
from settings.fields import (
    INTERNAL,
    SECRET,
    Bool,
    Int,
    ListenPort,
    Number,
    PositiveInt,
    PositiveNumber,
    TcpPort,
    Text,
    problem,
    rule,
)
from settings.reader import Loaded, SettingsReader

ENV_PREFIX = "ECGSTREAM_CLOUD__"
DEFAULT_DATABASE_URL = "sqlite:///var/ecgstream-cloud.db"

LogLevel = Literal["debug", "info", "warning", "error"]


class ConfigError(SettingsError, CloudError):
    """The cloud settings are missing, unreadable or invalid (one line, naming file, table and key)."""


def _cookie_secure(v: Any) -> Any:
    """An environment override arrives as text: ``true``/``false`` (and friends) become booleans."""
    if isinstance(v, str) and v.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return v.strip().lower() in ("true", "1", "yes", "on")
    return v


CookieSecure = Annotated[Literal["auto"] | bool, BeforeValidator(_cookie_secure)]
LOOPBACK_HOSTS = ("localhost", "::1", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name the service binds) reaches only this machine."""
    host = host.strip().strip("[]").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def _partition_ok(v: str) -> bool:
    p = v.split("/")
    return len(p) == 2 and all(x.isdigit() for x in p) and int(p[0]) < int(p[1])


@dataclass(frozen=True, config=SECTION)
class DatabaseConfig:
    """Where the store lives: ``sqlite:///path.db`` (default) or ``postgresql://user@host/db``."""

    url: Text = DEFAULT_DATABASE_URL
    migrate: Bool = True
    """Run the Alembic migrations at start-up (every process may: Alembic serialises them)."""


@dataclass(frozen=True, config=SECTION)
class BrokerConfig(shared.BrokerConfig):
    """The MQTT 5 broker the ingest workers share (Mosquitto, EMQX, HiveMQ, VerneMQ).

    ``client_id`` defaults to ``cloud-<host>-<pid>`` (:meth:`CloudSettings.client_id`); keep it stable
    across restarts for a persistent session."""

    host: Text = "127.0.0.1"
    port: TcpPort = shared.MQTT_PORT
    """1883 by default, 8883 when ``tls`` is on and no port is given."""
    group: Text = "cloud"
    """The shared-subscription group: every worker with the same group splits the traffic."""
    shared_subscription: Bool = True
    """False: a single ingest worker with plain subscriptions over MQTT 3.1.1, for a broker without MQTT 5
    shared subscriptions (the demo's embedded amqtt); ``group`` is then unused. Run one such worker only."""
    session_expiry_s: PositiveInt = 3600
    enforce_registry: Bool = True
    """Reject messages from devices that are not registered to the payload's patient."""


@dataclass(frozen=True, config=SECTION)
class RegistryConfig:
    """``[registry]``: how devices and patients get into the registry."""

    auto_register: Bool = False
    """Register an unknown device instead of refusing its messages: the patient its data names (named
    after the device, when new) and the device worn by them, each audited as ``auto_register``
    (:mod:`cloud.ingest.autoregister`; ``ecgstream cloud run --auto-register``). Off: an unknown device
    is refused and counted (``unknown_device``). Needs ``[broker] enforce_registry`` (the default)."""


@dataclass(frozen=True, config=SECTION)
class DownlinkConfig:
    """The broker account the API's ack publisher (:class:`cloud.downlink.AckPublisher`) uses: its own,
    apart from the ingest worker's, since a broker set up by ``ecgstream cloud broker-auth`` binds each
    account to client id = username and lets only ``<service>-downlink`` publish acks.

    ``username`` defaults to ``<[broker] username>-downlink`` when the broker has a username (else none:
    an open development broker); the client id is the username (else ``<client id>-downlink``);
    ``password`` may only come from ``ECGSTREAM_CLOUD__DOWNLINK__PASSWORD`` (:meth:`CloudSettings.downlink_account`)."""

    username: Text | None = None
    password: Text | None = field(default=None, repr=False, metadata=SECRET)


@dataclass(frozen=True, config=SECTION)
class LiveConfig:
    """The ward's live ECG and vitals (:mod:`cloud.api.live`): the API relays the gateways' live stream
    (``patient/+/live``) and status vitals to signed-in browsers, stored nowhere.

    ``relay = false`` turns the live ward off in this process. When the broker has accounts the relay
    connects as ``<[broker] username>-live`` (made by ``ecgstream cloud broker-auth``); ``password`` may
    only come from ``ECGSTREAM_CLOUD__LIVE__PASSWORD``, and without it the live ward is off (logged)."""

    relay: bool = True
    password: Text | None = field(default=None, repr=False, metadata=SECRET)


@dataclass(frozen=True)
class DownlinkAccount:
    """Who the ack publisher is to the broker (resolved from ``[downlink]`` and ``[broker]``)."""

    client_id: str
    username: str | None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, config=SECTION)
class HttpConfig:
    host: Text = "127.0.0.1"
    port: ListenPort = 8080
    """0: any free port (the chosen one is logged)."""
    cookie_secure: CookieSecure = "auto"
    """Mark the session cookie ``Secure``: ``true``, ``false``, or ``"auto"`` (default): Secure unless
    the service is bound to a loopback address or the request came over HTTPS (see :meth:`secure_cookie`)."""
    max_body_bytes: PositiveInt = 65536
    forwarded_allow_ips: Text | None = None
    """Comma-separated addresses of reverse proxies whose ``X-Forwarded-For`` is trusted, so that audit
    entries and the login limiter see the real client address (default: none; behind a proxy every
    client would otherwise share the proxy's address, and its login limit)."""

    def secure_cookie(self, *, https: bool = False) -> bool:
        """Whether the session cookie is ``Secure``: as set, or with ``"auto"`` whenever the service is
        not bound to loopback or the request came over HTTPS."""
        if self.cookie_secure == "auto":
            return https or not is_loopback(self.host)
        return bool(self.cookie_secure)


@dataclass(frozen=True, config=SECTION)
class AccountsConfig:
    session_ttl_s: PositiveNumber = 12 * 3600.0
    login_max_failures: PositiveInt = 5
    """Failed sign-ins for one user name from one address that cost nothing; after them each try waits
    2^k s after the latest failure (429 with Retry-After). An address failing over many user names, and a
    user name failing from many addresses, get the same after twice as many (:mod:`cloud.accounts.ratelimit`)."""
    login_window_s: PositiveNumber = 3600.0
    """Failures older than this are forgotten."""
    login_max_delay_s: PositiveNumber = 300.0
    """The longest wait for one user name from one address (or one address over many user names)."""
    login_account_max_delay_s: PositiveNumber = 15.0
    """The longest wait an attacker's failures from other addresses can impose on a user name."""
    care_team_scoping: Bool = False
    """When on, a clinician sees only the patients assigned to them or to their ward/team; admins see all."""
    argon2_time_cost: PositiveInt = 3
    argon2_memory_kib: Annotated[PositiveInt, rule(lambda v: v >= 8, "must be >= 8")] = 65536
    argon2_parallelism: PositiveInt = 1


ChannelKind = Literal["webhook", "smtp", "push"]
AlarmPriority = Literal["high", "medium", "low"]
SmtpSecurity = Literal["none", "starttls", "tls"]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KIND_KEYS: dict[str, frozenset[str]] = {
    "webhook": frozenset({"url", "secret_env"}),
    "push": frozenset({"url", "token_env", "tags"}),
    "smtp": frozenset({"host", "port", "security", "username", "password_env", "from_addr", "to"}),
}
_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "webhook": ("url", "secret_env"), "push": ("url",), "smtp": ("host", "from_addr", "to"),
}
_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")


def _http_url_problem(url: str) -> str | None:
    """Why ``url`` is no good as a webhook or push target (None when it is)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"url {url!r} is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"url {url!r} must be http(s)://host/…"
    if parts.username or parts.password:
        return f"url {url!r} must not carry credentials (use secret_env / token_env)"
    return None


@dataclass(frozen=True, config=SECTION)
class EscalationChannelConfig:
    """One ``[[escalation.channels]]`` entry: somewhere escalations are delivered (:mod:`cloud.escalation.delivery`).

    ``kind = "webhook"``: a signed JSON POST to ``url`` (HMAC-SHA256 with the secret in the environment
    variable named by ``secret_env``; :mod:`cloud.escalation.signing`). ``kind = "push"``: an ntfy-style
    topic, text POSTed to ``url`` (``https://ntfy.example.org/ward-3``) with Title/Priority/Tags headers
    and, when ``token_env`` names a variable, ``Authorization: Bearer``. ``kind = "smtp"``: an e-mail
    through ``host``:``port`` from ``from_addr`` to ``to`` (``security``: ``none``, ``starttls``, ``tls``;
    ``username`` with its password in the variable named by ``password_env``). Secrets are never in the
    file and never logged: only the *name* of their environment variable is.

    Routing: an escalation to level ``n`` of an episode of priority ``p`` goes here when ``p`` is in
    ``priorities``, ``n >= min_level`` and the level's role (``[escalation] level_roles``) is in
    ``roles`` (empty: every role). ``on_raise``: also when a clinical episode is first raised (level 0).
    A failed send is retried after ``backoff_s``, doubling, at most ``backoff_max_s``, ``max_attempts``
    tries in all."""

    name: Annotated[Text, rule(lambda v: _CHANNEL_NAME.fullmatch(v) is not None,
                               "must be 1-64 letters, digits, '_', '.' or '-'")]
    kind: ChannelKind
    url: Text | None = None
    secret_env: Text | None = None
    token_env: Text | None = None
    tags: tuple[Text, ...] = ()
    host: Text | None = None
    port: TcpPort | None = None
    """Default 25 (``none``), 587 (``starttls``) or 465 (``tls``)."""
    security: SmtpSecurity | None = None
    """``starttls`` (default), ``tls`` (implicit TLS) or ``none`` (a local relay)."""
    username: Text | None = None
    password_env: Text | None = None
    from_addr: Text | None = None
    to: tuple[Text, ...] = ()
    roles: tuple[Text, ...] = ()
    priorities: tuple[AlarmPriority, ...] = ("high", "medium", "low")
    min_level: Annotated[Int, rule(lambda v: 0 <= v <= 100, "must be 0-100")] = 1
    on_raise: Bool = False
    max_attempts: Annotated[Int, rule(lambda v: 1 <= v <= 100, "must be 1-100")] = 5
    backoff_s: PositiveNumber = 5.0
    backoff_max_s: PositiveNumber = 300.0
    timeout_s: PositiveNumber = 10.0

    @model_validator(mode="after")
    def _check(self) -> EscalationChannelConfig:
        set_keys = {k for k in set().union(*_KIND_KEYS.values()) if getattr(self, k) not in (None, ())}
        other = sorted(set_keys - _KIND_KEYS[self.kind])
        if other:
            raise problem(f"channel {self.name!r}: {', '.join(other)} do not apply to kind {self.kind!r}", other[0])
        for key in _REQUIRED_KEYS[self.kind]:
            if getattr(self, key) in (None, ()):
                raise problem(f"channel {self.name!r} of kind {self.kind!r} needs {key}", key)
        if self.url is not None and (why := _http_url_problem(self.url)):
            raise problem(why, "url")
        for key in ("secret_env", "token_env", "password_env"):
            value = getattr(self, key)
            if value is not None and not _ENV_NAME.fullmatch(value):
                raise problem(f"{key} must name an environment variable, got {value!r}", key)
        for address in (self.from_addr, *self.to):
            if address is not None and not _ADDRESS.fullmatch(address):
                raise problem(f"{address!r} is not an e-mail address", "to" if address in self.to else "from_addr")
        if (self.username is None) != (self.password_env is None):
            raise problem(f"channel {self.name!r}: username and password_env go together", "password_env")
        if not self.priorities:
            raise problem(f"channel {self.name!r}: priorities must name at least one priority", "priorities")
        if self.min_level == 0 and not self.on_raise:
            raise problem(f"channel {self.name!r}: min_level 0 is the raise itself; set on_raise = true", "min_level")
        return self

    @property
    def smtp_port(self) -> int:
        """``port``, else the usual port of ``security``."""
        return self.port or {"none": 25, "starttls": 587, "tls": 465}[self.smtp_security]

    @property
    def smtp_security(self) -> SmtpSecurity:
        return self.security or "starttls"

    @property
    def target(self) -> str:
        """Where it goes, without secrets (stored with each delivery, shown in the alert's history)."""
        if self.kind == "smtp":
            return ", ".join(self.to)[:255]
        from urllib.parse import urlsplit

        u = urlsplit(str(self.url))
        return f"{u.scheme}://{u.netloc}{u.path}"[:255]       # no query: it may carry a token


@dataclass(frozen=True, config=SECTION)
class EscalationConfig:
    """An active clinical episode nobody acknowledged is escalated after its priority's time, and again
    after the same time, up to ``max_level``; each escalation is delivered to the matching ``channels``
    (none by default: escalation only shows on the dashboard)."""

    high_s: PositiveNumber = 60.0
    medium_s: PositiveNumber = 180.0
    low_s: PositiveNumber = 600.0
    max_level: PositiveInt = 3
    check_interval_s: PositiveNumber = 1.0
    level_roles: tuple[Text, ...] = ()
    """Who each level is for: level ``n`` goes to ``level_roles[n-1]`` (the last one for higher levels; the
    first for a raise), e.g. ``["nurse", "charge_nurse", "physician"]``. Channels name these in ``roles``."""
    channels: tuple[EscalationChannelConfig, ...] = ()
    delivery_interval_s: PositiveNumber = 1.0
    """How often the delivery loop looks for escalations to deliver and retries that are due."""

    @model_validator(mode="after")
    def _check_channels(self) -> EscalationConfig:
        names: set[str] = set()
        for i, ch in enumerate(self.channels):
            if ch.name in names:
                raise problem(f"channel name {ch.name!r} is used twice", "name", at=("channels", i))
            names.add(ch.name)
            unknown = sorted(set(ch.roles) - set(self.level_roles))
            if unknown:
                raise problem(f"channel {ch.name!r}: roles {unknown} are not in [escalation] level_roles "
                              f"{list(self.level_roles)}", "roles", at=("channels", i))
        return self

    def role_for(self, level: int) -> str | None:
        """The role level ``level`` is for (None without ``level_roles``)."""
        if not self.level_roles:
            return None
        return self.level_roles[min(max(level, 1), len(self.level_roles)) - 1]

    def after_us(self) -> dict[str, int]:
        """Waiting time per priority, µs."""
        return {"high": int(self.high_s * 1e6), "medium": int(self.medium_s * 1e6), "low": int(self.low_s * 1e6)}


@dataclass(frozen=True, config=SECTION)
class FeedConfig:
    poll_s: PositiveNumber = 0.25
    """How often a live-feed connection reads the store for other processes' writes."""
    keepalive_s: PositiveNumber = 15.0


@dataclass(frozen=True, config=SECTION)
class WardConfig:
    offline_after_s: PositiveNumber = 60.0
    """A patient with nothing heard for this long shows as ``offline``."""


@dataclass(frozen=True, config=SECTION)
class ModelWorkerConfig:
    """The heavy models run on the windows behind stored alerts (:mod:`cloud.model_worker`).

    ``models``: ``[[model_worker.models]]`` tables (name, path, kind, threshold, …; see
    :class:`cloud.model_worker.ModelSpec`); left out, the shipped full-precision edge classifier and every
    shipped heavy model with a runtime class (``zeroshot``, ``stress``, ``prototypes``:
    :data:`cloud.model_worker.adapters.ADAPTERS`) are hosted when their artifacts exist; ``models = []``
    hosts none. ``partition``: ``"i/n"``, this process takes the alerts whose
    sequence number is i modulo n (n processes split the work; "0/1" takes all).
    """

    poll_s: PositiveNumber = 0.5
    max_batch: PositiveInt = 16
    window_wait_s: Annotated[Number, rule(lambda v: v >= 0, "must be >= 0")] = 60.0
    partition: Annotated[Text, rule(_partition_ok, "must be i/n with 0 <= i < n")] = "0/1"
    models: tuple[Any, ...] | None = None

    def partition_tuple(self) -> tuple[int, int]:
        i, n = self.partition.split("/")
        return int(i), int(n)


@dataclass(frozen=True, config=SECTION)
class RunConfig:
    """Which parts this process runs (several processes may split them, or all run everything)."""

    ingest: Bool = True
    api: Bool = True
    escalation: Bool = True
    models: Bool = True


@dataclass(frozen=True, config=SECTION)
class LogConfig:
    level: LogLevel = "info"


def _absolute_uri(value: str) -> bool:
    return re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:\S+", value) is not None


@dataclass(frozen=True, config=SECTION)
class FhirConfig:
    """FHIR export (:mod:`cloud.interop`): the base of ecgstream's naming and code systems."""

    system_base: Annotated[Text, rule(_absolute_uri, "must be an absolute URI (scheme:…) without spaces")] = \
        "urn:ecgstream:fhir"


@dataclass(frozen=True, config=SECTION)
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
    fhir: FhirConfig = field(default_factory=FhirConfig)
    model_worker: ModelWorkerConfig = field(default_factory=ModelWorkerConfig)
    downlink: DownlinkConfig = field(default_factory=DownlinkConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    source: str = field(default="defaults", metadata=INTERNAL)

    def client_id(self) -> str:
        """The configured MQTT client id; else the broker username (a broker set up by ``ecgstream cloud
        broker-auth`` binds each account to its own client id); else ``cloud-<host>-<pid>``."""
        if self.broker.client_id:
            return self.broker.client_id
        if self.broker.username:
            return self.broker.username
        host = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())[:40]
        return f"cloud-{host or 'host'}-{os.getpid()}"

    def downlink_account(self) -> DownlinkAccount:
        """The ack publisher's broker account: ``[downlink] username``, else ``<[broker] username>-downlink``
        when the broker has a username, else none; client id = the username, else ``<client id>-downlink``."""
        d = self.downlink
        username = d.username or (f"{self.broker.username}-downlink" if self.broker.username else None)
        return DownlinkAccount(client_id=username or f"{self.client_id()}-downlink", username=username,
                               password=d.password)


# -- reading -------------------------------------------------------------------------------------

_READER = SettingsReader(CloudSettings, ENV_PREFIX, ConfigError)


def load_settings(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> CloudSettings:
    """Read ``path`` (``None``: defaults only) and apply environment overrides (default ``os.environ``)."""
    return _finish(_READER.load(path, env=env))


def parse_settings(text: str, *, source: str = "<memory>", base_dir: Path | None = None,
                   env: Mapping[str, str] | None = None) -> CloudSettings:
    """Validate TOML text plus environment overrides."""
    return _finish(_READER.parse(text, source=source, base_dir=base_dir, env=env))


def _model_specs(raw: Any, source: str, base_dir: Path | None) -> tuple[Any, ...]:
    """``[[model_worker.models]]`` tables → :class:`cloud.model_worker.ModelSpec` (checked now, loaded at start)."""
    from cloud.model_worker import ModelConfigError, ModelSpec

    if not all(isinstance(m, dict) for m in raw):
        raise ConfigError(f"{source}: [model_worker] models must be an array of tables ([[model_worker.models]])")
    try:
        specs = tuple(ModelSpec.from_mapping(m, base_dir=base_dir) for m in raw)
    except (ModelConfigError, TypeError) as exc:
        raise ConfigError(f"{source}: [model_worker] {exc}") from None
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: [model_worker] model names must be unique, got {names}")
    return specs


def _finish(loaded: Loaded[CloudSettings]) -> CloudSettings:
    """The checks that span tables or need other libraries, the SQLite path, the model specs, the source."""
    settings = replace(loaded.value, source=loaded.source)
    if settings.model_worker.models is not None:
        specs = _model_specs(settings.model_worker.models, loaded.source, loaded.base_dir)
        settings = replace(settings, model_worker=replace(settings.model_worker, models=specs))
    db = settings.database
    try:
        url = make_url(db.url)
    except ArgumentError:
        raise _READER.fail(loaded, ("database",), f"url {db.url!r} is not a database URL", "url") from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise _READER.fail(loaded, ("database",), f"url must be sqlite:///… or postgresql://…, got {backend!r}", "url")
    if backend == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        if not path.is_absolute() and loaded.base_dir is not None and not loaded.from_env("database", "url"):
            path = loaded.base_dir / path
            settings = replace(settings, database=replace(db, url=url.set(database=str(path)).render_as_string(
                hide_password=False)))
    if settings.broker.embedded and settings.run.ingest:
        raise _READER.fail(loaded, ("broker",), "host 'embedded' is the edge demo's MQTT 3.1.1 broker, which cannot "
                           "serve the cloud's shared subscription; give an MQTT 5 broker (Mosquitto, EMQX, …) or set "
                           "[run] ingest = false", "host")
    return settings


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (None for PostgreSQL or an in-memory database)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


__all__ = [
    "DEFAULT_DATABASE_URL", "ENV_PREFIX", "is_loopback", "AccountsConfig", "BrokerConfig", "CloudSettings", "ConfigError",
    "DatabaseConfig", "DownlinkAccount", "DownlinkConfig", "EscalationChannelConfig", "EscalationConfig", "FeedConfig", "HttpConfig", "LogConfig", "ModelWorkerConfig", "RegistryConfig", "RunConfig",
    "WardConfig",
    "load_settings", "parse_settings", "sqlite_path",
]
