"""Prototype-layer training configuration from a TOML file (``models/configs/prototypes*.toml``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from models.config_toml import load_training_config
from models.prototypes import N_TOKENS, PATCH_TOKENS, PER_CLASS

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "prototypes.toml"


@dataclass(frozen=True)
class DataConfig:
    """Synthetic windows from the simulator plus real records (``real_dir``), split by record for checks."""

    synthetic_windows: int = 8000
    synthetic_seed: int = 6101
    edge_fraction: float = 0.5
    """Share of windows seen as the edge sees them (II, V1, V5 through the shipped VAE)."""
    noise_fraction: float = 0.05
    real_dir: str | None = "../shared/tune"
    """Real labelled records (CinC 2020/2021 layout) for training and for prototype strips; None: synthetic only."""
    real_hop_s: float = 5.0
    real_repeat: int = 8
    """Each real training window appears this many times per epoch (a small real set against many synthetic)."""
    holdout_fraction: float = 0.2
    """Share of the real records held out (record-level) to check the scores on; never trained or pushed on."""
    split_seed: int = 17
    real_margin: float = 0.05
    """Push: a prototype goes to the best real segment of its class when that is within this similarity of the
    best segment overall (real strips are what the dashboard should show when they fit nearly as well)."""


@dataclass(frozen=True)
class ModelConfig:
    per_class: int = PER_CLASS
    patch_tokens: int = PATCH_TOKENS
    proto_dim: int = 32
    backbone: str = "models/artifacts/classifier_mamba.pt"
    """The classifier checkpoint whose (frozen) token embedding the prototypes live in."""


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    epochs: int = 12
    batch_size: int = 64
    lr: float = 3e-3
    cluster: float = 0.8
    """Weight of the cluster loss (a window is close to some prototype of each of its classes)."""
    separation: float = 0.2
    """Weight of the separation loss (a window is far from the prototypes of classes it does not have)."""
    coverage: float = 0.5
    """Weight of the coverage loss (every prototype close to some window of its class: no dead prototypes)."""
    diversity: float = 0.2
    """Weight of the diversity loss (a class's prototypes unlike one another)."""
    last_layer_epochs: int = 4
    last_layer_l1: float = 1e-3
    """L1 on the last layer's weights from a prototype to the classes it does not belong to."""
    threads: int = 1


@dataclass(frozen=True)
class PrototypeConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def checked(cfg: PrototypeConfig) -> PrototypeConfig:
    """``cfg`` after the checks that span keys (ValueError naming the key)."""
    d, m, t = cfg.data, cfg.model, cfg.train
    if d.synthetic_windows < 16:
        raise ValueError("config [data]: synthetic_windows must be ≥ 16")
    if not (0.0 <= d.edge_fraction <= 1.0 and 0.0 <= d.noise_fraction < 0.5 and 0.0 <= d.holdout_fraction < 1.0):
        raise ValueError("config [data]: edge_fraction in [0, 1], noise_fraction in [0, 0.5), holdout_fraction in [0, 1)")
    if d.real_hop_s <= 0 or d.real_repeat < 1 or not 0.0 <= d.real_margin <= 1.0:
        raise ValueError("config [data]: real_hop_s > 0, real_repeat ≥ 1, real_margin in [0, 1]")
    if m.per_class < 1 or m.proto_dim < 2 or not 1 <= m.patch_tokens <= N_TOKENS:
        raise ValueError(f"config [model]: per_class ≥ 1, proto_dim ≥ 2, patch_tokens in 1…{N_TOKENS}")
    if t.epochs < 1 or t.batch_size < 2 or t.lr <= 0 or t.threads < 1 or t.last_layer_epochs < 0:
        raise ValueError("config [train]: epochs ≥ 1, batch_size ≥ 2, lr > 0, threads ≥ 1, last_layer_epochs ≥ 0")
    return cfg


def load_config(path: str | Path = DEFAULT_CONFIG) -> PrototypeConfig:
    """Read a TOML config; unknown keys are an error."""
    return checked(load_training_config(PrototypeConfig, path))
