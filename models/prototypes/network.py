"""The prototype network in PyTorch: the shipped classifier's frozen token embedding + a ProtoPNet head.

``PrototypeHead`` works on tokens ``(B, T, d_model)``; ``PrototypeNet`` wraps the backbone (stem, Mamba blocks,
final norm of :class:`models.classifier.mamba.ECGMamba`) and the head into the one graph that is exported.
Similarity of prototype ``p`` (``(proto_dim, L)``) at position ``t`` is the cosine between ``p`` and the
feature patch ``z[:, t : t + L]``, both flattened; the add-on ends in a ReLU and pushed prototypes are
feature patches, so it lies in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from models.classifier import mamba
from models.prototypes import N_TOKENS, PADDED_SAMPLES, STEM_STRIDE

assert (mamba.N_TOKENS, mamba.PADDED_SAMPLES, mamba.STEM_STRIDE) == (N_TOKENS, PADDED_SAMPLES, STEM_STRIDE)

EPS = 1e-6


class PrototypeHead(nn.Module):
    """Tokens → (logits, best similarity per prototype, best position per prototype, similarity maps)."""

    def __init__(self, d_in: int, n_classes: int, per_class: int, patch_tokens: int, proto_dim: int) -> None:
        super().__init__()
        self.n_classes, self.per_class, self.patch_tokens = n_classes, per_class, patch_tokens
        self.add_on = nn.Sequential(nn.Conv1d(d_in, d_in, 1), nn.ReLU(), nn.Conv1d(d_in, proto_dim, 1), nn.ReLU())
        n_protos = n_classes * per_class
        self.prototypes = nn.Parameter(torch.rand(n_protos, proto_dim, patch_tokens))
        identity = torch.zeros(n_protos, n_classes)
        identity[torch.arange(n_protos), torch.arange(n_protos) // per_class] = 1.0
        self.register_buffer("identity", identity)             # prototype → its class (one-hot)
        self.register_buffer("window_ones", torch.ones(1, proto_dim, patch_tokens))   # sums a patch's squares
        self.last = nn.Linear(n_protos, n_classes)
        with torch.no_grad():       # start: own class only (multi-label sigmoid: ProtoPNet's −0.5 to every other
            self.last.weight.copy_(6.0 * identity.T)            # class would sum to a saturated −40 over 54 prototypes)
            self.last.bias.fill_(-4.0)

    identity: Tensor
    window_ones: Tensor

    def features(self, tokens: Tensor) -> Tensor:
        """(B, T, d_in) → (B, proto_dim, T) non-negative features."""
        return self.add_on(tokens.transpose(1, 2))

    def similarity_maps(self, z: Tensor) -> Tensor:
        """(B, proto_dim, T) → (B, P, T − L + 1) cosine similarity of every prototype at every position."""
        dot = F.conv1d(z, self.prototypes)
        patch_norm = torch.sqrt(F.conv1d(z * z, self.window_ones) + EPS)
        proto_norm = torch.sqrt((self.prototypes**2).sum(dim=(1, 2)) + EPS)
        return dot / (patch_norm * proto_norm[None, :, None])

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        maps = self.similarity_maps(self.features(tokens))
        best, position = maps.max(dim=-1)
        return self.last(best), best, position, maps


class PrototypeNet(nn.Module):
    """(B, 12, 1250) → sigmoid scores (B, classes), similarities (B, P), positions (B, P) (what ships)."""

    def __init__(self, backbone: mamba.ECGMamba, head: PrototypeHead) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, best, position, _ = self.head(embed(self.backbone, x))
        return torch.sigmoid(logits), best, position


def embed(backbone: mamba.ECGMamba, x: Tensor) -> Tensor:
    """The classifier's token embedding (B, 160, d_model) of windows (B, 12, 1250): stem, blocks, norm."""
    h = backbone.stem(x)
    for block in backbone.blocks:
        h = block(h)
    return backbone.norm(h)
