"""The live ward relay (cloud.api.live): edge display chunks and vitals reach a browser's feed over SSE.

An aiomqtt client stands in for the edge gateway and publishes on a real Mosquitto what the uplink
publishes (a chunk on ``patient/{id}/live``, the gateway status with vitals, both QoS 0); a clinician's
``GET /api/events`` under a real uvicorn gets them as ``live`` and ``vitals`` events, only for the
patients of their care team, and nothing is stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import httpx
import numpy as np
import pytest

from cloud.api.live import LiveRelay, live_relay, make_relay, stop_relay
from cloud.config import BrokerConfig
from cloud.store import upgrade_database
from protocol.live_payload import LiveChunk, encode_live_chunk, quantize_uv
from protocol.messages import GatewayStatus, PatientVitals, encode_message
from protocol.topics import gateway_status_topic, live_topic
from tests.cloud.api_support import CLINICIAN, WAIT_S, Api, SseReader, fast_settings, make_api, serve, until
from tests.conftest import MqttBroker

pytestmark = pytest.mark.mosquitto


@pytest.fixture
def url(tmp_path: Path) -> str:
    u = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(u)
    return u


@pytest.fixture
async def api(url: str, mqtt_broker: MqttBroker, unique_id: str) -> AsyncIterator[Api]:
    settings = fast_settings(broker=BrokerConfig(host=mqtt_broker.host, port=mqtt_broker.port))
    settings = dataclasses.replace(settings, accounts=dataclasses.replace(settings.accounts, care_team_scoping=True))
    async with make_api(url, settings) as a:
        await a.app.state.ctx.accounts.set_team(CLINICIAN[0], "icu")
        for suffix, team in (("a", "icu"), ("b", "cardio")):
            await a.store.add_patient(f"{unique_id}-{suffix}", suffix.upper())
            await a.store.add_device(f"{unique_id}-dev-{suffix}", f"{unique_id}-{suffix}")
            await a.store.set_patient_team(f"{unique_id}-{suffix}", team, by="admin")
        yield a


def _chunk(patient: str, device: str, seq: int) -> LiveChunk:
    t = (seq * 125 + np.arange(125)) / 125.0
    mv = np.stack([np.sin(2 * np.pi * t), 0.5 * np.sin(2 * np.pi * t), -np.sin(2 * np.pi * t)])
    return LiveChunk(patient, device, seq, 1_700_000_000_000_000 + seq * 1_000_000, 125.0, ("II", "V1", "V5"),
                     quantize_uv(mv), gap_before=seq == 0)


async def test_a_clinician_gets_their_patients_live_ecg_and_vitals_and_nothing_is_stored(
    api: Api, mqtt_broker: MqttBroker, unique_id: str
) -> None:
    ours, theirs = f"{unique_id}-a", f"{unique_id}-b"
    token = await api.token(CLINICIAN)
    async with serve(api.app) as base, httpx.AsyncClient(base_url=base, timeout=WAIT_S,
                                                         headers={"Authorization": f"Bearer {token}"}) as c, \
            aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"{unique_id}-edge") as edge:
        async with c.stream("GET", "/api/events") as r:
            assert r.status_code == 200
            feed = SseReader(r)
            relay = live_relay(api.app.state.ctx.extras, api.settings)
            assert relay is not None
            await until(relay.subscribed.is_set, "the relay subscribed")
            for seq in range(3):
                for patient in (theirs, ours):
                    chunk = _chunk(patient, f"{patient[:-2]}-dev-{patient[-1]}", seq)
                    await edge.publish(live_topic(patient), encode_live_chunk(chunk), qos=0)
            status = GatewayStatus(f"{unique_id}-gw", 1_700_000_003_000_000, streams=2, minor_version=1, patients=(
                PatientVitals(theirs, f"{unique_id}-dev-b", heart_rate_bpm=140.0),
                PatientVitals(ours, f"{unique_id}-dev-a", heart_rate_bpm=72.5, sqi=0.93, analysis_lead="II",
                              battery_pct=64, connected=True, last_data_age_s=0.4)))
            await edge.publish(gateway_status_topic(f"{unique_id}-gw"), encode_message(status), qos=0)
            live, seen_vitals = [], []
            while len(live) < 3 or not seen_vitals:
                event, ident, data = await feed.until(lambda e, i, d: e in ("live", "vitals"))
                assert ident is None and data["patient_id"] == ours
                (live if event == "live" else seen_vitals).append(data)
            assert [d["seq"] for d in live] == [0, 1, 2]
            assert live[0]["gap_before"] and not live[1]["gap_before"]
            assert live[0]["leads"] == ["II", "V1", "V5"] and live[0]["fs_hz"] == 125.0
            assert max(live[0]["uv"][0]) == 1000 and len(live[0]["uv"][2]) == 125
            vitals = seen_vitals[0]
            assert (vitals["heart_rate_bpm"], vitals["sqi"], vitals["battery_pct"], vitals["connected"]) == \
                (72.5, 0.93, 64, True)
            assert vitals["gateway_id"] == f"{unique_id}-gw" and vitals["last_data_age_s"] == 0.4
        # a browser that connects later paints at once: latest vitals, then the last seconds of ECG
        async with c.stream("GET", "/api/events") as r:
            feed = SseReader(r)
            event, _, data = await feed.until(lambda e, i, d: e in ("vitals", "live"))
            assert (event, data["patient_id"]) == ("vitals", ours)
            event, _, data = await feed.next()
            assert (event, data["patient_id"], data["seq"]) == ("live", ours, 0)
    assert await api.store.latest_gateway_status(f"{unique_id}-gw") is None     # relayed, not stored
    assert relay.received["bad"] == 0


async def test_a_feed_without_live_opens_no_relay_and_a_broker_with_accounts_needs_the_live_password(
    api: Api, tmp_path: Path,
) -> None:
    token = await api.token(CLINICIAN)
    async with serve(api.app) as base, httpx.AsyncClient(base_url=base, timeout=WAIT_S,
                                                         headers={"Authorization": f"Bearer {token}"}) as c, \
            c.stream("GET", "/api/events", params={"live": "false"}) as r:
        assert r.status_code == 200
    assert "live_relay" not in api.app.state.ctx.extras
    with_accounts = dataclasses.replace(api.settings, broker=dataclasses.replace(api.settings.broker,
                                                                                username="cloud-1"))
    assert make_relay(with_accounts, env={}) is None
    relay = make_relay(with_accounts, env={"ECGSTREAM_CLOUD__LIVE__PASSWORD": "pw"})
    assert relay is not None and relay.client_id == "cloud-1-live"
    # the password from the [live] settings (read from the environment only), and [live] relay = false
    from cloud.config import ConfigError, load_settings

    configured = load_settings(None, env={"ECGSTREAM_CLOUD__BROKER__USERNAME": "cloud-1",
                                          "ECGSTREAM_CLOUD__LIVE__PASSWORD": "pw"})
    relay = make_relay(configured, env={})
    assert relay is not None and (relay.client_id, relay._username) == ("cloud-1-live", "cloud-1-live")  # noqa: SLF001
    assert make_relay(dataclasses.replace(configured, live=dataclasses.replace(configured.live, relay=False)),
                      env={}) is None
    with pytest.raises(ConfigError, match="password"):          # never a password in the file
        (tmp_path / "cloud.toml").write_text('[live]\npassword = "in-the-file"\n', encoding="utf-8")
        load_settings(tmp_path / "cloud.toml", env={})


async def test_the_relay_falls_back_to_mqtt_3_on_the_embedded_broker(unique_id: str) -> None:
    """The demo's embedded broker speaks MQTT 3.1.1 only: the relay's MQTT 5 CONNECT goes unanswered, so it
    tries 3.1.1 and relays from there."""
    from firmware_sim.embedded_broker import EmbeddedBroker

    async with EmbeddedBroker() as broker:
        relay = LiveRelay(hostname=broker.host, port=broker.port, client_id=f"{unique_id}-live")
        sub = relay.subscribe()
        try:
            await until(relay.subscribed.is_set, "the relay subscribed over MQTT 3.1.1", timeout=30)
            async with aiomqtt.Client(broker.host, broker.port, identifier=f"{unique_id}-edge",
                                      protocol=aiomqtt.ProtocolVersion.V311) as edge:
                await edge.publish(live_topic(unique_id), encode_live_chunk(_chunk(unique_id, "dev", 0)), qos=0)
                await until(lambda: bool(sub.events), "the chunk relayed")
            ((event, patient, data),) = sub.take()
            assert (event, patient, data["seq"]) == ("live", unique_id, 0)
        finally:
            relay.unsubscribe(sub)
            await stop_relay(relay)

