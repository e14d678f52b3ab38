"""Durable store-and-forward outbox for everything the edge sends to the cloud.

Every alert, window and status message is written here *before* it is sent
and deleted only after the broker's PUBACK, so a crash, a kill -9 or a broker
outage never loses a message whose :meth:`Outbox.put` returned.

Storage: one SQLite file in WAL mode with ``synchronous=FULL``. In WAL mode
``NORMAL`` already survives a killed process, but a power cut or kernel crash
can lose the last commits; ``FULL`` fsyncs the WAL on every commit, so a
message is on the platter when ``put`` returns. The cost is one fsync per put
(alerts are rare; windows arrive a few per second per hundred patients), which
is the price of "alerts are never lost".

Disk budget (``max_bytes``, counted as topic + payload bytes of the stored
messages; the SQLite file itself is larger by page overhead and the WAL, so
leave a margin): when a put takes the outbox over budget, the **oldest windows**
are evicted until it fits again, possibly including the window just put.
Alerts and status messages are never evicted; if they alone exceed the budget
they are all kept and :attr:`Outbox.over_budget` says so. Every eviction is
logged and counted in a persistent counter table (:meth:`Outbox.evicted`).

Concurrency: one process owns an outbox file at a time (the running-total
caches assume it). Methods are thread-safe and short, so asyncio callers run
them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from edge.errors import EdgeError

log = logging.getLogger(__name__)


class Kind(StrEnum):
    """What a stored message is; decides its send priority and whether it may be evicted."""

    ALERT = "alert"
    STATUS = "status"
    WINDOW = "window"


PRIORITY: dict[Kind, int] = {Kind.ALERT: 0, Kind.STATUS: 1, Kind.WINDOW: 2}
"""Send order: lower first. Within a priority, oldest first."""

EVICTABLE = (Kind.WINDOW,)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('alert', 'status', 'window')),
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    priority INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    size INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_send_order ON outbox (priority, id);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class OutboxError(EdgeError, RuntimeError):
    """The outbox was misused (closed, unknown kind, bad budget)."""


@dataclass(frozen=True)
class OutboxMessage:
    """One pending message, as read back from the outbox."""

    id: int
    kind: Kind
    topic: str
    payload: bytes
    priority: int
    created_us: int
    size: int
    attempts: int


class Outbox:
    """SQLite (WAL) outbox with priority order and a disk budget.

    Args:
        path: the database file (created with its folder if missing).
        max_bytes: disk budget in stored topic + payload bytes; ``None`` for no budget.
    """

    def __init__(self, path: str | Path, *, max_bytes: int | None = None) -> None:
        if max_bytes is not None and max_bytes <= 0:
            raise OutboxError(f"max_bytes must be positive or None, got {max_bytes}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._count: dict[Kind, int] = {}
        self._bytes: dict[Kind, int] = {}
        self._load_totals()

    # -- writing ---------------------------------------------------------------------------------

    def put(self, kind: Kind | str, topic: str, payload: bytes) -> int:
        """Store a message durably and return its id; evicts the oldest windows when over budget."""
        return self.put_many([(kind, topic, payload)])[0]

    def put_many(self, items: Iterable[tuple[Kind | str, str, bytes]]) -> list[int]:
        """Store several ``(kind, topic, payload)`` messages in one transaction (one fsync) and
        return their ids in order; all are durable when it returns, none if it raises."""
        rows = [_row(kind, topic, payload) for kind, topic, payload in items]
        with self._lock, self._transaction() as db:
            ids: list[int] = []
            for kind, topic, payload, size in rows:
                cur = db.execute(
                    "INSERT INTO outbox (kind, topic, payload, priority, created_us, size) VALUES (?, ?, ?, ?, ?, ?)",
                    (kind.value, topic, payload, PRIORITY[kind], time.time_ns() // 1000, size),
                )
                assert cur.lastrowid is not None
                ids.append(cur.lastrowid)
                self._count[kind] += 1
                self._bytes[kind] += size
            self._evict_over_budget(db)
        return ids

    def claim(self, n: int, *, exclude: Iterable[int] = (), max_windows: int | None = None) -> list[OutboxMessage]:
        """The next ``n`` messages in send order, skipping ``exclude`` (in flight), with
        their ``attempts`` counted up by one (the caller is about to send them); at most
        ``max_windows`` of them windows (None: no limit)."""
        skip = set(exclude)
        with self._lock, self._transaction() as db:
            rows = db.execute(
                "SELECT id, kind, topic, payload, priority, created_us, size, attempts FROM outbox "
                "ORDER BY priority, id LIMIT ?",
                (n + len(skip),),
            ).fetchall()
            messages = [_message(r) for r in rows if r[0] not in skip][:n]
            if max_windows is not None:       # windows come last in send order: drop the surplus
                windows = [m for m in messages if m.kind is Kind.WINDOW]
                if len(windows) > max_windows:
                    messages = messages[: len(messages) - (len(windows) - max(0, max_windows))]
            db.executemany("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", [(m.id,) for m in messages])
        return messages

    def ack(self, ids: Iterable[int]) -> int:
        """Delete acknowledged messages; returns how many were still stored (unknown ids are ignored)."""
        id_list = list(ids)
        if not id_list:
            return 0
        with self._lock, self._transaction() as db:
            rows = self._delete(db, id_list)
        return len(rows)

    # -- reading ---------------------------------------------------------------------------------

    def peek(self, n: int, *, exclude: Iterable[int] = ()) -> list[OutboxMessage]:
        """The next ``n`` messages in send order (alerts, then status, then windows; oldest first)."""
        skip = set(exclude)
        with self._lock:
            rows = self._conn().execute(
                "SELECT id, kind, topic, payload, priority, created_us, size, attempts FROM outbox "
                "ORDER BY priority, id LIMIT ?",
                (n + len(skip),),
            ).fetchall()
        return [_message(r) for r in rows if r[0] not in skip][:n]

    def depth(self) -> dict[Kind, int]:
        """Pending messages per kind. A snapshot of the running totals, read without the store's lock
        (copying a dict is one step under the GIL), so the gateway's event loop, which asks on every
        tick, never waits for the uplink thread's commit and fsync."""
        return dict(self._count)

    def bytes(self) -> dict[Kind, int]:
        """Stored topic + payload bytes per kind (what the budget counts); a snapshot, as :meth:`depth`."""
        return dict(self._bytes)

    @property
    def total_depth(self) -> int:
        """Pending messages of every kind."""
        return sum(self.depth().values())

    @property
    def over_budget(self) -> bool:
        """True when the stored bytes exceed the budget (only possible when alerts and status fill it)."""
        return self.max_bytes is not None and sum(self.bytes().values()) > self.max_bytes

    def evicted(self) -> dict[Kind, int]:
        """Messages evicted for the disk budget since the outbox was created, per kind (persistent)."""
        with self._lock:
            rows = self._conn().execute("SELECT name, value FROM counters WHERE name LIKE 'evicted_%'").fetchall()
        counts = dict.fromkeys(EVICTABLE, 0)
        for name, value in rows:
            counts[Kind(name.removeprefix("evicted_"))] = value
        return counts

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError(f"outbox {self.path} is closed")
        return self._db

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn(), on_rollback=self._load_totals)

    def _load_totals(self) -> None:
        """(Re)compute the per-kind count and byte caches from the table."""
        self._count = dict.fromkeys(Kind, 0)
        self._bytes = dict.fromkeys(Kind, 0)
        for kind, count, size in self._conn().execute(
            "SELECT kind, COUNT(*), COALESCE(SUM(size), 0) FROM outbox GROUP BY kind"
        ):
            self._count[Kind(kind)], self._bytes[Kind(kind)] = count, size

    def _delete(self, db: sqlite3.Connection, ids: list[int]) -> list[tuple[str, int]]:
        rows: list[tuple[str, int]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows += db.execute(f"DELETE FROM outbox WHERE id IN ({marks}) RETURNING kind, size", chunk).fetchall()
        for kind, size in rows:
            self._count[Kind(kind)] -= 1
            self._bytes[Kind(kind)] -= size
        return rows

    def _evict_over_budget(self, db: sqlite3.Connection) -> None:
        if self.max_bytes is None:
            return
        excess = sum(self._bytes.values()) - self.max_bytes
        if excess <= 0:
            return
        victims: list[int] = []
        freed = 0
        while freed < excess:
            rows = db.execute(
                "SELECT id, size FROM outbox WHERE kind = ? AND id > ? ORDER BY id LIMIT 256",
                (Kind.WINDOW.value, victims[-1] if victims else 0),
            ).fetchall()
            if not rows:
                break
            for row_id, size in rows:
                if freed >= excess:
                    break
                victims.append(row_id)
                freed += size
        if victims:
            self._delete(db, victims)
            db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (f"evicted_{Kind.WINDOW.value}", len(victims)),
            )
            log.warning(
                "outbox %s over its %d-byte budget: evicted the %d oldest windows (%d bytes)",
                self.path, self.max_bytes, len(victims), freed,
            )
        if freed < excess:
            log.error(
                "outbox %s holds %d bytes of alerts/status over its %d-byte budget: kept (alerts are never evicted)",
                self.path, excess - freed, self.max_bytes,
            )


def _row(kind: Kind | str, topic: str, payload: bytes) -> tuple[Kind, str, bytes, int]:
    """Check one message to store; returns (kind, topic, payload, size)."""
    try:
        kind = Kind(kind)
    except ValueError:
        raise OutboxError(f"unknown message kind {kind!r} (expected one of {[k.value for k in Kind]})") from None
    if not isinstance(topic, str) or not topic:
        raise OutboxError(f"topic must be a non-empty string, got {topic!r}")
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise OutboxError(f"payload must be bytes, got {type(payload).__name__}")
    payload = bytes(payload)
    return kind, topic, payload, len(topic.encode()) + len(payload)


def _message(row: tuple[Any, ...]) -> OutboxMessage:
    row_id, kind, topic, payload, priority, created_us, size, attempts = row
    return OutboxMessage(row_id, Kind(kind), topic, bytes(payload), priority, created_us, size, attempts)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` on an autocommit connection; on error ``ROLLBACK``
    and ``on_rollback()`` (which resynchronises caches with the table)."""

    def __init__(self, db: sqlite3.Connection, *, on_rollback: Callable[[], None]) -> None:
        self._db = db
        self._on_rollback = on_rollback

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
            return
        self._db.execute("ROLLBACK")
        self._on_rollback()
