"""The classifier head shared by both architectures: pooled ECG embedding ‖ rhythm-feature embedding → logits.

The backbone (Mamba or ResNet) summarises the waveform; :mod:`models.features` measures what morphology
must not be left to guess (rate, RR irregularity, QRS width, intervals). A two-layer MLP embeds the
measured features and the last linear layer (``head``, the one calibration folds into) reads both.
With ``n_features = 0`` the head is the plain linear layer of the earlier models, so their weights load
unchanged; :func:`widen_head` turns such a head into a fused one that computes exactly the same logits
until training moves the feature weights (a warm start).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class FusionHead(nn.Module):
    """``forward(pooled, features)`` → logits (B, n_classes)."""

    def __init__(self, pooled: int, n_classes: int, n_features: int = 0, hidden: int = 32,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.n_features = n_features
        self.drop = nn.Dropout(dropout)
        self.feature_net: nn.Module | None = None
        width = pooled
        if n_features:
            self.feature_net = nn.Sequential(nn.Linear(n_features, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                             nn.GELU())
            width += hidden
        self.head = nn.Linear(width, n_classes)

    def forward(self, pooled: Tensor, features: Tensor | None = None) -> Tensor:
        h = self.drop(pooled)
        if self.feature_net is not None:
            if features is None:
                raise ValueError(f"this classifier takes {self.n_features} rhythm features as a second input")
            h = torch.cat([h, self.feature_net(features)], dim=-1)
        return self.head(h)


@torch.no_grad()
def widen_head(old_weight: Tensor, old_bias: Tensor, head: FusionHead) -> None:
    """Copy a plain head's weights into ``head``'s pooled columns and zero the feature columns."""
    pooled = old_weight.shape[1]
    head.head.weight.zero_()
    head.head.weight[:, :pooled] = old_weight
    head.head.bias.copy_(old_bias)


def upgrade_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A state dict of an earlier model (plain ``head.*`` linear layer) with its keys renamed for
    :class:`FusionHead` (``fusion.head.*``); newer state dicts pass unchanged."""
    return {("fusion." + k if k.startswith("head.") else k): v for k, v in state.items()}
