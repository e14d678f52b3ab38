"""The running gateway: MQTT ingest → agent → uplink on a real broker, and `ecgstream edge run` itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest

from edge.config import parse_config
from edge.observability.status import read_status
from edge.runtime import Endpoint, run_gateway
from firmware_sim.scenario import parse_scenario
from firmware_sim.transports.mqtt import MqttDeviceTransport
from firmware_sim.ward import build_ward, run_ward
from protocol.messages import Alert, decode_message
from protocol.topics import Channel, parse_topic
from protocol.window_payload import decode_window
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def _scenario(device: str, seconds: float) -> str:
    return f"""
name = "mqtt-e2e"
duration_s = {seconds}
seed = 4
[[patient]]
id = "{device}"
device = "{device}"
rhythm = [ {{ at = 0, name = "sinus" }}, {{ at = 8, name = "asystole" }} ]
"""


@pytest.mark.slow
def test_mqtt_device_to_agent_to_uplink_on_a_real_broker(mqtt_broker, unique_id: str, tmp_path: Path) -> None:
    """A MqttDeviceTransport wearable publishes → MQTT ingest → agent → outbox → uplink → a subscriber."""
    config = parse_config(f"""
gateway_id = "{unique_id}-gw"
[ingest.mqtt]
host = "{mqtt_broker.host}"
port = {mqtt_broker.port}
[uplink]
host = "{mqtt_broker.host}"
port = {mqtt_broker.port}
outbox_path = "{tmp_path / 'outbox.sqlite'}"
[observability]
status_file = "{tmp_path / 'status.json'}"
""")
    endpoint = Endpoint(mqtt_broker.host, mqtt_broker.port)

    async def scenario() -> tuple[list[Alert], int]:
        alerts: list[Alert] = []
        windows = 0
        stop = asyncio.Event()
        gateway = asyncio.create_task(run_gateway(config, ingest=endpoint, uplink=endpoint, stop=stop))
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"{unique_id}-cloud") as cloud:
            await cloud.subscribe(f"ecgstream/v1/patient/{unique_id}/#", qos=1)
            await asyncio.sleep(1.0)  # the gateway's ingest subscribes
            beds = build_ward(parse_scenario(_scenario(unique_id, 20)),
                              lambda d, p: MqttDeviceTransport(d, hostname=mqtt_broker.host, port=mqtt_broker.port))
            device = asyncio.create_task(run_ward(beds, pace=10.0))

            async def receive() -> None:
                nonlocal windows
                async for m in cloud.messages:
                    t = parse_topic(str(m.topic))
                    assert isinstance(m.payload, bytes)
                    if t.channel is Channel.ALERT:
                        alerts.append(decode_message(m.payload, Alert))
                    elif t.channel is Channel.WINDOW:          # (the live display stream shares the prefix)
                        decode_window(m.payload)
                        windows += 1
                    if windows and any(a.alert_type in ("pause", "asystole") for a in alerts):
                        return

            try:
                await asyncio.wait_for(receive(), 30.0)
            finally:
                await device
                stop.set()
                await gateway
        return alerts, windows

    alerts, windows = asyncio.run(scenario())
    assert windows >= 1
    asys = [a for a in alerts if a.alert_type in ("pause", "asystole")]
    assert asys and asys[0].patient_id == unique_id and asys[0].device_id == unique_id
    assert 8.0 < asys[0].details["at_s"] < 14.0
    assert not (tmp_path / "status.json").exists()   # removed on a clean stop


EXAMPLE_CONFIG = """
gateway_id = "cli-smoke"
[uplink]
outbox_path = "outbox.sqlite"
[observability]
status_file = "status.json"
status_interval_s = 0.5
"""


@pytest.mark.slow
def test_edge_run_cli_on_the_embedded_broker_shows_the_stream_and_stops_on_sigint(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text(EXAMPLE_CONFIG)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ecgstream", "edge", "run", "--config", str(cfg)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stderr is not None
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            m = re.search(r"embedded MQTT broker on 127\.0\.0\.1:(\d+)", line)
            port = int(m.group(1)) if m else None
        assert port is not None, "the agent did not print its embedded broker's port"

        async def publish() -> None:
            beds = build_ward(parse_scenario(_scenario("cli-dev-1", 10)),
                              lambda d, p: MqttDeviceTransport(d, hostname="127.0.0.1", port=port))
            await asyncio.sleep(1.0)
            await run_ward(beds, pace=4.0)

        asyncio.run(publish())
        status_file = tmp_path / "status.json"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if any(s.device_id == "cli-dev-1" for s in read_status(status_file).streams):
                    break
            time.sleep(0.2)
        shown = subprocess.run([sys.executable, "-m", "ecgstream", "edge", "status", "--file", str(status_file),
                                "--json"], capture_output=True, text=True, timeout=30)
        assert shown.returncode == 0, shown.stderr
        doc = json.loads(shown.stdout)
        assert doc["gateway_id"] == "cli-smoke"
        assert [s["device_id"] for s in doc["streams"]] == ["cli-dev-1"]
        assert doc["streams"][0]["transport"] == "mqtt"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        assert proc.returncode == 0, proc.stderr.read()
        assert not status_file.exists()
        assert (tmp_path / "outbox.sqlite").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_edge_run_with_its_metrics_port_in_use_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    """Another process holds the exporter's port: one error line naming the port and the config key."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "edge.toml"
        cfg.write_text(f"""
gateway_id = "clash"
[ingest.mqtt]
enabled = false
[uplink]
host = "127.0.0.1"
port = {free_port()}
outbox_path = "outbox.sqlite"
[observability]
status_file = "status.json"
metrics_port = {port}
""")
        done = subprocess.run([sys.executable, "-m", "ecgstream", "edge", "run", "--config", str(cfg)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ecgstream: error: "), done.stderr
    assert f"observability.metrics_port = {port}" in lines[0] and "in use" in lines[0]
    assert not (tmp_path / "outbox.sqlite").exists()
