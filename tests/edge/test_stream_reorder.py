"""Reorder buffer: order, wrap-around, duplicates, late frames, window and hold time, restarts."""

from __future__ import annotations

from edge.stream import Delivered, ReorderBuffer, Restarted, Skipped

U32 = 2**32


def seqs(out: list) -> list:
    return [r.seq if isinstance(r, Delivered) else ("skip", r.first_seq, r.n_frames) if isinstance(r, Skipped)
            else ("restart", r.seq) for r in out]


def test_order_restored_across_wrap() -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(window=4)
    order = [U32 - 2, U32 - 1, 1, 0, 2]
    out = [r for s in order for r in buf.push(s, s, 0.0)]
    assert seqs(out) == [U32 - 2, U32 - 1, 0, 1, 2]
    assert buf.stats.reordered == 1


def test_duplicates_and_late_frames_are_dropped_and_counted() -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(window=3, max_hold_s=10.0)
    out = []
    for s in [0, 1, 1, 3, 3, 4, 5, 0, 2]:
        out += buf.push(s, s, 0.0)
    assert seqs(out) == [0, 1, ("skip", 2, 1), 3, 4, 5]
    assert buf.stats.duplicates == 3 and buf.stats.late == 1


def test_hold_time_releases_on_poll_and_flush_declares_holes() -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(window=8, max_hold_s=1.0)
    assert seqs(buf.push(0, 0, 0.0)) == [0]
    assert buf.push(2, 2, 0.1) == []
    assert buf.poll(1.0) == []
    assert seqs(buf.poll(1.2)) == [("skip", 1, 1), 2]
    buf.push(5, 5, 2.0)
    assert seqs(buf.flush()) == [("skip", 3, 2), 5]


def test_a_far_jump_skips_just_enough_to_fit_the_window() -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(window=4, max_hold_s=10.0)
    buf.push(0, 0, 0.0)
    assert seqs(buf.push(10, 10, 0.0)) == [("skip", 1, 6)]
    assert seqs(buf.push(8, 8, 0.0)) == []
    assert seqs(buf.push(7, 7, 0.0)) == [7, 8]
    assert buf.held == 1


def test_restart_far_behind() -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(window=2)
    for s in range(100, 110):
        buf.push(s, s, 0.0)
    out = buf.push(3, 3, 0.0)
    assert seqs(out) == [("restart", 3), 3]
    assert isinstance(out[0], Restarted) and buf.stats.restarts == 1


def test_a_restart_the_caller_knows_of_releases_what_is_held_and_starts_at_the_new_seq() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(window=8, max_hold_s=1.0)
    buf.push(0, "a", 0.0)
    assert buf.push(2, "c", 0.1) == []                            # held: 1 is missing
    out = buf.restart(5_000_000)
    assert out == [Skipped(1, 1), Delivered(2, "c", 0.1), Restarted(5_000_000)]
    assert buf.push(5_000_000, "x", 0.2) == [Delivered(5_000_000, "x", 0.2)]
    assert buf.stats.restarts == 1
