"""Pacemaker pulses in the raw stream, so that paced beats are not read as ventricular tachycardia.

A ventricular-paced beat is wide (the impulse spreads from the lead tip through the myocardium, not
the conduction system), so a paced rhythm at 100 bpm or more meets every beat criterion of VT: the
classic false VT alarm of bedside monitors, and one of the documented false alarms of the
PhysioNet/CinC 2015 challenge. Monitors therefore detect pace pulses (IEC 60601-2-27 requires pace
pulse rejection) and leave paced beats out of the ventricular analysis; so does this gateway.

A pacing pulse lasts 0.1–2 ms. After a wearable's anti-alias filter and sampling at 250–500 Hz it
survives as a burst of energy at the highest frequencies the stream can carry: one or a few samples
that jump far off the line through their neighbours, often ringing with alternating sign. Body
signals have nothing comparable there: the steepest physiological deflection, the R upstroke, turns
at ≤ ~50 mV/s, i.e. a second difference of a few tenths of a mV per sample at 250 Hz, and less the
faster the stream is sampled. Muscle noise is broadband but two orders of magnitude smaller. So a
pace pulse is a sample whose **second difference** ``|x[i−1] − 2·x[i] + x[i+1]|`` reaches
``threshold_mv`` (1.0 mV, ≥ 2.5× the physiological ceiling), measured on the raw samples (before the
0.5–40 Hz band-pass, which would erase it).

A beat is *paced* when a pulse lies within ``before_s`` before to ``after_s`` after its R peak (the
pulse precedes the paced QRS by a few ms; the band-pass and detector place R up to ~100 ms later).
Limits: a stream sampled below 250 Hz or a device whose front end already removes pace pulses gives
no pulses to see (those devices flag pacing themselves); a burst of electrode-pop artefact that
happens to coincide with a beat marks that one beat paced, which a VT run (six beats) is robust to.
"""

from __future__ import annotations

import numpy as np

PACE_MIN_FS_HZ = 250.0
"""Below this rate a sharp physiological R peak can reach the threshold, so pulses are not looked for."""


class PacePulseDetector:
    """Streaming pace-pulse detection on one raw lead sampled at ``fs`` Hz.

    :meth:`push` every raw chunk (the same samples, in the same order, as the analysis filter gets);
    :meth:`paced` then tells, for beats given as absolute sample indices (from the first sample
    pushed), whether a pulse lies next to each. Pulse positions are kept for ``history_s``.
    """

    def __init__(self, fs: float, *, threshold_mv: float = 1.0, before_s: float = 0.15, after_s: float = 0.05,
                 history_s: float = 5.0) -> None:
        if fs <= 0 or threshold_mv <= 0:
            raise ValueError("fs and threshold_mv must be positive")
        self.fs = float(fs)
        self.threshold_mv = float(threshold_mv)
        self._before = int(round(before_s * fs))
        self._after = int(round(after_s * fs))
        self._history = max(int(history_s * fs), self._before + self._after + 1)
        self._tail = np.zeros(0)           # the last two samples pushed (the second difference spans three)
        self._seen = 0                     # samples pushed so far
        self._pulses = np.zeros(0, dtype=np.int64)
        self.pulses_total = 0
        """Samples flagged as pace pulses since the start (a pulse may span several)."""

    def push(self, raw: np.ndarray) -> None:
        """Append the next raw samples (mV); NaN-free, as the analysis filter gets them."""
        x = np.asarray(raw, dtype=np.float64)
        if x.size == 0:
            return
        joined = np.concatenate([self._tail, x])
        first = self._seen - self._tail.size            # absolute index of joined[0]
        if joined.size >= 3:
            d2 = np.abs(joined[:-2] - 2.0 * joined[1:-1] + joined[2:])
            hits = np.flatnonzero(d2 >= self.threshold_mv) + first + 1
            if hits.size:
                self.pulses_total += int(hits.size)
                self._pulses = np.concatenate([self._pulses, hits])
        self._seen += x.size
        self._tail = joined[-2:]
        keep = self._pulses >= self._seen - self._history
        if not keep.all():
            self._pulses = self._pulses[keep]

    def paced(self, beats: np.ndarray) -> list[bool]:
        """For each beat (absolute sample index of its R peak): is there a pace pulse next to it?"""
        b = np.asarray(beats, dtype=np.int64)
        if b.size == 0:
            return []
        if self._pulses.size == 0:
            return [False] * int(b.size)
        lo = np.searchsorted(self._pulses, b - self._before, side="left")
        hi = np.searchsorted(self._pulses, b + self._after, side="right")
        return (hi > lo).tolist()
