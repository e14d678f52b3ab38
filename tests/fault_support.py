"""Shared parts of the issue-13 fault tests: a real edge (agent, outbox, uplink) and real cloud workers.

The edge runs a scripted ward in stream time into a real :class:`~edge.agent.EdgeAgent` whose sink is
its SQLite :class:`~edge.uplink.Outbox` (:class:`RecordingSink` remembers every alert and window id it
produced: the ground truth the tests compare the cloud against); :func:`drive_ward` lets a test act
(and wait in wall time) at stream-time ticks, so faults happen mid-stream. Cloud ingest workers run
in-process (:func:`cloud_worker`) or as separate processes (:func:`spawn_worker`, this module's
``python -m tests.fault_support worker …`` entry) that a test may kill with SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

from cloud.ingest import IngestWorker
from cloud.store import Store
from ecgstream.edge_sim import GATEWAY_T0_S, step_in_stream_time
from edge.agent import EdgeAgent, OutboxSink
from edge.uplink import Outbox, Uplink
from firmware_sim.scenario import parse_scenario
from firmware_sim.transports.loopback import LoopbackHub, Subscription
from firmware_sim.ward import WardBed, build_ward
from protocol.messages import Alert
from protocol.window_payload import EcgWindow

WAIT_S = 60.0
ROOT = Path(__file__).resolve().parents[1]


class RecordingSink(OutboxSink):
    """The gateway's outbox sink, remembering the id of every alert and window it stored."""

    def __init__(self, outbox: Outbox) -> None:
        super().__init__(outbox, encode_workers=0)
        self.alert_ids: list[str] = []
        self.window_ids: list[str] = []

    def put_alert(self, alert: Alert) -> None:
        super().put_alert(alert)
        self.alert_ids.append(alert.alert_id)

    def put_window(self, window: EcgWindow) -> None:
        super().put_window(window)
        self.window_ids.append(window.window_id)


async def until(condition: Callable[[], object], what: str, timeout_s: float = WAIT_S) -> None:
    """Wait until ``condition()`` is true; fail saying ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(run: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``run()`` as a task for the block; cancel it after. A task that failed re-raises at the end."""
    task = asyncio.create_task(run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def cloud_worker(host: str, port: int, store: Store, client_id: str) -> AsyncIterator[IngestWorker]:
    """A real in-process ingest worker on ``store`` (registry not enforced), subscribed when the block starts."""
    worker = IngestWorker(store, hostname=host, port=port, group="cloud", client_id=client_id,
                          enforce_registry=False, session_expiry_s=3600, backoff_initial_s=0.1, backoff_max_s=0.5)
    async with running(worker.run):
        await asyncio.wait_for(worker.subscribed.wait(), WAIT_S)
        yield worker


def edge_uplink(outbox: Outbox, host: str, port: int, gateway_id: str) -> Uplink:
    """The edge's real uplink with short back-offs and receipt timeouts (a test's minutes, not an hour's)."""
    return Uplink(outbox, hostname=host, port=port, gateway_id=gateway_id, heartbeat_s=None, poll_s=0.05,
                  backoff_initial_s=0.1, backoff_max_s=1.0, receipt_timeout_s=2.0, receipt_timeout_max_s=4.0)


def ward(text: str) -> tuple[list[WardBed], Subscription]:
    """The scripted ward's beds on a private loopback hub, and the gateway's subscription to it."""
    hub = LoopbackHub()
    sub = hub.subscribe()
    beds = build_ward(parse_scenario(text), lambda d, p: hub.transport(d, wire=p.wire))
    return beds, sub


async def drive_ward(beds: Sequence[WardBed], agent: EdgeAgent, sub: Subscription, *, duration_s: float,
                     at_tick: Callable[[float], Awaitable[None]], tick_s: float = 0.5) -> None:
    """Run the ward into ``agent`` in stream time; ``at_tick(t)`` runs after each tick (stream time ``t``
    seconds), so a test can break things, or wait in wall time, mid-stream. Flushes the agent at the end."""

    ticks: list[float] = []

    async def take(t_s: float) -> None:
        while ticks:                                   # the ticks since the last take: act on each
            await at_tick(ticks.pop(0))
        for m in sub.drain():
            agent.feed(m.device_id, m.data, str(m.kind), GATEWAY_T0_S + t_s, transport="loopback")

    def tick(t_s: float) -> None:
        agent.tick(GATEWAY_T0_S + t_s)
        ticks.append(t_s)

    await step_in_stream_time([bed.device for bed in beds], duration_s=duration_s, tick_s=tick_s,
                              take=take, tick=tick)
    agent.flush()
    while ticks:
        await at_tick(ticks.pop(0))


# -- cloud workers as separate processes --------------------------------------------------------------


def spawn_worker(url: str, host: str, port: int, client_id: str, log: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m tests.fault_support worker`` (one real ingest worker on ``url``) and wait until it
    has subscribed (it says so on its log)."""
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tests.fault_support", "worker", url, host, str(port),
                                 client_id], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + WAIT_S
    while b"subscribed" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"worker {client_id} did not subscribe: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    return proc


async def _worker_main(url: str, host: str, port: int, client_id: str) -> None:
    async with Store(url) as store, cloud_worker(host, port, store, client_id) as worker:
        print(f"{client_id} subscribed", flush=True)
        while True:
            await asyncio.sleep(1.0)
            c = worker.counters
            print(f"{client_id} alerts_stored={c.alerts_stored} windows_stored={c.windows_stored} "
                  f"rejected_total={c.rejected_total}", flush=True)


# -- a PostgreSQL database per test ---------------------------------------------------------------------

PG_ADMIN = os.environ.get("ECGSTREAM_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


@contextlib.contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh, empty PostgreSQL database (its URL) dropped afterwards, or None when none is reachable."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception:  # noqa: BLE001 - no driver or no server: the caller decides (skip, or fail under CI)
        yield None
        return
    info = conninfo_to_dict(PG_ADMIN)
    name = f"ecgstream_faults_{uuid.uuid4().hex[:12]}"
    user = info.get("user", "postgres")
    auth = f"{user}:{info['password']}@" if info.get("password") else f"{user}@"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://{auth}{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m tests.fault_support worker URL HOST PORT CLIENT_ID``: one ingest worker until killed."""
    parser = argparse.ArgumentParser(prog="python -m tests.fault_support")
    parser.add_argument("role", choices=["worker"])
    parser.add_argument("url")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("client_id")
    args = parser.parse_args(argv)
    asyncio.run(_worker_main(args.url, args.host, args.port, args.client_id))


if __name__ == "__main__":
    main()
