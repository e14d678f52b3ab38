"""The stress patch transformer (torch; training and export only).

One ECG lead (B, 1, 1250: 10 s at 125 Hz, mV) is scaled by its own robust amplitude (so the body's gain
does not matter, the breathing modulation inside the window does), cut into patches of ``patch`` samples
(0.2 s at the default 25), each patch projected to a token; a learned class token and positions go in
front; a pre-norm transformer encoder mixes them. The class token, joined with an embedding of the HRV
features (:mod:`models.stress.hrv`), gives the logits of baseline / stress / amusement. The exported
graph ends in a softmax (``probabilities``).
"""

from __future__ import annotations

import torch
from torch import nn

from models.preprocessing import WINDOW_SAMPLES
from models.stress import CLASSES
from models.stress.config import NetConfig
from models.stress.hrv import N_FEATURES


class EncoderBlock(nn.Module):
    """Pre-norm transformer block (multi-head self-attention, GELU MLP of twice the width), written out
    with plain matmuls so the ONNX export is the same graph in training and inference."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by {heads} heads")
        self.heads = heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(2 * d_model, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        att = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
        out = (self.drop(att) @ v).transpose(1, 2).reshape(b, n, d)
        x = x + self.drop(self.proj(out))
        return x + self.drop(self.mlp(self.norm2(x)))


class StressTransformer(nn.Module):
    """Patch transformer over one lead + HRV features → class logits."""

    def __init__(self, cfg: NetConfig, samples: int = WINDOW_SAMPLES, n_features: int = N_FEATURES) -> None:
        super().__init__()
        if samples % cfg.patch:
            raise ValueError(f"window of {samples} samples is not a whole number of {cfg.patch}-sample patches")
        self.patch = cfg.patch
        self.tokens = samples // cfg.patch
        self.embed = nn.Linear(cfg.patch, cfg.d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        self.pos = nn.Parameter(torch.randn(1, self.tokens + 1, cfg.d_model) * 0.02)
        self.encoder = nn.Sequential(*(EncoderBlock(cfg.d_model, cfg.heads, cfg.dropout) for _ in range(cfg.depth)))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.features = nn.Sequential(nn.Linear(n_features, cfg.d_model), nn.GELU())
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(2 * cfg.d_model, len(CLASSES)))

    def forward(self, ecg: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        x = ecg[:, 0, :]
        scale = (x - x.mean(dim=1, keepdim=True)).abs().mean(dim=1, keepdim=True) + 1e-3
        x = (x / scale).reshape(x.shape[0], self.tokens, self.patch)
        tok = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.embed(x)], dim=1) + self.pos
        h = self.norm(self.encoder(tok)[:, 0])
        return self.head(torch.cat([h, self.features(features)], dim=1))


class WithSoftmax(nn.Module):
    """Export wrapper: probabilities instead of logits."""

    def __init__(self, net: StressTransformer) -> None:
        super().__init__()
        self.net = net

    def forward(self, ecg: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(ecg, features), dim=1)
