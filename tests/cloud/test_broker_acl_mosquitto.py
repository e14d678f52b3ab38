"""Issue 16: one device's credentials must not let it take the cloud's traffic, against a real
Mosquitto configured by docs/deployment/mosquitto-cloud.conf with the generated files.

What an attacker with dev-a's password tried, and what the broker must do:

- join the cloud's shared subscription ``$share/cloud/ecgstream/v1/patient/+/alert`` with a
  persistent session (with the ``acl_file`` alone, Mosquitto 2.0 granted it and dropped the alerts it
  handed to the device: 20 of 40 lost to the cloud) — refused, and the cloud stores every alert;
- subscribe to the alerts directly, or to ``#`` — refused, and the device receives nothing;
- publish as device B or as a gateway — dropped;
- connect with the ingest worker's client id (a session take-over took 10 of 10 queued alerts) —
  the worker's connection and queue are untouched.

And the parts that must keep working: a real cloud ingest worker (its shared subscriptions are all
granted and it stores what the gateway sends), a gateway's ingest (receives its own devices only)
and its uplink (publishes for its patients).

Issue 13's downlinks (receipts and staff acks, both on the gateway uplink's own connection): the real
:class:`~edge.uplink.Uplink` of gw-a gets its receipts from the real ingest worker (account ``<s>``)
and its acks from the real :class:`~cloud.downlink.AckPublisher` (account ``<s>-downlink``); a device
or another gateway cannot read them, and nobody else can write them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud.broker_auth import GatewaySpec, downlink_account, generate_broker_auth
from cloud.downlink import AckPublisher
from cloud.ingest import IngestWorker
from cloud.store import Store
from edge.downlink import DownlinkListener
from edge.uplink import Outbox, Uplink
from protocol.downlink import AlarmAck
from protocol.messages import encode_message
from protocol.topics import (
    alert_topic,
    device_status_topic,
    gateway_ack_topic,
    gateway_receipt_topic,
    gateway_status_topic,
    samples_topic,
)
from tests.cloud import test_broker_auth as auth_tests
from tests.cloud.conftest import make_alert
from tests.cloud.test_broker_auth import AuthBroker, receive_until
from tests.cloud.test_downlink import latched_edge
from tests.conftest import mosquitto_binary, skip_or_fail

pytestmark = pytest.mark.mosquitto

WAIT_S = 30.0
V5 = aiomqtt.ProtocolVersion.V5
SHARED_ALERTS = "$share/cloud/ecgstream/v1/patient/+/alert"

registry_url = auth_tests.registry_url
registry = auth_tests.registry


@pytest.fixture
async def broker(registry: Store, tmp_path) -> AsyncIterator[tuple[AuthBroker, dict[str, str], Store]]:
    """dev-a (pat-a), dev-b and dev-c (pat-b); gateway gw-a serves pat-a, gw-b pat-b; one cloud service
    (its ingest worker cloud-ingest and its ack publisher cloud-ingest-downlink)."""
    binary = mosquitto_binary()
    if binary is None:
        skip_or_fail("the mosquitto binary is not installed")
        return
    result = await generate_broker_auth(registry, tmp_path / "auth", gateways=[GatewaySpec("gw-a", ("pat-a",)),
                                                                         GatewaySpec("gw-b", ("pat-b",))],
                                        services=["cloud-ingest"])
    b = AuthBroker(binary, tmp_path, tmp_path / "auth")
    try:
        yield b, {c.username: c.password for c in result.credentials}, registry
    finally:
        b.stop()


def persistent(broker: AuthBroker, username: str, password: str, identifier: str) -> aiomqtt.Client:
    """An MQTT 5 client with a persistent session (clean start off, one hour's expiry)."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    return broker.client(username, password, identifier=identifier, protocol=V5, clean_start=False,
                         properties=props)


def refused(codes: Sequence[int | ReasonCode]) -> bool:
    """Whether every SUBACK reason code is a failure (0x80 and up: "not authorized" here)."""
    return all((c.value if isinstance(c, ReasonCode) else c) >= 0x80 for c in codes)


