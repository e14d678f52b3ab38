"""Edge inference through the micro-batcher: windows/s by batch size, and latency at a 500-patient load.

Run: ``.venv/bin/python -m bench edge_inference``. The full per-window work of
:class:`edge.inference.InferencePipeline` (band-pass with 1 s margins, the shipped
3→12 VAE ``models/artifacts/reconstruction_vae.onnx`` on the auto-selected backend,
int16 quantisation into an ``EcgWindow``), driven through the asyncio
:class:`~edge.inference.MicroBatcher`:

1. saturated throughput at ``max_batch`` 1, 32 and 64 (every window queued at once),
   with the ratio against batch 1 measured in the same run;
2. the latency the batcher adds (queue wait + inference, per window) at the load of
   500 patients each sending one window every 5 s (100 windows/s, random phases),
   for ``ECGSTREAM_BENCH_SECONDS`` (default 20) seconds, with the event loop's lag
   (how late a 10 ms timer fires) as a check that ingest keeps flowing.

Windows are real: synthetic patients cut by the :class:`~edge.inference.Windower`.
Nothing is asserted.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import time
import uuid
from dataclasses import replace

import numpy as np

from edge.inference import InferencePipeline, Window, Windower, percentile, select_backend
from edge.stream.records import ModelBlock
from firmware_sim.synthesis import synthesize
from models.preprocessing import MODEL_FS
from protocol.leads import WEARABLE_LEADS


def make_windows(n_patients: int = 8, seconds: float = 60.0) -> list[Window]:
    """Windows of a few synthetic patients (at the model rate, as the stream state would give)."""
    out: list[Window] = []
    for p in range(n_patients):
        syn = synthesize("sinus" if p % 2 else "afib", seconds=seconds, fs=MODEL_FS, seed=p)
        x = np.stack([syn.lead(lead) for lead in WEARABLE_LEADS], axis=1).astype(np.float32)
        w = Windower(f"p{p}", f"d{p}", MODEL_FS)
        out += w.push_block(ModelBlock(0, 0, x, MODEL_FS, 1.7e9))
    return out


def fresh(w: Window, patient: str) -> Window:
    """The same samples as a new window of ``patient``."""
    return replace(w, window_id=str(uuid.uuid4()), patient_id=patient)


async def throughput(backend, windows: list[Window], max_batch: int, n: int) -> float:  # type: ignore[no-untyped-def]
    async with InferencePipeline(backend, max_batch=max_batch, deadline_ms=5, max_queue=n + 1) as pipe:
        await asyncio.gather(*(pipe.process(fresh(windows[i % len(windows)], "warm")) for i in range(2 * max_batch)))
        t = time.perf_counter()
        futs = [pipe.submit(fresh(windows[i % len(windows)], f"p{i % 500}")) for i in range(n)]
        await asyncio.gather(*futs)
        return n / (time.perf_counter() - t)


async def load(backend, windows: list[Window], patients: int, period_s: float, seconds: float, max_batch: int,  # type: ignore[no-untyped-def]
               deadline_ms: float) -> dict[str, float]:
    rng = random.Random(0)
    lags: list[float] = []
    stop = time.monotonic() + seconds

    async def ticker() -> None:
        while time.monotonic() < stop:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    async with InferencePipeline(backend, max_batch=max_batch, deadline_ms=deadline_ms) as pipe:
        await asyncio.gather(*(pipe.process(fresh(windows[i], "warm")) for i in range(max_batch)))
        warm_batches = pipe.batcher.stats.batches
        pipe.batcher.stats.latency_s.clear()
        pipe.batcher.stats.batch_sizes.clear()

        async def patient(p: int) -> None:
            await asyncio.sleep(rng.uniform(0, period_s))
            k = 0
            pending = []
            while time.monotonic() < stop:
                pending.append(pipe.submit(fresh(windows[(p + k) % len(windows)], f"p{p}")))
                k += 1
                await asyncio.sleep(period_s)
            await asyncio.gather(*pending)

        await asyncio.gather(ticker(), *(patient(p) for p in range(patients)))
        st = pipe.batcher.stats
        lat = list(st.latency_s)
        return {
            "windows": len(lat), "batches": st.batches - warm_batches, "mean_batch": float(np.mean(st.batch_sizes)),
            "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3, "max_ms": max(lat) * 1e3,
            "lag_p99_ms": percentile(lags, 99) * 1e3, "dropped": st.dropped_total,
        }


def main() -> None:
    seconds = float(os.environ.get("ECGSTREAM_BENCH_SECONDS", "20"))
    backend = select_backend("auto", max_batch=64)
    windows = make_windows()
    cpu = platform.processor() or platform.machine()
    print(f"{os.cpu_count()} CPU(s) ({cpu}); backend {backend.name}; {len(windows)} distinct windows "
          "(3 x 1250 at 125 Hz, 1 s margins); full pipeline: band-pass + VAE + int16 EcgWindow")
    print(f"{'max_batch':>9} {'windows/s':>10} {'vs batch 1':>11}")
    base = None
    for mb in (1, 32, 64):
        rate = asyncio.run(throughput(backend, windows, mb, n=640 if mb > 1 else 320))
        base = base or rate
        print(f"{mb:>9} {rate:10.0f} {rate / base:10.2f}x")
    print(f"\n500 patients x 1 window / 5 s (100 windows/s, random phases), {seconds:g} s; added latency = queue + inference")
    print(f"{'max_batch':>9} {'deadline':>8} {'windows':>7} {'mean batch':>10} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'loop lag p99 ms':>15} {'dropped':>7}")
    for mb, dl in ((32, 50.0), (32, 10.0)):
        r = asyncio.run(load(backend, windows, 500, 5.0, seconds, mb, dl))
        print(f"{mb:>9} {dl:>6g}ms {r['windows']:>7.0f} {r['mean_batch']:>10.1f} {r['p50_ms']:>7.1f} "
              f"{r['p99_ms']:>7.1f} {r['max_ms']:>7.1f} {r['lag_p99_ms']:>15.1f} {r['dropped']:>7.0f}")


if __name__ == "__main__":
    main()
