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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Select, case, func, or_, select, update
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
    Patient,
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
    )


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

    async def list_devices(self, *, patient_id: str | None = None) -> list[Device]:
        q = select(Device).order_by(Device.device_id)
        if patient_id is not None:
            q = q.where(Device.patient_id == patient_id)
        async with self._sessions() as s:
            return list((await s.scalars(q)).all())

    async def list_patients(self) -> list[Patient]:
        async with self._sessions() as s:
            return list((await s.scalars(select(Patient).order_by(Patient.patient_id))).all())

    # -- alerts and episodes --------------------------------------------------------------------

    async def store_alert(self, alert: Alert, *, received_us: int | None = None) -> bool:
        """Store one alert message and merge it into its episode. True if new, False if its
        ``alert_id`` was already stored (nothing changes). Invalid alerts raise SchemaError."""
        try:
            encode_message(alert)  # the protocol's own field checks (types, ranges, ids)
            episode_id, event = episode_of(alert)
            _check_range(alert.onset_gateway_us, "onset_gateway_us")
            _check_range(alert.onset_device_us, "onset_device_us")
        except SchemaError:
            self.counters.alerts_rejected += 1
            raise
        alert_id = str(uuid.UUID(alert.alert_id))
        now = self.clock() if received_us is None else received_us
        row = dict(
            alert_id=alert_id, episode_id=episode_id, event=event, patient_id=alert.patient_id,
            device_id=alert.device_id, alert_type=alert.alert_type, category=str(alert.category),
            priority=str(alert.priority), onset_gateway_us=alert.onset_gateway_us,
            onset_device_us=alert.onset_device_us, window_id=alert.window_id, message=alert.message,
            model_versions=dict(alert.model_versions), reconstructed_leads=dict(alert.reconstructed_leads),
            details=dict(alert.details), schema_version=alert.schema_version, received_us=now,
        )
        ins = (_insert(self.dialect, AlertRow).values(**row)
               .on_conflict_do_nothing(index_elements=[AlertRow.alert_id]).returning(AlertRow.seq))
        async with self._sessions.begin() as s:
            if (await s.execute(ins)).first() is None:
                self.counters.alerts_duplicate += 1
                return False
            await s.execute(self._episode_upsert(alert, episode_id, event, now))
        self.counters.alerts_stored += 1
        return True

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

    async def acknowledge(self, episode_id: str, user: str, *, note: str = "") -> AckRecord:
        """Record that ``user`` acknowledged an episode (every acknowledgement is kept; the episode
        shows the first), and write the audit entry. Raises NotFound for an unknown episode."""
        eid = _canonical_uuid(episode_id, "episode_id")
        at = self.clock()
        async with self._sessions.begin() as s:
            first = await s.execute(
                update(Episode).where(Episode.episode_id == eid, Episode.acknowledged_by.is_(None))
                .values(acknowledged_by=user, acknowledged_us=at).returning(Episode.episode_id))
            if first.first() is None and await s.get(Episode, eid) is None:
                raise NotFound(f"episode {episode_id} is not stored")
            ack = Acknowledgement(episode_id=eid, user=user, at_us=at, note=note)
            s.add(ack)
            s.add(AuditEntry(at_us=at, user=user, action="acknowledge", target=f"episode:{eid}",
                             details={"note": note} if note else {}))
            await s.flush()
            return AckRecord(id=ack.id, episode_id=eid, user=user, at_us=at, note=note)

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
        ins = _insert(self.dialect, WindowRow).values(
            window_id=str(uuid.UUID(decoded.window_id)), patient_id=decoded.patient_id, device_id=decoded.device_id,
            t0_us=decoded.t0_us, fs_hz=decoded.fs_hz, lead_mask=lead_mask(decoded.leads),
            reconstructed_mask=lead_mask(decoded.reconstructed), n_samples=decoded.n_samples,
            lsb_nv=decoded.lsb_nv, has_uncertainty=decoded.uncertainty is not None, payload=payload,
            received_us=self.clock() if received_us is None else received_us,
        ).on_conflict_do_nothing(index_elements=[WindowRow.window_id]).returning(WindowRow.seq)
        async with self._sessions.begin() as s:
            fresh = (await s.execute(ins)).first() is not None
        if fresh:
            self.counters.windows_stored += 1
        else:
            self.counters.windows_duplicate += 1
        return fresh

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

    async def device_statuses(self, device_ids: Sequence[str] | None = None) -> dict[str, tuple[DeviceStatus, int]]:
        """Latest status and its ``received_us`` per device (all devices, or those named)."""
        q = select(DeviceStatusRow)
        if device_ids is not None:
            q = q.where(DeviceStatusRow.device_id.in_(list(device_ids)))
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


def _audit_record(e: AuditEntry) -> AuditRecord:
    return AuditRecord(id=e.id, at_us=e.at_us, user=e.user, action=e.action, target=e.target, details=dict(e.details))


__all__ = [
    "EVENTS", "PRIORITY_RANK", "AckRecord", "AuditRecord", "EpisodeState", "NotFound", "Store", "StoreCounters",
    "StoredAlert", "WindowMeta", "episode_of", "now_us",
]