async def until(cond: Callable[[], object], what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not cond():
            await asyncio.sleep(0.05)
    assert cond(), what


@contextlib.asynccontextmanager
async def ingest_worker(broker: AuthBroker, pw: dict[str, str], store: Store) -> AsyncIterator[IngestWorker]:
    """The real cloud ingest worker, with the cloud-ingest account (shared group "cloud")."""
    worker = IngestWorker(store, hostname=broker.host, port=broker.port, group="cloud", client_id="cloud-ingest",
                          username="cloud-ingest", password=pw["cloud-ingest"], session_expiry_s=3600,
                          backoff_initial_s=0.1, backoff_max_s=1.0)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.subscribed.wait(), WAIT_S)  # it raises if any subscription is refused
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def nothing_pending(client: aiomqtt.Client, own_topic: str) -> bool:
    """Whether ``client`` holds no delivered message, checked after a QoS 1 round trip on its own
    connection: the broker queues a delivery to every subscriber while it handles the PUBLISH, so
    anything routed to this client before now arrives before this PUBACK."""
    await client.publish(own_topic, b"{}", qos=1)
    return len(client.messages) == 0


async def test_a_device_cannot_join_the_clouds_shared_subscription(broker) -> None:
    b, pw, store = broker
    async with ingest_worker(b, pw, store) as worker, persistent(b, "dev-a", pw["dev-a"], "dev-a") as thief:
        assert refused(await thief.subscribe(SHARED_ALERTS, qos=1))
        assert refused(await thief.subscribe("$share/cloud/ecgstream/v1/#", qos=1))
        async with b.client("gw-a", pw["gw-a"], identifier="gw-a") as gw:
            for _ in range(40):
                await gw.publish(alert_topic("pat-a"), encode_message(make_alert("pat-a", device_id="dev-a")), qos=1)
        await until(lambda: worker.counters.alerts_stored == 40, "all 40 alerts stored by the cloud")
        assert await nothing_pending(thief, device_status_topic("dev-a"))
    assert await store.count_alerts() == 40


@pytest.mark.parametrize("topic_filter", [
    "ecgstream/v1/patient/+/alert", "ecgstream/v1/patient/pat-a/alert", "#", "ecgstream/v1/device/+/samples",
    "ecgstream/v1/device/dev-b/status", "$SYS/#", "$CONTROL/dynamic-security/#",
])
async def test_a_device_can_subscribe_to_nothing_and_receives_nothing(broker, topic_filter) -> None:
    b, pw, _ = broker
    async with (b.client("cloud-ingest", pw["cloud-ingest"], identifier="cloud-ingest", protocol=V5) as cloud,
                b.client("dev-a", pw["dev-a"], identifier="dev-a", protocol=V5) as dev):
        assert refused(await cloud.subscribe("ecgstream/v1/patient/+/alert", qos=1)) is False
        assert refused(await dev.subscribe(topic_filter, qos=1))
        async with b.client("gw-a", pw["gw-a"], identifier="gw-a") as gw:
            await gw.publish(alert_topic("pat-a"), b"alert", qos=1)
        async with b.client("dev-b", pw["dev-b"], identifier="dev-b") as dev_b:
            await dev_b.publish(samples_topic("dev-b"), b"samples", qos=1)
            await dev_b.publish(device_status_topic("dev-b"), b"status", qos=1)
        assert await receive_until(cloud, b"alert") == [(alert_topic("pat-a"), b"alert")]
        assert await nothing_pending(dev, device_status_topic("dev-a"))


async def test_a_device_cannot_publish_as_another_device_or_a_gateway(broker) -> None:
    b, pw, _ = broker
    async with b.client("cloud-ingest", pw["cloud-ingest"], identifier="cloud-ingest", protocol=V5) as cloud:
        await cloud.subscribe("$share/cloud/ecgstream/v1/device/+/status", qos=1)
        await cloud.subscribe("$share/cloud/ecgstream/v1/patient/+/alert", qos=1)
        await cloud.subscribe("$share/cloud/ecgstream/v1/gateway/+/status", qos=1)
        async with b.client("dev-a", pw["dev-a"], identifier="dev-a", protocol=V5) as dev:
            await dev.publish(device_status_topic("dev-b"), b"forged-device", qos=1)
            await dev.publish(alert_topic("pat-a"), b"forged-alert", qos=1)
            await dev.publish("ecgstream/v1/gateway/gw-a/status", b"forged-gateway", qos=1)
            await dev.publish(device_status_topic("dev-a"), b"own", qos=1)
        # one connection's publishes are forwarded in order: had a forgery passed, it came first
        assert await receive_until(cloud, b"own") == [(device_status_topic("dev-a"), b"own")]


