"""Beats of one 10 s classifier window: R peaks and the median beat of the measured leads.

The classifier's rhythm features (:mod:`models.features.rhythm`) need the beats of each window, in
training and at the edge alike, computed the same way from the same input: the window the model sees
(band-passed 0.5–40 Hz, 125 Hz, mV), restricted to the leads the wearable measures (II, V1, V5), so a
reconstruction error can never move a beat. The edge's streaming detector (``edge.signal.qrs``) serves
the alarm rules; this one is a whole-window detector that the model package can own (the model layer
must not import the edge).

Detection (Pan–Tompkins in spirit, whole window at once): the spatial energy of the first difference
summed over the measured leads, smoothed over 100 ms, has one hump per QRS; its local maxima at least
``refractory_s`` apart whose height reaches ``threshold_fraction`` of a robust maximum (the 90th
percentile of the candidate heights, so one artefact spike cannot hide every beat) are the beats. Each
beat is then moved to the largest absolute slope of the measured leads within ± 50 ms, the steepest
part of the QRS, a fiducial point that does not depend on which wave is tallest. A hump below
``min_energy`` (mV² per sample², smoothed: about 0.02 mV per sample sustained over the 100 ms, far under a
0.3 mV QRS and far over 10 µV of amplifier noise) is no beat, so a flat lead has none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks


@dataclass(frozen=True)
class WindowBeats:
    """R peaks (sample indices, ascending) and the median beat of a window.

    ``template``: (leads, 2·half + 1) sample-wise median of the beats whose span lies in the window,
    centred on the fiducial at column ``half``; None with fewer than 2 such beats."""

    peaks: np.ndarray
    fs: float
    template: np.ndarray | None
    half: int

    @property
    def rr_s(self) -> np.ndarray:
        """RR intervals (s)."""
        return np.diff(self.peaks) / self.fs


def detect_beats(leads: np.ndarray, fs: float, *, refractory_s: float = 0.25, threshold_fraction: float = 0.3,
                 smooth_s: float = 0.1, min_energy: float = 5e-4) -> np.ndarray:
    """R-peak sample indices of ``leads`` ((k, n) band-passed mV), ascending; empty for a flat window."""
    x = np.asarray(leads, dtype=np.float64)
    d = np.diff(x, axis=1, prepend=x[:, :1])
    energy = np.einsum("kn,kn->n", d, d)
    w = max(1, int(round(smooth_s * fs)))
    envelope = np.convolve(energy, np.full(w, 1.0 / w), mode="same")
    candidates, props = find_peaks(envelope, distance=max(1, int(round(refractory_s * fs))), height=min_energy)
    if candidates.size == 0:
        return candidates.astype(np.int64)
    heights = props["peak_heights"]
    ref = float(np.percentile(heights, 90))
    peaks = candidates[heights >= threshold_fraction * ref]
    # move each beat to the steepest point of the QRS (largest summed |slope|) within ± 50 ms
    slope = np.abs(d).sum(axis=0)
    r = max(1, int(round(0.05 * fs)))
    offsets = np.arange(-r, r + 1)
    idx = np.clip(peaks[:, None] + offsets[None, :], 0, x.shape[1] - 1)
    refined = idx[np.arange(peaks.size), np.argmax(slope[idx], axis=1)]
    refined = np.unique(refined)
    if refined.size > 1:                 # two refinements may land within the refractory period: keep one
        keep = np.concatenate([[True], np.diff(refined) >= refractory_s * fs * 0.5])
        refined = refined[keep]
    return refined.astype(np.int64)


def median_beat(leads: np.ndarray, peaks: np.ndarray, fs: float, *, before_s: float = 0.35,
                after_s: float = 0.65) -> tuple[np.ndarray | None, int]:
    """Sample-wise median of the beats of ``leads`` around ``peaks`` (those wholly inside the window),
    and the fiducial's column; (None, half) with fewer than 2 whole beats."""
    before, after = int(round(before_s * fs)), int(round(after_s * fs))
    x = np.asarray(leads, dtype=np.float64)
    whole = peaks[(peaks - before >= 0) & (peaks + after < x.shape[1])]
    if whole.size < 2:
        return None, before
    idx = whole[:, None] + np.arange(-before, after + 1)[None, :]
    segments = x[:, idx]                                   # (k, beats, span)
    return np.median(segments, axis=1), before


def window_beats(leads: np.ndarray, fs: float) -> WindowBeats:
    """Beats and median beat of one window of measured leads ((k, n), band-passed mV)."""
    peaks = detect_beats(leads, fs)
    template, half = median_beat(leads, peaks, fs)
    return WindowBeats(peaks, float(fs), template, half)
