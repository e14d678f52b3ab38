"""Cloud ingest throughput: alerts/s and windows/s stored by 1, 2 and 3 workers on one shared subscription.

Each worker is its own process running :class:`cloud.ingest.IngestWorker` (MQTT 5 shared subscription,
QoS 1, manual acks after storage, registry enforced) into one database. The publisher sends, as an
edge gateway would, ``--alerts`` alert messages and ``--windows`` 12-lead 10-s windows (125 Hz, nine
leads reconstructed with uncertainty) from 50 patients, QoS 1, as fast as the broker takes them; the
figure is messages stored per second from the first publish to the last row in the database. The
scale-out ratio is n workers' rate over one worker's, measured in the same run.

Needs the ``mosquitto`` binary (a private broker on a free port, no queue limit) and uses
PostgreSQL on 127.0.0.1:5432 for the multi-worker runs (a fresh database, dropped after); with no
PostgreSQL only one worker is measured, on SQLite. Run: ``python -m bench.bench_cloud_ingest``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import aiomqtt
import numpy as np

from bench.services import start_mosquitto
from protocol.leads import STANDARD_LEADS
from protocol.messages import Alert, AlertCategory, Priority, encode_message
from protocol.topics import alert_topic, window_topic
from protocol.window_payload import EcgWindow, encode_window

PATIENTS = 50
PG_ADMIN = os.environ.get("ECGSTREAM_BENCH_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


def postgres_url() -> str | None:
    """A fresh PostgreSQL database for this run, or None when PostgreSQL is unreachable."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as admin:
            name = f"ecgstream_bench_{uuid.uuid4().hex[:8]}"
            admin.execute(f'CREATE DATABASE "{name}"')
    except Exception:
        return None
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def make_messages(n_alerts: int, n_windows: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """(topic, payload) pairs as an edge gateway publishes them, interleaved."""
    rng = np.random.default_rng(seed)
    t0 = 1_760_000_000_000_000
    reconstructed = tuple(lead for lead in STANDARD_LEADS if lead not in ("II", "V1", "V5"))
    base = (np.sin(np.arange(1250) / 125 * 2 * np.pi * 1.2) * 800).astype(np.int16)
    out: list[tuple[str, bytes]] = []
    for i in range(n_windows):
        pid = f"pat-{i % PATIENTS}"
        samples = (base[None, :] + rng.integers(-30, 30, (12, 1250))).astype(np.int16)
        unc = rng.integers(20, 90, (len(reconstructed), 1250)).astype(np.int16)
        window = EcgWindow(EcgWindow.new_id(), pid, f"dev-{i % PATIENTS}", t0 + i * 10_000_000, 125,
                           STANDARD_LEADS, samples, reconstructed, unc)
        out.append((window_topic(pid), encode_window(window)))
    alerts = []
    for i in range(n_alerts):
        pid = f"pat-{i % PATIENTS}"
        aid = Alert.new_id()
        a = Alert(aid, pid, f"dev-{i % PATIENTS}", "vt", AlertCategory.CLINICAL, Priority.HIGH, t0 + i * 1000,
                  details={"event": "raised", "episode_id": aid, "family": "vt"})
        alerts.append((alert_topic(pid), encode_message(a)))
    # interleave so every worker sees a mix
    step = max(1, len(alerts) // max(1, len(out)))
    merged: list[tuple[str, bytes]] = []
    ai = 0
    for w in out:
        merged.append(w)
        merged.extend(alerts[ai : ai + step])
        ai += step
    merged.extend(alerts[ai:])
    return merged


def _worker_main(url: str, port: int, group: str, index: int, ready: EventType, stop: EventType) -> None:
    from cloud.ingest import IngestWorker
    from cloud.store import Store

    async def run() -> None:
        async with Store(url) as store:
            worker = IngestWorker(store, port=port, group=group, client_id=f"{group}-{index}")
            task = asyncio.create_task(worker.run())
            await worker.subscribed.wait()
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    asyncio.run(run())


async def _setup(url: str) -> None:
    from cloud.store import Store, upgrade_database

    await asyncio.to_thread(upgrade_database, url)
    async with Store(url) as store:
        for i in range(PATIENTS):
            await store.add_patient(f"pat-{i}")
            await store.add_device(f"dev-{i}", f"pat-{i}")


async def _count(url: str) -> tuple[int, int]:
    from cloud.store import Store

    async with Store(url) as store:
        return await store.count_alerts(), await store.count_windows()


async def measure(url: str, port: int, workers: int, alerts: int, windows: int, timeout_s: float = 300.0) -> float:
    """Messages stored per second by ``workers`` processes (from first publish to last row)."""
    messages = make_messages(alerts, windows, workers)    # fresh ids: a resend would be a duplicate
    expect = (alerts, windows)
    ctx = mp.get_context("spawn")
    # A group of its own: a worker that left keeps its persistent session in its group, and the broker
    # goes on handing that session its share of the group's messages until the session expires.
    group = f"bench{uuid.uuid4().hex[:8]}"
    stop = ctx.Event()
    readies = [ctx.Event() for _ in range(workers)]
    procs = [ctx.Process(target=_worker_main, args=(url, port, group, i, readies[i], stop), daemon=True)
             for i in range(workers)]
    for p in procs:
        p.start()
    try:
        for r in readies:
            if not await asyncio.to_thread(r.wait, 60):
                raise RuntimeError("a worker did not subscribe within 60 s")
        before = await _count(url)
        target = (before[0] + expect[0], before[1] + expect[1])
        t0 = time.perf_counter()
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-pub-{uuid.uuid4().hex[:6]}",
                                  max_inflight_messages=200) as client:
            for topic, payload in messages:
                await client.publish(topic, payload, qos=1)
        while True:
            got = await _count(url)
            if got[0] >= target[0] and got[1] >= target[1]:
                break
            if time.perf_counter() - t0 > timeout_s:
                raise RuntimeError(f"only {got} of {target} stored after {timeout_s} s")
            await asyncio.sleep(0.05)
        return len(messages) / (time.perf_counter() - t0)
    finally:
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()


async def amain(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port, broker = start_mosquitto(Path(tmp))
        try:
            pg = postgres_url()
            sqlite = f"sqlite:///{Path(tmp) / 'bench.db'}"
            kinds = {"alerts": (args.alerts, 0), "windows": (0, args.windows), "mixed": (args.alerts, args.windows)}
            size = len(make_messages(0, 1)[0][1])
            print(f"  broker 127.0.0.1:{port}; {os.cpu_count()} CPUs; {args.alerts} alerts, {args.windows} windows "
                  f"({size} B each) per run")
            await _setup(sqlite)
            for kind in ("alerts", "windows"):
                rate = await measure(sqlite, port, 1, *kinds[kind])
                print(f"  SQLite, 1 worker, {kind:<8} {rate:8.0f} messages/s")
            if pg is None:
                print("  PostgreSQL unreachable: scale-out not measured")
                return
            try:
                await _setup(pg)
                base = None
                for n in args.workers:
                    rate = await measure(pg, port, n, *kinds["mixed"])
                    base = base or rate
                    print(f"  PostgreSQL, {n} worker(s), mixed {rate:8.0f} messages/s   x{rate / base:.2f} vs 1 worker")
            finally:
                drop_postgres(pg)
        finally:
            if broker is not None:
                broker.kill()


def main(argv: Sequence[str] | None = None) -> None:
    """Run with ``argv`` options (defaults when None, as ``python -m bench`` calls it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=3000)
    parser.add_argument("--windows", type=int, default=600)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args([] if argv is None else argv)
    try:
        asyncio.run(amain(args))
    except RuntimeError as exc:
        print(f"  skipped: {exc}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
