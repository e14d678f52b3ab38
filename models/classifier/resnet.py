"""The comparison baseline: a 1-D ResNet of about the same size as ECG-Mamba, same input and output."""

from __future__ import annotations

from torch import Tensor, nn

from models.classifier.heads import FusionHead
from models.data.labels import CLASSES

N_LEADS = 12


class BasicBlock(nn.Module):
    """Two conv–BN layers with a residual (1×1 conv shortcut when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int, kernel: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(cin, cout, kernel, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(cout)
        self.conv2 = nn.Conv1d(cout, cout, kernel, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(cout)
        self.act = nn.ReLU()
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv1d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm1d(cout))

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(h)) + self.short(x))


class ResNet1D(nn.Module):
    """(B, 12, 1250) → logits (B, 18): stem conv (stride 2), four residual stages (strides 1, 2, 2, 2),
    mean ‖ max pooling, the shared :class:`models.classifier.heads.FusionHead` (rhythm features as a second
    input when ``n_features`` > 0)."""

    def __init__(self, widths: tuple[int, ...] = (32, 48, 64, 96), kernel: int = 5, stem_kernel: int = 15,
                 dropout: float = 0.1, n_features: int = 0, feature_hidden: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(N_LEADS, widths[0], stem_kernel, stride=2, padding=stem_kernel // 2, bias=False),
            nn.BatchNorm1d(widths[0]), nn.ReLU(),
        )
        blocks = []
        cin = widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(cin, w, 1 if i == 0 else 2, kernel))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fusion = FusionHead(2 * cin, len(CLASSES), n_features, feature_hidden, dropout)

    def forward(self, x: Tensor, features: Tensor | None = None) -> Tensor:
        import torch

        h = self.blocks(self.stem(x))
        return self.fusion(torch.cat([h.mean(-1), h.amax(-1)], dim=-1), features)
