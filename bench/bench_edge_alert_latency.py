"""Edge alert latency: from the last sample an alarm decision rests on to the alert arriving from the broker.

The real gateway path (:class:`edge.gateway.Gateway`, what ``ecgstream edge run`` runs: async agent,
VAE + classifier micro-batched under their deadline, SQLite outbox, QoS 1 uplink with a persistent
session) on a private Mosquitto. In this process, ``--patients`` ecgstream-250 wearables stream in
real time: each frame is fed when its last sample falls due, stamped with the wall clock, as a BLE
notification would arrive; the devices start streaming at random times within ``--stagger`` s, as on a
ward (``--stagger 0``: all in step, the worst case: every patient's analysis and windows fall due at
once). ``--events`` of them switch from sinus rhythm to VT, and as many to
asystole, at ``--onset`` s plus up to 5 s; the rest stay in sinus rhythm (load). An MQTT client subscribed to every
patient's alert topic timestamps each alert.

Latency of one alert = its receipt time − the gateway time of the last sample its decision rested on
(``details.at_s``, mapped to gateway time through the alert's own onset: ``onset_gateway +
(at_s − onset_s)``). So the rule's own persistence (VT must last, asystole must reach 3 s) is not
counted; what is counted is what the gateway adds: waiting for the tick, filtering and detection,
the rules, the outbox write, the uplink and the broker. Baseline in the same run: the broker hop
alone (publish → plain subscriber). Run: ``python -m bench.bench_edge_alert_latency``.

It also says whether the gateway kept up: how late each frame was fed after it fell due (bounded when
it keeps up, growing when it falls behind), the process's CPU use, and the windows that went through
the models or were shed. ``--patients 500`` is the real-time check of the capacity goal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiomqtt
import numpy as np

from bench.bench_alert_latency import broker_only
from bench.services import start_mosquitto
from bench.timing import latency_ms
from edge.agent import OutboxSink
from edge.config import EdgeConfig
from edge.gateway import Endpoint, Gateway
from edge.ingest.mqtt import PayloadSink
from firmware_sim.packetizer import Packetizer, quantize_blocks
from firmware_sim.profiles import get_profile
from firmware_sim.synthesis import NoiseSpec, RhythmSegment, synthesize_timeline
from protocol.frame_batch import encode_frames
from protocol.messages import Alert, decode_message
from protocol.topics import subscription
from protocol.window_payload import EcgWindow


def frames(segments: Sequence[RhythmSegment], seconds: float, seed: int) -> list[tuple[float, bytes]]:
    """One wearable's encoded frames with the stream time (s) of each frame's last sample."""
    prof = get_profile("ecgstream-250")
    syn = synthesize_timeline(segments, seconds=seconds, fs=prof.fs_hz, seed=seed, noise=NoiseSpec(emg_mv=0.02))
    x = np.stack([syn.lead(lead) for lead in prof.leads], axis=1)
    batch = quantize_blocks(prof, Packetizer(prof).frame_blocks(x)[:1])
    spf = batch.frame(0).n_samples
    return [((i + 1) * spf / prof.fs_hz, d) for i, d in enumerate(encode_frames(batch))]



@dataclass
class GatewayRun:
    """What one real-time run measured."""

    latencies: list[float] = field(default_factory=list)
    """Per raised clinical alert: receipt − deciding sample (s)."""
    to_outbox: list[float] = field(default_factory=list)
    """Per raised clinical alert: written to the outbox − deciding sample (s): the gateway's analysis."""
    raised: dict[str, int] = field(default_factory=dict)
    lateness: list[float] = field(default_factory=list)
    """Per frame: how late it was fed after it fell due (s): grows without bound when the gateway falls behind."""
    cpu_fraction: float = 0.0
    """Process CPU seconds / wall seconds while the frames were fed (2.0 = both cores busy)."""
    windows_done: int = 0
    windows_dropped: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    """Clinical alerts raised for patients who stayed in sinus rhythm (false alarms)."""


class _TimedSink:
    """The outbox sink, noting when each raised clinical alert reaches the outbox (− its deciding sample)."""

    def __init__(self, sink: OutboxSink, to_outbox: list[float]) -> None:
        self.sink, self.to_outbox = sink, to_outbox
        self.outbox = sink.outbox        # the agent's status reads the outbox depth from its sink

    def put_alert(self, alert: Alert) -> None:
        self.sink.put_alert(alert)
        d = alert.details or {}
        if d.get("event") == "raised" and alert.category == "clinical":
            decided = alert.onset_gateway_us / 1e6 + (float(d["at_s"]) - float(d["onset_s"]))
            self.to_outbox.append(time.time() - decided)

    def put_window(self, window: EcgWindow) -> None:
        self.sink.put_window(window)

    def flush(self) -> None:
        self.sink.flush()


async def _feed(agent: PayloadSink, schedule: list[tuple[float, str, bytes]], t0: float) -> list[float]:
    """Feed every frame when it falls due (wall clock); returns how late each one was fed (s).

    Frames that fell due together are fed in runs of at most 32, with the event loop's other tasks
    (the uplink, the inference results) getting their turn between runs, as they do between BLE
    notifications, each of which is its own callback on the loop."""
    i, late = 0, []
    while i < len(schedule):
        now = time.time()
        run = 0
        while i < len(schedule) and t0 + schedule[i][0] <= now:
            due, device, data = schedule[i]
            late.append(time.time() - (t0 + due))
            agent.feed(device, data, "frame", time.time(), transport="ble")
            i += 1
            run += 1
            if run == 32:
                await asyncio.sleep(0)
                run = 0
        await asyncio.sleep(0.005)
    return late


