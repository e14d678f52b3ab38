"""Training and test windows for the classifier, as the edge sees them (numpy + ONNX Runtime, no torch).

The edge never sees a true 12-lead ECG: the wearable measures II, V1 and V5, and the gateway
reconstructs the other leads with the VAE. So a synthetic window (12 leads from the simulator, one
virtual patient each, with noise) becomes a training window by taking II, V1, V5 and running the
shipped reconstruction model on them (:func:`edge_view`). A share of windows stays true 12-lead
(``edge_fraction``) and a share is made unreadable (:func:`make_unreadable`: heavy EMG, motion
artefact, lead-off, saturation) and labelled ``NOISE`` only — the simulator has no "unreadable"
rhythm, and a classifier must learn to say so rather than guess a rhythm.

Targets are multi-hot vectors over :data:`models.data.labels.CLASSES` from the simulator rhythm
(:func:`models.data.labels.labels_from_rhythm`). Everything here is SYNTHETIC.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data.labels import CLASS_INDEX, CLASSES, labels_from_rhythm, multi_hot
from models.data.synthetic import SyntheticSpec, load_or_generate
from models.preprocessing import MODEL_FS, WINDOW_SAMPLES, bandpass
from models.reconstruction import INPUT_INDEX

Reconstructor = Callable[[np.ndarray], np.ndarray]
"""(B, 3, 1250) II, V1, V5 → (B, 12, 1250) standard leads."""

NOISE_INDEX = CLASS_INDEX["NOISE"]


@dataclass(frozen=True)
class WindowSet:
    """Classifier windows: ``x`` (n, 12, 1250) float32 mV, ``y`` (n, 18) multi-hot float32,
    ``edge`` (n,) bool (True: leads reconstructed from II, V1, V5), ``rhythms`` (simulator rhythm
    per window, ``"unreadable"`` for NOISE windows), ``features`` (n, :data:`models.features.N_FEATURES`)
    measured rhythm features of each window's II, V1, V5, or None when not computed."""

    x: np.ndarray
    y: np.ndarray
    edge: np.ndarray
    rhythms: tuple[str, ...]
    features: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


def with_features(ws: WindowSet) -> WindowSet:
    """``ws`` with its rhythm features computed (:func:`models.features.feature_matrix` on II, V1, V5)."""
    from dataclasses import replace

    from models.features import feature_matrix

    return replace(ws, features=feature_matrix(ws.x, MODEL_FS, list(INPUT_INDEX)))


def targets(rhythms: Sequence[str]) -> np.ndarray:
    """Multi-hot targets (n, 18) for simulator rhythm names."""
    return np.stack([multi_hot(labels_from_rhythm(r)) for r in rhythms]) if rhythms else np.zeros((0, len(CLASSES)))


def default_reconstructor(batch: int = 256) -> Reconstructor:
    """The shipped VAE (``models/artifacts/reconstruction_vae.onnx``) on the CPU, leads12 only."""
    from models.runtime.onnx_model import ReconstructionModel

    model = ReconstructionModel.load(providers=["cpu"], max_batch=batch)
    return model


def edge_view(windows: np.ndarray, reconstruct: Reconstructor, batch: int = 256) -> np.ndarray:
    """(n, 12, 1250) true leads → (n, 12, 1250) leads the edge has: II, V1, V5 through the VAE."""
    out = np.empty_like(windows, dtype=np.float32)
    for s in range(0, windows.shape[0], batch):
        out[s : s + batch] = reconstruct(np.ascontiguousarray(windows[s : s + batch][:, list(INPUT_INDEX)]))
    return out


def _bandpassed_noise(rng: np.random.Generator, shape: tuple[int, ...], band: tuple[float, float]) -> np.ndarray:
    """Unit-RMS Gaussian noise band-passed to ``band`` Hz along the last axis, shape (k, leads, n)."""
    k, leads, n = shape
    white = rng.standard_normal((n, k * leads))
    filtered = bandpass(white, MODEL_FS, band).T.reshape(k, leads, n)
    return filtered / (filtered.std(axis=-1, keepdims=True) + 1e-12)


