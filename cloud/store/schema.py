"""The cloud store's tables (SQLAlchemy 2 typed declarative), one schema for SQLite and PostgreSQL.

Conventions:

- **Times are integers in µs** (``BigInteger``), on the clock the wire contract names: ``*_gateway_us``
  and ``t0_us`` on the gateway's Unix clock, ``t_device_us`` on the device clock, and ``*_received_us``
  / ``at_us`` on the cloud's Unix clock. No time zones, no float rounding, and the same numbers the
  protocol carries, so a query bound is the protocol's own value.
- **Ids** from the wire are UUIDs (``alert_id``, ``window_id``, ``episode_id``): native ``uuid`` (16
  bytes) on PostgreSQL, ``CHAR(32)`` on SQLite, always handled as canonical strings in Python.
  Patient, device and gateway ids follow :func:`protocol.topics.validate_id` (≤ 64 characters).
- **Telemetry tables have no foreign keys to the registry.** Whether an unknown device may publish is
  the ingest worker's policy (it rejects and counts); the store keeps what passed validation, so a
  registry edit can never make an insert of a resent alert fail half-way. The registry itself
  (``devices`` → ``patients``) and acknowledgements (→ ``episodes``) do use foreign keys.
- **Alerts and windows** carry a surrogate, monotonically increasing ``seq`` besides their wire id:
  the live feed and pagination read "everything after seq N" without trusting any clock.
- **Episodes** are a derived current-state table (one row per ``details.episode_id``), merged by an
  order-independent upsert on every alert message (see :mod:`cloud.store.repository`), so messages
  arriving out of order, twice, or at two workers at once give the same state.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_LEN = 64
"""Longest patient/device/gateway id (:func:`protocol.topics.validate_id`)."""
USER_LEN = 128
"""Longest staff user name (the ``user`` columns of acknowledgements and the audit log)."""
TEAM_LEN = 64
"""Longest ward or care-team name."""

# Constraint names are fixed so migrations name them the same on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT autoincrement keys; SQLite only auto-increments an INTEGER PRIMARY KEY (which is 64-bit there).
SeqKey = BigInteger().with_variant(Integer(), "sqlite")
WireId = Uuid(as_uuid=False)
Json = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Patient(Base):
    """A patient known to the service (the registry; demographics stay out of this store)."""

    __tablename__ = "patients"

    patient_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    created_us: Mapped[int] = mapped_column(BigInteger)
    assigned_to: Mapped[str | None] = mapped_column(String(USER_LEN))
    """The member of staff responsible for this patient (a user name; no foreign key, so deleting a
    user only clears the assignment, see :meth:`cloud.store.Store.delete_user`)."""
    assigned_us: Mapped[int | None] = mapped_column(BigInteger)
    team: Mapped[str | None] = mapped_column(String(TEAM_LEN), index=True)
    """The ward or care team looking after this patient (``[accounts] care_team_scoping``)."""


class Device(Base):
    """A wearable in the registry: who wears it, its profile, and (later) its broker credentials.

    ``credentials_hash`` is the hash the broker's password file will carry (generated from this table
    for the Mosquitto ACL, issue 6); the store never sees a clear-text secret.
    """

    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.patient_id"), index=True)
    profile: Mapped[str] = mapped_column(String(64), default="")
    credentials_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_us: Mapped[int] = mapped_column(BigInteger)


class AlertRow(Base):
    """Every alert message as received (raise, escalation and clear are separate rows)."""

    __tablename__ = "alerts"

    seq: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(WireId, unique=True)
    episode_id: Mapped[str] = mapped_column(WireId, index=True)
    event: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[str] = mapped_column(String(ID_LEN))
    device_id: Mapped[str] = mapped_column(String(ID_LEN))
    alert_type: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(8))
    onset_gateway_us: Mapped[int] = mapped_column(BigInteger)
    onset_device_us: Mapped[int | None] = mapped_column(BigInteger)
    window_id: Mapped[str | None] = mapped_column(WireId, index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    model_versions: Mapped[dict[str, Any]] = mapped_column(Json)
    reconstructed_leads: Mapped[dict[str, Any]] = mapped_column(Json)
    details: Mapped[dict[str, Any]] = mapped_column(Json)
    schema_version: Mapped[int] = mapped_column(SmallInteger)
    received_us: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_alerts_patient_onset", "patient_id", "onset_gateway_us"),)


class Episode(Base):
    """One alarm episode's current state, merged from its messages in any order.

    ``raised``: a raise or escalation message has arrived; ``cleared``: a clear message has arrived.
    Active = raised and not cleared. ``alert_type``/``priority`` are those of the highest-priority
    message seen (escalation only ever raises priority), ``priority_rank`` 3 high … 1 low.
    """

    __tablename__ = "episodes"

    episode_id: Mapped[str] = mapped_column(WireId, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(ID_LEN))
    device_id: Mapped[str] = mapped_column(String(ID_LEN))
    family: Mapped[str] = mapped_column(String(64), default="")
    alert_type: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(8))
    priority_rank: Mapped[int] = mapped_column(SmallInteger)
    onset_gateway_us: Mapped[int] = mapped_column(BigInteger)
    window_id: Mapped[str | None] = mapped_column(WireId)
    raised: Mapped[bool] = mapped_column(Boolean)
    cleared: Mapped[bool] = mapped_column(Boolean)
    first_received_us: Mapped[int] = mapped_column(BigInteger)
    last_received_us: Mapped[int] = mapped_column(BigInteger)
    messages: Mapped[int] = mapped_column(Integer)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    acknowledged_us: Mapped[int | None] = mapped_column(BigInteger)
    escalation_level: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=text("0"))
    """How many times the cloud escalated this episode because nobody acknowledged it (0: never)."""
    escalated_us: Mapped[int | None] = mapped_column(BigInteger)
    """When the cloud last escalated it (cloud clock); the next escalation counts from here."""

    __table_args__ = (
        Index("ix_episodes_open_patient", "cleared", "patient_id", "onset_gateway_us"),
    )


class WindowRow(Base):
    """An ECG window: the protocol's compact payload (int16, delta, zlib) plus indexed metadata."""

    __tablename__ = "windows"

    seq: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    window_id: Mapped[str] = mapped_column(WireId, unique=True)
    patient_id: Mapped[str] = mapped_column(String(ID_LEN))
    device_id: Mapped[str] = mapped_column(String(ID_LEN))
    t0_us: Mapped[int] = mapped_column(BigInteger)
    fs_hz: Mapped[int] = mapped_column(Integer)
    lead_mask: Mapped[int] = mapped_column(Integer)
    reconstructed_mask: Mapped[int] = mapped_column(Integer)
    n_samples: Mapped[int] = mapped_column(Integer)
    lsb_nv: Mapped[int] = mapped_column(Integer)
    has_uncertainty: Mapped[bool] = mapped_column(Boolean)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    received_us: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_windows_patient_t0", "patient_id", "t0_us"),
        Index("ix_windows_device_t0", "device_id", "t0_us"),
    )


