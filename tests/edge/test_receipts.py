"""End-to-end receipts, broker refusals and the outbox metrics (issue 13).

The receipt protocol (strict), the outbox's delivery states (published waits for its receipt, a
rejected message is dead, never resent), and against real Mosquitto brokers: alerts leave the outbox
only on the real cloud ingest worker's receipt, and a broker whose ACL refuses the gateway's alert
topic keeps the alert in the outbox and raises the technical alarm ``uplink_refused``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.ingest import IngestWorker
from cloud.store import Store, upgrade_database
from edge.agent import EdgeAgent, MemorySink
from edge.observability.metrics import EdgeMetrics
from edge.uplink import Kind, Outbox, State, Uplink, reason_name
from protocol.errors import ProtocolError, SchemaError, UnsupportedVersionError
from protocol.messages import Alert, AlertCategory, Priority, encode_message
from protocol.receipts import (
    Receipt,
    ReceiptItem,
    ReceiptStatus,
    decode_receipt,
    encode_receipt,
    message_id,
)
from protocol.topics import alert_topic, gateway_receipt_topic, window_topic
from protocol.window_payload import EcgWindow, encode_window
from tests.conftest import MosquittoProcess, MqttBroker

WAIT_S = 30.0


def _alert(patient_id: str, n: int = 0) -> Alert:
    return Alert(alert_id=Alert.new_id(), patient_id=patient_id, device_id="dev-1", alert_type="vt",
                 category=AlertCategory.CLINICAL, priority=Priority.HIGH, onset_gateway_us=1_700_000_000_000_000 + n)


def _window(patient_id: str, n: int = 0) -> EcgWindow:
    samples = (np.arange(3 * 500, dtype=np.int16).reshape(3, 500) + n).astype(np.int16)
    return EcgWindow(EcgWindow.new_id(), patient_id, "dev-1", 1_700_000_000_000_000 + n, 250, ("II", "V1", "V5"),
                     samples)


async def _until(condition: Callable[[], object], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(*runners: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(r()) for r in runners]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- the protocol --------------------------------------------------------------------------------------


def test_a_receipt_round_trips_and_names_each_message_with_its_status() -> None:
    items = (ReceiptItem(str(uuid.uuid4()), ReceiptStatus.STORED), ReceiptItem(str(uuid.uuid4()), ReceiptStatus.DUPLICATE),
             ReceiptItem(str(uuid.uuid4()), ReceiptStatus.REJECTED, "wrong_patient"))
    receipt = Receipt("gw-1", items)
    data = encode_receipt(receipt)
    assert decode_receipt(data) == receipt
    assert [i.delivered for i in decode_receipt(data).items] == [True, True, False]
    assert gateway_receipt_topic("gw-1") == "ecgstream/v1/gateway/gw-1/receipt"


@pytest.mark.parametrize(("text", "error"), [
    ('{"schema_version":2,"gateway_id":"g","items":[]}', UnsupportedVersionError),
    ('{"schema_version":1,"gateway_id":"g","items":[],"items":[]}', SchemaError),
    ('{"schema_version":1,"gateway_id":"g w","items":[]}', SchemaError),
    ('{"schema_version":1,"gateway_id":"g","items":[{"id":"a","status":"lost"}]}', SchemaError),
    ('{"schema_version":1,"gateway_id":"g","items":[{"id":"a","status":"rejected"}]}', SchemaError),
    ('{"schema_version":1,"gateway_id":"g","items":[{"id":"a","status":"stored","reason":"x"}]}', SchemaError),
    ('{"schema_version":1,"gateway_id":"g","items":[{"id":"a/b","status":"stored"}]}', SchemaError),
    ('{"schema_version":1,"gateway_id":"g","items":{}}', SchemaError),
    ('{"schema_version":1.0,"gateway_id":"g","items":[]}', SchemaError),
    ('{"schema_version":1,"gateway_id":"g","items":[NaN]}', SchemaError),
    ("[]", SchemaError),
])
def test_a_bad_receipt_is_refused_with_a_protocol_error(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_receipt(text.encode())


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_decode_receipt_raises_only_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_receipt(data)


def test_message_ids_are_read_from_alert_and_window_payloads() -> None:
    alert, window = _alert("p1"), _window("p1")
    assert message_id("alert", encode_message(alert)) == alert.alert_id
    assert message_id("window", encode_window(window)) == window.window_id
    assert message_id("alert", b"not json") is None and message_id("window", b"ES\x01") is None
    assert message_id("status", b"{}") is None


def test_reason_codes_get_metric_names() -> None:
    assert reason_name(0x87) == "not_authorized" and reason_name(0x97) == "quota_exceeded"


# -- the outbox's delivery states ----------------------------------------------------------------------


def test_a_published_entry_waits_for_its_receipt_and_is_due_again_without_one(tmp_path: Path) -> None:
    alert, window = _alert("p1"), _window("p1")
    with Outbox(tmp_path / "o.db") as box:
        a, w = box.put_many([(Kind.ALERT, alert_topic("p1"), encode_message(alert)),
                             (Kind.WINDOW, window_topic("p1"), encode_window(window))])
        assert [m.message_id for m in box.claim(5)] == [alert.alert_id, window.window_id]
        box.settle(published=[(a, 2_000), (w, 2_000)])             # PUBACKed: wait for the receipt until t=2000 µs
        assert box.claim(5, now_us=1_000) == []                   # not resent while the receipt may still come
        assert box.states()[State.PUBLISHED] == {Kind.ALERT: 1, Kind.STATUS: 0, Kind.WINDOW: 1}
        resent = box.claim(5, now_us=3_000)                       # overdue: sent again
        assert [m.id for m in resent] == [a, w] and all(m.state is State.PUBLISHED for m in resent)
        outcome = box.receipt([ReceiptItem(alert.alert_id, ReceiptStatus.DUPLICATE),
                               ReceiptItem(window.window_id, ReceiptStatus.STORED),
                               ReceiptItem(str(uuid.uuid4()), ReceiptStatus.STORED)])
        assert (outcome.delivered, outcome.dead, outcome.unknown) == (2, 0, 1)
        assert box.total_depth == 0


def test_a_rejected_entry_is_kept_dead_with_its_reason_and_never_sent_again(tmp_path: Path) -> None:
    alert = _alert("p1")
    with Outbox(tmp_path / "o.db") as box:
        (a,) = box.put_many([(Kind.ALERT, alert_topic("p1"), encode_message(alert))])
        box.claim(1)
        box.settle(published=[(a, 0)])
        assert box.receipt([ReceiptItem(alert.alert_id, ReceiptStatus.REJECTED, "wrong_patient")]).dead == 1
        assert box.claim(5, now_us=10**18) == []
        (dead,) = box.dead()
        assert (dead.id, dead.state, dead.reason) == (a, State.DEAD, "wrong_patient")
        assert box.states()[State.DEAD][Kind.ALERT] == 1 and box.depth()[Kind.ALERT] == 1


def test_a_refused_entry_stays_pending_until_its_backoff_is_over(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        a = box.put(Kind.ALERT, alert_topic("p1"), encode_message(_alert("p1")))
        box.claim(1)
        box.settle(refused=[(a, "not_authorized", 5_000)])
        assert box.claim(1, now_us=4_000) == []
        (again,) = box.claim(1, now_us=6_000)
        assert (again.id, again.state, again.reason, again.attempts) == (a, State.PENDING, "not_authorized", 1)


def test_an_outbox_file_from_before_receipts_is_upgraded_in_place(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, topic TEXT NOT NULL,
            payload BLOB NOT NULL, priority INTEGER NOT NULL, created_us INTEGER NOT NULL, size INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0);
        INSERT INTO outbox (kind, topic, payload, priority, created_us, size) VALUES ('alert', 't', x'7b7d', 0, 1, 3);
    """)
    db.commit()
    db.close()
    with Outbox(path) as box:
        (m,) = box.claim(1)
        assert (m.state, m.message_id) == (State.PENDING, None)


