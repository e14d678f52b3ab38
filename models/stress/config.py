"""The stress model's training config (``models/configs/stress*.toml``): data, network, training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DataConfig:
    """Synthetic subjects: each records ``windows_per_state`` 10 s windows in every state."""

    subjects: int = 48
    windows_per_state: int = 12
    seed: int = 0
    eval_subjects: int = 15
    """Subjects of the leave-one-subject-out evaluation (a set of their own, other seeds)."""
    eval_seed: int = 1


@dataclass(frozen=True)
class NetConfig:
    """Patch transformer: ``patch`` samples per token (125 Hz), width, depth, heads."""

    patch: int = 25
    d_model: int = 32
    depth: int = 2
    heads: int = 4
    dropout: float = 0.3


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    epochs: int = 20
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-2


@dataclass(frozen=True)
class StressConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: NetConfig = field(default_factory=NetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "stress.toml"


def load_config(path: str | Path = DEFAULT_CONFIG) -> StressConfig:
    """Read a stress config; ValueError naming the file, section and key on a mistake."""
    from models.config_toml import load_training_config

    return load_training_config(StressConfig, path)
