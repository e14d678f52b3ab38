"""The cloud store's repository: typed async reads and idempotent writes over :mod:`cloud.store.schema`.

**De-duplication.** The edge resends after reconnects and several ingest workers share one
subscription, so the same alert or window can arrive twice, possibly at two workers at the same
moment. Every write of a wire object is one ``INSERT … ON CONFLICT (wire id) DO NOTHING RETURNING
seq`` (PostgreSQL and SQLite ≥ 3.35 both speak it): the database's unique index decides, exactly one
insert wins, and the loser sees no row and returns ``False`` (counted in :attr:`Store.counters`). No
read-then-write race, no exception to catch, no retry.

**Episodes.** An edge episode is a raise, any escalations and a clear, each its own Alert message with
its own ``alert_id`` and ``details['episode_id']``/``details['event']`` (see ``edge/alarms``). Each
stored message is also merged into ``episodes`` by an upsert whose update is commutative and
idempotent (``raised |= …``, ``cleared |= …``, type and priority of the highest priority seen,
earliest onset), in the same transaction as the alert row. So any arrival order, with any
duplicates, gives the same episode state: active = a raise or escalation arrived and no clear did. A
message without ``details['event']`` (a sender other than the alarm engine) is a one-message episode
of its own id that stays active until a clear names it.

**Latest status.** Device and gateway status rows are upserted only when the incoming report is at
least as new, by the sender's own clock, as the stored one, so an outbox replay of old heartbeats
cannot roll the dashboard back. (A device whose clock restarts from zero after a reboot therefore
needs its row reset; the ingest worker knows about reboots, the store does not.)

All writes are short transactions that start with their INSERT (see :mod:`cloud.store.engine` on
SQLite locking). Errors in the data raise :class:`protocol.errors.ProtocolError` subclasses before
anything is written; a missing row raises :class:`NotFound`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Select, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cloud.store.engine import DEFAULT_URL, create_engine, session_factory
from cloud.store.schema import (
    Acknowledgement,
    AlertRow,
    AuditEntry,
    Device,
    DeviceStatusRow,
    Episode,
    GatewayStatusRow,
    LoginFailure,
    ModelResultRow,
    Patient,
    SessionRow,
    User,
    WindowRow,
)
from protocol.errors import SchemaError
from protocol.leads import lead_mask, leads_from_mask
from protocol.messages import Alert, AlertCategory, DeviceStatus, GatewayStatus, Priority, encode_message
from protocol.window_payload import EcgWindow, decode_window, encode_window

EVENTS = ("raised", "escalated", "cleared")
"""``details['event']`` values of the edge's alarm engine."""
PRIORITY_RANK = {Priority.LOW.value: 1, Priority.MEDIUM.value: 2, Priority.HIGH.value: 3}
_MAX_INT = (1 << 63) - 1  # BIGINT; the protocol allows u64, real µs timestamps are far below this


class NotFound(LookupError):
    """No row with that id."""


def now_us() -> int:
    return time.time_ns() // 1000


# -- values returned by the repository ---------------------------------------------------------


@dataclass(frozen=True)
class StoredAlert:
    """An alert message as stored: the wire message plus what the store derived and when it arrived."""

    seq: int
    alert: Alert
    episode_id: str
    event: str
    received_us: int


@dataclass(frozen=True)
class EpisodeState:
    """The current state of one alarm episode (merged from all its messages)."""

    episode_id: str
    patient_id: str
    device_id: str
    family: str
    alert_type: str
    category: AlertCategory
    priority: Priority
    onset_gateway_us: int
    window_id: str | None
    raised: bool
    cleared: bool
    messages: int
    first_received_us: int
    last_received_us: int
    acknowledged_by: str | None
    acknowledged_us: int | None
    escalation_level: int = 0
    escalated_us: int | None = None

    @property
    def active(self) -> bool:
        return self.raised and not self.cleared


@dataclass(frozen=True)
class WindowMeta:
    """A stored window's indexed metadata (no samples; :meth:`Store.load_window` decodes those)."""

    seq: int
    window_id: str
    patient_id: str
    device_id: str
    t0_us: int
    fs_hz: int
    leads: tuple[str, ...]
    reconstructed: tuple[str, ...]
    n_samples: int
    lsb_nv: int
    has_uncertainty: bool
    payload_bytes: int
    received_us: int

    @property
    def duration_us(self) -> int:
        return self.n_samples * 1_000_000 // self.fs_hz


@dataclass(frozen=True)
class AckRecord:
    id: int
    episode_id: str
    user: str
    at_us: int
    note: str


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at_us: int
    user: str
    action: str
    target: str
    details: dict[str, Any]


@dataclass(frozen=True)
class UserRecord:
    """A member of staff (the password hash stays inside :mod:`cloud.accounts`)."""

    username: str
    role: str
    active: bool
    created_us: int
    password_hash: str = ""


@dataclass(frozen=True)
class PatientRecord:
    patient_id: str
    display_name: str
    created_us: int
    assigned_to: str | None
    assigned_us: int | None


@dataclass(frozen=True)
class Escalation:
    """One escalation the cloud made: ``episode_id`` went to ``level`` at ``at_us``."""

    episode_id: str
    alert_id: str | None
    patient_id: str
    alert_type: str
    priority: str
    level: int
    at_us: int


@dataclass(frozen=True)
class ModelResult:
    """A cloud model's output for a window (and the alert it was run for, if any)."""

    id: int
    window_id: str
    alert_id: str | None
    patient_id: str
    model: str
    version: str
    outputs: dict[str, Any]
    created_us: int


@dataclass
class StoreCounters:
    """What this Store instance stored, skipped as duplicate, or rejected (nothing is dropped silently)."""

    alerts_stored: int = 0
    alerts_duplicate: int = 0
    alerts_rejected: int = 0
    windows_stored: int = 0
    windows_duplicate: int = 0
    windows_rejected: int = 0
    status_updated: int = 0
    status_stale: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# -- helpers ------------------------------------------------------------------------------------


def _insert(dialect: str, table: Any) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _check_range(value: int | None, what: str) -> None:
    if value is not None and value > _MAX_INT:
        raise SchemaError(f"{what} {value} exceeds the store's 63-bit range")


def _canonical_uuid(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"alert: {what} must be a UUID string")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise SchemaError(f"alert: {what} {value!r} is not a UUID") from None


