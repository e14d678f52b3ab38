"""The live display stream's cost at the edge: CPU and uplink bandwidth per 100 patients.

``--patients`` wearables (ecgstream-250: II, V1, V5 at 250 Hz, 36-sample BLE frames) stream
``--seconds`` of synthetic sinus ECG into the gateway's agent in stream time (sync mode, rules only,
as in ``bench_edge_agent``'s baseline row). Two runs on the same frames:

* **baseline**: the agent alone (frame decode, order, resampling, quality, QRS, alarm rules, windows
  to the outbox);
* **with live**: the same, plus what the uplink does each second for the ward
  (:mod:`edge.uplink.live`): the taps on every session, the chunks cut and encoded
  (:func:`protocol.live_payload.encode_live_chunk`), every patient's vitals and the gateway status
  that carries them (:func:`protocol.messages.encode_message`); nothing is published (no broker), so
  the figure is the gateway's CPU, not the network's.

CPU is process time, as % of one core per 100 patients in real time: both runs whole (their ratio is
the live stream's share, but on a busy machine the difference is within the noise), and the live
stream's own calls timed one by one in the second run (the taps, cutting, encoding, vitals). Bandwidth is the payload bytes per second per 100 patients (MQTT adds about
40 bytes of fixed header and topic per message), against two baselines measured in the same run: the
BLE frames the wearables sent the gateway, and the same chunks written as plain JSON (µV integer
arrays, as the cloud hands them to browsers).

**Cloud relay.** The chunks and statuses of the second run then go through the cloud's relay
(:class:`cloud.api.live.LiveRelay`: decode, keep the last seconds, queue for a feed connection) and
out as SSE text (:func:`cloud.api.feed.sse`), as one browser's feed gets them: CPU per 100 patients in
real time and the bytes per second a browser receives. Run: ``python -m bench.bench_live_stream``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.bench_edge_agent import T0, _config, _messages, patient_frames
from cloud.api.feed import sse
from cloud.api.live import LiveRelay, LiveSubscription
from edge.gateway import Gateway
from edge.stream.records import StreamOutput
from edge.uplink.live import LiveFeed, LiveTap
from protocol.live_payload import LiveChunk, encode_live_chunk
from protocol.messages import GATEWAY_STATUS_MINOR, GatewayStatus, encode_message
from protocol.topics import gateway_status_topic, live_topic


@dataclass
class Run:
    cpu_s: float
    wall_s: float
    frame_bytes: int
    live_bytes: int = 0
    json_bytes: int = 0
    chunks: int = 0
    status_bytes: int = 0
    live_cpu_s: float = 0.0
    """CPU inside the live stream's own calls (taps, cutting, encoding, vitals), timed call by call."""
    kept: list[LiveChunk] = field(default_factory=list)
    """The chunks (their JSON size is measured after the timed run)."""
    statuses: list[bytes] = field(default_factory=list)
    """The encoded gateway statuses with vitals."""


async def run(patients: int, seconds: float, frames: list[list[tuple[bytes, float]]], *, live: bool) -> Run:
    """The agent on ``patients`` × ``seconds`` of frames; with ``live``, the live stream each stream second."""
    with tempfile.TemporaryDirectory() as tmp:
        async with Gateway(_config(Path(tmp), models=False), mode="sync", clock=lambda: T0) as gateway:
            agent = gateway.agent
            feed = LiveFeed(agent, clock=lambda: T0) if live else None
            msgs = _messages(patients, frames)
            out = Run(0.0, 0.0, sum(len(m[1]) for m in msgs))
            take = LiveTap.take

            def timed_take(tap: LiveTap, so: StreamOutput) -> None:
                t = time.process_time()
                take(tap, so)
                out.live_cpu_s += time.process_time() - t

            setattr(LiveTap, "take", timed_take)  # noqa: B010 - timed for this run only
            cpu, wall = time.process_time(), time.perf_counter()
            next_tick = msgs[0][3] + 0.5
            next_live = msgs[0][3] + 1.0
            for device_id, data, kind, arrival in msgs:
                if arrival >= next_tick:
                    agent.tick(arrival)
                    next_tick = arrival + 0.5
                if feed is not None and arrival >= next_live:
                    _publish(feed, out, arrival)
                    next_live = arrival + 1.0
                agent.feed(device_id, data, kind, arrival, transport="replay")
            agent.tick(T0 + seconds + 1.0)
            if feed is not None:
                _publish(feed, out, T0 + seconds + 1.0)
            agent.flush()
            out.cpu_s, out.wall_s = time.process_time() - cpu, time.perf_counter() - wall
            setattr(LiveTap, "take", take)  # noqa: B010
    out.json_bytes = sum(len(json.dumps(
        {"patient_id": c.patient_id, "device_id": c.device_id, "seq": c.seq, "t0_us": c.t0_us, "fs_hz": c.fs_hz,
         "leads": c.leads, "gap_before": c.gap_before, "uv": c.microvolts().tolist()}, separators=(",", ":")))
        for c in out.kept)
    return out


