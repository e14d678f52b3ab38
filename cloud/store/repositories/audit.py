"""The audit log: who did what to which patient, episode or window, and when (append-only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from cloud.store.database import Database
from cloud.store.records import AuditRecord
from cloud.store.schema import AuditEntry


def audit_record(e: AuditEntry) -> AuditRecord:
    return AuditRecord(id=e.id, at_us=e.at_us, user=e.user, action=e.action, target=e.target, details=dict(e.details))


class AuditRepository:
    """The audit log (``store.audit_trail``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def audit(self, user: str, action: str, target: str, details: dict[str, Any] | None = None) -> AuditRecord:
        """Append an audit entry: ``user`` did ``action`` (``view``, ``acknowledge``, ``login``, …) to
        ``target`` (``episode:<id>``, ``window:<id>``, ``patient:<id>``, …)."""
        entry = AuditEntry(at_us=self.db.clock(), user=user, action=action, target=target,
                           details=dict(details or {}))
        async with self.db.sessions.begin() as s:
            s.add(entry)
            await s.flush()
            return audit_record(entry)

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
        async with self.db.sessions() as s:
            return [audit_record(e) for e in (await s.scalars(q)).all()]

    async def audit_after(self, after_id: int = 0, *, actions: Sequence[str] | None = None,
                          limit: int | None = 1000) -> list[AuditRecord]:
        """Audit entries with ``id > after_id`` in order (the live feed's cursor for acks and escalations)."""
        q = select(AuditEntry).where(AuditEntry.id > after_id)
        if actions is not None:
            q = q.where(AuditEntry.action.in_(list(actions)))
        q = q.order_by(AuditEntry.id)
        if limit is not None:
            q = q.limit(limit)
        async with self.db.sessions() as s:
            return [audit_record(e) for e in (await s.scalars(q)).all()]

    async def audit_by_ids(self, ids: Sequence[int], *, actions: Sequence[str] | None = None) -> list[AuditRecord]:
        if not ids:
            return []
        q = select(AuditEntry).where(AuditEntry.id.in_(list(ids)))
        if actions is not None:
            q = q.where(AuditEntry.action.in_(list(actions)))
        async with self.db.sessions() as s:
            return [audit_record(e) for e in (await s.scalars(q.order_by(AuditEntry.id))).all()]

    async def last_audit_id(self) -> int:
        async with self.db.sessions() as s:
            return int(await s.scalar(select(func.max(AuditEntry.id))) or 0)


__all__ = ["AuditRepository", "audit_record"]
