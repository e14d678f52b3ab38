"""The live ward end to end: a simulated wearable → the edge gateway → Mosquitto → the cloud's relay →
a clinician's Server-Sent Events feed, with the real gateway (``edge.gateway.Gateway``) and the real app
under uvicorn. The feed carries the patient's ECG chunks (II, V1, V5 at 125 Hz, joining one another)
and vitals with the heart rate the edge measured; the cloud stores none of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cloud.config import BrokerConfig
from cloud.store import upgrade_database
from edge.config import parse_config
from edge.gateway import Endpoint, Gateway
from firmware_sim.scenario import parse_scenario
from firmware_sim.transports.mqtt import MqttDeviceTransport
from firmware_sim.ward import build_ward, run_ward
from tests.cloud.api_support import CLINICIAN, WAIT_S, Api, SseReader, fast_settings, make_api, serve
from tests.conftest import MqttBroker

pytestmark = [pytest.mark.mosquitto]


@pytest.fixture
async def api(tmp_path: Path, mqtt_broker: MqttBroker, unique_id: str) -> AsyncIterator[Api]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    async with make_api(url, fast_settings(broker=BrokerConfig(host=mqtt_broker.host, port=mqtt_broker.port))) as a:
        await a.store.add_patient(unique_id, "Live Patient")
        await a.store.add_device(unique_id, unique_id)
        yield a


async def test_a_wearables_ecg_and_vitals_reach_the_browser_feed_through_edge_and_cloud(
    api: Api, mqtt_broker: MqttBroker, unique_id: str, tmp_path: Path
) -> None:
    gateway_id = f"{unique_id}-gw"
    config = parse_config(f"""
gateway_id = "{gateway_id}"
[ingest.mqtt]
host = "{mqtt_broker.host}"
port = {mqtt_broker.port}
[uplink]
host = "{mqtt_broker.host}"
port = {mqtt_broker.port}
receipts = false
outbox_path = "{tmp_path / 'outbox.sqlite'}"
[observability]
status_file = "{tmp_path / 'status.json'}"
""")
    scenario = parse_scenario(f"""
name = "live-e2e"
duration_s = 40
seed = 5
[[patient]]
id = "{unique_id}"
device = "{unique_id}"
heart_rate = 66
rhythm = [ {{ at = 0, name = "sinus" }} ]
""")
    broker = Endpoint(mqtt_broker.host, mqtt_broker.port)
    token = await api.token(CLINICIAN)
    async with serve(api.app) as base, httpx.AsyncClient(base_url=base, timeout=WAIT_S,
                                                         headers={"Authorization": f"Bearer {token}"}) as c, \
            c.stream("GET", "/api/events") as r, Gateway(config, ingest=broker, uplink=broker) as gateway:
        assert r.status_code == 200
        feed = SseReader(r)
        await gateway.ready()
        stop = asyncio.Event()
        ticking = asyncio.create_task(gateway.run_until(stop, tick_s=0.1))
        beds = build_ward(scenario, lambda d, p: MqttDeviceTransport(d, hostname=mqtt_broker.host,
                                                                      port=mqtt_broker.port))
        wearable = asyncio.create_task(run_ward(beds, pace=1.0))
        live: list[dict] = []
        rates: list[float] = []
        started = time.monotonic()
        try:
            while len(live) < 4 or not rates:
                # (the shared broker may carry other tests' gateways: only this patient's events count)
                event, _, data = await feed.until(
                    lambda e, i, d: e in ("live", "vitals") and d["patient_id"] == unique_id, timeout=WAIT_S)
                if event == "live":
                    live.append(data)
                elif data["heart_rate_bpm"] is not None:
                    rates.append(data["heart_rate_bpm"])
                assert time.monotonic() - started < 2 * WAIT_S
        finally:
            wearable.cancel()
            stop.set()
            await ticking
    assert {(d["device_id"], tuple(d["leads"]), d["fs_hz"]) for d in live} == {(unique_id, ("II", "V1", "V5"), 125.0)}
    joined = [b for a, b in zip(live, live[1:], strict=False) if b["seq"] == a["seq"] + 1 and not b["gap_before"]]
    assert joined, "consecutive chunks follow one another"
    for a, b in zip(live, live[1:], strict=False):
        if b in joined:
            assert abs(b["t0_us"] - (a["t0_us"] + len(a["uv"][0]) * 8000)) <= 8000
    assert max(max(abs(x) for x in d["uv"][0]) for d in live) > 300       # R waves in lead II, in µV
    assert 55 <= rates[-1] <= 80
    assert await api.store.latest_gateway_status(gateway_id) is None      # relayed, not stored (no ingest here)
