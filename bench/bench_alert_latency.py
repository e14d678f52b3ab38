"""Alert latency, edge to dashboard: from the edge's MQTT publish to the event in a live-feed client.

A real ``ecgstream cloud run`` process (its own SQLite database, a private Mosquitto on a free port,
ingest + API, no model worker) and, in this process, what the edge and a dashboard do: an MQTT client
publishes alerts as the edge's uplink does (QoS 1, ``ecgstream/v1/patient/<id>/alert``, ``--rate`` per
second), and an HTTP client holds ``GET /api/events`` (server-sent events, as the dashboard page does)
and timestamps each ``alert`` event. The latency of one alert is its receipt time minus its publish
time (one host, one clock). The baseline, measured in the same run, is the broker hop alone: a plain
MQTT subscriber receiving the same kind of publish. Reported: p50 / p99 / max of each and the ratio.
Run: ``python -m bench.bench_alert_latency``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiomqtt
import httpx

from bench.services import free_port, start_mosquitto
from bench.timing import latency_ms
from protocol.messages import Alert, AlertCategory, Priority, encode_message
from protocol.topics import alert_topic

PATIENT, DEVICE = "bench-pat", "bench-dev"
USER = ("bench-admin", "bench-password-1")


def _alert(seq: int) -> Alert:
    aid = Alert.new_id()
    return Alert(aid, PATIENT, DEVICE, "vt", AlertCategory.CLINICAL, Priority.HIGH, 1_760_000_000_000_000 + seq,
                 details={"event": "raised", "episode_id": aid, "family": "vt", "bench_t": time.time()})


async def _publish(port: int, n: int, rate: float) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-edge-{uuid.uuid4().hex[:6]}") as client:
        for i in range(n):
            a = _alert(i)
            await client.publish(alert_topic(PATIENT), encode_message(a), qos=1)
            await asyncio.sleep(1.0 / rate)


async def broker_only(port: int, n: int, rate: float) -> list[float]:
    """Publish → a plain subscriber: the broker hop alone (the baseline)."""
    got: list[float] = []
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-sub-{uuid.uuid4().hex[:6]}") as sub:
        await sub.subscribe(alert_topic(PATIENT), qos=1)
        pub = asyncio.create_task(_publish(port, n, rate))
        async for message in sub.messages:
            got.append(time.time() - json.loads(bytes(message.payload))["details"]["bench_t"])  # type: ignore[arg-type]
            if len(got) == n:
                break
        await pub
    return got


async def end_to_end(port: int, base: str, token: str, n: int, rate: float) -> list[float]:
    """Publish → ingest → store → live feed → an SSE client."""
    got: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=None) as http, \
            http.stream("GET", "/api/events") as resp:
        lines = resp.aiter_lines()
        await asyncio.sleep(0.5)   # the feed is open before the first publish
        pub = asyncio.create_task(_publish(port, n, rate))
        event = ""
        async for line in lines:
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:") and event == "alert":
                data = json.loads(line.partition(":")[2])
                t = (data.get("details") or {}).get("bench_t")
                if t is not None:
                    got.append(time.time() - t)
                    if len(got) == n:
                        break
        await pub
    return got



async def amain(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port, broker = start_mosquitto(work)
        http_port = free_port()
        env = {**os.environ, "ECGSTREAM_CLOUD__DATABASE__URL": f"sqlite:///{work / 'cloud.db'}",
               "ECGSTREAM_CLOUD__BROKER__PORT": str(port), "ECGSTREAM_CLOUD__HTTP__PORT": str(http_port),
               "ECGSTREAM_CLOUD__RUN__MODELS": "false", "ECGSTREAM_CLOUD__LOG__LEVEL": "warning"}
        cli = [sys.executable, "-m", "ecgstream"]
        subprocess.run([*cli, "cloud", "users", "add", USER[0], "--role", "admin", "--password-stdin"],
                       input=USER[1].encode(), env=env, check=True, capture_output=True)
        service = subprocess.Popen([*cli, "cloud", "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{http_port}"
        try:
            async with httpx.AsyncClient(base_url=base) as http:
                for _ in range(300):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    await asyncio.sleep(0.1)
                token = (await http.post("/api/auth/login", json={"username": USER[0], "password": USER[1]})
                         ).json()["token"]
                h = {"Authorization": f"Bearer {token}"}
                await http.post("/api/patients", json={"patient_id": PATIENT, "display_name": "Bench"}, headers=h)
                await http.post("/api/devices", json={"device_id": DEVICE, "patient_id": PATIENT, "profile": ""},
                                headers=h)
            await asyncio.sleep(1.0)   # ingest subscribed
            await end_to_end(port, base, token, 10, args.rate)   # warm-up
            base_lat = await broker_only(port, args.alerts, args.rate)
            e2e = await end_to_end(port, base, token, args.alerts, args.rate)
        finally:
            service.terminate()
            service.wait(15)
            broker.kill()
        b50, b99, bmax = latency_ms(base_lat)
        e50, e99, emax = latency_ms(e2e)
        print(f"  {args.alerts} alerts at {args.rate:g}/s; {os.cpu_count()} CPUs; SQLite; one cloud process")
        print(f"  broker hop only (baseline)      p50 {b50:7.1f} ms   p99 {b99:7.1f} ms   max {bmax:7.1f} ms")
        print(f"  edge publish -> dashboard feed  p50 {e50:7.1f} ms   p99 {e99:7.1f} ms   max {emax:7.1f} ms   "
              f"x{e50 / b50:.1f} / x{e99 / b99:.1f} the baseline")


def main(argv: Sequence[str] | None = None) -> None:
    """Run with ``argv`` options (defaults when None, as ``python -m bench`` calls it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="alerts per second")
    args = parser.parse_args([] if argv is None else argv)
    try:
        asyncio.run(amain(args))
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"  skipped: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
