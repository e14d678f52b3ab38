"""Alert messages, the episodes they merge into, and acknowledgements.

**Episodes.** An edge episode is a raise, any escalations and a clear, each its own Alert message with
its own ``alert_id`` and ``details['episode_id']``/``details['event']`` (see ``edge/alarms``). Each
stored message is also merged into ``episodes`` by an upsert whose update is commutative and
idempotent (``raised |= …``, ``cleared |= …``, type and priority of the highest priority seen,
earliest onset), in the same transaction as the alert row. So any arrival order, with any
duplicates, gives the same episode state: active = a raise or escalation arrived and no clear did. A
message without ``details['event']`` (a sender other than the alarm engine) is a one-message episode
of its own id that stays active until a clear names it.

**Ownership.** An episode belongs to the patient and device of the message that first stored it. A
message naming an existing episode of another patient or device (gateway A sending a clear for
patient B's episode id) is refused with :class:`protocol.errors.OwnershipError` and stores nothing:
the upsert's update is guarded (``ON CONFLICT … DO UPDATE … WHERE`` the stored patient and device are
the message's), and :func:`cloud.store.writes.commit` rolls back when the guard refused. Which
gateway may publish for which patient is the broker's ACL's job; the registry check of the ingest
binds the device to its patient; this guard binds an episode to both.

Alert rows are written by :func:`cloud.store.writes.commit` (``INSERT … ON CONFLICT (alert_id) DO
NOTHING``), so a resent alert is counted as a duplicate and changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, case, func, or_, select, update

from cloud.errors import NotFound
from cloud.store.checks import canonical_uuid, check_range, episode_of
from cloud.store.database import Database
from cloud.store.records import AckRecord, EpisodeState, StoredAlert
from cloud.store.schema import Acknowledgement, AlertRow, AuditEntry, Episode
from cloud.store.writes import Write, commit
from protocol.errors import OwnershipError, SchemaError
from protocol.messages import Alert, AlertCategory, Priority, encode_message

PRIORITY_RANK = {Priority.LOW.value: 1, Priority.MEDIUM.value: 2, Priority.HIGH.value: 3}


def stored_alert(r: AlertRow) -> StoredAlert:
    alert = Alert(
        alert_id=r.alert_id, patient_id=r.patient_id, device_id=r.device_id, alert_type=r.alert_type,
        category=AlertCategory(r.category), priority=Priority(r.priority), onset_gateway_us=r.onset_gateway_us,
        onset_device_us=r.onset_device_us, window_id=r.window_id, message=r.message,
        model_versions=dict(r.model_versions), reconstructed_leads=dict(r.reconstructed_leads),
        details=dict(r.details), schema_version=r.schema_version,
    )
    return StoredAlert(seq=r.seq, alert=alert, episode_id=r.episode_id, event=r.event, received_us=r.received_us)


def episode_state(r: Episode) -> EpisodeState:
    return EpisodeState(
        episode_id=r.episode_id, patient_id=r.patient_id, device_id=r.device_id, family=r.family,
        alert_type=r.alert_type, category=AlertCategory(r.category), priority=Priority(r.priority),
        onset_gateway_us=r.onset_gateway_us, window_id=r.window_id, raised=bool(r.raised), cleared=bool(r.cleared),
        messages=r.messages, first_received_us=r.first_received_us, last_received_us=r.last_received_us,
        acknowledged_by=r.acknowledged_by, acknowledged_us=r.acknowledged_us,
        escalation_level=int(r.escalation_level or 0), escalated_us=r.escalated_us,
    )


class AlertRepository:
    """Alerts, episodes and acknowledgements (``store.alerts``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes -----------------------------------------------------------------------------------

    def prepare(self, alert: Alert, now: int) -> Write:
        """The checked insert (and episode upsert) of one alert; SchemaError (counted) when it is invalid."""
        try:
            encode_message(alert)  # the protocol's own field checks (types, ranges, ids)
            episode_id, event = episode_of(alert)
            check_range(alert.onset_gateway_us, "onset_gateway_us")
            check_range(alert.onset_device_us, "onset_device_us")
        except SchemaError:
            self.db.counters.alerts_rejected += 1
            raise
        row = dict(
            alert_id=str(uuid.UUID(alert.alert_id)), episode_id=episode_id, event=event, patient_id=alert.patient_id,
            device_id=alert.device_id, alert_type=alert.alert_type, category=str(alert.category),
            priority=str(alert.priority), onset_gateway_us=alert.onset_gateway_us,
            onset_device_us=alert.onset_device_us, window_id=alert.window_id, message=alert.message,
            model_versions=dict(alert.model_versions), reconstructed_leads=dict(alert.reconstructed_leads),
            details=dict(alert.details), schema_version=alert.schema_version, received_us=now,
        )
        ins = (self.db.insert(AlertRow).values(**row)
               .on_conflict_do_nothing(index_elements=[AlertRow.alert_id]).returning(AlertRow.seq))
        refusal = OwnershipError(f"alert {alert.alert_id}: episode {episode_id} belongs to another patient or "
                                 f"device than {alert.patient_id!r}/{alert.device_id!r}")
        return Write("alert", ins, self._episode_upsert(alert, episode_id, event, now), refusal)

    def _episode_upsert(self, alert: Alert, episode_id: str, event: str, now: int) -> Any:
        family = alert.details.get("family")
        stmt = self.db.insert(Episode).values(
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
        }, where=(t.patient_id == x.patient_id) & (t.device_id == x.device_id)).returning(t.episode_id)

    async def store_alert(self, alert: Alert, *, received_us: int | None = None) -> bool:
        """Store one alert message and merge it into its episode. True if new, False if its
        ``alert_id`` was already stored (nothing changes). Invalid alerts raise SchemaError."""
        now = self.db.clock() if received_us is None else received_us
        return (await commit(self.db, [self.prepare(alert, now)]))[0]

    # -- alert messages ---------------------------------------------------------------------------

    async def get_alert(self, alert_id: str) -> StoredAlert:
        async with self.db.sessions() as s:
            row = await s.scalar(select(AlertRow).where(AlertRow.alert_id == canonical_uuid(alert_id, "alert_id")))
        if row is None:
            raise NotFound(f"alert {alert_id} is not stored")
        return stored_alert(row)

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
        q = select(AlertRow).where(AlertRow.episode_id == canonical_uuid(episode_id, "episode_id"))
        return await self._alerts(q.order_by(AlertRow.seq), None)

    async def alerts_by_seq(self, seqs: Sequence[int]) -> list[StoredAlert]:
        """The stored alerts with these ``seq`` values (those that exist), in seq order."""
        if not seqs:
            return []
        return await self._alerts(select(AlertRow).where(AlertRow.seq.in_(list(seqs))).order_by(AlertRow.seq), None)

    async def _alerts(self, q: Select[Any], limit: int | None) -> list[StoredAlert]:
        if limit is not None:
            q = q.limit(limit)
        async with self.db.sessions() as s:
            return [stored_alert(r) for r in (await s.scalars(q)).all()]

    async def count_alerts(self) -> int:
        async with self.db.sessions() as s:
            return int(await s.scalar(select(func.count()).select_from(AlertRow)) or 0)

    async def last_alert_seq(self) -> int:
        async with self.db.sessions() as s:
            return int(await s.scalar(select(func.max(AlertRow.seq))) or 0)

    async def query_alerts(self, *, patient_id: str | None = None, category: str | None = None,
                           active: bool | None = None, after_seq: int | None = None,
                           limit: int = 100, alert_type: str | None = None, priority: str | None = None,
                           acknowledged: bool | None = None, text: str | None = None,
                           since_us: int | None = None, until_us: int | None = None,
                           before_seq: int | None = None) -> list[StoredAlert]:
        """Alert messages filtered by patient, category, type, priority, whether their episode is active
        or acknowledged, a text in the message or type (case-insensitive), and onset time
        (``since_us <= onset_gateway_us < until_us``); newest first (with ``before_seq``, those stored
        before it: the next page), or in storage order after ``after_seq`` when it is given."""
        q = select(AlertRow)
        if patient_id is not None:
            q = q.where(AlertRow.patient_id == patient_id)
        if category is not None:
            q = q.where(AlertRow.category == category)
        if alert_type is not None:
            q = q.where(AlertRow.alert_type == alert_type)
        if priority is not None:
            q = q.where(AlertRow.priority == priority)
        if since_us is not None:
            q = q.where(AlertRow.onset_gateway_us >= since_us)
        if until_us is not None:
            q = q.where(AlertRow.onset_gateway_us < until_us)
        if text:
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            q = q.where(or_(AlertRow.message.ilike(pattern, escape="\\"),
                            AlertRow.alert_type.ilike(pattern, escape="\\")))
        if active is not None:
            is_active = (select(Episode.episode_id).where(
                Episode.episode_id == AlertRow.episode_id, Episode.raised.is_(True), Episode.cleared.is_(False))
                .exists())
            q = q.where(is_active if active else ~is_active)
        if acknowledged is not None:
            is_acked = (select(Episode.episode_id).where(
                Episode.episode_id == AlertRow.episode_id, Episode.acknowledged_by.is_not(None)).exists())
            q = q.where(is_acked if acknowledged else ~is_acked)
        if after_seq is not None:
            q = q.where(AlertRow.seq > after_seq).order_by(AlertRow.seq)
        else:
            if before_seq is not None:
                q = q.where(AlertRow.seq < before_seq)
            q = q.order_by(AlertRow.seq.desc())
        return await self._alerts(q, limit)

    async def latest_alerts(self, patient_ids: Sequence[str], *, depth: int = 1) -> dict[str, list[StoredAlert]]:
        """Each named patient's ``depth`` alerts with the latest onset (then the latest stored), newest
        first; patients without alerts are left out (one indexed query per patient:
        ``ix_alerts_patient_onset``)."""
        out: dict[str, list[StoredAlert]] = {}
        async with self.db.sessions() as s:
            for pid in sorted(set(patient_ids)):
                rows = (await s.scalars(select(AlertRow).where(AlertRow.patient_id == pid)
                                        .order_by(AlertRow.onset_gateway_us.desc(), AlertRow.seq.desc())
                                        .limit(depth))).all()
                if rows:
                    out[pid] = [stored_alert(r) for r in rows]
        return out

    # -- episodes ---------------------------------------------------------------------------------

    async def get_episode(self, episode_id: str) -> EpisodeState:
        async with self.db.sessions() as s:
            row = await s.get(Episode, canonical_uuid(episode_id, "episode_id"))
        if row is None:
            raise NotFound(f"episode {episode_id} is not stored")
        return episode_state(row)

    async def active_episodes(self, patient_id: str | None = None) -> list[EpisodeState]:
        """Episodes raised (or escalated) with no clear yet, highest priority first, then oldest onset."""
        q = select(Episode).where(Episode.cleared.is_(False), Episode.raised.is_(True))
        if patient_id is not None:
            q = q.where(Episode.patient_id == patient_id)
        q = q.order_by(Episode.priority_rank.desc(), Episode.onset_gateway_us, Episode.episode_id)
        async with self.db.sessions() as s:
            return [episode_state(r) for r in (await s.scalars(q)).all()]

    async def episodes(self, episode_ids: Sequence[str]) -> dict[str, EpisodeState]:
        """The current state of each named episode that is stored."""
        ids = sorted({canonical_uuid(e, "episode_id") for e in episode_ids})
        if not ids:
            return {}
        async with self.db.sessions() as s:
            rows = (await s.scalars(select(Episode).where(Episode.episode_id.in_(ids)))).all()
        return {r.episode_id: episode_state(r) for r in rows}

    async def active_counts(self, patient_ids: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        """Active episodes per patient and category: ``{patient_id: {"clinical": n, "technical": m}}``."""
        q = (select(Episode.patient_id, Episode.category, func.count())
             .where(Episode.cleared.is_(False), Episode.raised.is_(True))
             .group_by(Episode.patient_id, Episode.category))
        if patient_ids is not None:
            q = q.where(Episode.patient_id.in_(list(patient_ids)))
        out: dict[str, dict[str, int]] = {}
        async with self.db.sessions() as s:
            for pid, category, n in (await s.execute(q)).all():
                out.setdefault(pid, {})[category] = int(n)
        return out

    # -- acknowledgements -------------------------------------------------------------------------

    async def acknowledge(self, episode_id: str, user: str, *, note: str = "",
                          alert_id: str | None = None) -> AckRecord:
        """Record that ``user`` acknowledged an episode (every acknowledgement is kept; the episode
        shows the first), and write the audit entry (with ``alert_id``, the message the user acted
        on, when given). Raises NotFound for an unknown episode."""
        eid = canonical_uuid(episode_id, "episode_id")
        details: dict[str, Any] = {"note": note} if note else {}
        if alert_id is not None:
            details["alert_id"] = canonical_uuid(alert_id, "alert_id")
        at = self.db.clock()
        async with self.db.sessions.begin() as s:
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
        self.db.changed("ack")
        return record

    async def acknowledgements(self, episode_id: str) -> list[AckRecord]:
        q = (select(Acknowledgement).where(Acknowledgement.episode_id == canonical_uuid(episode_id, "episode_id"))
             .order_by(Acknowledgement.id))
        async with self.db.sessions() as s:
            return [AckRecord(id=a.id, episode_id=a.episode_id, user=a.user, at_us=a.at_us, note=a.note)
                    for a in (await s.scalars(q)).all()]


__all__ = ["PRIORITY_RANK", "AlertRepository", "episode_state", "stored_alert"]
