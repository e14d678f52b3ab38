"""Issue 13, fault: a 60 s network partition between the edge and the broker loses no alert.

A scripted ward (the simulator's ground truth: three VT and two asystole episodes) runs in stream time
through a real edge agent into its SQLite outbox, which holds a small disk budget; the real uplink
publishes over MQTT 5 to a private Mosquitto and the real cloud ingest worker stores on SQLite. After
20 s of stream (the cloud caught up) the broker goes away for 60 s of wall time while the edge keeps
streaming (and raising alarms: stream time 20-50 s is spread over that minute), then comes back with
nothing it had (persistence off). Afterwards every alert the edge raised is in the cloud exactly
once, and the windows add up: each one the edge produced is either stored once or evicted and counted.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from cloud.store import Store, upgrade_database
from edge.agent import AgentConfig, EdgeAgent
from edge.uplink import Kind, Outbox
from tests.conftest import MosquittoProcess
from tests.fault_support import RecordingSink, cloud_worker, drive_ward, edge_uplink, running, until, ward

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

PARTITION_S = 60.0
CUT_AT_S, STREAM_DURING_S = 20.0, 30.0
BUDGET_BYTES = 20_000        # ~5 windows beside the alerts: the partition's windows overflow it

WARD = """
name = "partition"
duration_s = 80
seed = 7
[[patient]]
id = "{p}-1"
device = "{p}-d1"
heart_rate = 72
rhythm = [ {{ at = 0, name = "sinus" }}, {{ at = 10, name = "vt", heart_rate = 180 }}, {{ at = 16, name = "sinus" }},
           {{ at = 28, name = "vt", heart_rate = 180 }}, {{ at = 34, name = "sinus" }},
           {{ at = 44, name = "vt", heart_rate = 180 }}, {{ at = 50, name = "sinus" }} ]
[[patient]]
id = "{p}-2"
device = "{p}-d2"
heart_rate = 64
rhythm = [ {{ at = 0, name = "sinus" }}, {{ at = 24, name = "asystole" }}, {{ at = 31, name = "sinus" }},
           {{ at = 40, name = "asystole" }}, {{ at = 47, name = "sinus" }} ]
"""


async def test_a_60_s_partition_loses_no_alert_and_the_windows_add_up(
        tmp_path: Path, mosquitto_process: MosquittoProcess, unique_id: str) -> None:
    broker = mosquitto_process
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    gateway = f"{unique_id}-gw"
    outbox = Outbox(tmp_path / "outbox.sqlite", max_bytes=BUDGET_BYTES)
    sink = RecordingSink(outbox)
    agent = EdgeAgent(AgentConfig(gateway_id=gateway), sink)
    uplink = edge_uplink(outbox, broker.host, broker.port, gateway)
    beds, sub = ward(WARD.format(p=unique_id))
    cut: dict[str, float] = {}
    raised_during: list[str] = []

    async def at_tick(t_s: float) -> None:
        if t_s < CUT_AT_S:
            await asyncio.sleep(0.02)                         # the cloud keeps up, live
        elif "wall" not in cut:
            # the partition starts with the cloud caught up (an in-flight window evicted during it would be
            # both stored and counted evicted: that race is not what this test is about)
            await until(lambda: outbox.total_depth == 0, "the cloud to catch up before the partition")
            await asyncio.to_thread(broker.stop)
            cut["wall"], cut["alerts"] = time.monotonic(), len(sink.alert_ids)
        elif t_s <= CUT_AT_S + STREAM_DURING_S:
            await asyncio.sleep(PARTITION_S / (STREAM_DURING_S / 0.5) * 0.9)   # spread over the minute
        elif not broker.running:
            await asyncio.sleep(max(0.0, PARTITION_S - (time.monotonic() - cut["wall"])))
            raised_during.extend(sink.alert_ids[int(cut["alerts"]):])
            cut["evicted"] = outbox.evicted()[Kind.WINDOW]
            await asyncio.to_thread(broker.start)

    async with Store(url) as store:
        async with cloud_worker(broker.host, broker.port, store, f"{unique_id}-cloud") as worker, \
                running(uplink.run):
            await drive_ward(beds, agent, sub, duration_s=80.0, at_tick=at_tick)
            await agent.close()
            await until(lambda: outbox.total_depth == 0
                        and uplink.counters.receipts.get("stored", 0) >= len(sink.alert_ids), "every receipt")
            counters, cloud_counters = uplink.counters, worker.counters
        # the edge raised alarms during the partition, and windows overflowed its budget meanwhile
        assert len(raised_during) >= 2 and cut["evicted"] > 0
        assert counters.reconnects >= 1 or counters.connect_failures >= 1
        # every alert the edge raised is in the cloud, exactly once
        assert len(set(sink.alert_ids)) == len(sink.alert_ids) >= 5
        assert [(await store.get_alert(a)).alert.alert_id for a in sink.alert_ids] == sink.alert_ids
        assert await store.count_alerts() == len(sink.alert_ids)
        # the windows add up: stored + evicted-and-counted = produced, and the stored ones are those not evicted
        stored = []
        for window_id in sink.window_ids:
            try:
                await store.window_meta(window_id)
                stored.append(window_id)
            except LookupError:
                pass
        evicted = outbox.evicted()[Kind.WINDOW]
        assert await store.count_windows() == len(stored)
        assert len(stored) + evicted == len(sink.window_ids)
        assert outbox.total_depth == 0 and outbox.dead() == [] and cloud_counters.rejected_total == 0
    outbox.close()
    sink.close()
