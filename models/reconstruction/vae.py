"""The reconstruction VAE (torch; training and export only — the edge runs the ONNX export).

A 1-D convolutional VAE over the three measured leads (II, V1, V5):

* encoder: four conv stages at 1, 1/2, 1/4, 1/8 of the 125 Hz rate (LeakyReLU, no normalisation
  layer, so the model is amplitude-faithful and exports to plain Conv ops);
* latent: a sequence of ``latent_channels`` Gaussian variables at 1/8 rate, posterior
  q(z | II, V1, V5) with a standard normal prior; training samples z, inference uses its mean;
* decoder: upsampling stages with skip paths from the encoder stage of the same rate;
* output: I, V2, V3, V4, V6 as a learned linear mix of the inputs (a 1×1 conv initialised from the
  least-squares baseline) **plus** the decoder's residual, and a log-variance per lead and sample.

III, aVR, aVL, aVF are derived from I and II, II/V1/V5 pass through, and ``forward`` returns the
12 leads and the half-width of the calibrated 90 % band per lead and sample (0 for measured leads).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.reconstruction import Z90

LOGVAR_RANGE = (-14.0, 4.0)
"""Clamp of the decoder log-variance (mV²): σ from 0.9 µV to 7 mV."""


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv1d:
    return nn.Conv1d(cin, cout, k, stride=stride, padding=k // 2)


class _Stage(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int) -> None:
        super().__init__()
        self.a = _conv(cin, cout, k, stride)
        self.b = _conv(cout, cout, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.a(x), 0.1)
        return F.leaky_relu(self.b(h), 0.1) + h


class ReconstructionVAE(nn.Module):
    band_scale: torch.Tensor  # a buffer (register_buffer in __init__)

    def __init__(self, width: int = 16, latent_channels: int = 8) -> None:
        super().__init__()
        w0, w1, w2, w3 = width, int(1.5 * width), 2 * width, 3 * width
        self.width, self.latent_channels = width, latent_channels
        self.mix = nn.Conv1d(3, 5, 1)
        self.e0 = _Stage(3, w0, 7, 1)
        self.e1 = _Stage(w0, w1, 7, 2)
        self.e2 = _Stage(w1, w2, 5, 2)
        self.e3 = _Stage(w2, w3, 5, 2)
        self.to_z = nn.Conv1d(w3, 2 * latent_channels, 1)
        self.from_z = _conv(latent_channels, w3, 3)
        self.d2 = _conv(w3 + w2, w2, 5)
        self.d1 = _conv(w2 + w1, w1, 3)
        self.d0 = _conv(w1 + w0, w0, 5)
        self.head = nn.Conv1d(w0, 10, 1)
        assert self.head.bias is not None and self.mix.bias is not None  # Conv1d's default bias=True
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("band_scale", torch.ones(5))
        """Per predicted lead: calibration factor on Z90·σ so the 90 % band covers 90 % (fitted after training)."""

    def init_mix(self, weights, bias) -> None:  # type: ignore[no-untyped-def]
        """Start the linear path at the least-squares baseline (5×3 weights, 5 bias)."""
        with torch.no_grad():
            self.mix.weight.copy_(torch.as_tensor(weights, dtype=torch.float32)[:, :, None])
            assert self.mix.bias is not None
            self.mix.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))

    def encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        h0 = self.e0(x)
        h1 = self.e1(h0)
        h2 = self.e2(h1)
        h3 = self.e3(h2)
        mu, logvar = self.to_z(h3).chunk(2, dim=1)
        return [h0, h1, h2], mu, logvar.clamp(-10.0, 6.0)

    def decode(self, x: torch.Tensor, skips: list[torch.Tensor], z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h0, h1, h2 = skips
        h = F.leaky_relu(self.from_z(z), 0.1)
        h = F.interpolate(h, size=h2.shape[-1], mode="nearest")
        h = F.leaky_relu(self.d2(torch.cat([h, h2], dim=1)), 0.1)
        h = F.interpolate(h, size=h1.shape[-1], mode="nearest")
        h = F.leaky_relu(self.d1(torch.cat([h, h1], dim=1)), 0.1)
        h = F.interpolate(h, size=h0.shape[-1], mode="nearest")
        h = F.leaky_relu(self.d0(torch.cat([h, h0], dim=1)), 0.1)
        residual, logvar = self.head(h).chunk(2, dim=1)
        return self.mix(x) + residual, logvar.clamp(*LOGVAR_RANGE)

    def forward_train(self, x: torch.Tensor, generator: torch.Generator | None = None):  # type: ignore[no-untyped-def]
        """Training pass: (mean (B,5,n), log-variance (B,5,n), KL per latent element)."""
        skips, mu, lv = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * lv)
        mean, logvar = self.decode(x, skips, z)
        kl = 0.5 * (mu.pow(2) + lv.exp() - 1.0 - lv).mean()
        return mean, logvar, kl

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference on I, V2, V3, V4, V6: (mean, calibrated 90 % half-width), z at its posterior mean."""
        skips, mu, _ = self.encode(x)
        mean, logvar = self.decode(x, skips, mu)
        half = Z90 * self.band_scale[None, :, None] * torch.exp(0.5 * logvar)
        return mean, half

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, n) II, V1, V5 in mV → leads12 (B, 12, n) mV and uncertainty (B, 12, n) mV (90 % half-width)."""
        mean, half = self.predict(x)
        lead_i, lead_ii = mean[:, 0:1], x[:, 0:1]
        leads = torch.cat([
            lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) * 0.5, lead_i - lead_ii * 0.5,
            lead_ii - lead_i * 0.5, x[:, 1:2], mean[:, 1:4], x[:, 2:3], mean[:, 4:5],
        ], dim=1)
        hi = half[:, 0:1]
        zero = torch.zeros_like(hi)
        unc = torch.cat([hi, zero, hi, hi * 0.5, hi, hi * 0.5, zero, half[:, 1:4], zero, half[:, 4:5]], dim=1)
        return leads, unc
