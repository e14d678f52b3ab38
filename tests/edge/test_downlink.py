"""The ack downlink at the edge (issue 13): the AlarmAck codec, and the listener on a real Mosquitto.

A simulated patient's VT episode ends while nobody acknowledged it, so it stays latched at the edge;
an :class:`~protocol.downlink.AlarmAck` published on the gateway's ack topic releases it (the edge
sends the episode's ``cleared`` message), malformed downlink messages are counted and ignored, an
ack published while the gateway was away arrives when it comes back (persistent session), and the
:class:`~edge.gateway.Gateway` feeds the listener from its uplink. The listener has no connection of its
own: the real :class:`~edge.uplink.Uplink` subscribes to the ack topic on its connection (one broker
account, client id = username, as ``ecgstream cloud broker-auth`` demands) and hands acks over.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from ecgstream.edge_sim import run_scenario_into_agent
from edge.agent import AgentConfig, EdgeAgent, MemorySink, OutboxSink
from edge.config import parse_config
from edge.downlink import DownlinkListener
from edge.gateway import Endpoint, Gateway
from edge.uplink import Outbox, Uplink
from firmware_sim.scenario import parse_scenario
from protocol.downlink import AlarmAck, decode_alarm_ack, encode_alarm_ack
from protocol.errors import ProtocolError, SchemaError, UnsupportedVersionError
from protocol.messages import Alert
from protocol.topics import gateway_ack_topic, parse_topic
from protocol.window_payload import EcgWindow
from tests.conftest import MqttBroker

WAIT_S = 20.0
EPISODE = "2f1c5a0e-8a5b-4d4e-9a57-0c7d5f1e2b3a"

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


# -- the codec ---------------------------------------------------------------------------------------


def _ack(**kw: Any) -> AlarmAck:
    return AlarmAck(**{"episode_id": EPISODE, "patient_id": "bed-02", "acknowledged_by": "dr.osei",
                       "at_us": 1_765_000_000_000_000, "note": "called the ward", **kw})


def test_an_ack_round_trips_on_the_gateway_ack_topic() -> None:
    ack = _ack()
    data = encode_alarm_ack(ack)
    assert decode_alarm_ack(data) == ack and json.loads(data)["schema_version"] == 1
    assert decode_alarm_ack(encode_alarm_ack(_ack(note=""))).note == ""
    assert decode_alarm_ack(data.replace(EPISODE.encode(), EPISODE.upper().encode())).episode_id == EPISODE
    assert gateway_ack_topic("gw-7") == "ecgstream/v1/gateway/gw-7/ack"
    t = parse_topic("ecgstream/v1/gateway/gw-7/ack")
    assert (str(t.scope), t.ident, str(t.channel)) == ("gateway", "gw-7", "ack")
    obj = json.loads(data) | {"from_a_newer_sender": 1}     # unknown fields are ignored
    assert decode_alarm_ack(json.dumps(obj)) == ack


def _json(**changes: Any) -> bytes:
    obj = json.loads(encode_alarm_ack(_ack()))
    for k, v in changes.items():
        if v is ...:
            del obj[k]
        else:
            obj[k] = v
    return json.dumps(obj).encode()


@pytest.mark.parametrize("data", [
    b"", b"[]", b"not json", b"\xff\xfe", b"{" * 5000,
    _json(episode_id="not-a-uuid"), _json(episode_id=EPISODE.replace("-", "")), _json(episode_id=7),
    _json(patient_id="bed/02"), _json(patient_id="bed-02\n"), _json(patient_id=""),
    _json(acknowledged_by=""), _json(acknowledged_by="dr\x00osei"), _json(acknowledged_by="x" * 129),
    _json(at_us=-1), _json(at_us=1 << 63), _json(at_us=1.5), _json(at_us=True), _json(at_us="1"),
    _json(note=3), _json(note="x" * 2001), _json(note="a\x00b"),
    _json(episode_id=...), _json(patient_id=...), _json(acknowledged_by=...), _json(at_us=...),
    _json(schema_version=...), _json(schema_version="1"),
    b'{"schema_version": 1, "schema_version": 1}', _json(at_us=float("nan")),
    b'{"at_us": 1e999}', b"x" * 9000,
])
def test_malformed_acks_are_refused_with_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_alarm_ack(data)


def test_an_unknown_schema_version_is_named_and_the_encoder_refuses_what_the_decoder_would() -> None:
    with pytest.raises(UnsupportedVersionError, match="version 2"):
        decode_alarm_ack(_json(schema_version=2))
    for bad in (_ack(episode_id="nope"), _ack(patient_id="a b"), _ack(acknowledged_by="\x07"), _ack(at_us=-5)):
        with pytest.raises(SchemaError):
            encode_alarm_ack(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_decode_or_raise_only_a_protocol_error(data: bytes) -> None:
    try:
        decode_alarm_ack(data)
    except ProtocolError:
        pass


_PRINTABLE = st.characters(min_codepoint=0x20, blacklist_categories=["Cs"], blacklist_characters="\x7f")


@settings(max_examples=200, deadline=None)
@given(episode=st.uuids(), user=st.text(_PRINTABLE, min_size=1, max_size=128).filter(lambda u: u.strip() != ""),
       at_us=st.integers(0, (1 << 63) - 1), note=st.text(_PRINTABLE, max_size=200))
def test_every_valid_ack_round_trips(episode: uuid.UUID, user: str, at_us: int, note: str) -> None:
    ack = AlarmAck(str(episode), "pat-1", user, at_us, note)
    assert decode_alarm_ack(encode_alarm_ack(ack)) == ack


# -- the listener on Mosquitto -------------------------------------------------------------------------


def _latched_agent(gateway_id: str) -> tuple[EdgeAgent, Alert]:
    """An agent whose patient had one VT episode that ended unacknowledged: latched."""
    sink = MemorySink()
    agent = EdgeAgent(AgentConfig(gateway_id=gateway_id, patients={"d-vt": "p-vt"}), sink)
    asyncio.run(run_scenario_into_agent(parse_scenario(VT_ONCE), agent))
    (vt,) = [a for a in sink.alerts if a.alert_type == "vt"]
    assert vt.details["event"] == "raised" and vt.details["gateway_id"] == gateway_id
    assert list(agent.sessions["d-vt"].engine.latched) == [vt.details["episode_id"]]
    return agent, vt


async def _until(cond: Callable[[], object], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def publish(mqtt_broker: MqttBroker) -> AsyncIterator[Callable[[str, bytes], Awaitable[None]]]:
    """Publish QoS 1 as the cloud would."""
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"cloud-{uuid.uuid4().hex[:8]}",
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        async def send(topic: str, payload: bytes) -> None:
            await client.publish(topic, payload, qos=1)
        yield send


@asynccontextmanager
async def uplink_of(listener: DownlinkListener, host: str, port: int, outbox_path: Path,
                    **kw: Any) -> AsyncIterator[Uplink]:
    """The gateway's real uplink, carrying ``listener``'s subscription, until the block ends."""
    outbox = Outbox(outbox_path)
    uplink = Uplink(outbox, hostname=host, port=port, gateway_id=listener.gateway_id, downlink=listener,
                    heartbeat_s=None, **kw)
    task = asyncio.create_task(uplink.run())
    try:
        await asyncio.wait_for(listener.subscribed.wait(), WAIT_S)
        yield uplink
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        outbox.close()


@pytest.fixture
async def listening(mqtt_broker: MqttBroker, unique_id: str,
                    tmp_path: Path) -> AsyncIterator[tuple[DownlinkListener, EdgeAgent, Alert]]:
    agent, vt = await asyncio.to_thread(_latched_agent, unique_id)
    listener = DownlinkListener(agent, gateway_id=unique_id, registry=CollectorRegistry())
    async with uplink_of(listener, mqtt_broker.host, mqtt_broker.port, tmp_path / "outbox.sqlite"):
        yield listener, agent, vt


async def test_an_ack_on_the_gateway_topic_unlatches_the_episode(
        listening: tuple[DownlinkListener, EdgeAgent, Alert], publish: Callable[[str, bytes], Awaitable[None]],
        unique_id: str) -> None:
    listener, agent, vt = listening
    sink: MemorySink = agent.sink  # type: ignore[assignment]
    before = len(sink.alerts)
    await publish(gateway_ack_topic(unique_id), encode_alarm_ack(_ack(episode_id=vt.details["episode_id"],
                                                                      patient_id="p-vt")))
    await _until(lambda: not agent.sessions["d-vt"].engine.latched, "the episode to unlatch")
    (cleared,) = sink.alerts[before:]
    assert (cleared.details["event"], cleared.details["reason"]) == ("cleared", "acknowledged")
    assert cleared.details["episode_id"] == vt.details["episode_id"] and agent.active_alerts() == 0
    await publish(gateway_ack_topic(unique_id), encode_alarm_ack(_ack(episode_id=vt.details["episode_id"],
                                                                      patient_id="p-vt")))   # again: at least once
    await _until(lambda: listener.counters.received == 2, "the repeated ack")
    assert listener.counters.outcomes == {"applied": 1, "unknown": 1} and sink.alerts[before + 1:] == []


async def test_malformed_downlink_messages_are_counted_and_ignored(
        listening: tuple[DownlinkListener, EdgeAgent, Alert], publish: Callable[[str, bytes], Awaitable[None]],
        unique_id: str) -> None:
    listener, agent, vt = listening
    sink: MemorySink = agent.sink  # type: ignore[assignment]
    before = len(sink.alerts)
    topic = gateway_ack_topic(unique_id)
    for bad in (b"\x00garbage", b"{}", _json(episode_id="nope"), b'{"schema_version": 9}',
                encode_alarm_ack(_ack(episode_id=str(uuid.uuid4()), patient_id="p-vt"))):   # the last: unknown episode
        await publish(topic, bad)
    await _until(lambda: listener.counters.received == 5, "the five messages")
    assert listener.counters.outcomes == {"malformed": 3, "unsupported_version": 1, "unknown": 1}
    assert sink.alerts[before:] == [] and list(agent.sessions["d-vt"].engine.latched) == [vt.details["episode_id"]]
    # nothing else is disturbed: a good ack still works afterwards, and the counts are exported
    await publish(topic, encode_alarm_ack(_ack(episode_id=vt.details["episode_id"], patient_id="p-vt")))
    await _until(lambda: not agent.sessions["d-vt"].engine.latched, "the episode to unlatch")
    assert listener.counters.outcomes["applied"] == 1
    assert listener.take("ecgstream/v1/gateway/someone-else/ack", b"{}") == "invalid_topic"


async def test_an_ack_published_while_the_gateway_was_away_arrives_when_it_returns(
        mqtt_broker: MqttBroker, publish: Callable[[str, bytes], Awaitable[None]], unique_id: str,
        tmp_path: Path) -> None:
    agent, vt = await asyncio.to_thread(_latched_agent, unique_id)

    async def listen_until(cond: Callable[[], bool]) -> DownlinkListener:
        listener = DownlinkListener(agent, gateway_id=unique_id)
        async with uplink_of(listener, mqtt_broker.host, mqtt_broker.port, tmp_path / "outbox.sqlite"):
            await _until(cond, "the listener")
        return listener

    await listen_until(lambda: True)             # the gateway subscribed once, then went away
    await publish(gateway_ack_topic(unique_id), encode_alarm_ack(_ack(episode_id=vt.details["episode_id"],
                                                                      patient_id="p-vt")))
    back = await listen_until(lambda: not agent.sessions["d-vt"].engine.latched)
    assert back.counters.outcomes == {"applied": 1}


async def test_the_gateway_listens_next_to_its_uplink_and_sends_the_released_episodes_clear(
        mqtt_broker: MqttBroker, publish: Callable[[str, bytes], Awaitable[None]], unique_id: str,
        tmp_path: Path) -> None:
    config = parse_config(f"""
