"""The ECG side of the zero-shot model (torch; training and export only).

:class:`EcgEncoder`: 12 leads × 10 s at 125 Hz → a 1-D ResNet trunk (the classifier's
:class:`~models.classifier.resnet.BasicBlock`) pooled mean ‖ max, concatenated with an embedding of the
measured rhythm features (:mod:`models.features`: rate, RR irregularity, QRS width, intervals), dropout,
then a linear projection into the joint space. :class:`ZeroShotModel` adds the learned projection of the
frozen MiniLM text embedding and the learned temperature (CLIP).

Losses (:func:`clip_loss`, MERL): cross-modal alignment, a symmetric InfoNCE between ECG and report
embeddings whose targets count every pair with the same label set as a match; and uni-modal alignment,
InfoNCE between two dropout views of the same ECG's embedding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.classifier.resnet import BasicBlock
from models.features import N_FEATURES
from models.zeroshot.text import TEXT_DIM


class EcgEncoder(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (32, 48, 64, 96), kernel: int = 7, embed_dim: int = 128,
                 dropout: float = 0.1, n_leads: int = 12) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(n_leads, widths[0], 15, stride=2, padding=7, bias=False),
                                  nn.BatchNorm1d(widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for w in widths:
            blocks.append(BasicBlock(cin, w, 2, kernel))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.features = nn.Sequential(nn.Linear(N_FEATURES, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Linear(2 * cin + 32, embed_dim)

    def trunk(self, x: Tensor, features: Tensor) -> Tensor:
        h = self.blocks(self.stem(x))
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2), self.features(features)], dim=1)
        return pooled

    def head(self, pooled: Tensor) -> Tensor:
        return F.normalize(self.project(self.dropout(pooled)), dim=1)

    def forward(self, x: Tensor, features: Tensor) -> Tensor:
        """(B, 12, n) mV, (B, N_FEATURES) → (B, embed_dim) unit vectors."""
        return self.head(self.trunk(x, features))


class ZeroShotModel(nn.Module):
    def __init__(self, encoder: EcgEncoder, embed_dim: int = 128) -> None:
        super().__init__()
        self.ecg = encoder
        self.text = nn.Linear(TEXT_DIM, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def text_embed(self, t: Tensor) -> Tensor:
        return F.normalize(self.text(t), dim=1)

    def scale(self) -> Tensor:
        return self.logit_scale.exp().clamp(max=100.0)


def clip_loss(a: Tensor, b: Tensor, scale: Tensor, targets: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE between unit vectors ``a`` and ``b`` (B, D); ``targets`` (B, B) soft matches
    (rows normalised here), default the identity."""
    logits = scale * a @ b.t()
    if targets is None:
        idx = torch.arange(a.shape[0], device=a.device)
        return (F.cross_entropy(logits, idx) + F.cross_entropy(logits.t(), idx)) / 2
    t_rows = targets / targets.sum(dim=1, keepdim=True)
    t_cols = targets.t() / targets.t().sum(dim=1, keepdim=True)
    return (-(t_rows * F.log_softmax(logits, dim=1)).sum(1).mean()
            - (t_cols * F.log_softmax(logits.t(), dim=1)).sum(1).mean()) / 2
