"""Durable store-and-forward outbox for everything the edge sends to the cloud.

Every alert, window and status message is written here *before* it is sent
and deleted only once it is delivered, so a crash, a kill -9 or a broker
outage never loses a message whose :meth:`Outbox.put` returned.

Delivery states (column ``state``): ``pending`` (to send at ``due_us``), ``published`` (the broker
acknowledged it; waiting for the cloud's receipt until ``due_us``, then it is sent again) and
``dead`` (the cloud rejected it for a fault of its own: never resent, kept and counted so it is
visible). With end-to-end receipts (:mod:`protocol.receipts`) an alert or window is deleted only
on its receipt (:meth:`Outbox.receipt`, by ``message_id``: the alert or window id read from the
payload at put); status messages, and everything when receipts are off, are deleted on the
broker's PUBACK (:meth:`Outbox.ack`). A refused publish (MQTT 5 reason code) goes back to
``pending`` with a later ``due_us`` (:meth:`Outbox.settle`).

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
logged and counted per kind in a persistent counter table (:meth:`Outbox.evicted`).

Session state (table ``session_state``): each device/patient session's open and latched alarm
episodes and window grid (:mod:`edge.persistence`), written in the same transactions as the
messages they go with (:meth:`Outbox.put_many` ``states=``), so a kill -9 never leaves an alert
stored without the episode it belongs to.

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
from protocol.receipts import ReceiptItem, message_id

log = logging.getLogger(__name__)


class Kind(StrEnum):
    """What a stored message is; decides its send priority and whether it may be evicted."""

    ALERT = "alert"
    STATUS = "status"
    WINDOW = "window"


PRIORITY: dict[Kind, int] = {Kind.ALERT: 0, Kind.STATUS: 1, Kind.WINDOW: 2}
"""Send order: lower first. Within a priority, oldest first."""

EVICTABLE = (Kind.WINDOW,)


EVICTED_AFTER_SEND = "evicted_after_send_window"
"""Counter of windows evicted after they were published (see :meth:`Outbox.evicted_after_send`)."""


class State(StrEnum):
    """Where a stored message is on its way to the cloud (module docstring)."""

    PENDING = "pending"
    PUBLISHED = "published"
    DEAD = "dead"

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
CREATE TABLE IF NOT EXISTS session_state (
    device_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    saved_us INTEGER NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (device_id, patient_id)
);
"""


SessionStateRow = tuple[str, str, str]
"""``(device_id, patient_id, state)``: one session's restart state (JSON text), kept next to the messages."""


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
    message_id: str | None = None
    state: State = State.PENDING
    reason: str | None = None


@dataclass(frozen=True)
class ReceiptOutcome:
    """What one receipt did to the outbox: entries deleted (delivered), marked dead (rejected), and
    receipt items that matched nothing (already deleted: a second receipt for a resend, say)."""

    delivered: int = 0
    dead: int = 0
    unknown: int = 0


_COLUMNS = "id, kind, topic, payload, priority, created_us, size, attempts, message_id, state, reason"
_MIGRATIONS = (
    ("message_id", "ALTER TABLE outbox ADD COLUMN message_id TEXT"),
    ("state", "ALTER TABLE outbox ADD COLUMN state TEXT NOT NULL DEFAULT 'pending'"),
    ("due_us", "ALTER TABLE outbox ADD COLUMN due_us INTEGER NOT NULL DEFAULT 0"),
    ("reason", "ALTER TABLE outbox ADD COLUMN reason TEXT"),
)
"""Columns added since the first outbox schema (an outbox file from before is upgraded in place)."""


