"""The uplink against a real Mosquitto: order, broker loss, kill -9, and the broker's queue limit.

These tests are about the broker leg (delete on PUBACK, ``receipts=False``); the end-to-end receipts,
resends and refusals are in ``test_receipts.py``."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from edge.uplink import Kind, Outbox, Uplink
from protocol.messages import (
    Alert,
    AlertCategory,
    DeviceStatus,
    GatewayStatus,
    Priority,
    decode_message,
    encode_message,
)
from protocol.topics import alert_topic, device_status_topic, gateway_status_topic, window_topic
from protocol.window_payload import EcgWindow, decode_window
from tests.conftest import MosquittoProcess, MqttBroker

pytestmark = pytest.mark.mosquitto

DEPLOYMENT_CONF = Path(__file__).resolve().parents[2] / "docs" / "deployment" / "mosquitto-edge.conf"
Broker = MqttBroker | MosquittoProcess


def _alert(patient_id: str, n: int = 0) -> Alert:
    return Alert(
        alert_id=Alert.new_id(), patient_id=patient_id, device_id="dev-1", alert_type="vt",
        category=AlertCategory.CLINICAL, priority=Priority.HIGH, onset_gateway_us=1_700_000_000_000_000 + n,
    )


def _uplink(box: Outbox, broker: Broker, gateway_id: str, **kw: object) -> Uplink:
    options: dict = {"receipts": False, "heartbeat_s": None, "backoff_initial_s": 0.1, "backoff_max_s": 0.5, "ack_timeout_s": 3.0,
                     "poll_s": 0.05}
    return Uplink(box, hostname=broker.host, port=broker.port, gateway_id=gateway_id, **(options | kw))


@asynccontextmanager
async def _running(uplink: Uplink) -> AsyncIterator[Uplink]:
    task = asyncio.create_task(uplink.run())
    try:
        yield uplink
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


class Subscriber:
    """A cloud-side QoS 1 subscriber with a persistent session that keeps reconnecting."""

    def __init__(self, broker: Broker, client_id: str, topic_filter: str) -> None:
        self.broker, self.client_id, self.topic_filter = broker, client_id, topic_filter
        self.received: list[tuple[str, bytes]] = []
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(self.broker.host, self.broker.port, identifier=self.client_id,
                                          clean_session=False) as client:
                    await client.subscribe(self.topic_filter, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        self.received.append((str(message.topic), bytes(message.payload)))  # type: ignore[arg-type]
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)

    def alert_ids(self) -> list[str]:
        return [decode_message(p, Alert).alert_id for t, p in self.received if t.endswith("/alert")]


@asynccontextmanager
async def _subscribed(broker: Broker, client_id: str, topic_filter: str) -> AsyncIterator[Subscriber]:
    sub = Subscriber(broker, client_id, topic_filter)
    task = asyncio.create_task(sub.run())
    try:
        await asyncio.wait_for(sub.subscribed.wait(), 10)
        yield sub
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_messages_arrive_in_order_alerts_first_and_the_outbox_empties(
        tmp_path: Path, mqtt_broker: MqttBroker, unique_id: str) -> None:
    box = Outbox(tmp_path / "o.db")
    uplink = _uplink(box, mqtt_broker, unique_id, max_inflight=4, heartbeat_s=60.0)
    samples = np.arange(3 * 500, dtype=np.int16).reshape(3, 500)
    windows = [EcgWindow(EcgWindow.new_id(), unique_id, "dev-1", i, 250, ("II", "V1", "V5"), samples) for i in range(10)]
    alerts = [_alert(unique_id, i) for i in range(10)]
    for window in windows:  # queued before the alerts, sent after them
        await uplink.submit_window(window)
    for alert in alerts:
        await uplink.submit_alert(alert)
    async with _subscribed(mqtt_broker, f"{unique_id}-cloud", f"ecgstream/v1/+/{unique_id}/#") as sub, \
            _running(uplink):
        await _until(lambda: len(sub.received) >= 21 and box.total_depth == 0, 20, "20 messages + heartbeat")
    topics = [t for t, _ in sub.received]
    status = [p for t, p in sub.received if t == gateway_status_topic(unique_id)]
    data = [(t, p) for t, p in sub.received if t != gateway_status_topic(unique_id)]
    assert topics.count(gateway_status_topic(unique_id)) >= 1
    assert decode_message(status[0], GatewayStatus).gateway_id == unique_id
    assert [t for t, _ in data] == [alert_topic(unique_id)] * 10 + [window_topic(unique_id)] * 10
    assert [decode_message(p, Alert).alert_id for _, p in data[:10]] == [a.alert_id for a in alerts]
    assert [decode_window(p) for _, p in data[10:]] == windows
    counters = uplink.counters
    assert counters.acked == counters.published == 20 and counters.depth == 0 and counters.retries == 0


async def test_an_alert_the_agent_stores_is_sent_at_once_not_at_the_next_poll(
        tmp_path: Path, mqtt_broker: MqttBroker, unique_id: str) -> None:
    """The gateway's sink writes alerts straight into the outbox and notifies the uplink; an uplink that
    would otherwise look into the outbox only once an hour still sends them at once."""
    from edge.agent import OutboxSink

    box = Outbox(tmp_path / "o.db")
    uplink = _uplink(box, mqtt_broker, unique_id, poll_s=3600.0)
    sink = OutboxSink(box, on_stored=uplink.notify)
    async with _subscribed(mqtt_broker, f"{unique_id}-cloud", f"ecgstream/v1/+/{unique_id}/#") as sub, \
            _running(uplink):
        await _until(lambda: uplink.counters.connected, 10, "the uplink to connect")
        await asyncio.sleep(0.2)                     # the sender found the outbox empty and waits
        alert = _alert(unique_id)
        sink.put_alert(alert)
        await _until(lambda: len(sub.received) >= 1, 10, "the alert")
    assert sub.alert_ids() == [alert.alert_id]
    sink.close()


@pytest.fixture
def store() -> Iterator[Path]:
    """A persistence folder mosquitto can write even after dropping root for its ``mosquitto``
    user (pytest's tmp_path sits under a 0700 folder that user cannot enter)."""
    with tempfile.TemporaryDirectory(prefix="ecgstream-mosquitto-") as folder:
        Path(folder).chmod(0o777)
        yield Path(folder)


def _restart_with(broker: MosquittoProcess, workdir: Path, settings: str) -> None:
    """Restart the private broker with ``settings`` appended to its config."""
    conf = workdir / "mosquitto.conf"  # the conftest fixture's config file
    assert conf.exists(), "the mosquitto_process fixture no longer writes tmp_path/mosquitto.conf"
    broker.stop()
    with conf.open("a") as f:
        f.write(settings)
    broker.start()


async def _saved_after(db: Path, t: float) -> None:
    await _until(lambda: db.exists() and db.stat().st_mtime > t + 0.01, 10, "mosquitto to save its database")


async def test_broker_lost_mid_stream_loses_nothing_and_delivers_after_restart(
        tmp_path: Path, store: Path, mosquitto_process: MosquittoProcess, unique_id: str) -> None:
    _restart_with(mosquitto_process, tmp_path, f"persistence true\npersistence_location {store}/\nautosave_interval 1\n")
    box = Outbox(tmp_path / "o.db")
    uplink = _uplink(box, mosquitto_process, unique_id)
    sent: list[str] = []
    async with _subscribed(mosquitto_process, f"{unique_id}-cloud", alert_topic(unique_id)) as sub, _running(uplink):
        subscribed_at = time.time()
        for i in range(20):  # in step: each alert reached the cloud before the next is queued
            alert = _alert(unique_id, i)
            await uplink.submit_alert(alert)
            sent.append(alert.alert_id)
            await _until(lambda: alert.alert_id in sub.alert_ids(), 10, "an alert")  # noqa: B023
        await _saved_after(store / "mosquitto.db", subscribed_at)  # the cloud's session survives the restart
        mosquitto_process.stop()
        await _until(lambda: not uplink.counters.connected, 10, "the uplink to notice")
        for i in range(20, 50):
            alert = _alert(unique_id, i)
            await uplink.submit_alert(alert)
            sent.append(alert.alert_id)
        await asyncio.sleep(0.3)  # a few reconnect attempts fail
        assert box.depth()[Kind.ALERT] == 30, "the outbox holds every alert sent during the outage"
        assert uplink.counters.acked == 20
        mosquitto_process.start()
        await _until(lambda: set(sent) <= set(sub.alert_ids()), 30, "every alert after the restart")
        await _until(lambda: box.total_depth == 0, 10, "the outbox to empty")
    counters = uplink.counters
    assert counters.reconnects >= 1 and counters.connect_failures >= 1 and counters.acked >= 50


_AGENT = """
import asyncio, sys
from edge.uplink import Outbox, Uplink
from protocol.messages import Alert, AlertCategory, Priority

async def main(path, port, gateway_id, patient_id):
    uplink = Uplink(Outbox(path), hostname="127.0.0.1", port=port, gateway_id=gateway_id, heartbeat_s=None,
                    backoff_initial_s=0.05, backoff_max_s=0.2, receipts=False)
    task = asyncio.create_task(uplink.run())
    i = 0
    while True:
        alert = Alert(alert_id=Alert.new_id(), patient_id=patient_id, device_id="dev-1", alert_type="asystole",
                      category=AlertCategory.CLINICAL, priority=Priority.HIGH, onset_gateway_us=i)
        await uplink.submit_alert(alert)
        print(alert.alert_id, flush=True)
        i += 1
        await asyncio.sleep(0.005)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
"""


async def test_agent_killed_9_during_broker_outage_resumes_and_loses_no_alert(
        tmp_path: Path, mosquitto_process: MosquittoProcess, unique_id: str) -> None:
    path = tmp_path / "o.db"
    mosquitto_process.stop()  # the outage
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _AGENT, str(path), str(mosquitto_process.port), unique_id, unique_id,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    stored: list[str] = []
    try:
        while len(stored) < 60:
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line, "the agent exited early"
            stored.append(line.decode().strip())
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    mosquitto_process.start()
    async with _subscribed(mosquitto_process, f"{unique_id}-cloud", alert_topic(unique_id)) as sub:
        with Outbox(path) as box:
            assert box.depth()[Kind.ALERT] >= len(stored)
            uplink = _uplink(box, mosquitto_process, unique_id)
            async with _running(uplink):
                await _until(lambda: set(stored) <= set(sub.alert_ids()), 30, "every stored alert")
                await _until(lambda: box.total_depth == 0, 10, "the outbox to empty")


async def _publish_while_offline(broker: MosquittoProcess, tmp_path: Path, unique_id: str,
                                 n: int) -> tuple[set[str], set[str]]:
    """Cloud subscribes (persistent session) and goes offline; the edge publishes ``n`` alerts;
    the cloud comes back. Returns (sent ids, received ids)."""
    cloud = f"{unique_id}-cloud"
    async with aiomqtt.Client(broker.host, broker.port, identifier=cloud, clean_session=False) as client:
        await client.subscribe(alert_topic(unique_id), qos=1)
    alerts = [_alert(unique_id, i) for i in range(n)]
    with Outbox(tmp_path / f"{unique_id}.db") as box:
        box.put_many([(Kind.ALERT, alert_topic(unique_id), encode_message(a)) for a in alerts])
        uplink = _uplink(box, broker, f"{unique_id}-edge", max_inflight=50)
        async with _running(uplink):
            await _until(lambda: box.total_depth == 0, 60, "the edge to publish everything")
        assert uplink.counters.acked == n
    received: set[str] = set()
    async with aiomqtt.Client(broker.host, broker.port, identifier=cloud, clean_session=False) as client:
        while len(received) < n:
            try:
                async with asyncio.timeout(2.0):  # the broker has sent all it kept when it goes quiet
                    message = await anext(client.messages)
            except TimeoutError:
                break
            received.add(decode_message(bytes(message.payload), Alert).alert_id)  # type: ignore[arg-type]
    return {a.alert_id for a in alerts}, received


@pytest.mark.slow
async def test_mosquitto_default_queue_drops_qos1_beyond_1000_and_the_project_config_keeps_all(
        tmp_path: Path, store: Path, mosquitto_process: MosquittoProcess, unique_id: str) -> None:
    # default config: max_queued_messages 1000 per offline persistent subscriber
    sent, received = await _publish_while_offline(mosquitto_process, tmp_path, unique_id, 1500)
    assert received < sent
    assert len(received) == 1000, f"expected Mosquitto's default 1000-message queue, got {len(received)}"
    # the deployment config (with its persistence folder pointed at the test's)
    conf = DEPLOYMENT_CONF.read_text()
    conf = re.sub(r"(?m)^persistence_location .*$", f"persistence_location {store}/", conf)
    _restart_with(mosquitto_process, tmp_path, conf)
    sent, received = await _publish_while_offline(mosquitto_process, tmp_path, f"{unique_id}b", 1500)
    assert received == sent


async def test_heartbeat_publishes_each_devices_status_on_its_topic(
        tmp_path: Path, mqtt_broker: MqttBroker, unique_id: str) -> None:
    dev = f"{unique_id}-dev"
    reports = [DeviceStatus(dev, 1_000, battery_pct=64, connected=True, lead_off=("V1",))]
    uplink = _uplink(Outbox(tmp_path / "o.db"), mqtt_broker, unique_id, heartbeat_s=0.2,
                     device_statuses=lambda: reports)
    async with _subscribed(mqtt_broker, f"{unique_id}-cloud", device_status_topic(dev)) as sub, _running(uplink):
        await _until(lambda: len(sub.received) >= 1, 20, "the device status")
        reports[:] = [DeviceStatus(dev, 2_000, battery_pct=63, connected=False)]
        await _until(lambda: any(decode_message(p, DeviceStatus).t_device_us == 2_000 for _, p in sub.received),
                     20, "the next report")
    assert decode_message(sub.received[0][1], DeviceStatus) == DeviceStatus(dev, 1_000, battery_pct=64, connected=True,
                                                                            lead_off=("V1",))
    assert decode_message(sub.received[-1][1], DeviceStatus).connected is False
