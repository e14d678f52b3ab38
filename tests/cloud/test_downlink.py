"""Acknowledgements reach the edge (issue 13): dashboard ack → cloud downlink → edge gateway, on Mosquitto.

A simulated patient's VT episode ends while nobody has acknowledged it, so the edge keeps it latched.
A clinician acknowledges it through the API; the cloud publishes the ack on the gateway's ack topic
(``cloud.downlink.AckPublisher``), the edge's listener (``edge.downlink.DownlinkListener``) applies it,
the edge sends the episode's ``cleared`` message and the cloud shows the alarm released. Also: an ack
made while no broker answers is stored at once and delivered once one answers; an episode
whose alerts name no gateway is counted as unroutable; the cloud service starts the publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from cloud.config import ConfigError, DatabaseConfig, HttpConfig, RunConfig, parse_settings
from cloud.downlink import AckPublisher
from cloud.service import ServiceInfo, run_service
from cloud.store import Store, upgrade_database
from ecgstream.edge_sim import run_scenario_into_agent
from edge.agent import AgentConfig, EdgeAgent, MemorySink
from edge.downlink import DownlinkListener
from edge.uplink import Outbox, Uplink
from firmware_sim.scenario import parse_scenario
from protocol.downlink import decode_alarm_ack
from protocol.messages import Alert
from protocol.topics import gateway_ack_topic
from tests.cloud.api_support import CLINICIAN, Api, fast_settings, make_api, until
from tests.cloud.conftest import make_alert
from tests.conftest import MqttBroker, free_port

VT_ONCE = """
name = "vt-once"
duration_s = 70
seed = 3

[[patient]]
id = "p-vt"
device = "d-vt"
heart_rate = 70
rhythm = [ { at = 0, name = "sinus" }, { at = 25, name = "vt", heart_rate = 180 }, { at = 40, name = "sinus" } ]
"""


def latched_edge(gateway_id: str) -> tuple[EdgeAgent, MemorySink, Alert]:
    """A gateway's agent after one VT episode that ended unacknowledged (latched at the edge)."""
    sink = MemorySink()
    agent = EdgeAgent(AgentConfig(gateway_id=gateway_id, patients={"d-vt": "p-vt"}), sink)
    asyncio.run(run_scenario_into_agent(parse_scenario(VT_ONCE), agent))
    (vt,) = [a for a in sink.alerts if a.alert_type == "vt"]
    assert list(agent.sessions["d-vt"].engine.latched) == [vt.details["episode_id"]]
    return agent, sink, vt


