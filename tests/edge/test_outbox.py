"""The SQLite outbox: send order, acknowledgement, disk budget, durability under kill -9."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.uplink.outbox import Kind, Outbox, OutboxError


def test_peek_gives_alerts_first_then_status_then_windows_oldest_first(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        w1 = box.put("window", "t/w", b"w1")
        a1 = box.put(Kind.ALERT, "t/a", b"a1")
        w2 = box.put("window", "t/w", b"w2")
        s1 = box.put("status", "t/s", b"s1")
        a2 = box.put("alert", "t/a", b"a2")
        assert [m.id for m in box.peek(10)] == [a1, a2, s1, w1, w2]
        assert [m.id for m in box.peek(2)] == [a1, a2]
        assert [m.id for m in box.peek(2, exclude={a1})] == [a2, s1]
        assert box.peek(1)[0].payload == b"a1"
        assert box.depth() == {Kind.ALERT: 2, Kind.STATUS: 1, Kind.WINDOW: 2}


def test_ack_deletes_and_claim_counts_attempts(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        ids = box.put_many([("alert", "t/a", b"x" * 10), ("window", "t/w", b"y" * 20)])
        claimed = box.claim(5)
        assert [m.attempts for m in claimed] == [0, 0]
        assert [m.attempts for m in box.peek(5)] == [1, 1]
        assert box.ack([ids[0], 999]) == 1
        assert box.bytes() == {Kind.ALERT: 0, Kind.STATUS: 0, Kind.WINDOW: 3 + 20}
        assert [m.id for m in box.peek(5)] == [ids[1]]
    with Outbox(tmp_path / "o.db") as box:  # totals are rebuilt from the file
        assert box.depth()[Kind.WINDOW] == 1 and box.bytes()[Kind.WINDOW] == 23


@given(windows=st.integers(0, 12), alerts=st.integers(0, 6), n=st.integers(1, 15), max_windows=st.integers(0, 10))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_claim_limits_windows_but_never_alerts(tmp_path: Path, windows: int, alerts: int, n: int,
                                                max_windows: int) -> None:
    """The uplink keeps send slots for alerts: a claim with ``max_windows`` takes every alert it can and
    no more windows than that, still in send order."""
    with Outbox(tmp_path / f"{uuid.uuid4().hex}.db") as box:
        for i in range(windows):
            box.put(Kind.WINDOW, "w", b"w%d" % i)
        for i in range(alerts):
            box.put(Kind.ALERT, "a", b"a%d" % i)
        claimed = box.claim(n, max_windows=max_windows)
    kinds = [m.kind for m in claimed]
    assert kinds.count(Kind.ALERT) == min(alerts, n)
    assert kinds.count(Kind.WINDOW) == min(windows, max_windows, n - min(alerts, n))
    assert kinds == sorted(kinds, key=lambda k: k is Kind.WINDOW)


def test_bad_input_and_closed_outbox_raise_clear_errors(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    with pytest.raises(OutboxError, match="unknown message kind"):
        box.put("beat", "t", b"")
    with pytest.raises(OutboxError, match="payload must be bytes"):
        box.put("alert", "t", "text")  # type: ignore[arg-type]
    with pytest.raises(OutboxError, match="max_bytes"):
        Outbox(tmp_path / "p.db", max_bytes=0)
    box.close()
    with pytest.raises(OutboxError, match="closed"):
        box.peek(1)


def test_wal_mode_is_on(tmp_path: Path) -> None:
    Outbox(tmp_path / "o.db").close()
    with sqlite3.connect(tmp_path / "o.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


_put = st.tuples(st.sampled_from([Kind.ALERT, Kind.WINDOW, Kind.STATUS]), st.integers(1, 400))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(puts=st.lists(_put, max_size=40), budget=st.integers(200, 3000))
def test_budget_evicts_only_the_oldest_windows_and_counts_them(tmp_path_factory: pytest.TempPathFactory,
                                                               puts: list[tuple[Kind, int]], budget: int) -> None:
    topic = "t"
    with Outbox(tmp_path_factory.mktemp("b") / "o.db", max_bytes=budget) as box:
        ids = {kind: [] for kind in Kind}  # type: dict[Kind, list[int]]
        for kind, size in puts:
            ids[kind].append(box.put(kind, topic, bytes(size - 1)))  # stored size = topic + payload = size
        kept = {m.id for m in box.peek(10_000)}
        # alerts and status: never evicted
        assert set(ids[Kind.ALERT]) | set(ids[Kind.STATUS]) <= kept
        # windows: the survivors are the newest ones, the evicted count is exact
        windows_kept = [i for i in ids[Kind.WINDOW] if i in kept]
        assert windows_kept == ids[Kind.WINDOW][len(ids[Kind.WINDOW]) - len(windows_kept):]
        assert box.evicted()[Kind.WINDOW] == len(ids[Kind.WINDOW]) - len(windows_kept)
        # within budget, unless alerts and status alone exceed it (and then no window is left)
        total = sum(box.bytes().values())
        assert total <= budget or not windows_kept
        assert box.over_budget == (total > budget)


def test_eviction_counter_persists(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", max_bytes=100) as box:
        for _ in range(5):
            box.put("window", "t", bytes(39))
        assert box.evicted() == {Kind.ALERT: 0, Kind.STATUS: 0, Kind.WINDOW: 3}
    with Outbox(tmp_path / "o.db", max_bytes=100) as box:
        assert box.evicted() == {Kind.ALERT: 0, Kind.STATUS: 0, Kind.WINDOW: 3}
        assert box.depth()[Kind.WINDOW] == 2


_WRITER = """
import sys
from edge.uplink.outbox import Outbox
box = Outbox(sys.argv[1])
i = 0
while True:
    kind = "alert" if i % 3 == 0 else "window"
    message_id = box.put(kind, "t/" + kind, b"%d" % i + bytes(300))
    print(message_id, i, flush=True)
    i += 1
"""


def test_kill_9_mid_stream_loses_no_stored_message_and_keeps_the_db_sound(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acknowledged: dict[int, int] = {}
    try:
        for line in proc.stdout:
            message_id, i = map(int, line.split())
            acknowledged[message_id] = i
            if len(acknowledged) >= 150:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Outbox(path) as box:
        stored = {m.id: m.payload for m in box.peek(100_000)}
    assert set(acknowledged) <= set(stored)
    for message_id, i in acknowledged.items():
        assert stored[message_id].startswith(b"%d" % i)


def test_windows_evicted_after_they_were_sent_are_counted_apart(tmp_path: Path) -> None:
    """Over budget the oldest windows go; one already published may be stored by the cloud, so it is
    counted as `evicted_after_send`, never as lost (`evicted`): the cloud's count plus the evicted
    count still adds up to what was produced."""
    with Outbox(tmp_path / "o.db", max_bytes=2500) as box:
        sent = [box.put("window", "t", bytes(1000)) for _ in range(2)]
        box.settle(published=[(i, 0) for i in (m.id for m in box.claim(2))])   # awaiting their receipt
        box.put("window", "t", bytes(1000))                                       # the oldest sent one goes
        assert sent[0] not in [m.id for m in box.claim(10)]
        assert box.evicted()[Kind.WINDOW] == 0 and box.evicted_after_send() == 1
        for _ in range(3):
            box.put("window", "t", bytes(1000))
        assert box.evicted()[Kind.WINDOW] >= 1                                    # unsent ones went too
        assert box.evicted()[Kind.WINDOW] + box.evicted_after_send() + box.depth()[Kind.WINDOW] == 6
