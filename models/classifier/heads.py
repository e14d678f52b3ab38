"""The classifier head shared by both architectures: pooled ECG embedding ‖ rhythm-feature embedding → logits.

The backbone (Mamba or ResNet) summarises the waveform; :mod:`models.features` measures what morphology
must not be left to guess (rate, RR irregularity, QRS width, intervals). A two-layer MLP embeds the
measured features and the last linear layer (``head``, the one calibration folds into) reads both.
With ``n_features = 0`` the head is the plain linear layer of the earlier models, so their weights load
unchanged; :func:`widen_head` turns such a head into a fused one that computes exactly the same logits
until training moves the feature weights (a warm start).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from models.features import FEATURE_NAMES

_F = {name: i for i, name in enumerate(FEATURE_NAMES)}
RHYTHM_BASIS = ("tachycardia", "bradycardia", "svt_rate", "irregularity", "rr_cv", "premature", "wide_qrs", "long_qtc")
"""The fixed, physiologically named terms the calibration may add to each class's logit, each ``relu`` of a
linear function of the network's feature vector (:meth:`models.features.WindowFeatures.vector`):
rate above 100 / below 60 / above 150 bpm (per 20 bpm; 0 when the window has < 3 beats), the robust RR
irregularity, RR CV, premature-beat fraction, QRS over 110 ms (per 20 ms) and QTc over 460 ms (per 40 ms)."""


def _basis_matrix() -> tuple[np.ndarray, np.ndarray]:
    m = np.zeros((len(FEATURE_NAMES), len(RHYTHM_BASIS)), dtype=np.float32)
    c = np.zeros(len(RHYTHM_BASIS), dtype=np.float32)
    hr, valid = _F["heart_rate_bpm"], _F["valid"]        # the vector holds rate / 100 and valid ∈ {0, 1}
    for k, (sign, edge) in enumerate(((1.0, 100.0), (-1.0, 60.0), (1.0, 150.0))):
        m[hr, k] = sign * 100.0 / 20.0
        m[valid, k] = 10.0                               # − 10 · (1 − valid): nothing without a rhythm
        c[k] = -sign * edge / 20.0 - 10.0
    m[_F["robust_irregularity"], 3] = 1.0
    m[_F["rr_cv"], 4] = 1.0
    m[_F["premature_fraction"], 5] = 1.0
    m[_F["qrs_ms"], 6], c[6] = 100.0 / 20.0, -110.0 / 20.0
    m[_F["qtc_ms"], 7], c[7] = 400.0 / 40.0, -460.0 / 40.0
    return m, c


BASIS_M, BASIS_C = _basis_matrix()


def rhythm_basis(features: np.ndarray) -> np.ndarray:
    """(n, :data:`RHYTHM_BASIS`) terms of network feature vectors (n, F) (numpy; :class:`FusionHead` computes
    the same in the graph)."""
    out: np.ndarray = np.maximum(np.asarray(features, dtype=np.float32) @ BASIS_M + BASIS_C, 0.0)
    return out


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
        self.n_classes = n_classes
        self.rhythm: nn.Linear | None = None

    def add_rhythm_terms(self, weight: np.ndarray | None = None) -> None:
        """Add the calibration's rhythm terms: logits += W · :func:`rhythm_basis` (features) (W (C, K),
        zero by default). Fitted on real records by :mod:`models.classifier.calibration`."""
        if self.feature_net is None:
            raise ValueError("rhythm terms need a model that reads rhythm features")
        self.register_buffer("basis_m", torch.from_numpy(BASIS_M.copy()))
        self.register_buffer("basis_c", torch.from_numpy(BASIS_C.copy()))
        self.rhythm = nn.Linear(len(RHYTHM_BASIS), self.n_classes, bias=False)
        with torch.no_grad():
            self.rhythm.weight.zero_()
            if weight is not None:
                self.rhythm.weight.copy_(torch.as_tensor(np.array(weight, dtype=np.float32)))

    def forward(self, pooled: Tensor, features: Tensor | None = None) -> Tensor:
        h = self.drop(pooled)
        if self.feature_net is not None:
            if features is None:
                raise ValueError(f"this classifier takes {self.n_features} rhythm features as a second input")
            h = torch.cat([h, self.feature_net(features)], dim=-1)
        logits: Tensor = self.head(h)
        if self.rhythm is not None and features is not None:
            terms = torch.relu(features @ self.get_buffer("basis_m") + self.get_buffer("basis_c"))
            logits = logits + self.rhythm(terms)
        return logits


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
