"""``ecgstream edge run`` stops cleanly on SIGTERM within 5 s after a run with devices coming and going.

The gateway runs as a subprocess against the real Mosquitto; MQTT wearables (the simulator's) start
and stop around it in cycles (the same device ids come back: their streams restart from seq 0),
while ``/health`` and ``/status`` are asked on its exporter. Then SIGTERM: the process must exit
with status 0 within 5 s, leaving no status file. A second test checks that a second signal exits
at once, whatever the gateway is doing, and one that a source which ignores cancellation (as a
stuck client library can) cannot hold the stop: the step is cut short and logged.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edge.config import parse_config
from edge.gateway import Gateway
from edge.ingest.mqtt import PayloadSink
from firmware_sim.scenario import parse_scenario
from firmware_sim.transports.mqtt import MqttDeviceTransport
from firmware_sim.ward import build_ward, run_ward
from tests.conftest import MqttBroker, free_port

ECGSTREAM = Path(sys.executable).with_name("ecgstream")
START_S = 60.0   # wall-clock bound for the gateway to come up (a broken start fails instead of hanging)


def _config(broker: MqttBroker, gateway_id: str, tmp_path: Path, port: int, devices: list[str]) -> Path:
    patients = "\n".join(f'"{d}" = "bed-{d}"' for d in devices)
    path = tmp_path / "edge.toml"
    path.write_text(f"""
gateway_id = "{gateway_id}"
[ingest.mqtt]
host = "{broker.host}"
port = {broker.port}
[ingest.patients]
{patients}
[uplink]
host = "{broker.host}"
port = {broker.port}
outbox_path = "{tmp_path / 'outbox.sqlite'}"
[observability]
status_file = "{tmp_path / 'status.json'}"
status_interval_s = 0.5
metrics_port = {port}
""")
    return path


def _get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2.0) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _start(config: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    log = (tmp_path / "edge.log").open("wb")
    return subprocess.Popen([str(ECGSTREAM), "edge", "run", "--config", str(config)], stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, tmp_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "edge.log").read_text()[-2000:]
        try:
            code, body = _get(port, "/health")
            if code == 200:
                return body  # type: ignore[no-any-return]
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"the gateway did not turn healthy: {(tmp_path / 'edge.log').read_text()[-2000:]}")


def _ward(devices: list[str], seconds: float, seed: int) -> str:
    beds = "".join(f"""
[[patient]]
id = "bed-{d}"
device = "{d}"
rhythm = [ {{ at = 0, name = "sinus" }} ]
""" for d in devices)
    return f'name = "coming-and-going"\nduration_s = {seconds}\nseed = {seed}\n{beds}'


async def _devices_coming_and_going(broker: MqttBroker, devices: list[str], cycles: int) -> None:
    """Cycles of a few seconds; in each, some of the devices stream (the others are away)."""
    for cycle in range(cycles):
        present = [d for i, d in enumerate(devices) if (i + cycle) % 3 != 0]
        beds = build_ward(parse_scenario(_ward(present, 4.0, cycle)),
                          lambda d, p: MqttDeviceTransport(d, hostname=broker.host, port=broker.port))
        await run_ward(beds, pace=1.0)
        await asyncio.sleep(0.5)


@pytest.mark.slow
@pytest.mark.mosquitto
def test_sigterm_after_devices_came_and_went_exits_0_within_5_s(
    mqtt_broker: MqttBroker, unique_id: str, tmp_path: Path
) -> None:
    devices = [f"{unique_id}-{k}" for k in range(4)]
    port = free_port()
    proc = _start(_config(mqtt_broker, f"{unique_id}-gw", tmp_path, port, devices), tmp_path)
    try:
        _wait_healthy(proc, port, tmp_path)
        asyncio.run(_devices_coming_and_going(mqtt_broker, devices, cycles=7))
        code, health = _get(port, "/health")
        assert code == 200 and health["status"] == "ok", health
        code, status = _get(port, "/status")
        assert code == 200
        seen = {s["device_id"]: s["patient_id"] for s in status["streams"]}
        # MQTT devices mapped by [ingest.patients] (the shared broker may bring other tests' devices too)
        assert {d: seen.get(d) for d in devices} == {d: f"bed-{d}" for d in devices}
        assert (tmp_path / "status.json").exists()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=5.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (tmp_path / "edge.log").read_text()
    assert rc == 0, log[-3000:]
    assert "agent_stopped" in log and "stop_forced" not in log
    assert not (tmp_path / "status.json").exists()                    # a clean stop removes it


@pytest.mark.slow
@pytest.mark.mosquitto
def test_a_second_signal_exits_at_once(mqtt_broker: MqttBroker, unique_id: str, tmp_path: Path) -> None:
    port = free_port()
    proc = _start(_config(mqtt_broker, f"{unique_id}-gw", tmp_path, port, [unique_id]), tmp_path)
    try:
        _wait_healthy(proc, port, tmp_path)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=5.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # the first signal's clean stop may win the race; otherwise the second exits at once (128 + SIGINT)
    assert rc in (0, 128 + signal.SIGINT), (tmp_path / "edge.log").read_text()[-3000:]


async def test_a_source_that_ignores_cancellation_cannot_hold_the_stop(tmp_path: Path) -> None:
    released = asyncio.Event()
    entered = asyncio.Event()

    async def stubborn(sink: PayloadSink) -> None:
        entered.set()
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                continue                    # swallows every cancellation until the test lets it go

    config = parse_config(f"""
[uplink]
outbox_path = "{tmp_path / 'outbox.sqlite'}"
[observability]
status_file = "{tmp_path / 'status.json'}"
""")
    gateway = Gateway(config, feeds=[stubborn])

    async def run_and_stop() -> None:
        async with gateway:
            await entered.wait()

    try:
        await asyncio.wait_for(run_and_stop(), timeout=10.0)      # before: the stop waited for ever
    finally:
        released.set()
    assert gateway.stop_cut_short == ["ingest_stop"]
    assert not (tmp_path / "status.json").exists()
