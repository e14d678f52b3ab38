"""Training windows in shards: a training set too large to hold (hundreds of thousands of windows) made a
shard at a time by a background process while the model trains on the shards already made.

Shard ``k`` of a config is windows ``k·S … (k+1)·S − 1`` of its synthetic set (:func:`models.data.synthetic.
generate_range`; the same windows on any machine), domain-randomised (:mod:`models.classifier.augment`),
partly made unreadable and partly seen through the VAE as in :func:`models.classifier.data.build_windows`,
with their rhythm features measured (:mod:`models.features`). Each shard is written once, atomically, as
``.npz`` (leads as float16: 12 × 1250 × 2 bytes a window) under the config's cache folder, keyed by
everything that shapes it; training reads shard ``k`` as epoch ``k`` and waits for it when the producer is
behind. An interrupted run resumes with the shards already on disk.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from models.classifier.config import ClassifierConfig
from models.classifier.data import Reconstructor, WindowSet, _vae_tag, build_windows, default_reconstructor

SHARD_FORMAT = "1"


def shard_key(cfg: ClassifierConfig) -> str:
    """Content hash of what shapes a shard (data, augmentation, feature and simulator versions, the VAE)."""
    from firmware_sim.synthesis import SIMULATOR_VERSION
    from models.features import FEATURES_VERSION
    from models.preprocessing import PREPROCESSING_VERSION

    d = cfg.data
    # window i of a seed does not depend on the set's size (models.data.synthetic), so neither does shard k:
    # a longer or shorter run over the same seed reuses the shards already made
    content = {"seed": d.train_seed, "shard": d.shard_windows,
               "edge": d.edge_fraction, "noise": d.noise_fraction, "augment": asdict(cfg.augment),
               "features": cfg.inputs.rhythm_features and FEATURES_VERSION, "simulator": SIMULATOR_VERSION,
               "preprocessing": PREPROCESSING_VERSION, "vae": _vae_tag(), "format": SHARD_FORMAT}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def shard_count(cfg: ClassifierConfig) -> int:
    return cfg.data.train_windows // cfg.data.shard_windows


def shard_path(cfg: ClassifierConfig, k: int) -> Path:
    folder = Path(cfg.data.cache_dir or "out/cache/synthetic")
    return folder / f"shard-{shard_key(cfg)}-{k:04d}.npz"


def build_shard(cfg: ClassifierConfig, k: int, reconstruct: Reconstructor | None = None) -> WindowSet:
    """Make shard ``k`` (see the module docstring)."""
    from models.classifier.augment import augment
    from models.data.synthetic import SyntheticSpec, generate_range
    from models.features import feature_matrix
    from models.preprocessing import MODEL_FS
    from models.reconstruction import INPUT_INDEX

    d = cfg.data
    size = d.shard_windows
    syn = generate_range(SyntheticSpec(n_windows=d.train_windows, seed=d.train_seed), k * size, (k + 1) * size,
                         workers=1)
    signals = syn.signals
    if cfg.augment.enabled:
        rng = np.random.default_rng([d.train_seed, k, 11])
        signals = np.concatenate([augment(signals[s : s + 256], rng, cfg.augment)
                                  for s in range(0, size, 256)])
    if reconstruct is None and d.edge_fraction > 0:
        reconstruct = default_reconstructor()
    ws = build_windows(signals, syn.rhythms, seed=d.train_seed * 100_003 + k, edge_fraction=d.edge_fraction,
                       noise_fraction=d.noise_fraction, reconstruct=reconstruct if d.edge_fraction > 0 else None)
    features = feature_matrix(ws.x, MODEL_FS, list(INPUT_INDEX)) if cfg.inputs.rhythm_features else None
    return WindowSet(ws.x, ws.y, ws.edge, ws.rhythms, features)


def save_shard(ws: WindowSet, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    arrays: dict[str, Any] = {"x": ws.x.astype(np.float16), "y": ws.y, "edge": ws.edge,
                              "rhythms": np.array(ws.rhythms)}
    if ws.features is not None:
        arrays["features"] = ws.features
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    tmp.replace(path)


def load_shard(path: Path) -> WindowSet:
    with np.load(path) as f:
        features = f["features"] if "features" in f.files else None
        return WindowSet(f["x"].astype(np.float32), f["y"], f["edge"], tuple(str(r) for r in f["rhythms"]), features)


STALE_LOCK_S = 1800.0
"""A shard lock older than this belongs to a process that died: it is taken over."""


def ensure_shard(cfg: ClassifierConfig, k: int, reconstruct: Reconstructor | None = None) -> Path:
    """Shard ``k``'s file, made now if it is not on disk. Two runs sharing the cache (the Mamba and the
    ResNet trained side by side) make each shard once: the first takes ``<shard>.lock``, the other waits."""
    path = shard_path(cfg, k)
    lock = path.with_suffix(".lock")
    while not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if time.time() - lock.stat().st_mtime > STALE_LOCK_S:
                lock.unlink(missing_ok=True)
            else:
                time.sleep(2.0)
            continue
        try:
            os.close(fd)
            if not path.exists():
                save_shard(build_shard(cfg, k, reconstruct), path)
        finally:
            lock.unlink(missing_ok=True)
    return path


def _produce(cfg_dict: dict[str, Any], start: int, stop: int, threads: int) -> None:
    from models.classifier.config import config_from_dict
    from models.runtime.onnx_model import ReconstructionModel

    cfg = config_from_dict(cfg_dict)
    reconstruct = ReconstructionModel.load(providers=["cpu"], max_batch=256, threads=threads) \
        if cfg.data.edge_fraction > 0 else None
    for k in range(start, stop):
        ensure_shard(cfg, k, reconstruct)


class ShardProducer:
    """A background process making shards ``start`` … ``stop − 1`` in order (skipping those on disk)."""

    def __init__(self, cfg: ClassifierConfig, start: int, stop: int, *, threads: int = 1) -> None:
        self.cfg = cfg
        ctx = mp.get_context("spawn")
        self.process = ctx.Process(target=_produce, args=(cfg.to_dict(), start, stop, threads), daemon=True,
                                   name="ecgstream-shards")
        self.process.start()

    def wait_for(self, k: int, poll_s: float = 2.0) -> WindowSet:
        """Shard ``k``, waiting while the producer makes it (made here if the producer has stopped)."""
        path = shard_path(self.cfg, k)
        while not path.exists() and self.process.is_alive():
            time.sleep(poll_s)
        if not path.exists():
            ensure_shard(self.cfg, k)
        return load_shard(path)

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=10)