async def gateway_run(port: int, work: Path, args: argparse.Namespace) -> GatewayRun:
    run = uuid.uuid4().hex[:6]
    sinus = [RhythmSegment(0.0, "sinus")]
    rng = np.random.default_rng(7)
    background = [frames(sinus, args.seconds, seed) for seed in range(6)]
    schedule: list[tuple[float, str, bytes]] = []
    expected: dict[str, str] = {}
    for p in range(args.patients):
        kind = "vt" if p < args.events else "asystole" if p < 2 * args.events else None
        device = f"lat-{run}-{p:04d}"
        onset = args.onset + float(rng.uniform(0.0, 5.0))    # spread over ticks and frames
        fr = (frames([RhythmSegment(0.0, "sinus"), RhythmSegment(onset, kind)], args.seconds, 100 + p) if kind
              else background[p % len(background)])
        if kind:
            expected[device] = kind
        start = float(rng.uniform(0.0, args.stagger))         # devices are not switched on in step
        schedule += [(start + end, device, data) for end, data in fr]
    schedule.sort(key=lambda m: m[0])

    config = EdgeConfig(gateway_id=f"bench-gw-{run}")
    config = replace(config, uplink=replace(config.uplink, outbox_path=work / "outbox.sqlite", receipts=False),  # no cloud
                     observability=replace(config.observability, status_file=work / "status.json"))
    stop = asyncio.Event()
    result = GatewayRun()
    latencies, raised = result.latencies, result.raised
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-alerts-{run}") as sub:
        await sub.subscribe(subscription("patient", "alert"), qos=1)

        async def listen() -> None:
            async for message in sub.messages:
                got = time.time()
                alert = decode_message(bytes(message.payload), Alert)  # type: ignore[arg-type]
                d = alert.details or {}
                if d.get("event") != "raised" or alert.category != "clinical":
                    continue
                raised[alert.alert_type] = raised.get(alert.alert_type, 0) + 1
                if alert.device_id not in expected:
                    result.unexpected.append(alert.alert_type)
                decided = alert.onset_gateway_us / 1e6 + (float(d["at_s"]) - float(d["onset_s"]))
                latencies.append(got - decided)

        listener = asyncio.create_task(listen())
        async with Gateway(config, uplink=Endpoint("127.0.0.1", port),
                           sink=lambda outbox: _TimedSink(outbox, result.to_outbox)) as gateway:
            ticking = asyncio.create_task(gateway.run_until(stop, tick_s=args.tick))
            agent = gateway.agent
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result.lateness = await _feed(agent, schedule, time.time() + 0.5)
            result.cpu_fraction = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
            await asyncio.sleep(args.drain)
            stop.set()
            await ticking
        result.windows_done = agent.counters.windows_done
        result.windows_dropped = dict(agent.counters.windows_dropped)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    return result


async def amain(args: argparse.Namespace) -> None:
    logging.getLogger("mqtt").setLevel(logging.ERROR)    # aiomqtt's "pending publish calls" chatter
    logging.getLogger("edge").setLevel(logging.ERROR)    # the gateway's per-alert log lines
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port, broker = start_mosquitto(work)
        try:
            hop = await broker_only(port, 200, 50.0)
            run = await gateway_run(port, work, args)
        finally:
            broker.kill()
    lat, raised = run.latencies, run.raised
    print(f"  {args.patients} patients in real time for {args.seconds:g} s; {args.events} switch to VT and "
          f"{args.events} to asystole at {args.onset:g}–{args.onset + 5:g} s; VAE + classifier; tick {args.tick:g} s; "
          f"starts staggered over {args.stagger:g} s")
    l50, l99, lmax = latency_ms(run.lateness)
    verdict = "kept up" if lmax <= 1000.0 else "FELL BEHIND"          # no frame handled more than 1 s late
    print(f"  {verdict}: frames fed late by p50 {l50:.0f} ms, p99 {l99:.0f} ms, max {lmax:.0f} ms; "
          f"CPU {run.cpu_fraction:.2f} cores; windows {run.windows_done} done, dropped {run.windows_dropped or 0}")
    print(f"  clinical alerts raised: {dict(sorted(raised.items()))}; for patients who stayed in sinus rhythm: "
          f"{sorted(run.unexpected) or 'none'}")
    b50, b99, bmax = latency_ms(hop)
    print(f"  {'broker hop only (baseline)':<46} p50 {b50:7.1f} ms  p99 {b99:7.1f} ms  max {bmax:7.1f} ms")
    if not lat:
        print("  no clinical alert arrived")
        return
    o50, o99, omax = latency_ms(run.to_outbox)
    print(f"  {'deciding sample → alert in the outbox':<46} p50 {o50:7.1f} ms  p99 {o99:7.1f} ms  max {omax:7.1f} ms")
    p50, p99, pmax = latency_ms(lat)
    print(f"  {'deciding sample → alert from the broker':<46} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {pmax:7.1f} ms"
          f"  (x{p50 / b50:.1f} / x{p99 / b99:.1f}; {len(lat)} alerts)")


def main(argv: Sequence[str] | None = None) -> None:
    """Run with ``argv`` options (defaults when None, as ``python -m bench`` calls it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--events", type=int, default=10, help="patients switching to VT (and as many to asystole)")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--onset", type=float, default=20.0)
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait after the last frame")
    parser.add_argument("--tick", type=float, default=0.5, help="the gateway's tick (s), as ecgstream edge run uses")
    parser.add_argument("--stagger", type=float, default=10.0,
                        help="each device starts streaming at a random time in [0, stagger) s; 0 starts all in step, "
                             "so every patient's quality windows and model windows fall due together (worst case)")
    args = parser.parse_args([] if argv is None else argv)
    if not 0 <= 2 * args.events <= args.patients:
        parser.error("--events must be at most half of --patients")
    asyncio.run(amain(args))


if __name__ == "__main__":
    main(sys.argv[1:])
