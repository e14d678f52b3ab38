"""MicroBatcher: every item its own result across patients, batches under load, deadline at low load,
counted overload shedding, failures confined to their batch. No wall-clock assertions."""

from __future__ import annotations

import asyncio
import threading

import pytest

from edge.inference.batcher import Completed, MicroBatcher, WindowDropped, percentile


class Gate:
    """run_batch that records batches and can be held shut (from the worker thread) until released."""

    def __init__(self, closed: bool = False) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.entered = threading.Event()
        self.open = threading.Event()
        if not closed:
            self.open.set()

    def __call__(self, items: list[tuple[str, int]]) -> list[str]:
        self.batches.append(list(items))
        self.entered.set()
        assert self.open.wait(30), "test gate never opened"
        if any(i[0] == "bad" for i in items):
            raise ValueError("bad window in batch")
        return [f"{p}:{n}:result" for p, n in items]


async def test_fifty_patients_each_window_gets_its_own_result() -> None:
    gate = Gate()
    async with MicroBatcher(gate, max_batch=16, deadline_ms=20) as b:

        async def patient(p: int) -> list[tuple[tuple[str, int], Completed[str]]]:
            out = []
            for n in range(6):
                item = (f"p{p}", n)
                fut = b.submit(item)
                await asyncio.sleep(0)  # streams interleave on the loop
                out.append((item, fut))
            return [(item, await fut) for item, fut in out]

        results = await asyncio.wait_for(asyncio.gather(*(patient(p) for p in range(50))), 60)
    flat = [r for rs in results for r in rs]
    assert len(flat) == 300
    for (p, n), done in flat:
        assert done.value == f"{p}:{n}:result"
        assert done.batch_size >= 1 and done.queue_wait_s >= 0 and done.inference_s >= 0
    st = b.stats
    assert st.submitted == st.completed == 300 and st.failed == 0 and st.dropped_total == 0
    assert sum(st.batch_sizes) == 300 == sum(len(x) for x in gate.batches)
    assert max(st.batch_sizes) == 16  # high load: full batches
    assert st.batches < 300 / 2
    assert len(st.latency_s) == 300 and percentile(st.latency_s, 99) >= percentile(st.latency_s, 50)


async def test_batches_fill_while_the_model_is_busy() -> None:
    gate = Gate(closed=True)
    async with MicroBatcher(gate, max_batch=8, deadline_ms=0) as b:
        first = b.submit(("a", 0))
        await asyncio.to_thread(gate.entered.wait, 30)  # the worker holds batch 1 ([a0]); the loop stays free
        futs = [b.submit((f"p{i}", 1)) for i in range(20)]
        assert b.depth == 20
        gate.open.set()
        done = await asyncio.gather(first, *futs)
    assert [d.value for d in done] == ["a:0:result"] + [f"p{i}:1:result" for i in range(20)]
    assert [len(x) for x in gate.batches] == [1, 8, 8, 4]


async def test_low_load_result_comes_back_by_the_deadline() -> None:
    gate = Gate()
    async with MicroBatcher(gate, max_batch=64, deadline_ms=5) as b:
        done = await asyncio.wait_for(b.infer(("lonely", 1)), 30)
        assert done.value == "lonely:1:result" and done.batch_size == 1
        done2 = await asyncio.wait_for(b.infer(("later", 2)), 30)
        assert done2.batch_size == 1
    assert b.stats.batches == 2


async def test_overload_drops_oldest_unprotected_and_counts() -> None:
    gate = Gate(closed=True)
    b: MicroBatcher[tuple[str, int], str] = MicroBatcher(gate, max_batch=4, deadline_ms=0, max_queue=8)
    await b.start()
    running = b.submit(("running", 0))
    await asyncio.to_thread(gate.entered.wait, 30)
    futs = {}
    for i in range(20):
        futs[("w", i)] = b.submit(("w", i))
        if i in (2, 3):
            futs[("alarm", i)] = b.submit(("alarm", i), protected=True)
    assert b.depth == 8
    gate.open.set()
    await b.close()
    outcome = {}
    for key, fut in futs.items():
        exc = fut.exception()
        outcome[key] = "dropped" if isinstance(exc, WindowDropped) and exc.reason == "overload" else fut.result().value
    assert (await running).value == "running:0:result"
    assert outcome[("alarm", 2)] == "alarm:2:result" and outcome[("alarm", 3)] == "alarm:3:result"
    kept = [i for i in range(20) if outcome[("w", i)] != "dropped"]
    assert kept == list(range(14, 20))  # the newest six; the oldest fourteen were shed
    assert b.stats.dropped == {"overload": 14}
    assert b.stats.completed == 1 + 8 and b.stats.submitted == 23


async def test_protected_items_are_never_refused() -> None:
    gate = Gate(closed=True)
    b: MicroBatcher[tuple[str, int], str] = MicroBatcher(gate, max_batch=1, deadline_ms=0, max_queue=2)
    await b.start()
    first = b.submit(("running", 0))
    await asyncio.to_thread(gate.entered.wait, 30)
    alarms = [b.submit(("alarm", i), protected=True) for i in range(3)]
    assert b.depth == 3  # above max_queue: alarms are admitted
    refused = b.submit(("w", 0))
    with pytest.raises(WindowDropped, match="overload_refused"):
        await refused
    gate.open.set()
    await b.close()
    assert [(await a).value for a in alarms] == [f"alarm:{i}:result" for i in range(3)]
    assert (await first).batch_size == 1
    assert b.stats.dropped == {"overload_refused": 1}


async def test_a_failing_batch_fails_only_its_windows() -> None:
    gate = Gate(closed=True)
    async with MicroBatcher(gate, max_batch=2, deadline_ms=0) as b:
        hold = b.submit(("hold", 0))
        await asyncio.to_thread(gate.entered.wait, 30)
        bad = [b.submit(("bad", 1)), b.submit(("x", 1))]
        good = [b.submit(("y", 2)), b.submit(("z", 2))]
        gate.open.set()
        await hold
        for f in bad:
            with pytest.raises(ValueError, match="bad window"):
                await f
        assert [(await f).value for f in good] == ["y:2:result", "z:2:result"]
    assert b.stats.failed == 2 and b.stats.completed == 3


async def test_close_without_drain_fails_queued_and_submit_after_close_is_an_error() -> None:
    gate = Gate(closed=True)
    b: MicroBatcher[tuple[str, int], str] = MicroBatcher(gate, max_batch=1, deadline_ms=0)
    await b.start()
    running = b.submit(("r", 0))
    await asyncio.to_thread(gate.entered.wait, 30)
    queued = b.submit(("q", 0))
    closing = asyncio.create_task(b.close(drain=False))
    await asyncio.sleep(0)
    gate.open.set()
    await closing
    assert (await running).value == "r:0:result"
    with pytest.raises(WindowDropped, match="closed"):
        await queued
    assert b.stats.dropped == {"closed": 1}
    with pytest.raises(RuntimeError, match="not running"):
        b.submit(("late", 0))
