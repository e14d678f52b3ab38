"""Synthetic labelled 12-lead windows from the project's physiological simulator.

Each window is one virtual patient (random axis, amplitudes, intervals, rate)
in one rhythm from the catalogue, with noise of random kind and level, run
through :func:`models.preprocessing.prepare_window`, so it looks exactly like
what the edge hands a model. Window *i* of seed *s* is always the same, on any
machine, whatever the number of worker processes. Generated on the fly;
:func:`load_or_generate` caches a set as ``.npz``.

This is training data from a simulator: every model trained on it says so in
its model card.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from firmware_sim.synthesis import SIMULATOR_VERSION
from models.preprocessing import PREPROCESSING_VERSION, WINDOW_S, prepare_window

SYNTH_FS = 250.0
"""Rate the simulator runs at before preprocessing (Hz)."""
MARGIN_S = 1.0
"""Extra signal on each side of a window, cut off after filtering."""

DEFAULT_RHYTHM_WEIGHTS: Mapping[str, float] = {
    "sinus": 6, "sinus_brady": 2, "sinus_tachy": 3, "afib": 3, "aflutter": 1, "pac": 2, "pvc": 2,
    "pvc_bigeminy": 1, "pvc_trigeminy": 1, "vt": 1, "vf": 0.5, "svt": 1, "av_block_1": 1, "wenckebach": 1,
    "lbbb": 1.5, "rbbb": 1.5, "stemi_anterior": 1, "stemi_inferior": 1, "stemi_lateral": 1, "st_depression": 1,
    "t_inversion": 1, "long_qt": 1, "pause": 0.5, "asystole": 0.2,
}
"""Relative frequency of each rhythm (sinus-heavy, every rhythm present)."""


@dataclass(frozen=True)
class SyntheticSpec:
    """What a synthetic set contains."""

    n_windows: int
    seed: int = 0
    rhythm_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_RHYTHM_WEIGHTS))
    noise_probability: float = 0.6
    """Chance that a window carries noise (each kind drawn independently)."""
    max_noise_mv: float = 0.08
    """Largest EMG/powerline level (mV); baseline and motion scale from it."""

    def key(self) -> str:
        """Content hash for caching."""
        content = {**asdict(self), "preprocessing": PREPROCESSING_VERSION, "simulator": SIMULATOR_VERSION}
        blob = json.dumps(content, sort_keys=True, default=dict).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class SyntheticSet:
    """``signals``: (n, 12, 1250) float32 mV at the model rate; ``rhythms``: one name per window."""

    signals: np.ndarray
    rhythms: tuple[str, ...]
    spec: SyntheticSpec


def _one_window(index: int, spec: SyntheticSpec) -> tuple[np.ndarray, str]:
    from firmware_sim.synthesis import NoiseSpec, random_patient, synthesize

    rng = np.random.default_rng([spec.seed, index])
    names = sorted(spec.rhythm_weights)
    weights = np.array([spec.rhythm_weights[n] for n in names], dtype=float)
    rhythm = names[rng.choice(len(names), p=weights / weights.sum())]
    noise = None
    if rng.random() < spec.noise_probability:
        top = spec.max_noise_mv
        noise = NoiseSpec(
            baseline_mv=float(rng.uniform(0, 4 * top)) if rng.random() < 0.7 else 0.0,
            emg_mv=float(rng.uniform(0, top)) if rng.random() < 0.6 else 0.0,
            motion_mv=float(rng.uniform(0, 3 * top)) if rng.random() < 0.2 else 0.0,
            powerline_mv=float(rng.uniform(0, top)) if rng.random() < 0.3 else 0.0,
            powerline_hz=50.0 if rng.random() < 0.5 else 60.0,
        )
    seed = int(rng.integers(2**31))
    synth = synthesize(rhythm, seconds=WINDOW_S + 2 * MARGIN_S, fs=SYNTH_FS, seed=seed,
                       patient=random_patient(seed), noise=noise)
    return prepare_window(synth.signals, SYNTH_FS), rhythm


def _chunk(args: tuple[int, int, SyntheticSpec]) -> tuple[np.ndarray, list[str]]:
    start, stop, spec = args
    out = [_one_window(i, spec) for i in range(start, stop)]
    return np.stack([w for w, _ in out]), [r for _, r in out]


def generate(spec: SyntheticSpec, *, workers: int | None = None, progress: bool = False) -> SyntheticSet:
    """Generate ``spec.n_windows`` windows (in parallel; identical for any ``workers``)."""
    return generate_range(spec, 0, spec.n_windows, workers=workers, progress=progress)


def generate_range(spec: SyntheticSpec, start: int, stop: int, *, workers: int | None = None,
                   progress: bool = False) -> SyntheticSet:
    """Windows ``start`` … ``stop − 1`` of the set ``spec`` describes: the same windows as those rows of
    :func:`generate`'s output (a shard of a set too large to hold at once)."""
    if spec.n_windows < 1:
        raise ValueError("n_windows must be >= 1")
    if not 0 <= start < stop <= spec.n_windows:
        raise ValueError(f"window range [{start}, {stop}) is not inside the set's {spec.n_windows} windows")
    workers = workers or min(os.cpu_count() or 1, 8)
    step = 64
    jobs = [(s, min(s + step, stop), spec) for s in range(start, stop, step)]
    bar = _progress(stop - start, "synthesising windows") if progress else None
    parts: list[tuple[np.ndarray, list[str]]] = []
    if workers == 1:
        for job in jobs:
            parts.append(_chunk(job))
            if bar:
                bar.update(job[1] - job[0])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for job, part in zip(jobs, pool.map(_chunk, jobs), strict=True):
                parts.append(part)
                if bar:
                    bar.update(job[1] - job[0])
    if bar:
        bar.close()
    return SyntheticSet(np.concatenate([p[0] for p in parts]), tuple(r for p in parts for r in p[1]), spec)


def load_or_generate(spec: SyntheticSpec, cache_dir: str | Path | None, *, progress: bool = False) -> SyntheticSet:
    """Generate, or read back the same set from ``cache_dir`` (None: no cache)."""
    if cache_dir is None:
        return generate(spec, progress=progress)
    path = Path(cache_dir) / f"synthetic-{spec.key()}.npz"
    if path.exists():
        with np.load(path) as f:
            return SyntheticSet(f["signals"], tuple(str(r) for r in f["rhythms"]), spec)
    out = generate(spec, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, signals=out.signals, rhythms=np.array(out.rhythms))
    tmp.replace(path)
    return out


def _progress(total: int, what: str):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="win", dynamic_ncols=True)
