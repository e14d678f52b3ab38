"""Issue 13, end to end: a broker restart while the cloud is offline loses no alert and no window.

A scripted ward (the simulator's ground truth: VT and asystole) runs through a real edge agent into
its SQLite outbox; the real uplink publishes over MQTT 5 to a private Mosquitto while the real cloud
ingest worker (shared subscription, persistent session) is offline; the broker is killed and
restarted (with persistence on, and off); then the cloud comes back on a real store (SQLite). Messages
published meanwhile are lost for the cloud's shared subscription (issue 13: 0 of 30 in a broker-only
test), so only the edge's resends on a missing receipt bring them: afterwards every alert the edge
raised is in the cloud exactly once, every window it produced too, and the outbox is empty.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.ingest import IngestWorker
from cloud.store import Store, upgrade_database
from ecgstream.edge_sim import run_ward_into_agent
from edge.agent import AgentConfig, EdgeAgent
from edge.uplink import Outbox, Uplink
from protocol.messages import Alert
from tests.conftest import MosquittoProcess
from tests.fault_support import RecordingSink, cloud_worker, running, until, ward

pytestmark = pytest.mark.mosquitto


WARD = """
name = "receipts-e2e"
duration_s = 60
seed = 5
[[patient]]
id = "{p}-1"
device = "{p}-d1"
heart_rate = 72
rhythm = [ {{ at = 0, name = "sinus" }}, {{ at = 15, name = "vt", heart_rate = 180 }}, {{ at = 30, name = "sinus" }} ]
[[patient]]
id = "{p}-2"
device = "{p}-d2"
heart_rate = 64
rhythm = [ {{ at = 0, name = "sinus" }}, {{ at = 20, name = "asystole" }}, {{ at = 28, name = "sinus" }} ]
"""


@pytest.fixture
def persistence_dir() -> Iterator[Path]:
    """A folder mosquitto can write after dropping root (pytest's tmp_path is 0700)."""
    with tempfile.TemporaryDirectory(prefix="ecgstream-mosquitto-") as folder:
        Path(folder).chmod(0o777)
        yield Path(folder)


@pytest.mark.parametrize("persistence", [True, False], ids=["persistence-on", "persistence-off"])
async def test_a_broker_restart_with_the_cloud_offline_loses_nothing_the_edge_raised(
        tmp_path: Path, persistence_dir: Path, mosquitto_process: MosquittoProcess, unique_id: str,
        persistence: bool) -> None:
    if persistence:
        mosquitto_process.stop()
        with (tmp_path / "mosquitto.conf").open("a") as f:
            f.write(f"persistence true\npersistence_location {persistence_dir}/\nautosave_interval 1\n")
        mosquitto_process.start()
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    cloud_id = f"{unique_id}-cloud"
    async with Store(url) as store:
        async with cloud_worker(mosquitto_process.host, mosquitto_process.port, store, cloud_id):
            pass                                   # the cloud's persistent session exists; the cloud goes offline

        # the edge raises its alarms and cuts its windows from the scripted ward into its outbox
        outbox = Outbox(tmp_path / "outbox.sqlite")
        sink = RecordingSink(outbox)
        agent = EdgeAgent(AgentConfig(gateway_id=f"{unique_id}-gw"), sink)
        beds, sub = ward(WARD.format(p=unique_id))
        await run_ward_into_agent(beds, agent, sub, duration_s=60.0)
        await agent.close()
        assert len(sink.alert_ids) >= 2 and len(sink.window_ids) >= 10
        uplink = Uplink(outbox, hostname=mosquitto_process.host, port=mosquitto_process.port,
                        gateway_id=f"{unique_id}-gw", heartbeat_s=None, poll_s=0.05, backoff_initial_s=0.1,
                        backoff_max_s=0.5, receipt_timeout_s=2.0, receipt_timeout_max_s=4.0)
        async with running(uplink.run):
            n = len(sink.alert_ids) + len(sink.window_ids)
            await until(lambda: uplink.counters.acked >= n, "the broker to take everything (PUBACK)")
            assert outbox.total_depth == n                      # nothing deleted on a PUBACK alone
            await asyncio.sleep(1.5 if persistence else 0)      # the broker's autosave has them
            mosquitto_process.stop()                            # the broker restarts, the cloud still offline
            mosquitto_process.start()
            async with cloud_worker(mosquitto_process.host, mosquitto_process.port, store, cloud_id) as worker:
                # the outbox row goes in the uplink's thread before its counters move: wait for both
                await until(lambda: outbox.total_depth == 0 and uplink.counters.receipts.get("stored", 0) >= n,
                             "every message receipted")
                counters = uplink.counters
        stored_alerts = [(await store.get_alert(a)).alert.alert_id for a in sink.alert_ids]
        assert stored_alerts == sink.alert_ids                   # every alert the edge raised …
        assert await store.count_alerts() == len(sink.alert_ids)  # … exactly once
        assert await store.count_windows() == len(sink.window_ids)
        for window_id in sink.window_ids:
            await store.window_meta(window_id)
        outbox.close()
    if not persistence:
        assert counters.resends >= n                           # the broker forgot them all: the edge sent them again
    assert counters.receipts.get("stored", 0) == n and worker.counters.rejected_total == 0
    sink.close()


async def test_messages_the_cloud_rejects_are_kept_dead_and_not_resent(
        tmp_path: Path, mosquitto_process: MosquittoProcess, unique_id: str) -> None:
    """A rejection is final (``wrong_patient`` here): the cloud says so in the receipt, and the edge stops
    resending it but keeps it, counted, for the operator. The good alert of the same batch is stored."""
    from edge.uplink import Kind, State
    from protocol.messages import AlertCategory, Priority, encode_message
    from protocol.topics import alert_topic

    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)

    def alert(device: str) -> Alert:
        return Alert(alert_id=Alert.new_id(), patient_id=f"{unique_id}-p", device_id=device, alert_type="vt",
                     category=AlertCategory.CLINICAL, priority=Priority.HIGH, onset_gateway_us=1_700_000_000_000_000)

    good, bad = alert(f"{unique_id}-d"), alert(f"{unique_id}-other")
    async with Store(url) as store:
        await store.add_patient(f"{unique_id}-p")
        await store.add_patient(f"{unique_id}-q")
        await store.add_device(f"{unique_id}-d", f"{unique_id}-p")
        await store.add_device(f"{unique_id}-other", f"{unique_id}-q")       # worn by someone else
        outbox = Outbox(tmp_path / "outbox.sqlite")
        outbox.put_many([(Kind.ALERT, alert_topic(a.patient_id), encode_message(a)) for a in (bad, good)])
        uplink = Uplink(outbox, hostname=mosquitto_process.host, port=mosquitto_process.port,
                        gateway_id=f"{unique_id}-gw", heartbeat_s=None, poll_s=0.05, receipt_timeout_s=1.0,
                        receipt_timeout_max_s=1.0)
        worker = IngestWorker(store, hostname=mosquitto_process.host, port=mosquitto_process.port, group="cloud",
                              client_id=f"{unique_id}-cloud", backoff_initial_s=0.1, backoff_max_s=0.5)
        async with running(worker.run), running(uplink.run):
            await until(lambda: outbox.total_depth == 1 and len(outbox.dead()) == 1
                         and sum(uplink.counters.receipts.values()) >= 2, "the receipts")
            await asyncio.sleep(1.5)               # longer than the receipt timeout: a dead message is not resent
            (dead,) = outbox.dead()
            counters = uplink.counters
        assert (dead.message_id, dead.state, dead.reason) == (bad.alert_id, State.DEAD, "wrong_patient")
        assert dead.attempts == 1 and counters.resends == 0
        assert counters.rejected == {"wrong_patient": 1} and counters.receipts == {"stored": 1, "rejected": 1}
        assert (await store.get_alert(good.alert_id)).alert == good and await store.count_alerts() == 1
        outbox.close()
