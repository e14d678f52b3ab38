"""Escalation of active, unacknowledged episodes: each due episode goes up one level exactly once,
however many processes run the escalator at the same moment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import func, select, update

from cloud.store.database import Database
from cloud.store.records import Escalation
from cloud.store.schema import AlertRow, AuditEntry, Episode


class EscalationRepository:
    """Escalations (``store.escalation``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def escalate_due(self, after_us: Mapping[str, int], *, max_level: int = 3,
                           categories: Sequence[str] = ("clinical",), user: str = "system") -> list[Escalation]:
        """Raise the escalation level of every active, unacknowledged episode of ``categories`` whose
        priority has a threshold in ``after_us`` and that has waited that long since it was first
        received (or last escalated), up to ``max_level``; audit each as ``escalate``.

        One conditional ``UPDATE … WHERE <still due> RETURNING`` per priority decides: run by several
        processes at once, a row goes up one level exactly once (SQLite serialises writers; on
        PostgreSQL the due rows are first locked with ``FOR UPDATE SKIP LOCKED``, in id order, and
        the UPDATE re-checks the condition), so nobody double-escalates and nobody deadlocks."""
        now = self.db.clock()
        done: list[Escalation] = []
        async with self.db.sessions.begin() as s:
            for priority, wait_us in sorted(after_us.items()):
                due = (Episode.priority == priority, Episode.category.in_(list(categories)),
                       Episode.raised.is_(True), Episode.cleared.is_(False), Episode.acknowledged_by.is_(None),
                       Episode.escalation_level < max_level,
                       func.coalesce(Episode.escalated_us, Episode.first_received_us) <= now - int(wait_us))
                stmt = update(Episode).where(*due)
                if self.db.dialect == "postgresql":
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
                alert_ids = dict((await s.execute(select(AlertRow.seq, AlertRow.alert_id)
                                                  .where(AlertRow.seq.in_(list(first.values()))))).all())
                for r in rows:
                    seq = first.get(r.episode_id)
                    alert_id = None if seq is None else alert_ids.get(seq)
                    e = Escalation(episode_id=r.episode_id, alert_id=alert_id, patient_id=r.patient_id,
                                   alert_type=r.alert_type, priority=r.priority, level=int(r.escalation_level),
                                   at_us=now)
                    s.add(AuditEntry(at_us=now, user=user, action="escalate", target=f"episode:{r.episode_id}",
                                     details={"level": e.level, "alert_id": alert_id, "priority": r.priority,
                                              "patient_id": r.patient_id}))
                    done.append(e)
        if done:
            self.db.changed("escalation")
        return done


__all__ = ["EscalationRepository"]
