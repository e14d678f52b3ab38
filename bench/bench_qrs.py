"""Streaming filters + QRS detector throughput: packets of 36 samples vs one call per whole record.

A synthetic 250 Hz wearable record (leads II, V1, V5, with noise) goes through the edge's filter
chain (0.5 Hz high-pass, 50 Hz notch) and :class:`edge.signal.qrs.QrsDetector` on lead II, two ways
measured in the same run: streamed in 36-sample packets (one BLE frame each, as the gateway gets
them) and whole (one call each). Figures are the best of ``--repeat`` runs: samples/s per lead,
the streaming/whole ratio, and how many 250 Hz three-lead patients one core keeps up with (all
three leads filtered, QRS on lead II). Run: ``python -m bench qrs``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial

import numpy as np

from bench.timing import best_time
from edge.signal.filters import EcgFilter
from edge.signal.qrs import QrsDetector
from firmware_sim.synthesis import NoiseSpec, synthesize

FS = 250.0
PACKET = 36
LEADS = ("II", "V1", "V5")


def _patient_streaming(x: np.ndarray) -> None:
    filt, det = EcgFilter(FS, x.shape[1]), QrsDetector(FS)
    for start in range(0, x.shape[0], PACKET):
        det.process(filt.process(x[start : start + PACKET])[:, 0])
    det.finish()


def _patient_whole(x: np.ndarray) -> None:
    det = QrsDetector(FS)
    det.process(EcgFilter(FS, x.shape[1]).process(x)[:, 0])
    det.finish()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="record length (s)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(list(argv) if argv is not None else [])
    syn = synthesize("sinus", seconds=args.seconds, fs=FS, seed=0,
                     noise=NoiseSpec(baseline_mv=0.1, emg_mv=0.02, powerline_mv=0.05))
    x3 = np.column_stack([syn.lead(name) for name in LEADS])
    x1 = x3[:, :1]
    n = x3.shape[0]
    print(f"record: {args.seconds:g} s at {FS:g} Hz, {PACKET}-sample packets, best of {args.repeat}")
    print(f"{'work':<36} {'streamed (ksamples/s/lead)':>27} {'whole':>10} {'ratio':>7}")
    for label, x in (("filters + QRS, 1 lead", x1), ("3-lead filters + QRS on II (patient)", x3)):
        t_stream = best_time(partial(_patient_streaming, x), args.repeat)
        t_whole = best_time(partial(_patient_whole, x), args.repeat)
        leads = x.shape[1]
        print(f"{label:<36} {n * leads / t_stream / 1e3:27.0f} {n * leads / t_whole / 1e3:10.0f} "
              f"{t_whole / t_stream:7.3f}")
    patients = args.seconds / t_stream
    print(f"one core keeps up with {patients:.0f} patients at {FS:g} Hz (3 leads filtered, QRS on lead II), "
          f"streamed in {PACKET}-sample packets")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
