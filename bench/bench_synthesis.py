"""Synthesis speed: real-time factor of 12-lead synthesis at 500 Hz, against neurokit2 in the same run.

Run: ``.venv/bin/python -m bench.bench_synthesis``. Prints, for a few rhythms, the time to make
10 s of 12-lead ECG (one core), the real-time factor (signal seconds per wall second), and the
speed ratio against neurokit2's ``ecg_simulate(method="multileads")`` (and the single-lead
ECGSYN) on the same duration and sampling rate. Goal: real-time factor ≥ 1000. Nothing is asserted.
"""

from __future__ import annotations

import warnings
from functools import partial

from bench.timing import best_time
from firmware_sim.synthesis import NoiseSpec, synthesize

SECONDS = 10.0
FS = 500.0
RHYTHMS = ("sinus", "afib", "pvc_bigeminy", "lbbb", "vt", "vf")


def main() -> None:
    import neurokit2 as nk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_nk12 = best_time(lambda: nk.ecg_simulate(duration=SECONDS, sampling_rate=int(FS), method="multileads",
                                                   random_state=0), repeats=3, warmup=True)
        t_nk1 = best_time(lambda: nk.ecg_simulate(duration=SECONDS, sampling_rate=int(FS), method="ecgsyn",
                                                  random_state=0), repeats=3, warmup=True)
    print(f"{SECONDS:.0f} s of ECG at {FS:.0f} Hz, best of repeats, one process")
    print(f"baseline neurokit2 multileads (12 leads): {t_nk12 * 1e3:8.1f} ms   real-time x{SECONDS / t_nk12:8.0f}")
    print(f"baseline neurokit2 ecgsyn (1 lead):       {t_nk1 * 1e3:8.1f} ms   real-time x{SECONDS / t_nk1:8.0f}")
    print(f"{'rhythm':<14} {'noise':<6} {'ms':>7} {'real-time x':>12} {'vs nk 12-lead':>14} {'vs nk ecgsyn':>13}")
    noisy = NoiseSpec(baseline_mv=0.1, emg_mv=0.03, motion_mv=0.3, powerline_mv=0.02)
    for rhythm in RHYTHMS:
        for label, noise in (("none", None), ("all", noisy)):
            t = best_time(partial(synthesize, rhythm, seconds=SECONDS, fs=FS, seed=1, noise=noise), repeats=20, warmup=True)
            print(f"{rhythm:<14} {label:<6} {t * 1e3:7.2f} {SECONDS / t:12.0f} {t_nk12 / t:13.0f}x {t_nk1 / t:12.0f}x")


if __name__ == "__main__":
    main()
