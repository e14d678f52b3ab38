"""ECG-Mamba: a 1-D CNN stem turns a 12-lead 10 s window into tokens, bidirectional Mamba-2 blocks mix
them, a pooled multi-label head scores each class.

Shapes: input ``(B, 12, 1250)`` band-passed mV at 125 Hz → stem (zero-padded to 1280 samples, three
stride-2 convolutions) → ``(B, 160, d_model)`` tokens of 64 ms → ``n_blocks`` × :class:`BiMambaBlock` →
mean ‖ max pooling → logits ``(B, 18)``. Pure PyTorch (the scan is :func:`scan_chunked`): runs on any
device (``model.to("cuda")``) and exports to ONNX.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from models.classifier.heads import FusionHead
from models.classifier.scan import scan_chunked, scan_reference, segsum_masks
from models.data.labels import CLASSES
from models.preprocessing import WINDOW_SAMPLES

N_LEADS = 12
STEM_STRIDE = 8
PADDED_SAMPLES = 1280
"""The stem zero-pads the 1250-sample window to this length, so the token count is a multiple of the chunk."""
N_TOKENS = PADDED_SAMPLES // STEM_STRIDE


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last axis (written out: exports to plain ONNX ops)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class ConvStem(nn.Module):
    """(B, 12, 1250) → (B, 160, d_model): three conv–BN–GELU layers of stride 2 over the padded window."""

    def __init__(self, d_model: int, width: int = 32) -> None:
        super().__init__()
        chans = [N_LEADS, width, 2 * width, d_model]
        kernels = [7, 5, 5]
        layers: list[nn.Module] = []
        for cin, cout, k in zip(chans[:-1], chans[1:], kernels, strict=True):
            layers += [nn.Conv1d(cin, cout, k, stride=2, padding=k // 2, bias=False), nn.BatchNorm1d(cout), nn.GELU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        pad = PADDED_SAMPLES - x.shape[-1]
        x = F.pad(x, (pad // 2, pad - pad // 2))
        return self.net(x).transpose(1, 2)


class Mamba2Mixer(nn.Module):
    """One direction of a Mamba-2 layer: input projection, short causal depthwise conv, selective scan
    with input-dependent Δ (softplus), B and C, per-head decay ``A < 0``, skip ``D``, SiLU gate."""

    # the chunked scan's masks, registered as buffers in __init__
    intra_strict: Tensor
    intra_upper: Tensor
    inter_strict: Tensor
    inter_upper: Tensor

    def __init__(self, d_model: int, d_state: int = 16, expand: int = 2, headdim: int = 32, d_conv: int = 4,
                 chunk: int = 32) -> None:
        super().__init__()
        self.d_inner = expand * d_model
        if self.d_inner % headdim:
            raise ValueError(f"expand·d_model = {self.d_inner} is not a multiple of headdim {headdim}")
        self.nheads, self.headdim, self.d_state, self.chunk = self.d_inner // headdim, headdim, d_state, chunk
        conv_dim = self.d_inner + 2 * d_state
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner + 2 * d_state + self.nheads, bias=False)
        self.conv = nn.Conv1d(conv_dim, conv_dim, d_conv, groups=conv_dim, padding=d_conv - 1)
        # Δ initialised log-uniform in [1e-3, 1e-1] (Mamba's choice); A = -exp(A_log) in [-16, -1]
        dt = torch.exp(torch.rand(self.nheads) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_log = nn.Parameter(torch.log(torch.empty(self.nheads).uniform_(1.0, 16.0)))
        self.D = nn.Parameter(torch.ones(self.nheads))
        self.norm = RMSNorm(self.d_inner)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        self.reference_scan = False
        """True: use the sequential reference scan (tests)."""
        n_chunks = N_TOKENS // chunk
        for name, n in (("intra", chunk), ("inter", n_chunks + 1)):
            strict, upper = segsum_masks(n)
            self.register_buffer(f"{name}_strict", strict, persistent=False)
            self.register_buffer(f"{name}_upper", upper, persistent=False)

    def ssm_inputs(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(B, T, d_model) → gate z, x (B, T, heads, headdim), Δ (B, T, heads), A (heads,), B, C (B, T, d_state)."""
        bsz, t, _ = u.shape
        z, xbc, dt = torch.split(self.in_proj(u), [self.d_inner, self.d_inner + 2 * self.d_state, self.nheads], -1)
        xbc = F.silu(self.conv(xbc.transpose(1, 2))[..., :t].transpose(1, 2))
        x, b, c = torch.split(xbc, [self.d_inner, self.d_state, self.d_state], -1)
        dt = F.softplus(dt + self.dt_bias)
        a = -torch.exp(self.A_log)
        return z, x.reshape(bsz, t, self.nheads, self.headdim), dt, a, b, c

    def forward(self, u: Tensor) -> Tensor:
        bsz, t, _ = u.shape
        z, x, dt, a, b, c = self.ssm_inputs(u)
        if self.reference_scan:
            y = scan_reference(x, dt, a, b, c)
        else:
            masks = None
            if t == N_TOKENS:
                masks = ((self.intra_strict, self.intra_upper), (self.inter_strict, self.inter_upper))
            y = scan_chunked(x, dt, a, b, c, self.chunk, masks)
        y = (y + x * self.D[:, None]).reshape(bsz, t, self.d_inner)
        return self.out_proj(self.norm(y * F.silu(z)))


class BiMambaBlock(nn.Module):
    """Pre-norm residual block: a forward and a backward (time-reversed) mixer, summed."""

    def __init__(self, d_model: int, **mixer: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.fwd = Mamba2Mixer(d_model, **mixer)
        self.bwd = Mamba2Mixer(d_model, **mixer)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        return x + self.fwd(h) + torch.flip(self.bwd(torch.flip(h, (1,))), (1,))


class ECGMamba(nn.Module):
    """The classifier: ``forward(x, features)`` gives logits (B, 18) in :data:`models.data.labels.CLASSES`
    order; ``features`` (B, n_features) are the measured rhythm features (:mod:`models.features`) when
    ``n_features`` > 0 (:class:`models.classifier.heads.FusionHead`)."""

    def __init__(self, d_model: int = 64, n_blocks: int = 2, d_state: int = 16, expand: int = 2, headdim: int = 32,
                 chunk: int = 32, stem_width: int = 32, dropout: float = 0.1, n_features: int = 0,
                 feature_hidden: int = 32) -> None:
        super().__init__()
        if N_TOKENS % chunk:
            raise ValueError(f"chunk {chunk} must divide the {N_TOKENS} tokens")
        self.stem = ConvStem(d_model, stem_width)
        self.blocks = nn.ModuleList(
            BiMambaBlock(d_model, d_state=d_state, expand=expand, headdim=headdim, chunk=chunk) for _ in range(n_blocks)
        )
        self.norm = nn.LayerNorm(d_model)
        self.fusion = FusionHead(2 * d_model, len(CLASSES), n_features, feature_hidden, dropout)

    def set_reference_scan(self, on: bool) -> None:
        """Switch every mixer to the sequential reference scan (True) or the chunked scan (False)."""
        for m in self.modules():
            if isinstance(m, Mamba2Mixer):
                m.reference_scan = on

    def forward(self, x: Tensor, features: Tensor | None = None) -> Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        h = self.norm(h)
        return self.fusion(torch.cat([h.mean(1), h.amax(1)], dim=-1), features)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


assert PADDED_SAMPLES >= WINDOW_SAMPLES
