"""Patients one edge process keeps in real time: the whole agent path, frames in, outbox out.

``--patients`` wearables (ecgstream-250: II, V1, V5 at 250 Hz, 36-sample BLE frames, ~6.9 frames/s
each) stream ``--seconds`` of synthetic ECG into one :class:`edge.agent.EdgeAgent` in stream time, as
fast as it can take them (``feed_many``; sync mode, so inference runs inline and nothing is shed), in
the :class:`edge.gateway.Gateway` that ``ecgstream edge run`` runs (no broker: frames fed in process):
frame decode, per-stream order/gaps/clock, resampling, signal quality, filters, QRS detection,
alarm rules, 10-s windows at a 5-s hop through the VAE and the classifier (ONNX Runtime CPU),
ST measurement, and every alert and window written to the SQLite outbox. Patients kept in real
time = patients × stream seconds / wall seconds. Baseline in the same run: the same agent with rules
only (no models). A third row runs the full pipeline in async mode, as ``ecgstream edge run`` does
(the models in the micro-batcher's worker thread, overlapping the per-frame work on the event loop).
Run: ``python -m bench.bench_edge_agent``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.bench_edge_alert_latency import frames
from edge.config import EdgeConfig
from edge.gateway import Gateway
from firmware_sim.synthesis import RhythmSegment

T0 = 1_700_000_000.0


def patient_frames(seconds: float, seed: int) -> list[tuple[bytes, float]]:
    """One sinus wearable's encoded frames and their stream end times (s)."""
    return [(data, end) for end, data in frames([RhythmSegment(0.0, "sinus")], seconds, seed)]


def _messages(patients: int, frames: list[list[tuple[bytes, float]]]) -> list[tuple[str, bytes, str, float]]:
    """The patients' frames interleaved in arrival order, as a gateway receives them."""
    return sorted(((f"dev-{p:04d}", data, "frame", T0 + end + 0.02) for p in range(patients)
                   for data, end in frames[p % len(frames)]), key=lambda m: m[3])


def _config(work: Path, *, models: bool = True) -> EdgeConfig:
    """The default gateway, its files in ``work``; ``models=False``: rules only (no model file)."""
    config = EdgeConfig()
    processing = config.processing if models else replace(config.processing, reconstruction_model=work / "none.onnx")
    return replace(config, processing=processing,
                   uplink=replace(config.uplink, outbox_path=work / "outbox.db"),
                   observability=replace(config.observability, status_file=work / "status.json"))


async def run(patients: int, seconds: float, *, models: bool, frames: list[list[tuple[bytes, float]]]) -> tuple[float, dict]:
    """Sync mode: wall seconds to process ``patients`` × ``seconds``; and a few counters."""
    with tempfile.TemporaryDirectory() as tmp:
        async with Gateway(_config(Path(tmp), models=models), mode="sync", clock=lambda: T0) as gateway:
            agent = gateway.agent
            msgs = _messages(patients, frames)
            t = time.perf_counter()
            agent.feed_many(msgs, tick_s=0.5)
            agent.tick(T0 + seconds + 1.0)
            agent.flush()
            wall = time.perf_counter() - t
            counters = {"windows": agent.counters.windows_done, "frames": len(msgs)}
    return wall, counters


async def run_async(patients: int, seconds: float, *, frames: list[list[tuple[bytes, float]]]) -> tuple[float, dict]:
    """Async mode, as ``ecgstream edge run`` runs the agent: windows go through the pipeline's micro-batcher,
    whose worker thread runs the models while the event loop goes on with the frames. The frames are
    fed as fast as the loop takes them, in stream time, yielding to the loop between ticks."""
    with tempfile.TemporaryDirectory() as tmp:
        async with Gateway(_config(Path(tmp)), mode="async", clock=lambda: T0) as gateway:
            agent = gateway.agent
            msgs = _messages(patients, frames)
            t = time.perf_counter()
            next_tick = msgs[0][3] + 0.5
            for device_id, data, kind, arrival in msgs:
                if arrival >= next_tick:
                    agent.tick(arrival)
                    next_tick = arrival + 0.5
                    await asyncio.sleep(0)            # let finished batches be delivered
                agent.feed(device_id, data, kind, arrival, transport="replay")
            agent.tick(T0 + seconds + 1.0)
            await gateway.drain(flush_sessions=True)
            wall = time.perf_counter() - t
            counters = {"windows": agent.counters.windows_done, "frames": len(msgs),
                        "dropped": sum(agent.counters.windows_dropped.values())}
    return wall, counters


def main(argv: Sequence[str] | None = None) -> None:
    """Run with ``argv`` options (defaults when None, as ``python -m bench`` calls it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args([] if argv is None else argv)
    logging.getLogger("edge").setLevel(logging.ERROR)    # "rules_only" and the like: the rows say so
    frames = [patient_frames(args.seconds, seed) for seed in range(8)]
    print(f"  {args.patients} patients × {args.seconds:g} s of stream (ecgstream-250, 3 leads), one process")
    base = None
    for label, models in (("rules only (baseline)", False), ("full pipeline: VAE + classifier", True)):
        wall, c = asyncio.run(run(args.patients, args.seconds, models=models, frames=frames))
        kept = args.patients * args.seconds / wall
        base = base or kept
        print(f"  {label:<34} {wall:6.1f} s wall  {kept:7.0f} patients in real time  x{kept / base:.2f}   "
              f"({c['frames']} frames, {c['windows']} windows)")
    wall, c = asyncio.run(run_async(args.patients, args.seconds, frames=frames))
    kept = args.patients * args.seconds / wall
    print(f"  {'full pipeline, async (as edge run)':<34} {wall:6.1f} s wall  {kept:7.0f} patients in real time  "
          f"x{kept / (base or kept):.2f}   ({c['frames']} frames, {c['windows']} windows, {c['dropped']} dropped)")


if __name__ == "__main__":
    main(sys.argv[1:])