@contextlib.asynccontextmanager
async def running(*coroutines: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run the coroutines as tasks while the block runs; cancel them after it."""
    started = [asyncio.create_task(c) for c in coroutines]
    try:
        yield
    finally:
        for t in started:
            t.cancel()
        await asyncio.gather(*started, return_exceptions=True)


def ward_api(tmp_path: Path) -> contextlib.AbstractAsyncContextManager[Api]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    return make_api(url)


async def test_an_ack_in_the_dashboard_unlatches_the_episode_at_the_edge(
        tmp_path: Path, mqtt_broker: MqttBroker, unique_id: str) -> None:
    agent, sink, vt = await asyncio.to_thread(latched_edge, unique_id)
    async with ward_api(tmp_path) as api:
        store = api.store
        await store.add_patient("p-vt", "Ada")
        await store.add_device("d-vt", "p-vt", profile="ecgstream-500")
        for a in sink.alerts:                          # what the cloud ingest stored from this gateway
            assert await store.store_alert(a)
        publisher = AckPublisher(hostname=mqtt_broker.host, port=mqtt_broker.port, client_id=f"{unique_id}-cloud")
        api.app.state.ctx.extras["downlink"] = publisher
        api.app.state.ctx.metrics.add_source("downlink", publisher.counters.as_dict)
        listener = DownlinkListener(agent, gateway_id=unique_id)       # fed by the gateway's uplink connection
        outbox = Outbox(tmp_path / "outbox.sqlite")
        uplink = Uplink(outbox, hostname=mqtt_broker.host, port=mqtt_broker.port, gateway_id=unique_id,
                        downlink=listener, heartbeat_s=None)
        async with running(publisher.run(), uplink.run()):
            await asyncio.wait_for(listener.subscribed.wait(), 30)
            async with api.as_user(CLINICIAN) as c:
                r = await c.post(f"/api/alerts/{vt.alert_id}/ack", json={"note": "on my way"})
            assert r.status_code == 200, r.text
            engine = agent.sessions["d-vt"].engine
            await until(lambda: not engine.latched, "the edge to unlatch the episode")
        (cleared,) = [a for a in sink.alerts if a.details["event"] == "cleared" and a.alert_type == "vt"]
        assert cleared.details["reason"] == "acknowledged" and cleared.details["episode_id"] == vt.alert_id
        assert agent.active_alerts() == 0
        assert await store.store_alert(cleared)        # the edge's clear, as ingest stores it
        episode = await store.get_episode(vt.alert_id)
        assert episode.cleared and episode.acknowledged_by == CLINICIAN[0]
        outbox.close()
        assert listener.counters.outcomes == {"applied": 1}
        assert (publisher.counters.queued, publisher.counters.published, publisher.pending) == (1, 1, 0)
        async with api.client() as c:
            metrics = (await c.get("/metrics")).text
        assert re.search(r"^ecgstream_cloud_downlink_published_total 1\.0$", metrics, re.M), metrics


async def test_an_ack_made_while_no_broker_answers_is_stored_and_delivered_once_one_does(
        tmp_path: Path, mqtt_broker: MqttBroker, unique_id: str) -> None:
    async with ward_api(tmp_path) as api:
        vt = make_alert("pat-1")
        vt = dataclasses.replace(vt, details={**vt.details, "gateway_id": unique_id})
        await api.store.add_patient("pat-1", "Ada")
        await api.store.store_alert(vt)
        publisher = AckPublisher(hostname=mqtt_broker.host, port=free_port(), client_id=f"{unique_id}-cloud",
                                 backoff_max_s=1.0)            # nothing listens there: the broker is down
        api.app.state.ctx.extras["downlink"] = publisher
        async with running(publisher.run()):
            async with api.as_user(CLINICIAN) as c:
                r = await c.post(f"/api/alerts/{vt.alert_id}/ack", json={"note": "seen"})
            assert r.status_code == 200                      # stored whatever the broker does
            assert (await api.store.get_episode(vt.alert_id)).acknowledged_by == CLINICIAN[0]
            await until(lambda: publisher.counters.connection_errors >= 2, "failed connections")
            assert (publisher.pending, publisher.counters.queued, publisher.counters.published) == (1, 1, 0)
            async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"{unique_id}-gw",
                                      protocol=aiomqtt.ProtocolVersion.V5) as gw:
                await gw.subscribe(gateway_ack_topic(unique_id), qos=1)
                publisher.port = mqtt_broker.port            # the broker is reachable again
                message = await asyncio.wait_for(anext(aiter(gw.messages)), 30)
            await until(lambda: publisher.pending == 0, "the queue to drain")
    ack = decode_alarm_ack(bytes(message.payload))  # type: ignore[arg-type]
    assert (ack.episode_id, ack.patient_id, ack.acknowledged_by, ack.note) == (vt.alert_id, "pat-1", CLINICIAN[0],
                                                                               "seen")
    assert (publisher.counters.published, publisher.counters.dropped) == (1, 0)


async def test_an_episode_whose_alerts_name_no_gateway_is_counted_as_unroutable(tmp_path: Path) -> None:
    async with ward_api(tmp_path) as api:
        vt = make_alert("pat-1")                       # a sender that does not say which gateway it is
        await api.store.add_patient("pat-1", "Ada")
        await api.store.store_alert(vt)
        publisher = AckPublisher(hostname="127.0.0.1", port=1, client_id="unused")   # never started
        api.app.state.ctx.extras["downlink"] = publisher
        async with api.as_user(CLINICIAN) as c:
            r = await c.post(f"/api/alerts/{vt.alert_id}/ack")
        assert r.status_code == 200 and r.json()["acknowledged_by"] == CLINICIAN[0]
        assert (publisher.counters.unroutable, publisher.counters.queued, publisher.pending) == (1, 0, 0)


async def test_cloud_run_starts_the_publisher_and_an_api_ack_goes_out_on_the_gateway_topic(
        tmp_path: Path, mqtt_broker: MqttBroker, unique_id: str) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    base = fast_settings()
    settings = dataclasses.replace(
        base, database=DatabaseConfig(url=url), http=HttpConfig(port=0),
        broker=dataclasses.replace(base.broker, host=mqtt_broker.host, port=mqtt_broker.port, client_id=unique_id),
        run=RunConfig(ingest=False, api=True, escalation=False, models=False))
    ready: asyncio.Future[ServiceInfo] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    service = asyncio.create_task(run_service(settings, stop=stop, handle_signals=False, on_ready=ready.set_result))
    try:
        info = await asyncio.wait_for(ready, 60)
        assert info.downlink is not None and info.app.state.ctx.extras["downlink"] is info.downlink
        assert info.downlink.client_id == f"{unique_id}-downlink"
        store: Store = info.store
        vt = make_alert("pat-1")
        vt = dataclasses.replace(vt, details={**vt.details, "gateway_id": unique_id})
        await store.add_patient("pat-1", "Ada")
        await store.store_alert(vt)
        await info.app.state.ctx.accounts.create_user(*CLINICIAN, "clinician")
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"{unique_id}-gw",
                                  protocol=aiomqtt.ProtocolVersion.V5) as gw:
            await gw.subscribe(gateway_ack_topic(unique_id), qos=1)
            await asyncio.wait_for(info.downlink.connected.wait(), 30)
            assert info.http_url is not None
            async with httpx.AsyncClient(base_url=info.http_url, timeout=30) as c:
                r = await c.post("/api/auth/login", json={"username": CLINICIAN[0], "password": CLINICIAN[1]})
                c.headers["Authorization"] = f"Bearer {r.json()['token']}"
                assert (await c.post(f"/api/alerts/{vt.alert_id}/ack", json={"note": "seen"})).status_code == 200
            message = await asyncio.wait_for(anext(aiter(gw.messages)), 30)
        ack = decode_alarm_ack(bytes(message.payload))  # type: ignore[arg-type]
        assert (ack.episode_id, ack.acknowledged_by, ack.note) == (vt.alert_id, CLINICIAN[0], "seen")
    finally:
        stop.set()
        await asyncio.wait_for(service, 60)


def test_the_ack_publisher_has_its_own_broker_account_apart_from_the_ingest_worker() -> None:
    """broker-auth binds each account to client id = username and lets only ``<s>-downlink`` publish acks:
    the publisher must not reuse the ingest worker's account (or client id: it would take over its session)."""
    s = parse_settings('[broker]\nusername = "cloud-ingest"\n',
                       env={"ECGSTREAM_CLOUD__BROKER__PASSWORD": "ingest-pw",
                            "ECGSTREAM_CLOUD__DOWNLINK__PASSWORD": "ack-pw"})
    account = s.downlink_account()
    assert (account.username, account.client_id, account.password) == (
        "cloud-ingest-downlink", "cloud-ingest-downlink", "ack-pw")
    assert s.client_id() == "cloud-ingest" and "ack-pw" not in repr(s) + repr(account)
    named = parse_settings('[broker]\nusername = "cloud-ingest"\n[downlink]\nusername = "acks"\n', env={})
    assert (named.downlink_account().username, named.downlink_account().client_id) == ("acks", "acks")
    assert named.downlink_account().password is None          # never the ingest worker's password
    open_broker = parse_settings('[broker]\nclient_id = "cloud-1"\n', env={})
    assert (open_broker.downlink_account().username, open_broker.downlink_account().client_id) == (
        None, "cloud-1-downlink")
    with pytest.raises(ConfigError, match="ECGSTREAM_CLOUD__DOWNLINK__PASSWORD"):
        parse_settings('[downlink]\npassword = "x"\n', env={})      # a secret: only from the environment


async def test_an_ack_reaches_the_gateway_topic_through_the_embedded_mqtt_3_broker(unique_id: str) -> None:
    """The demo's embedded broker speaks MQTT 3.1.1 only: the publisher falls back to it, and the ack arrives."""
    from firmware_sim.embedded_broker import EmbeddedBroker
    from protocol.downlink import AlarmAck

    async with EmbeddedBroker() as broker, aiomqtt.Client(broker.host, broker.port, identifier=f"{unique_id}-gw") as gw:
        await gw.subscribe(gateway_ack_topic(unique_id), qos=1)
        publisher = AckPublisher(hostname=broker.host, port=broker.port, client_id=f"{unique_id}-cloud",
                                 backoff_initial_s=0.1, backoff_max_s=0.5)
        publisher.submit(unique_id, AlarmAck(episode_id="5f0c7d7e-8a43-4c3b-9f0e-2b1a6f1c9d10", patient_id="p-1",
                                             acknowledged_by="nurse", at_us=1_700_000_000_000_000, note="seen"))
        async with running(publisher.run()):
            async with asyncio.timeout(30):
                message = await anext(aiter(gw.messages))
        assert isinstance(message.payload, bytes)
        ack = decode_alarm_ack(message.payload)
        assert (ack.patient_id, ack.acknowledged_by, ack.note) == ("p-1", "nurse", "seen")
        assert not publisher.mqtt5 and publisher.counters.published == 1 and publisher.pending == 0