def make_unreadable(windows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(k, 12, 1250) windows → unreadable versions, one of four kinds per window, vectorised:

    0. heavy EMG: broadband noise of 0.3–1.5 mV RMS over a signal scaled down to 20–100 %;
    1. motion artefact: 0.5–4 Hz swings of 1–4 mV RMS;
    2. lead-off: signal gone (flat, with 5–30 µV of noise) on every lead;
    3. saturation/intermittent contact: the signal clipped and blanked in random stretches, with EMG.
    """
    k = windows.shape[0]
    if k == 0:
        return windows.astype(np.float32)
    kind = rng.integers(0, 4, k)
    gain = rng.uniform(0.2, 1.0, (k, 1, 1))
    out = windows.astype(np.float64) * gain
    emg = _bandpassed_noise(rng, windows.shape, (5.0, 40.0))
    motion = _bandpassed_noise(rng, windows.shape, (0.5, 4.0))
    level = rng.uniform(0.3, 1.5, (k, 1, 1))
    out = np.where((kind == 0)[:, None, None], out + level * emg, out)
    out = np.where((kind == 1)[:, None, None], out + rng.uniform(1.0, 4.0, (k, 1, 1)) * motion, out)
    flat = rng.uniform(0.005, 0.03, (k, 1, 1)) * emg
    out = np.where((kind == 2)[:, None, None], flat, out)
    # intermittent contact: blank ~40 % of the window in 0.2–1 s stretches, clip the rest, add EMG
    t = np.arange(WINDOW_SAMPLES)
    period = rng.uniform(0.4, 2.0, (k, 1, 1)) * MODEL_FS
    phase = rng.uniform(0, 1, (k, 1, 1)) * period
    blank = ((t[None, None, :] + phase) % period) < 0.4 * period
    clip = rng.uniform(0.1, 0.4, (k, 1, 1))
    broken = np.where(blank, 0.0, np.clip(out, -clip, clip)) + 0.2 * level * emg
    out = np.where((kind == 3)[:, None, None], broken, out)
    return out.astype(np.float32)


def build_windows(
    signals: np.ndarray,
    rhythms: Sequence[str],
    *,
    seed: int,
    edge_fraction: float,
    noise_fraction: float,
    reconstruct: Reconstructor | None,
) -> WindowSet:
    """Turn true synthetic 12-lead windows into classifier windows (see the module notes).

    Which windows become NOISE and which are seen through the VAE is drawn from ``seed``; with
    ``reconstruct=None`` every window stays true 12-lead.
    """
    rng = np.random.default_rng([seed, 7])
    n = signals.shape[0]
    y = targets(rhythms).astype(np.float32)
    rhythms = list(rhythms)
    noisy = np.asarray(rng.random(n) < noise_fraction)
    edge = np.asarray(rng.random(n) < edge_fraction)  # drawn either way: the same windows get the same noise in every view
    if reconstruct is None:
        edge[:] = False
    x = np.array(signals, dtype=np.float32, copy=True)
    idx = np.flatnonzero(noisy)
    for s in range(0, idx.size, 512):
        part = idx[s : s + 512]
        x[part] = make_unreadable(x[part], rng)
    y[noisy] = 0.0
    y[noisy, NOISE_INDEX] = 1.0
    for i in idx:
        rhythms[i] = "unreadable"
    if reconstruct is not None and edge.any():
        sel = np.flatnonzero(edge)
        x[sel] = edge_view(x[sel], reconstruct)
    return WindowSet(x, y, edge, tuple(rhythms))


def _vae_tag() -> str:
    from models.runtime.onnx_model import DEFAULT_RECONSTRUCTION

    return hashlib.sha256(Path(DEFAULT_RECONSTRUCTION).read_bytes()).hexdigest()[:12]


def load_split(
    n_windows: int,
    seed: int,
    *,
    edge_fraction: float,
    noise_fraction: float,
    cache_dir: str | Path | None,
    progress: bool = False,
    reconstruct: Reconstructor | None = None,
) -> WindowSet:
    """Synthetic windows (cached by :func:`models.data.synthetic.load_or_generate`) → classifier windows,
    cached too (keyed by the synthetic set, the fractions and the VAE file) when ``cache_dir`` is given."""
    spec = SyntheticSpec(n_windows=n_windows, seed=seed)
    key = hashlib.sha256(f"{spec.key()}|{edge_fraction}|{noise_fraction}|{_vae_tag()}|v2".encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"classifier-{key}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        with np.load(path) as f:
            return WindowSet(f["x"], f["y"], f["edge"], tuple(str(r) for r in f["rhythms"]))
    syn = load_or_generate(spec, cache_dir, progress=progress)
    if reconstruct is None and edge_fraction > 0:
        reconstruct = default_reconstructor()
    out = build_windows(syn.signals, syn.rhythms, seed=seed, edge_fraction=edge_fraction,
                        noise_fraction=noise_fraction, reconstruct=reconstruct if edge_fraction > 0 else None)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x=out.x, y=out.y, edge=out.edge, rhythms=np.array(out.rhythms))
        tmp.replace(path)
    return out


def test_views(n_windows: int, seed: int, *, noise_fraction: float, cache_dir: str | Path | None,
               progress: bool = False) -> tuple[WindowSet, WindowSet]:
    """The held-out synthetic test set twice: as true 12 leads and as the edge sees it (every window via the
    VAE), with the same windows made unreadable in both."""
    true12 = load_split(n_windows, seed, edge_fraction=0.0, noise_fraction=noise_fraction, cache_dir=cache_dir,
                        progress=progress)
    edge = load_split(n_windows, seed, edge_fraction=1.0, noise_fraction=noise_fraction, cache_dir=cache_dir,
                      progress=progress)
    return true12, edge
