"""Classifier training configuration from a TOML file (see ``models/configs/classifier_*.toml``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from models.config_toml import load_training_config, training_config_from_dict

ARCHITECTURES = ("mamba", "resnet")


@dataclass(frozen=True)
class DataConfig:
    """Synthetic windows: how many, which seeds, and how they are turned into what the edge sees."""

    train_windows: int = 24000
    train_seed: int = 4101
    test_windows: int = 3000
    test_seed: int = 4303
    edge_fraction: float = 0.75
    """Share of training windows seen as on the edge (II, V1, V5 → VAE → 12 leads); the rest true 12-lead."""
    noise_fraction: float = 0.05
    """Share of windows made unreadable (heavy noise, lead-off, motion) and labelled NOISE only."""
    calib_windows: int = 256
    """Training windows (drawn at random, seeded) used to calibrate the INT8 model's activation ranges."""
    cache_dir: str | None = "out/cache/synthetic"


@dataclass(frozen=True)
class MambaConfig:
    d_model: int = 64
    n_blocks: int = 2
    d_state: int = 16
    expand: int = 2
    headdim: int = 32
    chunk: int = 32
    stem_width: int = 32
    dropout: float = 0.1


@dataclass(frozen=True)
class ResNetConfig:
    widths: tuple[int, ...] = (32, 48, 64, 96)
    kernel: int = 5
    stem_kernel: int = 15
    dropout: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    threads: int = 2
    amplitude_jitter: float = 0.15
    """Each training window is scaled by a random gain in 1 ± this (per-patient amplitude variation)."""


@dataclass(frozen=True)
class ClassifierConfig:
    data: DataConfig = field(default_factory=DataConfig)
    mamba: MambaConfig = field(default_factory=MambaConfig)
    resnet: ResNetConfig = field(default_factory=ResNetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hash(self, *, arch: str | None = None) -> str:
        """Content hash of the config (of the data, training and the one architecture when ``arch`` is given)."""
        d = self.to_dict()
        if arch is not None:
            d = {"data": d["data"], "train": d["train"], arch: d[arch]}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def config_from_dict(raw: dict[str, Any]) -> ClassifierConfig:
    """Build and check a config from a mapping of sections; unknown sections or keys are an error."""
    return _checked(training_config_from_dict(ClassifierConfig, raw))


def _checked(cfg: ClassifierConfig) -> ClassifierConfig:
    """``cfg``, after the checks that span keys."""
    d, t = cfg.data, cfg.train
    if d.train_windows < 16 or d.test_windows < 16 or d.calib_windows < 1:
        raise ValueError("config [data]: need ≥ 16 train, ≥ 16 test and ≥ 1 calibration windows")
    if d.train_seed == d.test_seed:
        raise ValueError("config [data]: train and test seeds must differ (held-out test set)")
    if not (0.0 <= d.edge_fraction <= 1.0 and 0.0 <= d.noise_fraction < 0.5):
        raise ValueError("config [data]: edge_fraction in [0, 1], noise_fraction in [0, 0.5)")
    if t.epochs < 1 or t.batch_size < 2 or t.lr <= 0 or t.threads < 1:
        raise ValueError("config [train]: epochs ≥ 1, batch_size ≥ 2, lr > 0, threads ≥ 1")
    return cfg


def load_config(path: str | Path) -> ClassifierConfig:
    """Read a TOML config; unknown keys are an error (a typo must not silently use a default)."""
    return _checked(load_training_config(ClassifierConfig, path))