@pytest.mark.parametrize("attacker", ["dev-a", "gw-a", "gw-a-ingest"])
async def test_no_account_takes_over_the_ingest_workers_session(broker, attacker) -> None:
    b, pw, _ = broker
    # the worker's persistent session, then it goes away (a deploy): the broker queues for it
    async with persistent(b, "cloud-ingest", pw["cloud-ingest"], "cloud-ingest") as cloud:
        assert not refused(await cloud.subscribe(SHARED_ALERTS, qos=1))
    async with b.client("gw-a", pw["gw-a"], identifier="gw-a") as gw:
        for i in range(10):
            await gw.publish(alert_topic("pat-a"), b"queued-%d" % i, qos=1)
    # the attacker connects with the worker's client id, resuming "its" session
    async with persistent(b, attacker, pw[attacker], "cloud-ingest") as thief:
        assert await nothing_pending(thief, device_status_topic("dev-a"))
    async with persistent(b, "cloud-ingest", pw["cloud-ingest"], "cloud-ingest") as cloud:
        got = await receive_until(cloud, b"queued-9")
    assert [p for _, p in got] == [b"queued-%d" % i for i in range(10)]


async def test_a_connection_with_another_accounts_client_id_does_not_disconnect_the_victim(broker) -> None:
    b, pw, _ = broker
    async with persistent(b, "cloud-ingest", pw["cloud-ingest"], "cloud-ingest") as cloud:
        assert not refused(await cloud.subscribe(SHARED_ALERTS, qos=1))
        with contextlib.suppress(aiomqtt.MqttError):  # refused or renamed: either way not a take-over
            async with b.client("dev-a", pw["dev-a"], identifier="cloud-ingest", protocol=V5):
                pass
        async with b.client("gw-a", pw["gw-a"], identifier="gw-a") as gw:
            await gw.publish(alert_topic("pat-a"), b"after", qos=1)
        # the same connection is still up and still gets the alerts
        assert await receive_until(cloud, b"after") == [(alert_topic("pat-a"), b"after")]


async def test_the_cloud_worker_and_the_gateway_still_do_their_jobs(broker) -> None:
    b, pw, store = broker
    async with (ingest_worker(b, pw, store) as worker,
                b.client("gw-a-ingest", pw["gw-a-ingest"], identifier="gw-a-ingest") as gw_in):
        # the gateway's MQTT ingest subscribes as edge.ingest.mqtt does and gets its own devices only
        for f in ("ecgstream/v1/device/+/samples", "ecgstream/v1/device/+/status"):
            assert not refused(await gw_in.subscribe(f, qos=1))
        for dev in ("dev-b", "dev-a"):  # dev-b is pat-b's, not served by gw-a
            async with b.client(dev, pw[dev], identifier=dev) as d:
                await d.publish(samples_topic(dev), dev.encode(), qos=1)
        assert await receive_until(gw_in, b"dev-a") == [(samples_topic("dev-a"), b"dev-a")]
        # the gateway's uplink sends an alert for its patient; the real worker stores it
        alert = make_alert("pat-a", device_id="dev-a")
        async with b.client("gw-a", pw["gw-a"], identifier="gw-a") as gw:
            await gw.publish(alert_topic("pat-b"), encode_message(make_alert("pat-b", device_id="dev-b")), qos=1)
            await gw.publish(alert_topic("pat-a"), encode_message(alert), qos=1)
        await until(lambda: worker.counters.alerts_stored >= 1, "the gateway's alert stored")
        # forwarded in order: pat-b's forgery, sent first and dropped by the broker, never came
        assert worker.counters.received == 1 and worker.counters.rejected_total == 0
    assert (await store.get_alert(alert.alert_id)).alert == alert
    assert await store.count_alerts() == 1


# -- issue 13's downlinks: receipts (the ingest worker) and staff acks (the ack publisher) ------------