def _now_us() -> int:
    return time.time_ns() // 1000


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
        have = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        for column, ddl in _MIGRATIONS:
            if column not in have:
                self._db.execute(ddl)
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_message_id ON outbox (message_id)")
        self._count: dict[Kind, int] = {}
        self._bytes: dict[Kind, int] = {}
        self._load_totals()

    # -- writing ---------------------------------------------------------------------------------

    def put(self, kind: Kind | str, topic: str, payload: bytes) -> int:
        """Store a message durably and return its id; evicts the oldest windows when over budget."""
        return self.put_many([(kind, topic, payload)])[0]

    def put_many(self, items: Iterable[tuple[Kind | str, str, bytes]], *,
                 states: Iterable[SessionStateRow] = ()) -> list[int]:
        """Store several ``(kind, topic, payload)`` messages in one transaction (one fsync) and
        return their ids in order; all are durable when it returns, none if it raises. ``states``:
        session states (:meth:`save_states`) written in the same transaction."""
        rows = [_row(kind, topic, payload) for kind, topic, payload in items]
        state_rows = list(states)
        with self._lock, self._transaction() as db:
            self._write_states(db, state_rows)
            ids: list[int] = []
            for kind, topic, payload, size in rows:
                mid = message_id(kind.value, payload) if kind is not Kind.STATUS else None
                cur = db.execute(
                    "INSERT INTO outbox (kind, topic, payload, priority, created_us, size, message_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (kind.value, topic, payload, PRIORITY[kind], _now_us(), size, mid),
                )
                assert cur.lastrowid is not None
                ids.append(cur.lastrowid)
                self._count[kind] += 1
                self._bytes[kind] += size
            self._evict_over_budget(db)
        return ids

    def save_states(self, states: Iterable[SessionStateRow]) -> None:
        """Store ``(device_id, patient_id, state)`` rows of per-session state (restart safety, see
        :mod:`edge.persistence`), replacing the device's earlier state, in one transaction."""
        rows = list(states)
        if not rows:
            return
        with self._lock, self._transaction() as db:
            self._write_states(db, rows)

    def load_state(self, device_id: str, patient_id: str) -> tuple[int, str] | None:
        """The stored state of a device/patient session as ``(saved_us, state)`` (wall-clock µs), or None."""
        with self._lock:
            row = self._conn().execute("SELECT saved_us, state FROM session_state WHERE device_id = ? AND patient_id = ?",
                                       (device_id, patient_id)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def drop_state(self, device_id: str, patient_id: str) -> None:
        """Forget a session's stored state."""
        with self._lock, self._transaction() as db:
            db.execute("DELETE FROM session_state WHERE device_id = ? AND patient_id = ?", (device_id, patient_id))

    def claim(self, n: int, *, exclude: Iterable[int] = (), max_windows: int | None = None,
              now_us: int | None = None) -> list[OutboxMessage]:
        """The next ``n`` messages due by ``now_us`` (default now) in send order, skipping ``exclude``
        (in flight) and dead ones, with their ``attempts`` counted up by one (the caller is about to
        send them); at most ``max_windows`` of them windows (None: no limit). A published message
        whose receipt is overdue is due again (a resend)."""
        skip = set(exclude)
        now = _now_us() if now_us is None else now_us
        with self._lock, self._transaction() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE state != 'dead' AND due_us <= ? "
                "ORDER BY priority, id LIMIT ?",
                (now, n + len(skip)),
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

    def settle(self, *, acked: Iterable[int] = (), published: Iterable[tuple[int, int]] = (),
               refused: Iterable[tuple[int, str, int]] = ()) -> int:
        """Record what the broker answered, in one transaction: ``acked`` ids are deleted (delivered
        without receipts), ``published`` ``(id, receipt_due_us)`` wait for their receipt until then,
        ``refused`` ``(id, reason, retry_due_us)`` stay pending until then. Returns how many acked
        entries were deleted."""
        acked, published, refused = list(acked), list(published), list(refused)
        if not (acked or published or refused):
            return 0
        with self._lock, self._transaction() as db:
            rows = self._delete(db, acked) if acked else []
            db.executemany("UPDATE outbox SET state = 'published', due_us = ?, reason = NULL "
                           "WHERE id = ? AND state != 'dead'", [(due, i) for i, due in published])
            db.executemany("UPDATE outbox SET state = 'pending', due_us = ?, reason = ? WHERE id = ? AND state != 'dead'",
                           [(due, reason, i) for i, reason, due in refused])
        return len(rows)

    def receipt(self, items: Iterable[ReceiptItem]) -> ReceiptOutcome:
        """Apply the cloud's receipt: entries it holds (stored or duplicate) are deleted, entries it
        rejected are marked dead with the reason (kept, never resent). Matched by message id."""
        delivered: list[ReceiptItem] = []
        dead: list[ReceiptItem] = []
        unknown = 0
        for item in items:
            (delivered if item.delivered else dead).append(item)
        with self._lock, self._transaction() as db:
            n_delivered = n_dead = 0
            for item in delivered:
                ids = [r[0] for r in db.execute("SELECT id FROM outbox WHERE message_id = ?", (item.message_id,))]
                n_delivered += len(self._delete(db, ids)) if ids else 0
                unknown += not ids
            for item in dead:
                cur = db.execute("UPDATE outbox SET state = 'dead', reason = ? WHERE message_id = ?",
                                 (item.reason, item.message_id))
                n_dead += cur.rowcount
                unknown += cur.rowcount == 0
        return ReceiptOutcome(n_delivered, n_dead, unknown)

    # -- reading ---------------------------------------------------------------------------------

    def peek(self, n: int, *, exclude: Iterable[int] = ()) -> list[OutboxMessage]:
        """The next ``n`` messages in send order (alerts, then status, then windows; oldest first)."""
        skip = set(exclude)
        with self._lock:
            rows = self._conn().execute(
                f"SELECT {_COLUMNS} FROM outbox ORDER BY priority, id LIMIT ?",
                (n + len(skip),),
            ).fetchall()
        return [_message(r) for r in rows if r[0] not in skip][:n]

    def states(self) -> dict[State, dict[Kind, int]]:
        """Stored messages per delivery state and kind (``published``: waiting for a receipt;
        ``dead``: rejected by the cloud, kept for the operator)."""
        out = {s: dict.fromkeys(Kind, 0) for s in State}
        with self._lock:
            rows = self._conn().execute("SELECT state, kind, COUNT(*) FROM outbox GROUP BY state, kind").fetchall()
        for state, kind, count in rows:
            out[State(state)][Kind(kind)] = count
        return out

    def dead(self, n: int = 100) -> list[OutboxMessage]:
        """The oldest ``n`` dead messages (rejected by the cloud), with the reason."""
        with self._lock:
            rows = self._conn().execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE state = 'dead' ORDER BY id LIMIT ?", (n,)).fetchall()
        return [_message(r) for r in rows]

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
        """Messages evicted unsent for the disk budget since the outbox was created, per kind
        (persistent; alerts and status are never evicted, so theirs stay 0)."""
        with self._lock:
            rows = self._conn().execute("SELECT name, value FROM counters WHERE name LIKE 'evicted_%'").fetchall()
        counts = dict.fromkeys(Kind, 0)
        for name, value in rows:
            if name != EVICTED_AFTER_SEND:
                counts[Kind(name.removeprefix("evicted_"))] = value
        return counts

    def evicted_after_send(self) -> int:
        """Windows evicted for the disk budget after they were published (awaiting a receipt, so the
        cloud may have stored them) or kept dead; not counted in :meth:`evicted`."""
        with self._lock:
            row = self._conn().execute("SELECT value FROM counters WHERE name = ?", (EVICTED_AFTER_SEND,)).fetchone()
        return int(row[0]) if row else 0

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

    @staticmethod
    def _write_states(db: sqlite3.Connection, rows: list[SessionStateRow]) -> None:
        if rows:
            now = _now_us()
            db.executemany("INSERT OR REPLACE INTO session_state (device_id, patient_id, saved_us, state) "
                           "VALUES (?, ?, ?, ?)", [(d, p, now, st) for d, p, st in rows])

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
        # The oldest windows go, whatever their state; one already published (awaiting its receipt,
        # which the cloud may have stored) or kept dead is counted apart from the unsent ones, which
        # are surely lost, so "stored + evicted = produced" holds.
        victims: list[tuple[int, bool]] = []
        freed = 0
        while freed < excess:
            rows = db.execute(
                "SELECT id, size, state = 'pending' AND attempts = 0 FROM outbox WHERE kind = ? AND id > ? "
                "ORDER BY id LIMIT 256",
                (Kind.WINDOW.value, victims[-1][0] if victims else 0),
            ).fetchall()
            if not rows:
                break
            for row_id, size, unsent in rows:
                if freed >= excess:
                    break
                victims.append((row_id, bool(unsent)))
                freed += size
        if victims:
            self._delete(db, [row_id for row_id, _ in victims])
            unsent = sum(1 for _, never_sent in victims if never_sent)
            for counter, count in ((f"evicted_{Kind.WINDOW.value}", unsent), (EVICTED_AFTER_SEND, len(victims) - unsent)):
                if count:
                    db.execute(
                        "INSERT INTO counters (name, value) VALUES (?, ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                        (counter, count),
                    )
            log.warning(
                "outbox %s over its %d-byte budget: evicted the %d oldest windows (%d bytes; %d already published)",
                self.path, self.max_bytes, len(victims), freed, len(victims) - unsent,
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
    row_id, kind, topic, payload, priority, created_us, size, attempts, mid, state, reason = row
    return OutboxMessage(row_id, Kind(kind), topic, bytes(payload), priority, created_us, size, attempts,
                         mid, State(state), reason)


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
