"""Dynamic micro-batching across patients under a latency deadline (asyncio).

Windows from every stream go into one :class:`MicroBatcher`. A batch is
dispatched when ``max_batch`` items are queued, or when the oldest queued item
has waited ``deadline_ms``, whichever comes first; while one batch runs, the
next one fills, so batches grow with load and a lone window still comes back
after at most the deadline plus one inference. Inference runs in one worker
thread (``run_batch`` is a plain function: ONNX Runtime and TensorRT release
the GIL), so the event loop keeps ingesting while the model works.

Each :meth:`MicroBatcher.submit` returns an ``asyncio.Future`` that resolves to
a :class:`Completed` (the item's own result, the time it queued, the batch's
inference time and size), so every stream gets its own result back, whatever
batch it rode in.

**Overload policy** (nothing shed silently). The queue holds at most
``max_queue`` items. When a new item arrives at a full queue, the **oldest
unprotected** queued item is evicted (newest data is worth more to a monitor
than stale data); its future fails with :class:`WindowDropped` and
``stats.dropped["overload"]`` counts it. Items submitted with
``protected=True`` (evidence windows of an alarm) are never evicted and are
always admitted, even above ``max_queue``; if every queued item is protected,
a new unprotected item is refused (its future fails at once,
``stats.dropped["overload_refused"]``). A failing ``run_batch`` fails that
batch's futures with its exception (``stats.failed``) and the batcher goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from edge.errors import EdgeError

T = TypeVar("T")
R = TypeVar("R")

OVERLOAD = "overload"
OVERLOAD_REFUSED = "overload_refused"
CLOSED = "closed"


class WindowDropped(EdgeError):
    """The item was shed by the overload policy (or the batcher closed without draining)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"window dropped: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class Completed(Generic[R]):
    """One item's result and what it cost: seconds queued, the batch's inference seconds and size."""

    value: R
    queue_wait_s: float
    inference_s: float
    batch_size: int

    @property
    def latency_s(self) -> float:
        """Latency the batcher added: queue wait + inference."""
        return self.queue_wait_s + self.inference_s


@dataclass
class BatcherStats:
    """Counters and recent samples for metrics (the last ``history`` of each series)."""

    history: int = 10_000
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    """Items whose batch raised."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Items shed, by reason (``overload``, ``overload_refused``, ``closed``)."""
    batches: int = 0
    max_depth: int = 0
    """Deepest the queue has been."""
    batch_sizes: deque[int] = field(init=False)
    queue_wait_s: deque[float] = field(init=False)
    inference_s: deque[float] = field(init=False)
    """Per batch."""
    latency_s: deque[float] = field(init=False)
    """Per item: queue wait + inference of its batch."""

    def __post_init__(self) -> None:
        self.batch_sizes = deque(maxlen=self.history)
        self.queue_wait_s = deque(maxlen=self.history)
        self.inference_s = deque(maxlen=self.history)
        self.latency_s = deque(maxlen=self.history)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n


@dataclass
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[Completed[R]]
    t_submit: float
    protected: bool


class MicroBatcher(Generic[T, R]):
    """Batches items for ``run_batch(items) -> results`` (same length, same order), run in one worker thread.

    Use as ``async with MicroBatcher(fn, max_batch=32, deadline_ms=50) as b: r = await b.infer(x)``,
    or :meth:`start` / :meth:`close`. ``clock``: monotonic seconds (for tests).
    """

    def __init__(
        self, run_batch: Callable[[list[T]], Sequence[R]], *, max_batch: int = 32, deadline_ms: float = 50.0,
        max_queue: int = 1024, history: int = 10_000, clock: Callable[[], float] = time.monotonic,
        name: str = "inference",
    ) -> None:
        if max_batch < 1 or max_queue < 1 or deadline_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and deadline_ms >= 0")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.deadline_s = deadline_ms / 1000.0
        self.max_queue = max_queue
        self.stats = BatcherStats(history=history)
        self.name = name
        self._clock = clock
        self._queue: deque[_Pending[T, R]] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ecg-{self.name}")
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=f"microbatcher-{self.name}")

    async def close(self, *, drain: bool = True) -> None:
        """Stop. ``drain``: run what is queued first; otherwise queued items fail with ``WindowDropped("closed")``."""
        if self._task is None:
            return
        self._closing = True
        if not drain:
            self._fail_queued(CLOSED)
        assert self._wake is not None
        self._wake.set()
        try:
            await self._task
        finally:
            self._task = None
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    async def __aenter__(self) -> MicroBatcher[T, R]:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def depth(self) -> int:
        """Items queued now."""
        return len(self._queue)

    # -- submit -------------------------------------------------------------------------------------

    def submit(self, item: T, *, protected: bool = False) -> asyncio.Future[Completed[R]]:
        """Queue one item (from the event loop's thread); never blocks. See the overload policy above."""
        if self._task is None or self._closing:
            raise RuntimeError(f"micro-batcher {self.name} is not running")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Completed[R]] = loop.create_future()
        self.stats.submitted += 1
        if len(self._queue) >= self.max_queue:
            victim = next((p for p in self._queue if not p.protected), None)
            if victim is not None:
                self._queue.remove(victim)
                self.stats.drop(OVERLOAD)
                if not victim.future.done():
                    victim.future.set_exception(WindowDropped(OVERLOAD))
            elif not protected:
                self.stats.drop(OVERLOAD_REFUSED)
                fut.set_exception(WindowDropped(OVERLOAD_REFUSED))
                return fut
        self._queue.append(_Pending(item, fut, self._clock(), protected))
        self.stats.max_depth = max(self.stats.max_depth, len(self._queue))
        assert self._wake is not None
        self._wake.set()
        return fut

    async def infer(self, item: T, *, protected: bool = False) -> Completed[R]:
        """Submit and wait for this item's result."""
        return await self.submit(item, protected=protected)

    # -- the loop -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        wake = self._wake
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                wake.clear()
                await wake.wait()
                continue
            # wait for a full batch or for the oldest item's deadline (not when closing: drain now)
            while len(self._queue) < self.max_batch and not self._closing and self._queue:
                remaining = self._queue[0].t_submit + self.deadline_s - self._clock()
                if remaining <= 0:
                    break
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), remaining)
                except TimeoutError:
                    break
            batch: list[_Pending[T, R]] = []
            while self._queue and len(batch) < self.max_batch:
                p = self._queue.popleft()
                if not p.future.done():  # cancelled by its owner: skip
                    batch.append(p)
            if not batch:
                continue
            await self._dispatch(loop, batch)

    async def _dispatch(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending[T, R]]) -> None:
        t0 = self._clock()
        try:
            results = await loop.run_in_executor(self._executor, self._call, [p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
        except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the batcher
            self.stats.failed += len(batch)
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        t1 = self._clock()
        inference = t1 - t0
        st = self.stats
        st.batches += 1
        st.batch_sizes.append(len(batch))
        st.inference_s.append(inference)
        for p, r in zip(batch, results, strict=True):
            wait = t0 - p.t_submit
            st.queue_wait_s.append(wait)
            st.latency_s.append(wait + inference)
            st.completed += 1
            if not p.future.done():
                p.future.set_result(Completed(r, wait, inference, len(batch)))

    def _call(self, items: list[T]) -> Sequence[R]:
        return self.run_batch(items)

    def _fail_queued(self, reason: str) -> None:
        while self._queue:
            p = self._queue.popleft()
            self.stats.drop(reason)
            if not p.future.done():
                p.future.set_exception(WindowDropped(reason))


def percentile(values: Sequence[float] | deque[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of recent samples, NaN when there are none."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")

