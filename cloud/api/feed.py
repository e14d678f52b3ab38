"""The live feed (Server-Sent Events): alerts, acknowledgements, escalations, ward rows, ECG and vitals.

**Across processes.** Any ``cloud run`` process may store an alert (its ingest worker), acknowledge
(its API) or escalate (its escalator), so a feed connection cannot rely on in-process events alone.
Each connection polls the store every ``feed.poll_s``: alerts after its alert cursor
(:meth:`Store.alerts_after`), the audit log after its audit cursor for ``acknowledge``, ``escalate``
and ``assign`` entries (written in the same transaction as the change itself), and device statuses
received since the last poll. Changes made through this process's own Store wake the connection at
once (:meth:`Store.add_listener`), so in-process latency is not bounded by the poll.

**Late commits.** On PostgreSQL, sequence values are handed out at insert and become visible at
commit, so a slower transaction can commit seq 41 after seq 42 has been read. :class:`SeqCursor`
remembers the numbers it skipped and re-reads them for ``grace_s`` (a duplicate insert that was
rolled back also leaves a gap; it simply expires), so an alert committed late still reaches the feed.

**Resuming.** Alert events carry ``id: <seq>``; a client reconnecting with ``Last-Event-ID`` (browsers
send it by themselves) or ``?after_seq=`` first gets every alert stored after it. Other events carry
no id, so the browser's last id stays the last alert's.

**Live ward.** Besides what the store holds, each connection carries every visible patient's live
ECG chunks (``live``) and vitals (``vitals``) from the process's :class:`cloud.api.live.LiveRelay`,
straight from the broker and never from the database: first the latest vitals and the last seconds
of ECG (so tiles paint at once), then each message as it arrives. A chunk wakes the connection
without a store poll; the store is still read every ``feed.poll_s`` or on a local change.

**Care teams.** With ``[accounts] care_team_scoping`` a clinician's connection carries only the events
of the patients they may see (:mod:`cloud.api.scope`), re-read on every poll so that a new assignment
shows at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from cloud.api.context import ApiContext
from cloud.api.live import LiveEvent, LiveRelay
from cloud.api.scope import may_see, visible_patients
from cloud.api.views import alerts_json, ward_rows
from cloud.store import UserRecord

log = logging.getLogger(__name__)

FEED_ACTIONS = ("acknowledge", "escalate", "assign", "set_team")
MAX_GAPS = 1000
BATCH = 500
LIVE_COALESCE_S = 0.05
"""A live event waits this long for the others that arrive with it (one write for a ward's second)."""
"""Alerts per poll; a client resuming far back gets its backlog in batches without waiting between them."""


class SeqCursor:
    """A read position in an id sequence whose rows may become visible out of order."""

    def __init__(self, start: int, *, clock: Callable[[], float], grace_s: float = 10.0) -> None:
        self.value = start
        self._gaps: dict[int, float] = {}
        self._clock = clock
        self._grace_s = grace_s

    def pending(self) -> list[int]:
        """Skipped ids still worth re-reading."""
        now = self._clock()
        for k in [k for k, t in self._gaps.items() if now - t > self._grace_s]:
            del self._gaps[k]
        return sorted(self._gaps)

    def is_new(self, ident: int) -> bool:
        """Whether ``ident`` has not been delivered yet (nothing changes)."""
        return ident > self.value or ident in self._gaps

    def take(self, ident: int) -> bool:
        """Whether ``ident`` is new (not delivered before); advances the cursor and notes gaps."""
        if ident > self.value:
            now = self._clock()
            for missing in range(max(self.value + 1, ident - MAX_GAPS), ident):
                self._gaps[missing] = now
            if len(self._gaps) > MAX_GAPS:
                for k in sorted(self._gaps)[: len(self._gaps) - MAX_GAPS]:
                    del self._gaps[k]
            self.value = ident
            return True
        return self._gaps.pop(ident, None) is not None


def sse(event: str, data: Any, ident: int | None = None) -> str:
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class FeedConnection:
    """One client's feed: call :meth:`poll` for the events due now."""

    def __init__(self, ctx: ApiContext, alert_cursor: int, audit_cursor: int, status_since_us: int,
                 user: UserRecord | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.ctx = ctx
        self.user = user
        """Whose feed this is: with care-team scoping it carries only their patients' events."""
        self.alerts = SeqCursor(alert_cursor, clock=loop.time)
        self.audits = SeqCursor(audit_cursor, clock=loop.time)
        self.status_since_us = status_since_us
        self._status_seen: dict[str, int] = {}
        self.more = False
        """The last poll hit :data:`BATCH`: poll again at once."""
        self.visible: frozenset[str] | None = None
        """The patients this connection may see as of the last poll (None: all); live events follow it."""

    async def poll(self) -> list[str]:
        """The events due now. The cursors move only once every event is built, so a database error
        half-way loses nothing: the next poll builds the same events again."""
        store = self.ctx.store
        out: list[str] = []
        patients: set[str] = set()
        visible = await visible_patients(self.ctx, self.user) if self.user is not None else None
        self.visible = visible
        pending = self.alerts.pending()
        fresh = await store.alerts_after(self.alerts.value, limit=BATCH)
        late = await store.alerts_by_seq(pending) if pending else []
        new = [a for a in sorted(late + fresh, key=lambda a: a.seq) if self.alerts.is_new(a.seq)]
        shown = [a for a in new if may_see(visible, a.alert.patient_id)]
        for a, body in zip(shown, await alerts_json(store, shown), strict=True):
            out.append(sse("alert", body, a.seq))
            patients.add(a.alert.patient_id)
        pending = self.audits.pending()
        entries = await store.audit_after(self.audits.value, actions=FEED_ACTIONS, limit=BATCH)
        entries += await store.audit_by_ids(pending, actions=FEED_ACTIONS) if pending else []
        entries = [e for e in sorted(entries, key=lambda e: e.id) if self.audits.is_new(e.id)]
        for e in entries:
            kind, _, target = e.target.partition(":")
            if e.action == "acknowledge" and kind == "episode":
                episode = (await store.episodes([target])).get(target)
                if visible is not None and (episode is None or episode.patient_id not in visible):
                    continue
                out.append(sse("ack", {"episode_id": target, "alert_id": e.details.get("alert_id"),
                                       "user": e.user, "at_us": e.at_us, "note": e.details.get("note", "")}))
                if episode is not None:
                    patients.add(episode.patient_id)
            elif e.action == "escalate" and kind == "episode":
                pid = e.details.get("patient_id")
                if visible is not None and not (isinstance(pid, str) and pid in visible):
                    continue
                out.append(sse("escalation", {"episode_id": target, "alert_id": e.details.get("alert_id"),
                                              "level": e.details.get("level"), "at_us": e.at_us,
                                              "patient_id": e.details.get("patient_id"),
                                              "priority": e.details.get("priority")}))
                if isinstance(e.details.get("patient_id"), str):
                    patients.add(e.details["patient_id"])
            elif e.action in ("assign", "set_team") and kind == "patient":
                patients.add(target)
        # device status: re-read a few seconds back (writers' clocks and commits are not in step)
        statuses = await store.device_statuses(received_since_us=self.status_since_us - 5_000_000)
        changed = {d: t for d, (_, t) in statuses.items() if self._status_seen.get(d) != t}
        if changed:
            devices = {d.device_id: d.patient_id for d in await store.list_devices()}
            patients |= {p for d in changed if (p := devices.get(d))}
        if visible is not None:
            patients &= visible
        if patients:
            for row in await ward_rows(store, offline_after_s=self.ctx.settings.ward.offline_after_s,
                                       patient_ids=sorted(patients)):
                out.append(sse("status", row))
        # everything is built: move the cursors
        for a in new:
            self.alerts.take(a.seq)
        for e in entries:
            self.audits.take(e.id)
        for d, t in changed.items():
            self._status_seen[d] = t
            self.status_since_us = max(self.status_since_us, t)
        self.more = len(fresh) == BATCH
        for chunk in out:
            self.ctx.metrics.feed_events.labels(type=chunk.split("event: ", 1)[1].split("\n", 1)[0]).inc()
        return out


async def open_feed(ctx: ApiContext, after_seq: int | None, user: UserRecord | None = None) -> FeedConnection:
    """A connection whose cursors are fixed now (before the response starts), so whatever is stored
    after the client's request reaches it."""
    store = ctx.store
    start = after_seq if after_seq is not None else await store.last_alert_seq()
    return FeedConnection(ctx, start, await store.last_audit_id(), store.clock(), user)


def live_chunks(conn: FeedConnection, events: list[LiveEvent]) -> list[str]:
    """The relay's events this connection may see, as SSE."""
    return [sse(name, data) for name, patient, data in events if may_see(conn.visible, patient)]


async def event_stream(conn: FeedConnection, stopping: asyncio.Event,
                       relay: LiveRelay | None = None) -> AsyncIterator[str]:
    """The SSE body of one connection, until the client leaves or the service stops; with ``relay``,
    the live ward's ECG and vitals too (module docstring)."""
    ctx = conn.ctx
    store = ctx.store
    wake = asyncio.Event()

    def on_change(_kind: str) -> None:
        wake.set()

    store.add_listener(on_change)
    ctx.metrics.feed_clients.inc()
    loop = asyncio.get_running_loop()
    sub = relay.subscribe() if relay is not None else None
    try:
        yield f"retry: 2000\n: connected, alerts after seq {conn.alerts.value}\n\n"
        last_sent = loop.time()
        next_poll = loop.time()
        first = True
        while not stopping.is_set():
            chunks: list[str] = []
            if wake.is_set() or conn.more or loop.time() >= next_poll:
                wake.clear()
                try:
                    chunks = await conn.poll()
                except Exception as exc:  # noqa: BLE001 - a database hiccup: tell the client, keep going
                    log.warning("live feed: reading the store failed: %s: %s", type(exc).__name__, exc)
                    chunks = [": store unavailable, retrying\n\n"]
                next_poll = loop.time() + ctx.settings.feed.poll_s
            if relay is not None and sub is not None:
                if sub.ready.is_set() and not chunks:
                    await asyncio.sleep(LIVE_COALESCE_S)    # a second's chunks of a ward leave together
                if first:          # the latest vitals and the last seconds of ECG, once visibility is known
                    chunks += live_chunks(conn, relay.snapshot(conn.visible))
                    sub.take()     # already in the snapshot
                    first = False
                else:
                    chunks += live_chunks(conn, sub.take())
            if chunks:
                yield "".join(chunks)
                last_sent = loop.time()
            elif loop.time() - last_sent >= ctx.settings.feed.keepalive_s:
                yield ": keep-alive\n\n"
                last_sent = loop.time()
            if conn.more:
                continue
            waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopping.wait())]
            if sub is not None:
                waiters.append(asyncio.ensure_future(sub.ready.wait()))
            try:
                await asyncio.wait(waiters, timeout=max(0.0, next_poll - loop.time()),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
    finally:
        if relay is not None and sub is not None:
            relay.unsubscribe(sub)
        store.remove_listener(on_change)
        ctx.metrics.feed_clients.dec()