def _families(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def test_a_full_outbox_evicts_windows_never_alerts_and_the_metrics_count_them(tmp_path: Path) -> None:
    """Issue 13: the eviction counter stayed 0 while 214 windows were evicted."""
    metrics = EdgeMetrics("gw-1")
    with Outbox(tmp_path / "o.db", max_bytes=60_000) as box:
        metrics.watch_uplink(box)
        alerts = [_alert("p1", i) for i in range(30)]
        for i in range(40):
            box.put(Kind.WINDOW, window_topic("p1"), encode_window(_window("p1", i), level=0))
            if i < len(alerts):
                box.put(Kind.ALERT, alert_topic("p1"), encode_message(alerts[i]))
        evicted = box.evicted()
        assert evicted[Kind.WINDOW] > 0 and evicted[Kind.ALERT] == 0
        assert box.depth()[Kind.ALERT] == len(alerts)             # every alert kept
        text = metrics.render()
    assert f'ecgstream_edge_outbox_evicted_total{{kind="window"}} {float(evicted[Kind.WINDOW])}' in text
    assert 'ecgstream_edge_outbox_evicted_total{kind="alert"} 0.0' in text
    assert f"ecgstream_edge_outbox_evicted_windows_total {float(evicted[Kind.WINDOW])}" in text
    kinds = _families(text)
    assert kinds["ecgstream_edge_outbox_evicted_total"] == "counter"
    assert kinds["ecgstream_edge_outbox_awaiting_receipt"] == "gauge"


def test_the_uplink_series_pass_promtool(tmp_path: Path) -> None:
    from tests.cloud.test_metrics_promtool import check_metrics

    metrics = EdgeMetrics("gw-1")
    with Outbox(tmp_path / "o.db") as box:
        uplink = Uplink(box, hostname="127.0.0.1", gateway_id="gw-1")
        uplink._counters = uplink._counters.__class__(refused={"not_authorized": 2}, receipts={"stored": 3},
                                                      rejected={"wrong_patient": 1}, resends=4)
        metrics.watch_uplink(box, lambda: uplink)
        text = metrics.render()
    check_metrics(text)
    for line in ('ecgstream_edge_uplink_refused_total{reason="not_authorized"} 2.0',
                 'ecgstream_edge_uplink_receipts_total{status="stored"} 3.0',
                 'ecgstream_edge_uplink_rejected_total{reason="wrong_patient"} 1.0',
                 "ecgstream_edge_uplink_resends_total 4.0"):
        assert line in text.splitlines()


def test_qos_0_needs_receipts_off(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        with pytest.raises(ValueError, match="qos 0 is allowed only with receipts off"):
            Uplink(box, hostname="127.0.0.1", gateway_id="gw-1", qos=0)
        assert Uplink(box, hostname="127.0.0.1", gateway_id="gw-1", qos=0, receipts=False).qos == 0


# -- against real brokers ------------------------------------------------------------------------------


def _uplink(box: Outbox, broker: MqttBroker | MosquittoProcess, gateway_id: str, **kw: object) -> Uplink:
    options: dict = {"heartbeat_s": None, "backoff_initial_s": 0.1, "backoff_max_s": 0.5, "ack_timeout_s": 5.0,
                     "poll_s": 0.05, "receipt_timeout_s": 2.0, "receipt_timeout_max_s": 4.0}
    return Uplink(box, hostname=broker.host, port=broker.port, gateway_id=gateway_id, **(options | kw))


@contextlib.asynccontextmanager
async def cloud(broker: MqttBroker | MosquittoProcess, url: str, group: str) -> AsyncIterator[IngestWorker]:
    """The real cloud ingest worker on a real store (SQLite), registry not enforced."""
    async with Store(url) as store:
        worker = IngestWorker(store, hostname=broker.host, port=broker.port, group=group, client_id=f"{group}-ingest",
                              enforce_registry=False, backoff_initial_s=0.1, backoff_max_s=0.5)
        async with running(worker.run):
            await asyncio.wait_for(worker.subscribed.wait(), WAIT_S)
            yield worker


@pytest.mark.mosquitto
async def test_alerts_and_windows_leave_the_outbox_only_on_the_clouds_receipt(
        tmp_path: Path, mosquitto_process: MosquittoProcess, unique_id: str) -> None:
    # a private broker: a cloud worker of another test on a shared broker would answer these messages too
    mqtt_broker = mosquitto_process
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    box = Outbox(tmp_path / "o.db")
    uplink = _uplink(box, mqtt_broker, unique_id)
    alerts = [_alert(unique_id, i) for i in range(5)]
    windows = [_window(unique_id, i) for i in range(3)]
    for a in alerts:
        await uplink.submit_alert(a)
    for w in windows:
        await uplink.submit_window(w)
    async with running(uplink.run):
        # the broker took them all (PUBACK), but no cloud has committed them: they stay
        await _until(lambda: uplink.counters.acked >= 8, "the broker's PUBACKs")
        assert box.total_depth == 8 and sum(box.states()[State.PUBLISHED].values()) == 8
        async with cloud(mqtt_broker, url, f"{unique_id}g") as worker:
            await _until(lambda: box.total_depth == 0, "the cloud's receipts (resends answered)")
        counters = uplink.counters
    assert worker.counters.alerts_stored == 5 and worker.counters.windows_stored == 3
    assert counters.receipts.get("stored", 0) == 8 and counters.resends >= 8
    async with Store(url) as store:
        assert await store.count_alerts() == 5
    box.close()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder mosquitto can read after dropping root (pytest's tmp_path is 0700)."""
    with tempfile.TemporaryDirectory(prefix="ecgstream-acl-") as folder:
        Path(folder).chmod(0o777)
        yield Path(folder)


@pytest.mark.mosquitto
async def test_a_broker_acl_refusal_keeps_the_alert_and_raises_uplink_refused(
        tmp_path: Path, shared_dir: Path, mosquitto_process: MosquittoProcess, unique_id: str) -> None:
    """Issue 13: MQTT 3.1.1 answered a denied publish with a PUBACK and the outbox deleted 8 of 8 alerts.
    The gateway may send windows and read its receipts, but the ACL forgot its alert topic."""
    acl = shared_dir / "acl"
    acl.write_text("topic write ecgstream/v1/patient/+/window\ntopic read ecgstream/v1/gateway/+/receipt\n")
    acl.chmod(0o644)
    mosquitto_process.stop()
    with (tmp_path / "mosquitto.conf").open("a") as f:
        f.write(f"acl_file {acl}\n")
    mosquitto_process.start()
    agent = EdgeAgent(sink=MemorySink())
    box = Outbox(tmp_path / "o.db")
    uplink = _uplink(box, mosquitto_process, unique_id, refusal_backoff_s=60.0, refusal_backoff_max_s=60.0,
                     on_refused=agent.uplink_refused, on_accepted=agent.uplink_accepted)
    alerts = [_alert(unique_id, i) for i in range(8)]
    for a in alerts:
        await uplink.submit_alert(a)
    await uplink.submit_window(_window(unique_id))
    async with running(uplink.run):
        await _until(lambda: uplink.counters.refused.get("not_authorized", 0) >= 8, "the refusals")
        await _until(lambda: uplink.counters.acked >= 1, "the window's PUBACK")
        await asyncio.sleep(0.5)           # the uplink goes on polling: a refused alert is not sent again yet
        counters = uplink.counters
        kept = box.peek(20)
    assert box.depth()[Kind.ALERT] == 8                                  # nothing deleted as if delivered
    assert {m.message_id for m in kept if m.kind is Kind.ALERT} == {a.alert_id for a in alerts}
    assert all(m.reason == "not_authorized" and m.attempts == 1 for m in kept if m.kind is Kind.ALERT)
    assert counters.refused == {"not_authorized": 8}
    assert uplink.refused_topics == {alert_topic(unique_id): "not_authorized"}
    raised = [a for a in agent.sink.alerts if a.alert_type == "uplink_refused"]  # type: ignore[attr-defined]
    assert len(raised) == 1
    assert raised[0].category is AlertCategory.TECHNICAL and raised[0].details["reason"] == "not_authorized"
    assert raised[0].patient_id == unique_id and raised[0].details["event"] == "raised"
    box.close()


@pytest.mark.mosquitto
async def test_the_gateway_publishes_at_the_configured_qos(tmp_path: Path, mqtt_broker: MqttBroker,
                                                           unique_id: str) -> None:
    """Issue 13: ``[uplink] qos`` was validated but ignored (every publish went at QoS 1)."""
    import aiomqtt

    from edge.config import parse_config
    from edge.gateway import Endpoint, Gateway

    config = parse_config(f"""
gateway_id = "{unique_id}"
[ingest.mqtt]
enabled = false
[processing]
reconstruction_model = "{tmp_path / 'none.onnx'}"
[uplink]
host = "{mqtt_broker.host}"
port = {mqtt_broker.port}
qos = 2
receipts = false
outbox_path = "{tmp_path / 'outbox.sqlite'}"
[observability]
status_file = "{tmp_path / 'status.json'}"
""")
    alert = _alert(unique_id)
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"{unique_id}-cloud") as sub:
        await sub.subscribe(alert_topic(unique_id), qos=2)
        async with Gateway(config, uplink=Endpoint(mqtt_broker.host, mqtt_broker.port), mode="sync",
                           uplink_heartbeat_s=None) as gateway:
            assert gateway.uplink is not None and (gateway.uplink.qos, gateway.uplink.receipts) == (2, False)
            assert gateway.outbox_sink is not None
            gateway.outbox_sink.put_alert(alert)
            message = await asyncio.wait_for(anext(sub.messages), WAIT_S)
            assert await gateway.delivered(WAIT_S)
    assert message.qos == 2 and message.payload == encode_message(alert)


@pytest.mark.mosquitto
async def test_a_refused_alert_goes_out_once_the_acl_lets_it_and_the_alarm_clears(
        tmp_path: Path, shared_dir: Path, mosquitto_process: MosquittoProcess, unique_id: str) -> None:
    acl = shared_dir / "acl"
    acl.write_text("topic write ecgstream/v1/patient/+/window\n")
    acl.chmod(0o644)
    mosquitto_process.stop()
    with (tmp_path / "mosquitto.conf").open("a") as f:
        f.write(f"acl_file {acl}\n")
    mosquitto_process.start()
    agent = EdgeAgent(sink=MemorySink())
    box = Outbox(tmp_path / "o.db")
    uplink = _uplink(box, mosquitto_process, unique_id, receipts=False, refusal_backoff_s=0.5,
                     refusal_backoff_max_s=1.0, on_refused=agent.uplink_refused, on_accepted=agent.uplink_accepted)
    alert = _alert(unique_id)
    await uplink.submit_alert(alert)
    async with running(uplink.run):
        await _until(lambda: uplink.refused_topics, "the refusal")
        acl.write_text("topic write ecgstream/v1/patient/+/window\ntopic write ecgstream/v1/patient/+/alert\n")
        mosquitto_process.stop()                  # the operator fixes the ACL
        mosquitto_process.start()
        await _until(lambda: box.total_depth == 0, "the alert delivered")
    assert uplink.refused_topics == {}
    events = [a.details["event"] for a in agent.sink.alerts if a.alert_type == "uplink_refused"]  # type: ignore[attr-defined]
    assert events == ["raised", "cleared"]
    box.close()


@pytest.mark.parametrize("known", [False, True], ids=["found-out", "known-3.1.1"])
async def test_a_broker_without_mqtt_5_is_reached_over_3_1_1(tmp_path: Path, known: bool) -> None:
    """The zero-setup embedded broker (amqtt) speaks MQTT 3.1.1 only and never answers an MQTT 5 CONNECT:
    the uplink still delivers there (deleting on PUBACK, since no receipt can be asked for)."""
    from firmware_sim.embedded_broker import EmbeddedBroker

    async with EmbeddedBroker() as broker:
        with Outbox(tmp_path / "o.db") as box:
            uplink = _uplink(box, MqttBroker(broker.host, broker.port), "gw-embedded", mqtt5=not known)
            await uplink.submit_alert(_alert("p1"))
            async with running(uplink.run):
                await _until(lambda: box.total_depth == 0, "the alert delivered over MQTT 3.1.1")
            assert uplink.counters.protocol == "3.1.1" and uplink.counters.acked == 1
            assert uplink.counters.connect_failures == (0 if known else 1)   # known: no MQTT 5 CONNECT tried


@pytest.mark.mosquitto
async def test_receipts_sent_while_the_gateway_was_away_arrive_when_it_is_back(
        tmp_path: Path, mosquitto_process: MosquittoProcess, unique_id: str) -> None:
    """The uplink's session is persistent (clean start off, a session expiry): the cloud's receipts for
    messages it committed while the gateway was offline wait at the broker, so nothing is sent twice."""
    import aiomqtt

    from cloud.ingest.receipts import ReceiptPublisher

    box = Outbox(tmp_path / "o.db")
    alerts = [_alert(unique_id, i) for i in range(3)]
    for a in alerts:
        box.put(Kind.ALERT, alert_topic(unique_id), encode_message(a))
    first = _uplink(box, mosquitto_process, unique_id, receipt_timeout_s=600.0, receipt_timeout_max_s=600.0)
    async with running(first.run):
        await _until(lambda: first.counters.acked == 3, "the broker's PUBACKs")
    assert sum(box.states()[State.PUBLISHED].values()) == 3          # the gateway goes away before any receipt
    async with aiomqtt.Client(mosquitto_process.host, mosquitto_process.port, identifier=f"{unique_id}-cloud",
                              protocol=aiomqtt.ProtocolVersion.V5) as cloud_client:
        await ReceiptPublisher().publish(cloud_client, unique_id,
                                         [ReceiptItem(a.alert_id, ReceiptStatus.STORED) for a in alerts])
    again = _uplink(box, mosquitto_process, unique_id, receipt_timeout_s=600.0, receipt_timeout_max_s=600.0)
    async with running(again.run):
        await _until(lambda: box.total_depth == 0, "the receipts kept for the gateway")
        await _until(lambda: again.counters.receipts.get("stored") == 3, "the receipts counted")
    assert again.counters.receipts == {"stored": 3} and again.counters.published == 0
    box.close()