class DeviceStatusRow(Base):
    """The latest status of each device (by device clock; an older resend never overwrites)."""

    __tablename__ = "device_status"

    device_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    t_device_us: Mapped[int] = mapped_column(BigInteger)
    battery_pct: Mapped[int | None] = mapped_column(SmallInteger)
    connected: Mapped[bool] = mapped_column(Boolean)
    lead_off: Mapped[list[str]] = mapped_column(Json)
    profile: Mapped[str] = mapped_column(String(64))
    firmware: Mapped[str] = mapped_column(String(64))
    received_us: Mapped[int] = mapped_column(BigInteger)


class GatewayStatusRow(Base):
    """The latest heartbeat of each edge gateway (by gateway clock)."""

    __tablename__ = "gateway_status"

    gateway_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    t_gateway_us: Mapped[int] = mapped_column(BigInteger)
    streams: Mapped[int] = mapped_column(Integer)
    outbox_depth: Mapped[int] = mapped_column(BigInteger)
    software: Mapped[str] = mapped_column(String(64))
    received_us: Mapped[int] = mapped_column(BigInteger)


class Acknowledgement(Base):
    """A member of staff acknowledged an episode (every acknowledgement is kept)."""

    __tablename__ = "acknowledgements"

    id: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    episode_id: Mapped[str] = mapped_column(ForeignKey("episodes.episode_id"), index=True)
    user: Mapped[str] = mapped_column(String(128))
    at_us: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")


