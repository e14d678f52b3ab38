"""Issue 13, fault: kill -9 of one of three cloud ingest workers mid-stream loses nothing.

Three real :class:`~cloud.ingest.IngestWorker` processes (``python -m tests.fault_support worker``: each
its own client id, one shared-subscription group) store into one PostgreSQL database (a fresh one
per test on 127.0.0.1:5432) while a real edge (agent, SQLite outbox, MQTT 5 uplink) streams a
scripted ward's alerts and windows through a private Mosquitto. Once the first worker has stored
windows, it gets SIGKILL mid-stream: what it had taken and not receipted, and what the broker still
hands its dead session, gets no receipt, so the edge sends it again and a live worker stores it.
Afterwards every alert the edge raised is stored exactly once, every window too, and the outbox is
empty.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.store import Store, upgrade_database
from edge.agent import AgentConfig, EdgeAgent
from edge.uplink import Outbox
from tests.conftest import MosquittoProcess, skip_or_fail
from tests.fault_support import (
    RecordingSink,
    drive_ward,
    edge_uplink,
    postgres_database,
    running,
    spawn_worker,
    until,
    ward,
)

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

KILL_AT_S = 25.0

WARD = """
name = "cloud-workers"
duration_s = 60
seed = 11
[[patient]]
id = "{p}-1"
device = "{p}-d1"
heart_rate = 72
rhythm = [ {{ at = 0, name = "sinus" }}, {{ at = 10, name = "vt", heart_rate = 180 }}, {{ at = 16, name = "sinus" }},
           {{ at = 27, name = "vt", heart_rate = 180 }}, {{ at = 33, name = "sinus" }},
           {{ at = 44, name = "vt", heart_rate = 180 }}, {{ at = 50, name = "sinus" }} ]
[[patient]]
id = "{p}-2"
device = "{p}-d2"
heart_rate = 64
rhythm = [ {{ at = 0, name = "sinus" }}, {{ at = 20, name = "asystole" }}, {{ at = 26, name = "sinus" }},
           {{ at = 38, name = "asystole" }}, {{ at = 45, name = "sinus" }} ]
[[patient]]
id = "{p}-3"
device = "{p}-d3"
heart_rate = 80
rhythm = [ {{ at = 0, name = "sinus" }} ]
"""


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_database() as url:
        if url is None:
            skip_or_fail("PostgreSQL is not reachable on 127.0.0.1:5432 (or psycopg is missing)")
        upgrade_database(url)
        yield url


def _windows_stored(log: Path) -> int:
    counts = re.findall(rb"windows_stored=(\d+)", log.read_bytes())
    return int(counts[-1]) if counts else 0


async def test_kill_9_of_one_of_three_cloud_workers_mid_stream_loses_nothing(
        tmp_path: Path, mosquitto_process: MosquittoProcess, unique_id: str, pg_url: str) -> None:
    broker = mosquitto_process
    logs = [tmp_path / f"worker-{i}.log" for i in range(3)]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for i, log in enumerate(logs):
            workers.append(await asyncio.to_thread(spawn_worker, pg_url, broker.host, broker.port,
                                                   f"{unique_id}-w{i}", log))
        gateway = f"{unique_id}-gw"
        outbox = Outbox(tmp_path / "outbox.sqlite")
        sink = RecordingSink(outbox)
        agent = EdgeAgent(AgentConfig(gateway_id=gateway), sink)
        uplink = edge_uplink(outbox, broker.host, broker.port, gateway)
        beds, sub = ward(WARD.format(p=unique_id))
        killed: dict[str, int] = {}

        async def at_tick(t_s: float) -> None:
            await asyncio.sleep(0.1)                           # a live stream: the workers keep up
            if t_s >= KILL_AT_S and not killed:
                await until(lambda: _windows_stored(logs[0]) > 0, "the first worker to store windows")
                workers[0].send_signal(signal.SIGKILL)
                await asyncio.to_thread(workers[0].wait, 10)
                killed["alerts"], killed["windows"] = len(sink.alert_ids), len(sink.window_ids)

        async with running(uplink.run):
            await drive_ward(beds, agent, sub, duration_s=60.0, at_tick=at_tick)
            await agent.close()
            n = len(sink.alert_ids) + len(sink.window_ids)
            await until(lambda: outbox.total_depth == 0 and sum(uplink.counters.receipts.values()) >= n,
                        "every message receipted", timeout_s=120.0)
            counters = uplink.counters
        assert workers[0].returncode == -signal.SIGKILL
        assert all(w.poll() is None for w in workers[1:])    # the others lived on
        # the edge kept streaming, and raising alarms, after the kill
        assert len(sink.alert_ids) > killed["alerts"] and len(sink.window_ids) > killed["windows"]
        async with Store(pg_url) as store:
            assert len(set(sink.alert_ids)) == len(sink.alert_ids) >= 5
            assert [(await store.get_alert(a)).alert.alert_id for a in sink.alert_ids] == sink.alert_ids
            assert await store.count_alerts() == len(sink.alert_ids)
            for window_id in sink.window_ids:
                await store.window_meta(window_id)
            assert await store.count_windows() == len(sink.window_ids)
        assert counters.rejected == {} and outbox.dead() == []
        assert set(counters.receipts) <= {"stored", "duplicate"}
        outbox.close()
        sink.close()
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait(10)
