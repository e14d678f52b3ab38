"""The edge exporter's ``/health``: 200 while ingest is alive, 503 with the reason when it has stalled.

A gateway is healthy while its MQTT ingest is subscribed on the real Mosquitto; it turns unhealthy
when the ingest has been without its broker too long, when no ingest task is left running, and
when the event loop stops running (blocked); the JSON body says which.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edge.config import parse_config
from edge.config.schema import EdgeConfig
from edge.gateway import Endpoint, Gateway
from edge.ingest.mqtt import PayloadSink
from tests.conftest import MqttBroker, free_port


def _config(tmp_path: Path, port: int) -> EdgeConfig:
    return parse_config(f"""
gateway_id = "health-test"
[uplink]
outbox_path = "{tmp_path / 'outbox.sqlite'}"
[observability]
status_file = "{tmp_path / 'status.json'}"
metrics_port = {port}
""")


def _health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5.0) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def _forever(sink: PayloadSink) -> None:
    await asyncio.Event().wait()


@pytest.mark.mosquitto
async def test_healthy_while_the_mqtt_ingest_is_subscribed(mqtt_broker: MqttBroker, tmp_path: Path) -> None:
    port = free_port()
    async with Gateway(_config(tmp_path, port), ingest=Endpoint(mqtt_broker.host, mqtt_broker.port)) as gateway:
        await gateway.ready()
        code, body = await asyncio.to_thread(_health, port)
    assert (code, body["status"], body["problems"]) == (200, "ok", []), body
    assert "mqtt-ingest" in body["checks"]["ingest_running"]


async def test_unhealthy_when_the_mqtt_ingest_has_no_broker_for_too_long(tmp_path: Path) -> None:
    port = free_port()
    nobody = Endpoint("127.0.0.1", free_port())                    # nothing listens there
    async with Gateway(_config(tmp_path, port), ingest=nobody) as gateway:
        gateway.HEALTH_INGEST_DOWN_S = 0.3
        await asyncio.sleep(0.6)
        code, body = await asyncio.to_thread(_health, port)
    assert code == 503 and body["status"] == "unhealthy", body
    assert any("MQTT ingest without its broker" in p for p in body["problems"]), body


async def test_unhealthy_when_no_ingest_is_left_running(tmp_path: Path) -> None:
    async def ends_at_once(sink: PayloadSink) -> None:
        return None

    port = free_port()
    async with Gateway(_config(tmp_path, port), feeds=[ends_at_once]):
        await asyncio.sleep(0.1)
        code, body = await asyncio.to_thread(_health, port)
    assert code == 503 and body["problems"] == ["no ingest is running"], body


async def test_unhealthy_while_the_event_loop_is_blocked(tmp_path: Path) -> None:
    port = free_port()
    answers: list[tuple[int, dict[str, Any]]] = []
    async with Gateway(_config(tmp_path, port), feeds=[_forever]) as gateway:
        gateway.HEALTH_LOOP_LAG_S = 0.5
        await asyncio.sleep(0.1)
        answers.append(await asyncio.to_thread(_health, port))     # running: healthy

        def ask_later() -> None:
            time.sleep(1.2)
            answers.append(_health(port))

        asker = threading.Thread(target=ask_later)
        asker.start()
        time.sleep(2.0)                     # the loop is blocked (a stuck callback): no heartbeat
        await asyncio.to_thread(asker.join)
    assert answers[0][0] == 200, answers[0]
    code, body = answers[1]
    assert code == 503 and any("event loop lagging" in p for p in body["problems"]), body