def episode_of(alert: Alert) -> tuple[str, str]:
    """``(episode_id, event)`` of an alert message; raises SchemaError for an unknown event or bad id."""
    event = alert.details.get("event", "raised")
    if event not in EVENTS:
        raise SchemaError(f"alert: details.event {event!r} is not one of {', '.join(EVENTS)}")
    episode = alert.details.get("episode_id", alert.alert_id)
    return _canonical_uuid(episode, "details.episode_id"), event


def _alert_from_row(r: AlertRow) -> StoredAlert:
    alert = Alert(
        alert_id=r.alert_id, patient_id=r.patient_id, device_id=r.device_id, alert_type=r.alert_type,
        category=AlertCategory(r.category), priority=Priority(r.priority), onset_gateway_us=r.onset_gateway_us,
        onset_device_us=r.onset_device_us, window_id=r.window_id, message=r.message,
        model_versions=dict(r.model_versions), reconstructed_leads=dict(r.reconstructed_leads),
        details=dict(r.details), schema_version=r.schema_version,
    )
    return StoredAlert(seq=r.seq, alert=alert, episode_id=r.episode_id, event=r.event, received_us=r.received_us)


def _episode_from_row(r: Episode) -> EpisodeState:
    return EpisodeState(
        episode_id=r.episode_id, patient_id=r.patient_id, device_id=r.device_id, family=r.family,
        alert_type=r.alert_type, category=AlertCategory(r.category), priority=Priority(r.priority),
        onset_gateway_us=r.onset_gateway_us, window_id=r.window_id, raised=bool(r.raised), cleared=bool(r.cleared),
        messages=r.messages, first_received_us=r.first_received_us, last_received_us=r.last_received_us,
        acknowledged_by=r.acknowledged_by, acknowledged_us=r.acknowledged_us,
        escalation_level=int(r.escalation_level or 0), escalated_us=r.escalated_us,
    )


def _user_from_row(r: User) -> UserRecord:
    return UserRecord(username=r.username, role=r.role, active=bool(r.active), created_us=r.created_us,
                      password_hash=r.password_hash)


def _patient_from_row(r: Patient) -> PatientRecord:
    return PatientRecord(patient_id=r.patient_id, display_name=r.display_name, created_us=r.created_us,
                         assigned_to=r.assigned_to, assigned_us=r.assigned_us)


def _result_from_row(r: ModelResultRow) -> ModelResult:
    return ModelResult(id=r.id, window_id=r.window_id, alert_id=r.alert_id, patient_id=r.patient_id, model=r.model,
                       version=r.version, outputs=dict(r.outputs), created_us=r.created_us)


_WINDOW_META_COLS = (
    WindowRow.seq, WindowRow.window_id, WindowRow.patient_id, WindowRow.device_id, WindowRow.t0_us,
    WindowRow.fs_hz, WindowRow.lead_mask, WindowRow.reconstructed_mask, WindowRow.n_samples, WindowRow.lsb_nv,
    WindowRow.has_uncertainty, func.length(WindowRow.payload).label("payload_bytes"), WindowRow.received_us,
)


def _window_meta(row: Any) -> WindowMeta:
    return WindowMeta(
        seq=row.seq, window_id=row.window_id, patient_id=row.patient_id, device_id=row.device_id, t0_us=row.t0_us,
        fs_hz=row.fs_hz, leads=leads_from_mask(row.lead_mask), reconstructed=leads_from_mask(row.reconstructed_mask),
        n_samples=row.n_samples, lsb_nv=row.lsb_nv, has_uncertainty=bool(row.has_uncertainty),
        payload_bytes=int(row.payload_bytes), received_us=row.received_us,
    )


# -- the repository ----------------------------------------------------------------------------