def _publish(feed: LiveFeed, out: Run, now: float) -> None:
    """What the uplink's live task does once a second, up to the socket: chunks and the status encoded."""
    t = time.process_time()
    for chunk in feed.chunks():
        out.live_bytes += len(encode_live_chunk(chunk))
        out.chunks += 1
        out.kept.append(chunk)
    vitals = tuple(feed.vitals(now))
    status = GatewayStatus("bench-gw", int(now * 1e6), streams=len(vitals), patients=vitals,
                           minor_version=GATEWAY_STATUS_MINOR)
    raw = encode_message(status)
    out.status_bytes += len(raw)
    out.statuses.append(raw)
    out.live_cpu_s += time.process_time() - t


def relay(r: Run) -> tuple[float, int]:
    """CPU (s) of the cloud relay and one feed connection on a run's messages, and the SSE bytes sent."""
    messages = [(live_topic(c.patient_id), encode_live_chunk(c)) for c in r.kept]
    messages += [(gateway_status_topic("bench-gw"), raw) for raw in r.statuses]
    messages.sort(key=lambda m: m[0].endswith("/status"))
    hub = LiveRelay(hostname="127.0.0.1", port=1883, client_id="bench-live")
    sub = LiveSubscription()
    hub.subscribers.add(sub)
    sent = 0
    cpu = time.process_time()
    for i, (topic, payload) in enumerate(messages):
        hub.handle(topic, payload, received_us=i)
        if len(sub.events) >= 100:          # a feed connection drains about 100 events per write
            sent += sum(len(sse(name, data)) for name, _, data in sub.take())
    sent += sum(len(sse(name, data)) for name, _, data in sub.take())
    return time.process_time() - cpu, sent


def main(argv: Sequence[str] | None = None) -> None:
    """Run with ``argv`` options (defaults when None, as ``python -m bench`` calls it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args([] if argv is None else argv)
    logging.getLogger("edge").setLevel(logging.ERROR)
    frames = [patient_frames(args.seconds, seed) for seed in range(8)]
    per100 = 100.0 / args.patients
    print(f"  {args.patients} patients × {args.seconds:g} s of stream (ecgstream-250, 3 leads, rules only), "
          "one process; figures per 100 patients")
    base = asyncio.run(run(args.patients, args.seconds, frames, live=False))
    with_live = asyncio.run(run(args.patients, args.seconds, frames, live=True))
    for label, r in (("agent alone (baseline)", base), ("agent + live stream", with_live)):
        core = 100.0 * r.cpu_s / args.seconds * per100
        print(f"  {label:<26} {r.cpu_s:6.2f} s CPU  {core:5.1f} % of a core per 100 patients  "
              f"x{r.cpu_s / base.cpu_s:.3f}")
    own = with_live.live_cpu_s
    print(f"  live stream's own calls    {own:6.2f} s CPU  {100.0 * own / args.seconds * per100:5.2f} % of a core "
          f"per 100 patients, x{own / base.cpu_s:.3f} of the agent's ({with_live.chunks} chunks)")
    frame_bps = base.frame_bytes / args.seconds * per100
    live_bps = with_live.live_bytes / args.seconds * per100
    status_bps = with_live.status_bytes / args.seconds * per100
    json_bps = with_live.json_bytes / args.seconds * per100
    print(f"  bandwidth, bytes/s per 100 patients: live chunks {live_bps / 1e3:7.1f} kB/s "
          f"({8 * live_bps / 1e6:.2f} Mbit/s) + vitals {status_bps / 1e3:5.1f} kB/s")
    print(f"    baselines: wearables' BLE frames {frame_bps / 1e3:7.1f} kB/s (live x{live_bps / frame_bps:.2f}); "
          f"chunks as JSON {json_bps / 1e3:7.1f} kB/s (binary x{live_bps / json_bps:.2f})")
    cpu, sent = relay(with_live)
    print(f"  cloud relay + one feed connection: {100.0 * cpu / args.seconds * per100:5.2f} % of a core per 100 "
          f"patients; to the browser {sent / args.seconds * per100 / 1e3:7.1f} kB/s per 100 patients "
          f"(x{sent / max(1, with_live.live_bytes + with_live.status_bytes):.2f} the uplink's)")


if __name__ == "__main__":
    main(sys.argv[1:])
