"""Slow fuzzing of the cloud ingest validators against SQLite and PostgreSQL (``-m slow``).

The property behind "no single message stops the ward": whatever the ingest worker accepts, the
database stores. Every hostile message (tests/protocol/fuzzing.py: JSON alerts and statuses with
NUL, lone surrogates, NaN/Infinity, 64-bit numbers, trailing-newline ids, unknown events; mutated
window payloads) goes through :meth:`cloud.ingest.IngestWorker.handle` with the registry enforced:
it must come back stored, a duplicate, stale or rejected for a validation reason, never refused by
the database (``store_refused``) and never raise; an alert that was stored reads back as it was
decoded (numbers compared by value: PostgreSQL's JSONB keeps a number, not its spelling, so ``1e+308``
in ``details`` reads back as the integer 10**308). ``ECGSTREAM_DB_FUZZ_CASES`` (default 10,000 per database, about a minute for both) sets the count.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.ingest import IngestWorker, Reason
from cloud.store import Store
from protocol.messages import Alert, DeviceStatus, GatewayStatus, decode_message
from protocol.topics import alert_topic, device_status_topic, gateway_status_topic, window_topic
from tests.protocol.fuzzing import BASES, bulk_messages, bulk_mutations, run_cases

CASES = int(os.environ.get("ECGSTREAM_DB_FUZZ_CASES", "10000"))
EXAMPLES = min(30, CASES)
PER_EXAMPLE = -(-CASES // EXAMPLES)
BASE_ID = BASES[Alert].alert_id  # type: ignore[union-attr]

pytestmark = pytest.mark.slow


def _cases(seed: int) -> list[tuple[str, bytes]]:
    """PER_EXAMPLE (topic, payload) cases: alerts (each with a fresh id), statuses and windows."""
    n = PER_EXAMPLE // 4 + 1
    alerts = [(alert_topic("pat-1"), p.replace(BASE_ID.encode(), str(uuid.uuid4()).encode()))
              for p in bulk_messages(Alert, seed, n * 2)]
    devices = [(device_status_topic("dev-1"), p) for p in bulk_messages(DeviceStatus, seed, n // 2)]
    gateways = [(gateway_status_topic("gw-1"), p) for p in bulk_messages(GatewayStatus, seed, n // 2)]
    windows = [(window_topic(f"pat-{i % 6}"), p) for i, p in enumerate(bulk_mutations("window", seed, n))]
    return (alerts + devices + gateways + windows)[:PER_EXAMPLE]


def _same(a: Any, b: Any) -> bool:
    """JSON values equal, numbers by value (an int and a float are the same number when they round alike)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        try:
            return a == b or float(a) == float(b)
        except OverflowError:
            return False
    return bool(type(a) is type(b) and a == b)


def test_what_the_ingest_accepts_every_database_stores(migrated_url: str) -> None:
    loop = asyncio.new_event_loop()
    store = Store(migrated_url)
    worker = IngestWorker(store, client_id="fuzz", store_retries=0, store_retry_s=0.0)

    async def setup() -> None:
        await store.add_patient("pat-1")
        await store.add_device("dev-1", "pat-1")
        for i in range(6):
            await store.add_patient(f"pat-{i}")
            await store.add_device(f"dev-{i}", f"pat-{i}")

    async def one(case: tuple[str, bytes]) -> None:
        topic, payload = case
        outcome = await worker.handle(topic, payload)
        assert outcome != Reason.STORE_REFUSED.value, worker.counters.as_dict()
        if outcome == "stored" and topic.endswith("/alert"):
            alert = decode_message(payload, Alert)
            back = (await store.get_alert(alert.alert_id)).alert
            assert _same(back.details, alert.details), (back.details, alert.details)
            assert dataclasses.replace(back, details=alert.details) == alert

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.integers(0, 2**32 - 1))
    def fuzz(seed: int) -> None:
        run_cases(iter(_cases(seed)), lambda case: loop.run_until_complete(one(case)))

    try:
        loop.run_until_complete(setup())
        fuzz()
    finally:
        loop.run_until_complete(store.close())
        loop.close()
    c = worker.counters
    print(f"\n{store.dialect}: {c.received} messages, {c.stored} stored, {c.duplicates} duplicates, "
          f"{c.stale_status} stale, rejected {dict((k, v) for k, v in c.rejected.items() if v)}")
    assert c.received >= CASES and c.stored > 0 and c.rejected_total > 0