class Store:
    """The cloud store. One per process (it owns an engine and its connection pool)::

        upgrade_database(url)                  # once, at start-up (cloud.store.migrate)
        async with Store(url) as store:
            fresh = await store.store_alert(alert)

    ``clock`` (µs, cloud Unix time) stamps ``received_us``/``at_us``; tests may pass their own.
    """

    def __init__(self, url: str | URL | AsyncEngine = DEFAULT_URL, *, clock: Callable[[], int] = now_us,
                 **engine_kwargs: Any) -> None:
        self.engine = url if isinstance(url, AsyncEngine) else create_engine(url, **engine_kwargs)
        self._owns_engine = not isinstance(url, AsyncEngine)
        self._sessions = session_factory(self.engine)
        self.dialect = self.engine.dialect.name
        self.clock = clock
        self.counters = StoreCounters()
        self._listeners: list[Callable[[str], None]] = []

    # -- change notification (in-process) -------------------------------------------------------

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(kind)`` after this Store commits a change (``"alert"``, ``"ack"``,
        ``"escalation"``, ``"status"``, ``"assign"``). Only changes made through *this* instance are
        seen: other processes' writes are found by polling (:meth:`alerts_after`, :meth:`audit_after`)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[str], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _changed(self, kind: str) -> None:
        for callback in list(self._listeners):
            callback(kind)

    async def close(self) -> None:
        if self._owns_engine:
            await self.engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def session(self) -> AsyncSession:
        """A session on this store's engine, for queries the repository does not offer yet."""
        return self._sessions()

    # -- registry -------------------------------------------------------------------------------

    async def add_patient(self, patient_id: str, display_name: str = "") -> bool:
        """Register a patient; False if the id is already registered (unchanged)."""
        stmt = _insert(self.dialect, Patient).values(
            patient_id=patient_id, display_name=display_name, created_us=self.clock()
        ).on_conflict_do_nothing(index_elements=[Patient.patient_id]).returning(Patient.patient_id)
        async with self._sessions.begin() as s:
            return (await s.execute(stmt)).first() is not None

    async def add_device(self, device_id: str, patient_id: str | None = None, *, profile: str = "",
                         credentials_hash: str | None = None) -> bool:
        """Register a device (worn by ``patient_id``, which must be registered); False if already known."""
        stmt = _insert(self.dialect, Device).values(
            device_id=device_id, patient_id=patient_id, profile=profile, credentials_hash=credentials_hash,
            active=True, created_us=self.clock(),
        ).on_conflict_do_nothing(index_elements=[Device.device_id]).returning(Device.device_id)
        async with self._sessions.begin() as s:
            return (await s.execute(stmt)).first() is not None

    async def assign_device(self, device_id: str, patient_id: str | None) -> None:
        """Give a registered device to another patient (or to nobody)."""
        async with self._sessions.begin() as s:
            res = await s.execute(update(Device).where(Device.device_id == device_id)
                                  .values(patient_id=patient_id).returning(Device.device_id))
            if res.first() is None:
                raise NotFound(f"device {device_id!r} is not registered")

    async def get_device(self, device_id: str) -> Device | None:
        async with self._sessions() as s:
            return await s.get(Device, device_id)

    async def list_devices(self, *, patient_id: str | None = None,
                           patient_ids: Sequence[str] | None = None) -> list[Device]:
        q = select(Device).order_by(Device.device_id)
        if patient_id is not None:
            q = q.where(Device.patient_id == patient_id)
        if patient_ids is not None:
            q = q.where(Device.patient_id.in_(list(patient_ids)))
        async with self._sessions() as s:
            return list((await s.scalars(q)).all())

    async def list_patients(self) -> list[Patient]:
        async with self._sessions() as s:
            return list((await s.scalars(select(Patient).order_by(Patient.patient_id))).all())

    # -- alerts and episodes --------------------------------------------------------------------

    async def store_alert(self, alert: Alert, *, received_us: int | None = None) -> bool:
        """Store one alert message and merge it into its episode. True if new, False if its
        ``alert_id`` was already stored (nothing changes). Invalid alerts raise SchemaError."""
        return (await self.store_batch([alert], received_us=received_us))[0]

    def _alert_write(self, alert: Alert, now: int) -> tuple[Any, Any]:
        """(insert, episode upsert) for one alert; SchemaError (counted) when it is invalid."""
        try:
            encode_message(alert)  # the protocol's own field checks (types, ranges, ids)
            episode_id, event = episode_of(alert)
            _check_range(alert.onset_gateway_us, "onset_gateway_us")
            _check_range(alert.onset_device_us, "onset_device_us")
        except SchemaError:
            self.counters.alerts_rejected += 1
            raise
        row = dict(
            alert_id=str(uuid.UUID(alert.alert_id)), episode_id=episode_id, event=event, patient_id=alert.patient_id,
            device_id=alert.device_id, alert_type=alert.alert_type, category=str(alert.category),
            priority=str(alert.priority), onset_gateway_us=alert.onset_gateway_us,
            onset_device_us=alert.onset_device_us, window_id=alert.window_id, message=alert.message,
            model_versions=dict(alert.model_versions), reconstructed_leads=dict(alert.reconstructed_leads),
            details=dict(alert.details), schema_version=alert.schema_version, received_us=now,
        )
        ins = (_insert(self.dialect, AlertRow).values(**row)
               .on_conflict_do_nothing(index_elements=[AlertRow.alert_id]).returning(AlertRow.seq))
        return ins, self._episode_upsert(alert, episode_id, event, now)

    def _window_write(self, window: bytes | bytearray | memoryview | EcgWindow, now: int) -> Any:
        """The insert of one window payload; the protocol's error (counted) when it is invalid."""
        try:
            if isinstance(window, EcgWindow):
                payload = encode_window(window)
                decoded = window
            else:
                payload = bytes(window)
                decoded = decode_window(payload)
            _check_range(decoded.t0_us, "t0_us")
        except ValueError:  # ProtocolError and its subclasses are ValueErrors
            self.counters.windows_rejected += 1
            raise
        return _insert(self.dialect, WindowRow).values(
            window_id=str(uuid.UUID(decoded.window_id)), patient_id=decoded.patient_id, device_id=decoded.device_id,
            t0_us=decoded.t0_us, fs_hz=decoded.fs_hz, lead_mask=lead_mask(decoded.leads),
            reconstructed_mask=lead_mask(decoded.reconstructed), n_samples=decoded.n_samples,
            lsb_nv=decoded.lsb_nv, has_uncertainty=decoded.uncertainty is not None, payload=payload,
            received_us=now,
        ).on_conflict_do_nothing(index_elements=[WindowRow.window_id]).returning(WindowRow.seq)

    async def store_batch(self, items: Sequence[Alert | EcgWindow | bytes | bytearray | memoryview], *,
                          received_us: int | None = None) -> list[bool]:
        """Store alerts and windows (EcgWindow or payload bytes) in **one transaction**; per item, True
        if new, False if its id was already stored. Everything is checked before anything is written:
        one invalid item raises its error (SchemaError, FrameError, …) and stores nothing, as does a
        database error. One commit per batch instead of per message is what lets one ingest worker keep
        up with hundreds of patients (``bench/bench_cloud_ingest.py``)."""
        now = self.clock() if received_us is None else received_us
        writes = [self._alert_write(i, now) if isinstance(i, Alert) else self._window_write(i, now) for i in items]
        fresh: list[bool] = []
        async with self._sessions.begin() as s:
            for item, write in zip(items, writes, strict=True):
                if isinstance(item, Alert):
                    ins, episode = write
                    new = (await s.execute(ins)).first() is not None
                    if new:
                        await s.execute(episode)
                else:
                    new = (await s.execute(write)).first() is not None
                fresh.append(new)
        for item, new in zip(items, fresh, strict=True):
            if isinstance(item, Alert):
                if new:
                    self.counters.alerts_stored += 1
                else:
                    self.counters.alerts_duplicate += 1
            elif new:
                self.counters.windows_stored += 1
            else:
                self.counters.windows_duplicate += 1
        if any(new and isinstance(item, Alert) for item, new in zip(items, fresh, strict=True)):
            self._changed("alert")
        return fresh

    def _episode_upsert(self, alert: Alert, episode_id: str, event: str, now: int) -> Any:
        family = alert.details.get("family")
        stmt = _insert(self.dialect, Episode).values(
            episode_id=episode_id, patient_id=alert.patient_id, device_id=alert.device_id,
            family=family if isinstance(family, str) else "", alert_type=alert.alert_type,
            category=str(alert.category), priority=str(alert.priority), priority_rank=PRIORITY_RANK[alert.priority],
            onset_gateway_us=alert.onset_gateway_us, window_id=alert.window_id, raised=event != "cleared",
            cleared=event == "cleared", first_received_us=now, last_received_us=now, messages=1,
        )
        t, x = Episode.__table__.c, stmt.excluded
        higher = x.priority_rank > t.priority_rank
        return stmt.on_conflict_do_update(index_elements=[t.episode_id], set_={
            "raised": or_(t.raised, x.raised),
            "cleared": or_(t.cleared, x.cleared),
            "alert_type": case((higher, x.alert_type), else_=t.alert_type),
            "category": case((higher, x.category), else_=t.category),
            "priority": case((higher, x.priority), else_=t.priority),
            "priority_rank": case((higher, x.priority_rank), else_=t.priority_rank),
            "family": case((t.family == "", x.family), else_=t.family),
            "onset_gateway_us": case((x.onset_gateway_us < t.onset_gateway_us, x.onset_gateway_us),
                                     else_=t.onset_gateway_us),
            "window_id": func.coalesce(t.window_id, x.window_id),
            "first_received_us": case((x.first_received_us < t.first_received_us, x.first_received_us),
                                      else_=t.first_received_us),
            "last_received_us": case((x.last_received_us > t.last_received_us, x.last_received_us),
                                     else_=t.last_received_us),
            "messages": t.messages + 1,
        })

    async def get_alert(self, alert_id: str) -> StoredAlert:
        async with self._sessions() as s:
            row = await s.scalar(select(AlertRow).where(AlertRow.alert_id == _canonical_uuid(alert_id, "alert_id")))
        if row is None:
            raise NotFound(f"alert {alert_id} is not stored")
        return _alert_from_row(row)

    async def alerts_for_patient(self, patient_id: str, since_us: int | None = None, until_us: int | None = None,
                                 *, limit: int | None = None) -> list[StoredAlert]:
        """A patient's alert messages with ``since_us <= onset_gateway_us < until_us``, oldest onset first."""
        q = select(AlertRow).where(AlertRow.patient_id == patient_id)
        if since_us is not None:
            q = q.where(AlertRow.onset_gateway_us >= since_us)
        if until_us is not None:
            q = q.where(AlertRow.onset_gateway_us < until_us)
        return await self._alerts(q.order_by(AlertRow.onset_gateway_us, AlertRow.seq), limit)

    async def alerts_after(self, seq: int = 0, *, limit: int | None = 1000) -> list[StoredAlert]:
        """Alert messages stored after ``seq`` in storage order (a live feed's cursor)."""
        return await self._alerts(select(AlertRow).where(AlertRow.seq > seq).order_by(AlertRow.seq), limit)

    async def alerts_of_episode(self, episode_id: str) -> list[StoredAlert]:
        q = select(AlertRow).where(AlertRow.episode_id == _canonical_uuid(episode_id, "episode_id"))
        return await self._alerts(q.order_by(AlertRow.seq), None)

    async def _alerts(self, q: Select[Any], limit: int | None) -> list[StoredAlert]:
        if limit is not None:
            q = q.limit(limit)
        async with self._sessions() as s:
            return [_alert_from_row(r) for r in (await s.scalars(q)).all()]

    async def count_alerts(self) -> int:
        async with self._sessions() as s:
            return int(await s.scalar(select(func.count()).select_from(AlertRow)) or 0)

    async def get_episode(self, episode_id: str) -> EpisodeState:
        async with self._sessions() as s:
            row = await s.get(Episode, _canonical_uuid(episode_id, "episode_id"))
        if row is None:
            raise NotFound(f"episode {episode_id} is not stored")
        return _episode_from_row(row)

    async def active_episodes(self, patient_id: str | None = None) -> list[EpisodeState]:
        """Episodes raised (or escalated) with no clear yet, highest priority first, then oldest onset."""
        q = select(Episode).where(Episode.cleared.is_(False), Episode.raised.is_(True))
        if patient_id is not None:
            q = q.where(Episode.patient_id == patient_id)
        q = q.order_by(Episode.priority_rank.desc(), Episode.onset_gateway_us, Episode.episode_id)
        async with self._sessions() as s:
            return [_episode_from_row(r) for r in (await s.scalars(q)).all()]

    async def acknowledge(self, episode_id: str, user: str, *, note: str = "",
                          alert_id: str | None = None) -> AckRecord:
        """Record that ``user`` acknowledged an episode (every acknowledgement is kept; the episode
        shows the first), and write the audit entry (with ``alert_id``, the message the user acted
        on, when given). Raises NotFound for an unknown episode."""
        eid = _canonical_uuid(episode_id, "episode_id")
        details: dict[str, Any] = {"note": note} if note else {}
        if alert_id is not None:
            details["alert_id"] = _canonical_uuid(alert_id, "alert_id")
        at = self.clock()
        async with self._sessions.begin() as s:
            first = await s.execute(
                update(Episode).where(Episode.episode_id == eid, Episode.acknowledged_by.is_(None))
                .values(acknowledged_by=user, acknowledged_us=at).returning(Episode.episode_id))
            if first.first() is None and await s.get(Episode, eid) is None:
                raise NotFound(f"episode {episode_id} is not stored")
            ack = Acknowledgement(episode_id=eid, user=user, at_us=at, note=note)
            s.add(ack)
            s.add(AuditEntry(at_us=at, user=user, action="acknowledge", target=f"episode:{eid}", details=details))
            await s.flush()
            record = AckRecord(id=ack.id, episode_id=eid, user=user, at_us=at, note=note)
        self._changed("ack")
        return record

    async def acknowledgements(self, episode_id: str) -> list[AckRecord]:
        q = (select(Acknowledgement).where(Acknowledgement.episode_id == _canonical_uuid(episode_id, "episode_id"))
             .order_by(Acknowledgement.id))
        async with self._sessions() as s:
            return [AckRecord(id=a.id, episode_id=a.episode_id, user=a.user, at_us=a.at_us, note=a.note)
                    for a in (await s.scalars(q)).all()]

    # -- windows --------------------------------------------------------------------------------

    async def store_window(self, window: bytes | bytearray | memoryview | EcgWindow, *,
                           received_us: int | None = None) -> bool:
        """Store a window payload (as received) or an EcgWindow (encoded here). True if new, False if
        its ``window_id`` is already stored. Payload bytes are decoded first, so corrupt or invalid
        data raises the protocol's error (FrameError, SchemaError, …) and stores nothing."""
        return (await self.store_batch([window], received_us=received_us))[0]

    async def windows_for_patient(self, patient_id: str, t0_from: int | None = None, t0_to: int | None = None,
                                  *, limit: int | None = None) -> list[WindowMeta]:
        """Metadata of a patient's windows with ``t0_from <= t0_us < t0_to``, in time order."""
        q = select(*_WINDOW_META_COLS).where(WindowRow.patient_id == patient_id)
        if t0_from is not None:
            q = q.where(WindowRow.t0_us >= t0_from)
        if t0_to is not None:
            q = q.where(WindowRow.t0_us < t0_to)
        q = q.order_by(WindowRow.t0_us, WindowRow.seq)
        if limit is not None:
            q = q.limit(limit)
        async with self._sessions() as s:
            return [_window_meta(r) for r in (await s.execute(q)).all()]

    async def window_payload(self, window_id: str) -> bytes:
        """The stored payload bytes exactly as received (protocol window schema)."""
        async with self._sessions() as s:
            payload = await s.scalar(select(WindowRow.payload).where(
                WindowRow.window_id == _canonical_uuid(window_id, "window_id")))
        if payload is None:
            raise NotFound(f"window {window_id} is not stored")
        return bytes(payload)

    async def load_window(self, window_id: str) -> EcgWindow:
        """The stored window, decoded."""
        return decode_window(await self.window_payload(window_id))

    async def count_windows(self) -> int:
        async with self._sessions() as s:
            return int(await s.scalar(select(func.count()).select_from(WindowRow)) or 0)

    # -- status ---------------------------------------------------------------------------------

    async def upsert_device_status(self, status: DeviceStatus, *, received_us: int | None = None) -> bool:
        """Keep the device's latest status. True if stored, False if an equally new or newer one (by
        the device clock) is already there."""
        encode_message(status)
        _check_range(status.t_device_us, "t_device_us")
        stmt = _insert(self.dialect, DeviceStatusRow).values(
            device_id=status.device_id, t_device_us=status.t_device_us, battery_pct=status.battery_pct,
            connected=status.connected, lead_off=list(status.lead_off), profile=status.profile,
            firmware=status.firmware, received_us=self.clock() if received_us is None else received_us,
        )
        t, x = DeviceStatusRow.__table__.c, stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.device_id],
            set_={c: x[c] for c in ("t_device_us", "battery_pct", "connected", "lead_off", "profile", "firmware",
                                    "received_us")},
            where=t.t_device_us < x.t_device_us,
        ).returning(t.device_id)
        return await self._status_write(stmt)

    async def latest_device_status(self, device_id: str) -> DeviceStatus | None:
        async with self._sessions() as s:
            r = await s.get(DeviceStatusRow, device_id)
        if r is None:
            return None
        return DeviceStatus(device_id=r.device_id, t_device_us=r.t_device_us, battery_pct=r.battery_pct,
                            connected=bool(r.connected), lead_off=tuple(r.lead_off), profile=r.profile,
                            firmware=r.firmware)

    async def device_statuses(self, device_ids: Sequence[str] | None = None, *, received_since_us: int | None = None
                              ) -> dict[str, tuple[DeviceStatus, int]]:
        """Latest status and its ``received_us`` per device (all devices, or those named; only those
        received at or after ``received_since_us`` when given)."""
        q = select(DeviceStatusRow)
        if device_ids is not None:
            q = q.where(DeviceStatusRow.device_id.in_(list(device_ids)))
        if received_since_us is not None:
            q = q.where(DeviceStatusRow.received_us >= received_since_us)
        async with self._sessions() as s:
            rows = (await s.scalars(q)).all()
        return {r.device_id: (DeviceStatus(device_id=r.device_id, t_device_us=r.t_device_us,
                                           battery_pct=r.battery_pct, connected=bool(r.connected),
                                           lead_off=tuple(r.lead_off), profile=r.profile, firmware=r.firmware),
                              r.received_us) for r in rows}

    async def upsert_gateway_status(self, status: GatewayStatus, *, received_us: int | None = None) -> bool:
        """Keep the gateway's latest heartbeat (by gateway clock); False if not newer than the stored one."""
        encode_message(status)
        for name in ("t_gateway_us", "streams", "outbox_depth"):
            _check_range(getattr(status, name), name)
        stmt = _insert(self.dialect, GatewayStatusRow).values(
            gateway_id=status.gateway_id, t_gateway_us=status.t_gateway_us, streams=status.streams,
            outbox_depth=status.outbox_depth, software=status.software,
            received_us=self.clock() if received_us is None else received_us,
        )
        t, x = GatewayStatusRow.__table__.c, stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.gateway_id],
            set_={c: x[c] for c in ("t_gateway_us", "streams", "outbox_depth", "software", "received_us")},
            where=t.t_gateway_us < x.t_gateway_us,
        ).returning(t.gateway_id)
        return await self._status_write(stmt)

    async def latest_gateway_status(self, gateway_id: str) -> GatewayStatus | None:
        async with self._sessions() as s:
            r = await s.get(GatewayStatusRow, gateway_id)
        if r is None:
            return None
        return GatewayStatus(gateway_id=r.gateway_id, t_gateway_us=r.t_gateway_us, streams=r.streams,
                             outbox_depth=r.outbox_depth, software=r.software)

    async def _status_write(self, stmt: Any) -> bool:
        async with self._sessions.begin() as s:
            updated = (await s.execute(stmt)).first() is not None
        if updated:
            self.counters.status_updated += 1
            self._changed("status")
        else:
            self.counters.status_stale += 1
        return updated

    # -- audit ----------------------------------------------------------------------------------

    async def audit(self, user: str, action: str, target: str, details: dict[str, Any] | None = None) -> AuditRecord:
        """Append an audit entry: ``user`` did ``action`` (``view``, ``acknowledge``, ``login``, …) to
        ``target`` (``episode:<id>``, ``window:<id>``, ``patient:<id>``, …)."""
        entry = AuditEntry(at_us=self.clock(), user=user, action=action, target=target, details=dict(details or {}))
        async with self._sessions.begin() as s:
            s.add(entry)
            await s.flush()
            return _audit_record(entry)

    async def audit_log(self, *, user: str | None = None, target: str | None = None, since_us: int | None = None,
                        limit: int | None = 1000) -> list[AuditRecord]:
        """Audit entries, oldest first, filtered by user, target and time."""
        q = select(AuditEntry)
        if user is not None:
            q = q.where(AuditEntry.user == user)
        if target is not None:
            q = q.where(AuditEntry.target == target)
        if since_us is not None:
            q = q.where(AuditEntry.at_us >= since_us)
        q = q.order_by(AuditEntry.id)
        if limit is not None:
            q = q.limit(limit)
        async with self._sessions() as s:
            return [_audit_record(e) for e in (await s.scalars(q)).all()]

    async def audit_after(self, after_id: int = 0, *, actions: Sequence[str] | None = None,
                          limit: int | None = 1000) -> list[AuditRecord]:
        """Audit entries with ``id > after_id`` in order (the live feed's cursor for acks and escalations)."""
        q = select(AuditEntry).where(AuditEntry.id > after_id)
        if actions is not None:
            q = q.where(AuditEntry.action.in_(list(actions)))
        q = q.order_by(AuditEntry.id)
        if limit is not None:
            q = q.limit(limit)
        async with self._sessions() as s:
            return [_audit_record(e) for e in (await s.scalars(q)).all()]

    async def audit_by_ids(self, ids: Sequence[int], *, actions: Sequence[str] | None = None) -> list[AuditRecord]:
        if not ids:
            return []
        q = select(AuditEntry).where(AuditEntry.id.in_(list(ids)))
        if actions is not None:
            q = q.where(AuditEntry.action.in_(list(actions)))
        async with self._sessions() as s:
            return [_audit_record(e) for e in (await s.scalars(q.order_by(AuditEntry.id))).all()]

    async def alerts_by_seq(self, seqs: Sequence[int]) -> list[StoredAlert]:
        """The stored alerts with these ``seq`` values (those that exist), in seq order."""
        if not seqs:
            return []
        return await self._alerts(select(AlertRow).where(AlertRow.seq.in_(list(seqs))).order_by(AlertRow.seq), None)

    async def last_audit_id(self) -> int:
        async with self._sessions() as s:
            return int(await s.scalar(select(func.max(AuditEntry.id))) or 0)

    async def last_alert_seq(self) -> int:
        async with self._sessions() as s:
            return int(await s.scalar(select(func.max(AlertRow.seq))) or 0)

    # -- alert and window queries for the alert service --------------------------------------------

    async def query_alerts(self, *, patient_id: str | None = None, category: str | None = None,
                           active: bool | None = None, after_seq: int | None = None,
                           limit: int = 100) -> list[StoredAlert]:
        """Alert messages filtered by patient, category and whether their episode is active; newest
        first, or in storage order after ``after_seq`` when it is given."""
        q = select(AlertRow)
        if patient_id is not None:
            q = q.where(AlertRow.patient_id == patient_id)
        if category is not None:
            q = q.where(AlertRow.category == category)
        if active is not None:
            is_active = (select(Episode.episode_id).where(
                Episode.episode_id == AlertRow.episode_id, Episode.raised.is_(True), Episode.cleared.is_(False))
                .exists())
            q = q.where(is_active if active else ~is_active)
        if after_seq is not None:
            q = q.where(AlertRow.seq > after_seq).order_by(AlertRow.seq)
        else:
            q = q.order_by(AlertRow.seq.desc())
        return await self._alerts(q, limit)

    async def episodes(self, episode_ids: Sequence[str]) -> dict[str, EpisodeState]:
        """The current state of each named episode that is stored."""
        ids = sorted({_canonical_uuid(e, "episode_id") for e in episode_ids})
        if not ids:
            return {}
        async with self._sessions() as s:
            rows = (await s.scalars(select(Episode).where(Episode.episode_id.in_(ids)))).all()
        return {r.episode_id: _episode_from_row(r) for r in rows}

    async def latest_alerts(self, patient_ids: Sequence[str], *, depth: int = 1) -> dict[str, list[StoredAlert]]:
        """Each named patient's ``depth`` alerts with the latest onset (then the latest stored), newest
        first; patients without alerts are left out (one indexed query per patient:
        ``ix_alerts_patient_onset``)."""
        out: dict[str, list[StoredAlert]] = {}
        async with self._sessions() as s:
            for pid in sorted(set(patient_ids)):
                rows = (await s.scalars(select(AlertRow).where(AlertRow.patient_id == pid)
                                        .order_by(AlertRow.onset_gateway_us.desc(), AlertRow.seq.desc())
                                        .limit(depth))).all()
                if rows:
                    out[pid] = [_alert_from_row(r) for r in rows]
        return out

    async def last_window_received(self, patient_ids: Sequence[str]) -> dict[str, int]:
        """``received_us`` of each named patient's newest window (by ``t0_us``; ``ix_windows_patient_t0``)."""
        out: dict[str, int] = {}
        async with self._sessions() as s:
            for pid in sorted(set(patient_ids)):
                t = await s.scalar(select(WindowRow.received_us).where(WindowRow.patient_id == pid)
                                   .order_by(WindowRow.t0_us.desc(), WindowRow.seq.desc()).limit(1))
                if t is not None:
                    out[pid] = int(t)
        return out

    async def list_windows(self, *, patient_id: str | None = None, t0_from: int | None = None,
                           t0_to: int | None = None, limit: int = 100) -> list[WindowMeta]:
        """Window metadata with ``t0_from <= t0_us < t0_to``, newest first."""
        q = select(*_WINDOW_META_COLS)
        if patient_id is not None:
            q = q.where(WindowRow.patient_id == patient_id)
        if t0_from is not None:
            q = q.where(WindowRow.t0_us >= t0_from)
        if t0_to is not None:
            q = q.where(WindowRow.t0_us < t0_to)
        q = q.order_by(WindowRow.t0_us.desc(), WindowRow.seq.desc()).limit(limit)
        async with self._sessions() as s:
            return [_window_meta(r) for r in (await s.execute(q)).all()]

    async def window_meta(self, window_id: str) -> WindowMeta:
        q = select(*_WINDOW_META_COLS).where(WindowRow.window_id == _canonical_uuid(window_id, "window_id"))
        async with self._sessions() as s:
            row = (await s.execute(q)).first()
        if row is None:
            raise NotFound(f"window {window_id} is not stored")
        return _window_meta(row)

    # -- patients: details and assignment ---------------------------------------------------------

    async def get_patient(self, patient_id: str) -> PatientRecord | None:
        async with self._sessions() as s:
            row = await s.get(Patient, patient_id)
        return None if row is None else _patient_from_row(row)

    async def patients(self, patient_ids: Sequence[str] | None = None) -> list[PatientRecord]:
        """Registered patients (all, or those named) with their assignment, by id."""
        if patient_ids is None:
            return [_patient_from_row(p) for p in await self.list_patients()]
        q = select(Patient).where(Patient.patient_id.in_(list(patient_ids))).order_by(Patient.patient_id)
        async with self._sessions() as s:
            return [_patient_from_row(p) for p in (await s.scalars(q)).all()]

    async def active_counts(self, patient_ids: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        """Active episodes per patient and category: ``{patient_id: {"clinical": n, "technical": m}}``."""
        q = (select(Episode.patient_id, Episode.category, func.count())
             .where(Episode.cleared.is_(False), Episode.raised.is_(True))
             .group_by(Episode.patient_id, Episode.category))
        if patient_ids is not None:
            q = q.where(Episode.patient_id.in_(list(patient_ids)))
        out: dict[str, dict[str, int]] = {}
        async with self._sessions() as s:
            for pid, category, n in (await s.execute(q)).all():
                out.setdefault(pid, {})[category] = int(n)
        return out

    async def assign_patient(self, patient_id: str, username: str | None, *, by: str) -> PatientRecord:
        """Make ``username`` (None: nobody) responsible for a patient, audited as ``assign`` by ``by``.
        Raises NotFound for an unregistered patient."""
        at = self.clock()
        async with self._sessions.begin() as s:
            res = await s.execute(update(Patient).where(Patient.patient_id == patient_id)
                                  .values(assigned_to=username, assigned_us=at).returning(Patient))
            row = res.scalar_one_or_none()
            if row is None:
                raise NotFound(f"patient {patient_id!r} is not registered")
            s.add(AuditEntry(at_us=at, user=by, action="assign", target=f"patient:{patient_id}",
                             details={"assigned_to": username}))
            record = _patient_from_row(row)
        self._changed("assign")
        return record

    # -- staff accounts and sessions ---------------------------------------------------------------

    async def add_user(self, username: str, password_hash: str, role: str) -> bool:
        """Add a member of staff; False if the name is taken (nothing changes)."""
        stmt = _insert(self.dialect, User).values(
            username=username, password_hash=password_hash, role=role, active=True, created_us=self.clock(),
        ).on_conflict_do_nothing(index_elements=[User.username]).returning(User.username)
        async with self._sessions.begin() as s:
            return (await s.execute(stmt)).first() is not None

    async def get_user(self, username: str) -> UserRecord | None:
        async with self._sessions() as s:
            row = await s.get(User, username)
        return None if row is None else _user_from_row(row)

    async def list_users(self) -> list[UserRecord]:
        async with self._sessions() as s:
            return [_user_from_row(u) for u in (await s.scalars(select(User).order_by(User.username))).all()]

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        async with self._sessions.begin() as s:
            res = await s.execute(update(User).where(User.username == username)
                                  .values(password_hash=password_hash).returning(User.username))
            if res.first() is None:
                raise NotFound(f"user {username!r} does not exist")

    async def delete_user(self, username: str) -> bool:
        """Remove a user, their sessions and their patient assignments; False if there is no such user.
        (Their acknowledgements and audit entries stay: those name the user, they do not point at them.)"""
        async with self._sessions.begin() as s:
            await s.execute(delete(SessionRow).where(SessionRow.username == username))
            await s.execute(update(Patient).where(Patient.assigned_to == username)
                            .values(assigned_to=None, assigned_us=self.clock()))
            res = await s.execute(delete(User).where(User.username == username).returning(User.username))
            return res.first() is not None

    async def create_session(self, token_hash: str, username: str, expires_us: int, *, client: str = "") -> None:
        """Store a session by the hash of its token (see :mod:`cloud.accounts.sessions`)."""
        async with self._sessions.begin() as s:
            s.add(SessionRow(token_hash=token_hash, username=username, created_us=self.clock(),
                             expires_us=expires_us, client=client[:64]))

    async def session_user(self, token_hash: str) -> UserRecord | None:
        """The active user of an unexpired session, or None."""
        q = (select(User).join(SessionRow, SessionRow.username == User.username)
             .where(SessionRow.token_hash == token_hash, SessionRow.expires_us > self.clock(), User.active.is_(True)))
        async with self._sessions() as s:
            row = await s.scalar(q)
        return None if row is None else _user_from_row(row)

    async def delete_session(self, token_hash: str) -> bool:
        async with self._sessions.begin() as s:
            res = await s.execute(delete(SessionRow).where(SessionRow.token_hash == token_hash)
                                  .returning(SessionRow.token_hash))
            return res.first() is not None

    async def purge_expired(self, *, login_failures_before_us: int | None = None) -> int:
        """Delete expired sessions (and login failures older than the given time); returns rows deleted."""
        async with self._sessions.begin() as s:
            n = (await s.execute(delete(SessionRow).where(SessionRow.expires_us <= self.clock()))).rowcount or 0
            if login_failures_before_us is not None:
                n += (await s.execute(delete(LoginFailure)
                                      .where(LoginFailure.at_us < login_failures_before_us))).rowcount or 0
            return int(n)

    async def record_login_failure(self, username: str, client: str) -> int:
        """Remember one failed sign-in; returns its time (µs)."""
        at = self.clock()
        async with self._sessions.begin() as s:
            s.add(LoginFailure(username=username[:128], client=client[:64], at_us=at))
        return at

    async def login_failures(self, username: str, client: str, since_us: int) -> tuple[list[int], list[int]]:
        """Times (oldest first) of failed sign-ins since ``since_us``: for this user name, and from this client."""
        base = select(LoginFailure.at_us).where(LoginFailure.at_us >= since_us).order_by(LoginFailure.at_us)
        async with self._sessions() as s:
            by_user = list((await s.scalars(base.where(LoginFailure.username == username[:128]))).all())
            by_client = list((await s.scalars(base.where(LoginFailure.client == client[:64]))).all())
        return by_user, by_client

    async def clear_login_failures(self, username: str) -> None:
        async with self._sessions.begin() as s:
            await s.execute(delete(LoginFailure).where(LoginFailure.username == username[:128]))

    # -- escalation --------------------------------------------------------------------------------

    async def escalate_due(self, after_us: Mapping[str, int], *, max_level: int = 3,
                           categories: Sequence[str] = ("clinical",), user: str = "system") -> list[Escalation]:
        """Raise the escalation level of every active, unacknowledged episode of ``categories`` whose
        priority has a threshold in ``after_us`` and that has waited that long since it was first
        received (or last escalated), up to ``max_level``; audit each as ``escalate``.

        One conditional ``UPDATE … WHERE <still due> RETURNING`` per priority decides: run by several
        processes at once, a row goes up one level exactly once (SQLite serialises writers; on
        PostgreSQL the due rows are first locked with ``FOR UPDATE SKIP LOCKED``, in id order, and
        the UPDATE re-checks the condition), so nobody double-escalates and nobody deadlocks."""
        now = self.clock()
        done: list[Escalation] = []
        async with self._sessions.begin() as s:
            for priority, wait_us in sorted(after_us.items()):
                due = (Episode.priority == priority, Episode.category.in_(list(categories)),
                       Episode.raised.is_(True), Episode.cleared.is_(False), Episode.acknowledged_by.is_(None),
                       Episode.escalation_level < max_level,
                       func.coalesce(Episode.escalated_us, Episode.first_received_us) <= now - int(wait_us))
                stmt = update(Episode).where(*due)
                if self.dialect == "postgresql":
                    # lock the due rows first, skipping those another process is escalating right now: two
                    # multi-row UPDATEs locking rows in different orders could otherwise deadlock
                    ids = list((await s.scalars(select(Episode.episode_id).where(*due).order_by(Episode.episode_id)
                                                .with_for_update(skip_locked=True))).all())
                    if not ids:
                        continue
                    stmt = stmt.where(Episode.episode_id.in_(ids))
                stmt = (stmt.values(escalation_level=Episode.escalation_level + 1, escalated_us=now)
                        .returning(Episode.episode_id, Episode.patient_id, Episode.alert_type, Episode.priority,
                                   Episode.escalation_level))
                rows = (await s.execute(stmt)).all()
                if not rows:
                    continue
                first = dict((await s.execute(
                    select(AlertRow.episode_id, func.min(AlertRow.seq)).where(
                        AlertRow.episode_id.in_([r.episode_id for r in rows])).group_by(AlertRow.episode_id))).all())
                ids = dict((await s.execute(select(AlertRow.seq, AlertRow.alert_id)
                                            .where(AlertRow.seq.in_(list(first.values()))))).all())
                for r in rows:
                    alert_id = ids.get(first.get(r.episode_id))
                    e = Escalation(episode_id=r.episode_id, alert_id=alert_id, patient_id=r.patient_id,
                                   alert_type=r.alert_type, priority=r.priority, level=int(r.escalation_level),
                                   at_us=now)
                    s.add(AuditEntry(at_us=now, user=user, action="escalate", target=f"episode:{r.episode_id}",
                                     details={"level": e.level, "alert_id": alert_id, "priority": r.priority,
                                              "patient_id": r.patient_id}))
                    done.append(e)
        if done:
            self._changed("escalation")
        return done

    # -- model results -----------------------------------------------------------------------------

    async def store_model_result(self, window_id: str, model: str, version: str, outputs: Mapping[str, Any], *,
                                 patient_id: str, alert_id: str | None = None) -> bool:
        """Store what ``model`` ``version`` said about a window; False if that model version's result
        for the window is already stored (unchanged)."""
        stmt = _insert(self.dialect, ModelResultRow).values(
            window_id=_canonical_uuid(window_id, "window_id"),
            alert_id=None if alert_id is None else _canonical_uuid(alert_id, "alert_id"),
            patient_id=patient_id, model=model, version=version, outputs=dict(outputs), created_us=self.clock(),
        ).on_conflict_do_nothing(index_elements=["window_id", "model", "version"]).returning(ModelResultRow.id)
        async with self._sessions.begin() as s:
            return (await s.execute(stmt)).first() is not None

    async def results_for_window(self, window_id: str) -> list[ModelResult]:
        q = (select(ModelResultRow).where(ModelResultRow.window_id == _canonical_uuid(window_id, "window_id"))
             .order_by(ModelResultRow.id))
        async with self._sessions() as s:
            return [_result_from_row(r) for r in (await s.scalars(q)).all()]

    async def results_for_alerts(self, alerts: Sequence[StoredAlert]) -> dict[str, list[ModelResult]]:
        """:meth:`results_for_alert` of many alerts in one query: ``{alert_id: [results]}``."""
        alert_ids = sorted({_canonical_uuid(a.alert.alert_id, "alert_id") for a in alerts})
        window_ids = sorted({_canonical_uuid(a.alert.window_id, "window_id") for a in alerts if a.alert.window_id})
        if not alert_ids:
            return {}
        cond = ModelResultRow.alert_id.in_(alert_ids)
        if window_ids:
            cond = or_(cond, ModelResultRow.window_id.in_(window_ids))
        async with self._sessions() as s:
            rows = [_result_from_row(r) for r in (await s.scalars(select(ModelResultRow).where(cond)
                                                                  .order_by(ModelResultRow.id))).all()]
        out: dict[str, list[ModelResult]] = {}
        for a in alerts:
            aid = str(uuid.UUID(a.alert.alert_id))
            wid = str(uuid.UUID(a.alert.window_id)) if a.alert.window_id else None
            out[aid] = [r for r in rows if r.alert_id == aid or (wid is not None and r.window_id == wid)]
        return out

    async def results_for_alert(self, alert_id: str) -> list[ModelResult]:
        """Results run for this alert, or for the window it points at."""
        aid = _canonical_uuid(alert_id, "alert_id")
        window = select(AlertRow.window_id).where(AlertRow.alert_id == aid).scalar_subquery()
        q = (select(ModelResultRow).where(or_(ModelResultRow.alert_id == aid, ModelResultRow.window_id == window))
             .order_by(ModelResultRow.id))
        async with self._sessions() as s:
            return [_result_from_row(r) for r in (await s.scalars(q)).all()]

def _audit_record(e: AuditEntry) -> AuditRecord:
    return AuditRecord(id=e.id, at_us=e.at_us, user=e.user, action=e.action, target=e.target, details=dict(e.details))


__all__ = [
    "EVENTS", "PRIORITY_RANK", "AckRecord", "AuditRecord", "EpisodeState", "Escalation", "ModelResult", "NotFound",
    "PatientRecord", "Store", "StoreCounters", "StoredAlert", "UserRecord", "WindowMeta", "episode_of", "now_us",
]
