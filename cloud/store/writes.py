"""Idempotent writes of wire objects (alerts, windows), prepared first and committed as one batch.

The edge resends after reconnects and several ingest workers share one subscription, so the same
alert or window can arrive twice, possibly at two workers at the same moment. Every write of a wire
object is one ``INSERT … ON CONFLICT (wire id) DO NOTHING RETURNING seq`` (PostgreSQL and SQLite
≥ 3.35 both speak it): the database's unique index decides, exactly one insert wins, and the loser
sees no row and returns ``False`` (counted in :class:`cloud.store.records.StoreCounters`). No
read-then-write race, no exception to catch, no retry.

A repository *prepares* a :class:`Write` (every check done, nothing written yet); :func:`commit`
runs a list of them in **one transaction**, so a batch of alerts and windows from the ingest costs
one commit, and one invalid item stops the batch before anything is written.

A write's follow-up (``then``, an alert's episode upsert) may be *guarded*: an upsert whose
``ON CONFLICT … DO UPDATE … WHERE`` refuses the update returns no row, and :func:`commit` then raises
the write's ``refusal`` and rolls the whole transaction back (the alert row included). The guard is
checked by the database in the same statement that updates, so no concurrent writer slips between a
check and its update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cloud.store.database import Database


@dataclass(frozen=True)
class Write:
    """One checked ``INSERT … ON CONFLICT DO NOTHING RETURNING`` of a wire object, not yet run.

    ``then`` (the episode upsert of an alert) runs in the same transaction, only when the insert won."""

    kind: Literal["alert", "window"]
    insert: Any
    then: Any | None = None
    refusal: Exception | None = None
    """Raised (rolling the transaction back) when the guarded ``then`` returns no row."""


async def commit(db: Database, writes: Sequence[Write]) -> list[bool]:
    """Run ``writes`` in one transaction; per write, True if new, False if its id was already stored.
    Counts each in ``db.counters`` and tells the listeners ``"alert"`` when a new alert was stored."""
    fresh: list[bool] = []
    async with db.sessions.begin() as s:
        for w in writes:
            new = (await s.execute(w.insert)).first() is not None
            if new and w.then is not None:
                done = await s.execute(w.then)
                if w.refusal is not None and done.first() is None:
                    if w.kind == "alert":
                        db.counters.alerts_rejected += 1
                    else:
                        db.counters.windows_rejected += 1
                    raise w.refusal
            fresh.append(new)
    c = db.counters
    for w, new in zip(writes, fresh, strict=True):
        if w.kind == "alert":
            if new:
                c.alerts_stored += 1
            else:
                c.alerts_duplicate += 1
        elif new:
            c.windows_stored += 1
        else:
            c.windows_duplicate += 1
    if any(new and w.kind == "alert" for w, new in zip(writes, fresh, strict=True)):
        db.changed("alert")
    return fresh


__all__ = ["Write", "commit"]
