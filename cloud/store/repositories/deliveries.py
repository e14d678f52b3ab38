"""Escalation deliveries: one row per message to one channel about one episode at one level, sent by
the delivery loop (:mod:`cloud.escalation.delivery`) with retries, and shown in the alert's history.

A row is ``pending`` until it is ``delivered``, ``failed`` (the last retry failed) or ``cancelled``
(the episode was acknowledged or ended before it could be sent). Several processes may run the loop on
one database: :meth:`DeliveryRepository.enqueue` is idempotent (the unique ``(episode_id, level,
channel)`` key), and :meth:`DeliveryRepository.claim_due` hands a due row to exactly one of them (a
conditional ``UPDATE … RETURNING``; on PostgreSQL the rows are first locked ``FOR UPDATE SKIP LOCKED``
in id order, as :mod:`.escalation` does). A claim is a lease: it moves ``next_attempt_us`` past the
send's time-out, so a process that dies mid-send leaves the row to another one, which sends it again
(receivers de-duplicate by the delivery id). Outcomes record only if the claim is still theirs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from cloud.store.database import Database
from cloud.store.schema import AlertRow, AuditEntry, Episode, EscalationDelivery

PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"
STATUSES = (PENDING, DELIVERED, FAILED, CANCELLED)


@dataclass(frozen=True)
class Delivery:
    """One escalation delivery as stored."""

    id: int
    episode_id: str
    alert_id: str | None
    patient_id: str
    channel: str
    kind: str
    target: str
    level: int
    priority: str
    status: str
    attempts: int
    last_error: str | None
    created_us: int
    next_attempt_us: int
    delivered_us: int | None


@dataclass(frozen=True)
class DeliveryCandidate:
    """An active, unacknowledged episode that may need deliveries at its current level."""

    episode_id: str
    alert_id: str | None
    patient_id: str
    priority: str
    level: int
    planned: frozenset[str]
    """Channels that already have a delivery for this episode at this level."""


@dataclass(frozen=True)
class NewDelivery:
    """A delivery to create: ``episode`` to ``channel`` (of ``kind``, to ``target``)."""

    episode: DeliveryCandidate
    channel: str
    kind: str
    target: str


def _delivery(r: Any) -> Delivery:
    return Delivery(id=r.id, episode_id=r.episode_id, alert_id=r.alert_id, patient_id=r.patient_id, channel=r.channel,
                    kind=r.kind, target=r.target, level=int(r.level), priority=r.priority, status=r.status,
                    attempts=int(r.attempts), last_error=r.last_error, created_us=r.created_us,
                    next_attempt_us=r.next_attempt_us, delivered_us=r.delivered_us)


_COLUMNS = tuple(EscalationDelivery.__table__.c)


class DeliveryRepository:
    """Escalation deliveries (``store.deliveries``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def candidates(self, *, min_level: int = 0, categories: Sequence[str] = ("clinical",)) -> list[DeliveryCandidate]:
        """Active, unacknowledged episodes of ``categories`` at ``min_level`` or above, each with its first
        alert and the channels already planned at its current level."""
        due = (Episode.category.in_(list(categories)), Episode.raised.is_(True), Episode.cleared.is_(False),
               Episode.acknowledged_by.is_(None), Episode.escalation_level >= min_level)
        async with self.db.sessions() as s:
            episodes = (await s.execute(select(Episode.episode_id, Episode.patient_id, Episode.priority,
                                               Episode.escalation_level).where(*due)
                                        .order_by(Episode.episode_id))).all()
            if not episodes:
                return []
            ids = [e.episode_id for e in episodes]
            first = dict((await s.execute(select(AlertRow.episode_id, func.min(AlertRow.seq))
                                          .where(AlertRow.episode_id.in_(ids)).group_by(AlertRow.episode_id))).all())
            alert_ids = dict((await s.execute(select(AlertRow.seq, AlertRow.alert_id)
                                              .where(AlertRow.seq.in_(list(first.values()))))).all())
            planned: dict[tuple[str, int], set[str]] = {}
            for row in (await s.execute(select(EscalationDelivery.episode_id, EscalationDelivery.level,
                                               EscalationDelivery.channel)
                                        .where(EscalationDelivery.episode_id.in_(ids)))).all():
                planned.setdefault((row.episode_id, int(row.level)), set()).add(row.channel)
        out = []
        for e in episodes:
            seq = first.get(e.episode_id)
            out.append(DeliveryCandidate(
                episode_id=e.episode_id, alert_id=None if seq is None else alert_ids.get(seq), patient_id=e.patient_id,
                priority=e.priority, level=int(e.escalation_level),
                planned=frozenset(planned.get((e.episode_id, int(e.escalation_level)), ()))))
        return out

    async def enqueue(self, new: Sequence[NewDelivery]) -> list[Delivery]:
        """Create these deliveries, due now; returns those created (one already there, made by another
        process or an earlier call, is left as it is)."""
        if not new:
            return []
        now = self.db.clock()
        created: list[Delivery] = []
        async with self.db.sessions.begin() as s:
            # one order in every process, so that concurrent inserts of the same keys cannot deadlock
            for n in sorted(new, key=lambda n: (n.episode.episode_id, n.episode.level, n.channel)):
                e = n.episode
                stmt = self.db.insert(EscalationDelivery).values(
                    episode_id=e.episode_id, alert_id=e.alert_id, patient_id=e.patient_id, channel=n.channel,
                    kind=n.kind, target=n.target[:255], level=e.level, priority=e.priority, status=PENDING,
                    attempts=0, created_us=now, next_attempt_us=now,
                ).on_conflict_do_nothing(index_elements=["episode_id", "level", "channel"]).returning(*_COLUMNS)
                row = (await s.execute(stmt)).first()
                if row is not None:
                    created.append(_delivery(row))
        if created:
            self.db.changed("delivery")
        return created

    async def claim_due(self, channels: Sequence[str], *, lease_us: int, limit: int = 32) -> list[Delivery]:
        """Take up to ``limit`` pending deliveries of ``channels`` that are due: each comes back with
        ``attempts`` counting this try and is not due again for ``lease_us`` (the claim)."""
        if not channels:
            return []
        now = self.db.clock()
        due = (EscalationDelivery.status == PENDING, EscalationDelivery.next_attempt_us <= now,
               EscalationDelivery.channel.in_(list(channels)))
        pick = select(EscalationDelivery.id).where(*due).order_by(EscalationDelivery.id).limit(limit)
        stmt = (update(EscalationDelivery)
                .values(attempts=EscalationDelivery.attempts + 1, next_attempt_us=now + int(lease_us))
                .returning(*_COLUMNS))
        async with self.db.sessions.begin() as s:
            if self.db.dialect == "postgresql":
                # lock the due rows first, skipping those another process is claiming right now
                ids = list((await s.scalars(pick.with_for_update(skip_locked=True))).all())
                if not ids:
                    return []
                stmt = stmt.where(EscalationDelivery.id.in_(ids), *due)
            else:
                # one statement that starts with the write: a deferred SQLite transaction never has to
                # upgrade a read lock (cloud.store.engine)
                stmt = stmt.where(EscalationDelivery.id.in_(pick.scalar_subquery()), *due)
            rows = (await s.execute(stmt)).all()
        return sorted((_delivery(r) for r in rows), key=lambda d: d.id)

    async def delivered(self, claimed: Delivery, *, details: Mapping[str, Any] | None = None) -> Delivery | None:
        """Record that the claimed try succeeded (audited as ``escalation_delivered``); None if the claim
        was lost (another process took the row after the lease ran out)."""
        now = self.db.clock()
        return await self._finish(claimed, {"status": DELIVERED, "delivered_us": now}, "escalation_delivered",
                                  details)

    async def retry(self, claimed: Delivery, error: str, *, at_us: int) -> Delivery | None:
        """Record that the claimed try failed and the next one is due at ``at_us``."""
        return await self._finish(claimed, {"last_error": error[:2000], "next_attempt_us": int(at_us)}, None, None)

    async def failed(self, claimed: Delivery, error: str, *, details: Mapping[str, Any] | None = None
                     ) -> Delivery | None:
        """Record that the claimed try, the last one, failed (audited as ``escalation_failed``)."""
        return await self._finish(claimed, {"status": FAILED, "last_error": error[:2000]}, "escalation_failed",
                                  details)

    async def cancelled(self, claimed: Delivery, reason: str) -> Delivery | None:
        """Record that the delivery is no longer needed (the episode was acknowledged or ended)."""
        return await self._finish(claimed, {"status": CANCELLED, "last_error": reason[:2000]}, None, None)

    async def _finish(self, claimed: Delivery, values: dict[str, Any], action: str | None,
                      details: Mapping[str, Any] | None) -> Delivery | None:
        now = self.db.clock()
        t = EscalationDelivery
        stmt = (update(t).where(t.id == claimed.id, t.status == PENDING, t.attempts == claimed.attempts)
                .values(**values).returning(*_COLUMNS))
        async with self.db.sessions.begin() as s:
            row = (await s.execute(stmt)).first()
            if row is None:
                return None
            d = _delivery(row)
            if action is not None:
                s.add(AuditEntry(at_us=now, user="system", action=action, target=f"episode:{d.episode_id}",
                                 details={"delivery_id": d.id, "channel": d.channel, "kind": d.kind, "target": d.target,
                                          "level": d.level, "priority": d.priority, "attempts": d.attempts,
                                          "alert_id": d.alert_id, "patient_id": d.patient_id,
                                          "error": d.last_error if d.status == FAILED else None,
                                          **(details or {})}))
        self.db.changed("delivery")
        return d

    async def for_episodes(self, episode_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        """``{episode_id: [deliveries, oldest first]}`` (episodes without any are left out)."""
        if not episode_ids:
            return {}
        out: dict[str, list[Delivery]] = {}
        q = (select(*_COLUMNS).where(EscalationDelivery.episode_id.in_(list(episode_ids)))
             .order_by(EscalationDelivery.id))
        async with self.db.sessions() as s:
            for r in (await s.execute(q)).all():
                out.setdefault(r.episode_id, []).append(_delivery(r))
        return out

    async def for_episode(self, episode_id: str) -> list[Delivery]:
        return (await self.for_episodes([episode_id])).get(episode_id, [])

    async def get(self, delivery_id: int) -> Delivery | None:
        async with self.db.sessions() as s:
            row = (await s.execute(select(*_COLUMNS).where(EscalationDelivery.id == delivery_id))).first()
        return None if row is None else _delivery(row)

    async def counts(self) -> dict[str, dict[str, int]]:
        """Deliveries in the database per channel and status: ``{channel: {status: n}}``."""
        q = (select(EscalationDelivery.channel, EscalationDelivery.status, func.count())
             .group_by(EscalationDelivery.channel, EscalationDelivery.status))
        out: dict[str, dict[str, int]] = {}
        async with self.db.sessions() as s:
            for channel, status, n in (await s.execute(q)).all():
                out.setdefault(channel, {})[status] = int(n)
        return out


__all__ = ["CANCELLED", "DELIVERED", "FAILED", "PENDING", "STATUSES", "Delivery", "DeliveryCandidate",
           "DeliveryRepository", "NewDelivery"]
