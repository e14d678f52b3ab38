"""Labelled stress windows: synthetic subjects from the simulator, or a WESAD folder.

Synthetic subject *k* of seed *s* is the virtual patient ``random_patient(s·100003 + k)`` recorded
(lead II, 250 Hz) for ``windows_per_state`` × 10 s in each state: at rest (baseline), under acute stress
and amused (:mod:`firmware_sim.synthesis.affect`), at a level drawn per recording (0.6–1.4) and with its
own noise (baseline wander, EMG, sometimes motion; the same spread in every state, so noise says
nothing about the state). This is training data from a simulator, and every model trained on it says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.preprocessing import MODEL_FS, WINDOW_S, WINDOW_SAMPLES, prepare_record, split_windows
from models.stress import CLASSES, LEAD
from models.stress.hrv import hrv_matrix

SYNTH_FS = 250.0
"""Rate the simulator runs at before preprocessing (Hz)."""
MARGIN_S = 2.0
"""Signal synthesised before and after the windows, cut off after filtering (s)."""


@dataclass(frozen=True)
class StressSet:
    """``windows`` (N, 1250) float32 lead II band-passed mV at 125 Hz; ``features`` (N, 7) HRV vectors;
    ``labels`` (N,) class index into :data:`~models.stress.CLASSES`; ``subjects`` one id per window."""

    windows: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    subjects: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return int(self.labels.size)

    def subset(self, mask: np.ndarray) -> StressSet:
        """The windows where ``mask`` is true."""
        idx = np.flatnonzero(mask)
        return StressSet(self.windows[idx], self.features[idx], self.labels[idx],
                         tuple(self.subjects[i] for i in idx), self.source)

    def subject_ids(self) -> list[str]:
        """Distinct subjects, in order of first appearance."""
        return list(dict.fromkeys(self.subjects))


def _recording(subject_seed: int, state: str, n_windows: int) -> np.ndarray:
    from firmware_sim.synthesis import NoiseSpec, RhythmSegment, random_patient, synthesize_timeline

    rng = np.random.default_rng([subject_seed, CLASSES.index(state)])
    params = {} if state == "baseline" else {state: float(rng.uniform(0.6, 1.4))}
    noise = NoiseSpec(baseline_mv=float(rng.uniform(0.0, 0.15)), emg_mv=float(rng.uniform(0.0, 0.03)),
                      motion_mv=float(rng.uniform(0.0, 0.3)) if rng.random() < 0.3 else 0.0)
    seconds = n_windows * WINDOW_S + 2 * MARGIN_S
    synth = synthesize_timeline([RhythmSegment(0.0, "sinus", params)], seconds=seconds, fs=SYNTH_FS,
                                seed=int(rng.integers(2**31)), patient=random_patient(subject_seed), noise=noise)
    lead = prepare_record(synth.lead(LEAD)[:, None], SYNTH_FS)
    m = int(round(MARGIN_S * MODEL_FS))
    return split_windows(lead[:, m:-m])[:n_windows, 0, :]


def synthetic_set(subjects: int, windows_per_state: int, seed: int = 0) -> StressSet:
    """``subjects`` synthetic subjects × 3 states × ``windows_per_state`` windows (deterministic)."""
    if subjects < 1 or windows_per_state < 1:
        raise ValueError("need at least one subject and one window per state")
    windows, labels, ids = [], [], []
    for k in range(subjects):
        subject_seed = seed * 100003 + k
        for c, state in enumerate(CLASSES):
            w = _recording(subject_seed, state, windows_per_state)
            windows.append(w)
            labels.append(np.full(len(w), c, dtype=np.int64))
            ids.extend([f"sim-{seed}-{k}"] * len(w))
    x = np.concatenate(windows).astype(np.float32)
    return StressSet(x, hrv_matrix(x, MODEL_FS), np.concatenate(labels), tuple(ids), "synthetic")


def wesad_set(root: str | Path) -> StressSet:
    """Every labelled 10 s window of a WESAD folder (:mod:`models.data.wesad`)."""
    from models.data.wesad import wesad_windows

    data = wesad_windows(root)
    x = np.ascontiguousarray(data.windows, dtype=np.float32)
    assert x.shape[1] == WINDOW_SAMPLES
    return StressSet(x, hrv_matrix(x, MODEL_FS), data.labels, data.subjects, "wesad")
