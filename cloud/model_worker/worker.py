"""The model worker: the cloud's heavier models run on the windows behind stored alerts.

It follows the alert table by ``seq`` (the same cursor the live feed uses), so it sees every alert
any ingest worker stored, in storage order. For each alert that names an evidence window it runs
every configured model (:mod:`cloud.model_worker.hosted`) on that window, batched, and stores each
result with :meth:`cloud.store.Store.store_model_result` against the window and the alert; the API
shows them in the alert detail. Results are keyed by (window, model, version), so a restart or a
second worker never stores one twice, and an alert whose window was already analysed costs nothing.

**Windows that are not there yet.** The edge publishes an alert and its window as two messages; the
alert often lands first. The worker keeps such an alert and retries it each poll until the window is
stored or ``window_wait_s`` has passed (then it is counted in ``windows_missing``, never silently).

**Several workers.** ``partition = (i, n)``: worker *i* of *n* takes the alerts whose ``seq % n == i``,
so n processes split the work without coordination; with the default (0, 1) one takes all.

**Masked windows.** A window with gaps (``EcgWindow.gaps``: frames the edge lost and could not
bridge, their samples 0) is shown to staff as it is but given to no model: the models were trained on
contiguous ECG and would read a hole as signal. Such windows are counted in ``windows_masked``.

**Failures.** A window a model cannot take (a lead missing, too short) is counted by reason and
skipped for that model; a store error is logged and retried on the next poll. Nothing stops the loop
but cancellation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cloud.model_worker.adapters import Hosted
from cloud.model_worker.hosted import WindowMismatch
from cloud.store import NotFound, Store, StoredAlert
from protocol.window_payload import EcgWindow

log = logging.getLogger(__name__)


@dataclass
class ModelWorkerCounters:
    """What the worker did (results are per model and window)."""

    alerts_seen: int = 0
    alerts_without_window: int = 0
    windows_analysed: int = 0
    results_stored: int = 0
    results_already_stored: int = 0
    windows_missing: int = 0
    """Alerts whose window never arrived within ``window_wait_s``."""
    windows_masked: int = 0
    """Windows with gaps (lost data), given to no model."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Windows a model could not take, by model."""
    errors: int = 0

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass
class _Pending:
    alert: StoredAlert
    first_seen_s: float


class ModelWorker:
    """Runs ``models`` on the windows of stored alerts (see the module docstring)."""

    def __init__(self, store: Store, models: Sequence[Hosted], *, poll_s: float = 0.5, max_batch: int = 16,
                 window_wait_s: float = 60.0, partition: tuple[int, int] = (0, 1), start_seq: int = 0) -> None:
        index, count = partition
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"partition must be (i, n) with 0 <= i < n, not {partition}")
        if max_batch < 1 or poll_s <= 0 or window_wait_s < 0:
            raise ValueError("max_batch must be >= 1, poll_s > 0 and window_wait_s >= 0")
        self.store = store
        self.models = list(models)
        self.poll_s = poll_s
        self.max_batch = max_batch
        self.window_wait_s = window_wait_s
        self.partition = (index, count)
        self.cursor = start_seq
        self.counters = ModelWorkerCounters()
        self._pending: dict[str, _Pending] = {}          # window id → the first alert that pointed at it

    async def run(self) -> None:
        """Poll until cancelled."""
        names = ", ".join(f"{m.name}@{m.version}" for m in self.models) or "no models"
        log.info("model worker %d/%d: %s", self.partition[0], self.partition[1], names)
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database outage must not end the worker; it retries next poll
                self.counters.errors += 1
                log.exception("model worker: poll failed; retrying in %.1f s", self.poll_s)
            await asyncio.sleep(self.poll_s)

    async def poll_once(self) -> int:
        """Take the alerts stored since the last poll, analyse what can be; returns windows analysed."""
        now = time.monotonic()
        while True:
            batch = await self.store.alerts_after(self.cursor, limit=500)
            for stored in batch:
                self.cursor = max(self.cursor, stored.seq)
                if stored.seq % self.partition[1] != self.partition[0]:
                    continue
                self.counters.alerts_seen += 1
                wid = stored.alert.window_id
                if wid is None:
                    self.counters.alerts_without_window += 1
                elif wid not in self._pending:
                    self._pending[wid] = _Pending(stored, now)
            if len(batch) < 500:
                break
        return await self._analyse_pending(now)

    async def _analyse_pending(self, now: float) -> int:
        ready: list[tuple[StoredAlert, EcgWindow]] = []
        for wid, p in list(self._pending.items()):
            try:
                window = await self.store.load_window(wid)
            except NotFound:
                if now - p.first_seen_s >= self.window_wait_s:
                    del self._pending[wid]
                    self.counters.windows_missing += 1
                    log.warning("model worker: window %s of alert %s never arrived", wid, p.alert.alert.alert_id)
                continue
            if window.gaps:
                del self._pending[wid]
                self.counters.windows_masked += 1
                log.info("model worker: window %s has %d samples lost in gaps; no model runs on it",
                         wid, window.masked_samples)
                continue
            ready.append((p.alert, window))
        done = 0
        for i in range(0, len(ready), self.max_batch):
            chunk = ready[i : i + self.max_batch]
            await self._analyse(chunk)
            for _, window in chunk:
                self._pending.pop(window.window_id, None)
            done += len(chunk)
        return done

    async def _analyse(self, chunk: Sequence[tuple[StoredAlert, EcgWindow]]) -> None:
        have: dict[str, set[tuple[str, str]]] = {}
        for _, window in chunk:
            have[window.window_id] = {(r.model, r.version) for r in await self.store.results_for_window(window.window_id)}
        for model in self.models:
            todo = [(s, w) for s, w in chunk if (model.name, model.version) not in have[w.window_id]]
            self.counters.results_already_stored += len(chunk) - len(todo)
            feedable, inputs = [], []
            for s, w in todo:
                try:
                    inputs.append(model.input_for(w))
                    feedable.append((s, w))
                except WindowMismatch as exc:
                    self.counters.rejected[model.name] = self.counters.rejected.get(model.name, 0) + 1
                    log.info("model %s skipped window %s: %s", model.name, w.window_id, exc)
            if not feedable:
                continue
            outputs = await asyncio.to_thread(model.run_inputs, np.stack(inputs))
            for (s, w), out in zip(feedable, outputs, strict=True):
                stored = await self.store.store_model_result(w.window_id, model.name, model.version, out,
                                                            patient_id=w.patient_id, alert_id=s.alert.alert_id)
                if stored:
                    self.counters.results_stored += 1
                else:
                    self.counters.results_already_stored += 1
        self.counters.windows_analysed += len(chunk)