class AuditEntry(Base):
    """Who did what to which target, when (append-only; read by the alert service's audit view)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    at_us: Mapped[int] = mapped_column(BigInteger, index=True)
    user: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(Json)


class User(Base):
    """A member of staff who may sign in: an argon2 password hash (never the password) and a role."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(USER_LEN), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_us: Mapped[int] = mapped_column(BigInteger)
    team: Mapped[str | None] = mapped_column(String(TEAM_LEN))
    """The ward or care team this member of staff belongs to (``[accounts] care_team_scoping``)."""


class SessionRow(Base):
    """A signed-in session: the SHA-256 of its bearer token (the token itself is never stored) and
    its expiry. Shared by every API process, so a token works whichever process serves the request."""

    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    created_us: Mapped[int] = mapped_column(BigInteger)
    expires_us: Mapped[int] = mapped_column(BigInteger, index=True)
    client: Mapped[str] = mapped_column(String(64), default="")


class LoginFailure(Base):
    """One failed sign-in (for the login rate limiter, shared by every API process)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(USER_LEN), index=True)
    client: Mapped[str] = mapped_column(String(64), index=True)
    at_us: Mapped[int] = mapped_column(BigInteger, index=True)


class ModelResultRow(Base):
    """What a cloud model said about a window (and, optionally, the alert it was run for).

    One row per window, model and model version (a re-run after a restart de-duplicates);
    ``outputs`` is the model's JSON (class probabilities, a stress score, matched text, …).
    """

    __tablename__ = "model_results"

    id: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    window_id: Mapped[str] = mapped_column(WireId)  # indexed by the unique constraint's first column
    alert_id: Mapped[str | None] = mapped_column(WireId, index=True)
    patient_id: Mapped[str] = mapped_column(String(ID_LEN))
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    outputs: Mapped[dict[str, Any]] = mapped_column(Json)
    created_us: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("window_id", "model", "version"),)


class EscalationDelivery(Base):
    """One message sent (or being sent) to one escalation channel about one episode: a webhook post,
    an e-mail, a push notification. Kept with its attempts and last error, so the alert's history
    shows who was told, how, when, and what failed."""

    __tablename__ = "escalation_deliveries"

    id: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    episode_id: Mapped[str] = mapped_column(WireId, index=True)
    alert_id: Mapped[str | None] = mapped_column(WireId, index=True)
    patient_id: Mapped[str] = mapped_column(String(ID_LEN))
    channel: Mapped[str] = mapped_column(String(64))
    """The configured channel's name (``[[escalation.channels]] name``)."""
    kind: Mapped[str] = mapped_column(String(16))
    """``webhook``, ``smtp`` or ``push``."""
    target: Mapped[str] = mapped_column(String(255))
    """Where it goes, without secrets (a URL without credentials, an address, a topic)."""
    level: Mapped[int] = mapped_column(SmallInteger)
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    """``pending``, ``delivered`` or ``failed`` (gave up after the last retry)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_us: Mapped[int] = mapped_column(BigInteger)
    next_attempt_us: Mapped[int] = mapped_column(BigInteger, index=True)
    delivered_us: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("episode_id", "level", "channel"),)


class VitalsMinute(Base):
    """One patient's vitals summarised per minute (from the gateway's status reports): the patient
    timeline's heart-rate trend. ``minute_us`` is the start of the minute on the gateway's clock."""

    __tablename__ = "vitals_minutes"

    patient_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    minute_us: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reports: Mapped[int] = mapped_column(Integer)
    hr_reports: Mapped[int] = mapped_column(Integer)
    """Reports that carried a heart rate (the mean is over these)."""
    hr_sum: Mapped[float | None] = mapped_column(Float)
    hr_min: Mapped[float | None] = mapped_column(Float)
    hr_max: Mapped[float | None] = mapped_column(Float)
    sqi_sum: Mapped[float | None] = mapped_column(Float)
    sqi_reports: Mapped[int] = mapped_column(Integer, default=0)
    battery_pct: Mapped[int | None] = mapped_column(SmallInteger)

