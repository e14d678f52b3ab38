"""Training configuration from a TOML file (see ``models/configs/reconstruction_*.toml``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from models.config_toml import load_training_config, training_config_from_dict


@dataclass(frozen=True)
class DataConfig:
    train_windows: int = 24000
    train_seed: int = 101
    calib_windows: int = 2000
    calib_seed: int = 202
    test_windows: int = 2000
    test_seed: int = 303
    cache_dir: str | None = "out/cache/synthetic"


@dataclass(frozen=True)
class ModelConfig:
    width: int = 12
    latent_channels: int = 8


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    epochs: int = 8
    batch_size: int = 32
    crop_samples: int = 384
    lr: float = 3e-3
    weight_decay: float = 1e-5
    kl_weight: float = 1e-3


@dataclass(frozen=True)
class ReconstructionConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_from_dict(raw: dict[str, Any]) -> ReconstructionConfig:
    """Build and check a config from a mapping of sections; unknown sections or keys are an error."""
    return _checked(training_config_from_dict(ReconstructionConfig, raw))


def _checked(cfg: ReconstructionConfig) -> ReconstructionConfig:
    """``cfg``, after the checks that span keys."""
    t = cfg.train
    if t.epochs < 1 or t.batch_size < 1 or t.lr <= 0 or t.crop_samples < 64 or t.crop_samples % 8:
        raise ValueError("config [train]: epochs, batch_size ≥ 1, lr > 0, crop_samples ≥ 64 and a multiple of 8")
    if cfg.data.train_windows < 1 or cfg.data.calib_windows < 8 or cfg.data.test_windows < 1:
        raise ValueError("config [data]: need ≥ 1 train, ≥ 8 calibration and ≥ 1 test windows")
    return cfg


def load_config(path: str | Path) -> ReconstructionConfig:
    """Read a TOML config; unknown keys are an error (a typo must not silently use a default)."""
    return _checked(load_training_config(ReconstructionConfig, path))