@contextlib.asynccontextmanager
async def running(*coroutines: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_gateways_uplink_gets_its_receipts_from_the_worker_and_its_acks_from_the_ack_publisher(
        broker, tmp_path) -> None:
    b, pw, store = broker
    agent, sink, vt = await asyncio.to_thread(latched_edge, "gw-a")       # a VT episode latched at gw-a
    episode = vt.details["episode_id"]
    acks = downlink_account("cloud-ingest")
    assert acks == "cloud-ingest-downlink"
    # the cloud API's ack publisher with its own account (client id = username, as the broker demands)
    publisher = AckPublisher(hostname=b.host, port=b.port, client_id=acks, username=acks, password=pw[acks],
                             backoff_initial_s=0.1, backoff_max_s=1.0)
    # the gateway: one connection (account gw-a) carries its uplink, its receipts and its acks
    listener = DownlinkListener(agent, gateway_id="gw-a")
    outbox = Outbox(tmp_path / "outbox.sqlite")
    uplink = Uplink(outbox, hostname=b.host, port=b.port, gateway_id="gw-a", username="gw-a", password=pw["gw-a"],
                    downlink=listener, heartbeat_s=None, backoff_initial_s=0.1, backoff_max_s=1.0)
    try:
        async with ingest_worker(b, pw, store), running(uplink.run(), publisher.run()):
            await asyncio.wait_for(listener.subscribed.wait(), WAIT_S)
            await asyncio.wait_for(publisher.connected.wait(), WAIT_S)
            assert uplink.counters.receipt_subscription_refused == 0 and listener.counters.subscription_refused == 0
            # an alert goes up; the worker stores it and its receipt comes back down: the outbox forgets it
            alert = make_alert("pat-a", device_id="dev-a")
            await uplink.submit_alert(alert)
            await until(lambda: uplink.counters.receipts.get("stored") == 1, "the cloud's receipt at the gateway")
            await until(lambda: uplink.counters.depth == 0, "the outbox to forget the receipted alert")
            # staff acknowledge the latched episode in the cloud: the ack comes down and releases it
            before = len(sink.alerts)
            publisher.submit("gw-a", AlarmAck(episode_id=episode, patient_id="p-vt", acknowledged_by="dr.osei",
                                              at_us=1_765_000_000_000_000))
            await until(lambda: not agent.sessions["d-vt"].engine.latched, "the ack to release the episode")
            assert publisher.counters.refused == {} and publisher.counters.published == 1
            assert listener.counters.outcomes == {"applied": 1} and listener.counters.connects == 1
            (cleared,) = sink.alerts[before:]
            assert (cleared.details["event"], cleared.details["reason"]) == ("cleared", "acknowledged")
            assert uplink.counters.refused == {} and uplink.counters.bad_receipts == 0
    finally:
        outbox.close()
    assert (await store.get_alert(alert.alert_id)).alert == alert


async def test_only_the_gateway_reads_and_only_the_cloud_writes_its_receipts_and_acks(broker) -> None:
    b, pw, _ = broker
    acks, receipts = gateway_ack_topic("gw-a"), gateway_receipt_topic("gw-a")
    async with (b.client("gw-a", pw["gw-a"], identifier="gw-a", protocol=V5) as gw_a,
                b.client("gw-b", pw["gw-b"], identifier="gw-b", protocol=V5) as gw_b,
                b.client("dev-a", pw["dev-a"], identifier="dev-a", protocol=V5) as dev):
        for topic_filter in (acks, receipts):
            assert not refused(await gw_a.subscribe(topic_filter, qos=1))
        # a device, another gateway and the gateway's own ingest cannot read gw-a's acks or receipts
        for f in (acks, receipts, "ecgstream/v1/gateway/+/ack", "ecgstream/v1/gateway/+/receipt",
                  "ecgstream/v1/gateway/gw-a/#"):
            assert refused(await dev.subscribe(f, qos=1)), f
            assert refused(await gw_b.subscribe(f, qos=1)), f
        async with b.client("gw-a-ingest", pw["gw-a-ingest"], identifier="gw-a-ingest", protocol=V5) as gw_in:
            assert refused(await gw_in.subscribe(acks, qos=1)) and refused(await gw_in.subscribe(receipts, qos=1))
        # nobody but <s>-downlink may publish an ack, nobody but <s> a receipt (gw-a itself included);
        # each forgery is PUBACKed (routed or dropped) before the next publish, so had one passed it
        # would reach gw-a before the genuine messages sent last
        await gw_a.publish(acks, b"ack-forged-by-gw-a", qos=1)           # on its own connection (its client id)
        await gw_a.publish(receipts, b"receipt-forged-by-gw-a", qos=1)
        await dev.publish(acks, b"ack-forged-by-dev-a", qos=1)
        await dev.publish(receipts, b"receipt-forged-by-dev-a", qos=1)
        await gw_b.publish(acks, b"ack-forged-by-gw-b", qos=1)
        await gw_b.publish(receipts, b"receipt-forged-by-gw-b", qos=1)
        for name in ["gw-a-ingest", "cloud-ingest", "cloud-ingest-downlink"]:
            async with b.client(name, pw[name], identifier=name, protocol=V5) as forger:
                if name != "cloud-ingest-downlink":
                    await forger.publish(acks, f"ack-forged-by-{name}".encode(), qos=1)
                if name != "cloud-ingest":
                    await forger.publish(receipts, f"receipt-forged-by-{name}".encode(), qos=1)
        async with b.client("cloud-ingest", pw["cloud-ingest"], identifier="cloud-ingest", protocol=V5) as cloud:
            await cloud.publish(receipts, b"receipt", qos=1)
        async with b.client("cloud-ingest-downlink", pw["cloud-ingest-downlink"], identifier="cloud-ingest-downlink",
                            protocol=V5) as ack_publisher:
            assert refused(await ack_publisher.subscribe(acks, qos=1))            # it writes, it never reads
            await ack_publisher.publish(acks, b"ack", qos=1)
        got = await receive_until(gw_a, b"ack")
        assert got == [(receipts, b"receipt"), (acks, b"ack")]
        assert await nothing_pending(gw_b, gateway_status_topic("gw-b"))
        assert await nothing_pending(dev, device_status_topic("dev-a"))


# -- the ward's live stream: the gateway's uplink publishes it, the cloud's live relay (<s>-live) reads it --


async def test_the_live_relay_account_receives_the_gateways_live_stream_and_nobody_else_can_read_it(broker) -> None:
    import numpy as np

    from cloud.api.live import LiveRelay
    from cloud.broker_auth import live_account
    from protocol.live_payload import LiveChunk, encode_live_chunk
    from protocol.topics import live_topic

    b, pw, _ = broker
    name = live_account("cloud-ingest")
    assert name == "cloud-ingest-live"
    relay = LiveRelay(hostname=b.host, port=b.port, client_id=name, username=name, password=pw[name])
    async with running(relay.run()):
        await asyncio.wait_for(relay.subscribed.wait(), WAIT_S)
        async with (b.client("gw-a", pw["gw-a"], identifier="gw-a", protocol=V5) as gw,
                    b.client("dev-a", pw["dev-a"], identifier="dev-a", protocol=V5) as dev):
            # a device, the gateway's ingest and the ack publisher cannot read the live stream
            assert refused(await dev.subscribe(live_topic("pat-a"), qos=0))
            async with b.client("gw-a-ingest", pw["gw-a-ingest"], identifier="gw-a-ingest", protocol=V5) as gw_in:
                assert refused(await gw_in.subscribe("ecgstream/v1/patient/+/live", qos=0))
            chunk = LiveChunk("pat-a", "dev-a", 0, 1_765_000_000_000_000, 125.0, ("II",), np.zeros((1, 125), np.int16))
            await dev.publish(live_topic("pat-a"), encode_live_chunk(chunk), qos=1)   # a forgery: dropped
            await gw.publish(live_topic("pat-b"), encode_live_chunk(chunk), qos=1)    # not its patient: dropped
            await gw.publish(live_topic("pat-a"), encode_live_chunk(chunk), qos=1)
            await until(lambda: relay.received["live"] >= 1, "the gateway's live chunk at the relay")
            assert await nothing_pending(dev, device_status_topic("dev-a"))
        assert relay.received == {"live": 1, "vitals": 0, "bad": 0}
