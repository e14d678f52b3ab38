"""Per-beat cost of the AF figure: rules version 3 (Petrėnas detector + ectopy gate) against version 2.

The edge computes the RR irregularity on every beat of every patient: :class:`edge.signal.rr.RrStats`
gets each RR with ``add`` and the session reads the figure once per packet. Measured in the same run,
over the same RR stream (synthetic AF and sinus beats, 4 ms jitter) cut into 1-s packets:

- **version 2**: ``add`` per beat and the robust ectopy- and pattern-aware RMSSD of 32 RR read once
  per packet (``RrStats.robust_irregularity``: what ``RrStats.irregularity`` was in rules version 2);
- **version 3**: ``add`` per beat and ``RrStats.irregularity`` read once per packet: the packet's RR
  go to :class:`edge.signal.af_detector.AfDetector` as one batch, then the version-2 figure gates it;
- **detector alone**: :meth:`AfDetector.extend` once per packet.

Figures: µs per beat (best of ``--repeat``) and version 3 / version 2. Run: ``python -m bench af_detector``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from functools import partial

import numpy as np

from bench.timing import best_time
from edge.signal.af_detector import AfDetector
from edge.signal.rr import RrStats
from firmware_sim.synthesis import RhythmSegment, synthesize_timeline

FS = 250.0


def _packets(seconds: float) -> list[list[float]]:
    """RR (s) of a sinus → AF → sinus stream, grouped by the 1-s packet their closing beat fell in."""
    segs = [RhythmSegment(0.0, "sinus"), RhythmSegment(seconds / 3, "afib"), RhythmSegment(2 * seconds / 3, "sinus")]
    syn = synthesize_timeline(segs, seconds=seconds, fs=FS, seed=0)
    t = np.sort(syn.beats / FS + np.random.default_rng(0).normal(0.0, 0.004, syn.beats.size))
    rr, packet = np.diff(t), np.floor(t[1:]).astype(int)
    return [rr[packet == k].tolist() for k in range(int(seconds))]


def _version2(packets: list[list[float]]) -> None:
    s = RrStats()
    for p in packets:
        for x in p:
            s.add(x)
        _ = s.robust_irregularity


def _version3(packets: list[list[float]]) -> None:
    s = RrStats()
    for p in packets:
        for x in p:
            s.add(x)
        _ = s.irregularity


def _detector(packets: list[list[float]]) -> None:
    d = AfDetector()
    for p in packets:
        d.extend(p)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1800.0, help="stream length (s)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(list(argv) if argv is not None else [])
    packets = _packets(args.seconds)
    beats = sum(len(p) for p in packets)
    print(f"stream: {args.seconds:g} s, {beats} beats in 1-s packets, best of {args.repeat}")
    times = {name: best_time(partial(fn, packets), args.repeat, warmup=True)
             for name, fn in (("version 2 (robust RMSSD, 32 RR)", _version2),
                              ("version 3 (detector + ectopy gate)", _version3),
                              ("detector alone (AfDetector.extend)", _detector))}
    base = times["version 2 (robust RMSSD, 32 RR)"]
    print(f"{'figure':<38} {'µs/beat':>8} {'vs v2':>7}")
    for name, t in times.items():
        print(f"{name:<38} {t / beats * 1e6:8.2f} {t / base:7.2f}")


if __name__ == "__main__":
    main()