gateway_id = "{unique_id}"
[uplink]
host = "{mqtt_broker.host}"
port = {mqtt_broker.port}
outbox_path = "{tmp_path / 'outbox.sqlite'}"
[observability]
status_file = "{tmp_path / 'status.json'}"
metrics_port = 0
""")
    alerts: list[Alert] = []

    class Tap:
        """In front of the outbox: notes each alert and passes everything on."""

        def __init__(self, inner: OutboxSink) -> None:
            self.inner = inner

        def put_alert(self, alert: Alert) -> None:
            alerts.append(alert)
            self.inner.put_alert(alert)

        def put_window(self, window: EcgWindow) -> None:
            self.inner.put_window(window)

        def flush(self) -> None:
            self.inner.flush()

    async with Gateway(config, uplink=Endpoint(mqtt_broker.host, mqtt_broker.port), mode="sync",
                       patients={"d-vt": "p-vt"}, sink=Tap) as gateway:
        assert gateway.downlink is not None and gateway.uplink is not None
        assert gateway.uplink.downlink is gateway.downlink       # one connection, the uplink's, carries the acks
        await run_scenario_into_agent(parse_scenario(VT_ONCE), gateway.agent)
        engine = gateway.agent.sessions["d-vt"].engine
        (episode,) = engine.latched
        await asyncio.wait_for(gateway.downlink.subscribed.wait(), WAIT_S)
        await publish(gateway_ack_topic(unique_id), encode_alarm_ack(_ack(episode_id=episode, patient_id="p-vt")))
        await _until(lambda: not engine.latched, "the gateway to unlatch the episode")
        assert gateway.downlink.counters.connects == 1
        (cleared,) = [a for a in alerts if a.details["event"] == "cleared" and a.details["episode_id"] == episode]
        assert cleared.details["reason"] == "acknowledged" and cleared.details["gateway_id"] == unique_id
        text = gateway.metrics.render()
        assert 'ecgstream_edge_downlink_acks_total{outcome="applied"} 1.0' in text


async def test_on_the_demos_mqtt_3_1_1_broker_acks_arrive_over_the_uplinks_mqtt_3_1_1_connection(
        unique_id: str, tmp_path: Path) -> None:
    from firmware_sim.embedded_broker import EmbeddedBroker

    agent, vt = await asyncio.to_thread(_latched_agent, unique_id)
    async with EmbeddedBroker() as broker:
        listener = DownlinkListener(agent, gateway_id=unique_id)
        async with uplink_of(listener, broker.host, broker.port, tmp_path / "outbox.sqlite", receipts=False,
                             backoff_initial_s=0.1) as uplink:      # MQTT 5 first, then 3.1.1
            async with aiomqtt.Client(broker.host, broker.port, identifier=f"{unique_id}-cloud") as cloud:
                await cloud.publish(gateway_ack_topic(unique_id),
                                    encode_alarm_ack(_ack(episode_id=vt.details["episode_id"], patient_id="p-vt")),
                                    qos=1)
                await _until(lambda: not agent.sessions["d-vt"].engine.latched, "the episode to unlatch")
            assert uplink.counters.protocol == "3.1.1"
    assert listener.counters.outcomes == {"applied": 1}
