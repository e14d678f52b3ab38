"""The selective scan (Mamba-2 / SSD parameterisation): a sequential reference and a fast chunked form.

The state-space recurrence, per head ``h`` (scalar decay, Mamba-2 style)::

    a_t = exp(Δ_t · A_h)                 A_h < 0, Δ_t = softplus(·) > 0  ⇒ 0 < a_t ≤ 1
    H_t = a_t · H_{t-1} + Δ_t · B_t ⊗ x_t   (H_t: d_state × headdim)
    y_t = C_t · H_t

:func:`scan_reference` runs it token by token (the definition; slow). :func:`scan_chunked` computes
the same thing with the state-space duality of Mamba-2: the sequence is cut in chunks of ``L``
tokens; inside a chunk the output is ``(C Bᵀ ⊙ decay) X`` — batched matrix products — and the
state is passed from chunk to chunk with a second, small decay matrix. Every decay is ``exp`` of a
*segment sum* (:func:`segsum`): sums of ``Δ·A ≤ 0`` over a segment, with the upper triangle set to
−inf **before** ``exp``. Every exponent is therefore ≤ 0, so nothing overflows whatever Δ is (a
cumulative-sum-and-divide form overflows float32 once a chunk's summed decay passes ~88), and the
segment sums are accumulated directly rather than as differences of large cumulative sums, so a
long chunk of huge Δ does not cancel the precision of the small ones.

Pure PyTorch, no custom kernels: exports to ONNX (opset ≥ 17) with fixed sequence length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor


def segsum_masks(n: int, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """The two constant (n, n) matrices :func:`segsum` needs: 1 strictly below the diagonal (else 0), and
    −inf strictly above it (else 0). Models build them once (buffers), so the exported graph holds them as
    constants instead of rebuilding them every run."""
    strict = torch.tril(torch.ones(n, n, device=device, dtype=dtype), diagonal=-1)
    upper = torch.triu(torch.full((n, n), float("-inf"), device=device, dtype=dtype), diagonal=1)
    return strict, upper


def segsum(x: Tensor, masks: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """``(..., L)`` → ``(..., L, L)``: ``out[..., i, j] = Σ_{k=j+1..i} x[..., k]`` for ``j ≤ i``, −inf above.

    ``exp(segsum(dA))[i, j]`` is the decay from token ``j`` to token ``i`` (1 on the diagonal,
    0 above it). Computed as a masked cumulative sum, so every entry is a sum of the segment's own
    terms (no differences of running totals); the −inf goes in before any ``exp``. ``masks``:
    :func:`segsum_masks` of ``L`` (built here when not given).
    """
    strict, upper = masks if masks is not None else segsum_masks(x.shape[-1], x.device, x.dtype)
    sums = torch.cumsum(x.unsqueeze(-1) * strict, dim=-2)  # sums[..., i, j] = Σ_{j<k≤i} x[..., k]
    return sums + upper


def _check(x: Tensor, dt: Tensor, a: Tensor, b: Tensor, c: Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"x must be (batch, tokens, heads, headdim), got {tuple(x.shape)}")
    bsz, t, h, _ = x.shape
    if dt.shape != (bsz, t, h) or a.shape != (h,):
        raise ValueError(f"dt must be {(bsz, t, h)} and A ({h},), got {tuple(dt.shape)} and {tuple(a.shape)}")
    if b.shape[:2] != (bsz, t) or c.shape != b.shape:
        raise ValueError(f"B and C must be (batch, tokens, d_state), got {tuple(b.shape)}, {tuple(c.shape)}")


def scan_reference(x: Tensor, dt: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """The recurrence token by token (the definition the fast form is tested against).

    Shapes: ``x`` (batch, T, heads, headdim), ``dt`` (batch, T, heads) > 0, ``a`` (heads,) < 0,
    ``b``/``c`` (batch, T, d_state) (one group shared by every head). Returns ``y`` like ``x``.
    """
    _check(x, dt, a, b, c)
    bsz, t, h, p = x.shape
    state = x.new_zeros(bsz, h, b.shape[-1], p)
    ys = []
    for i in range(t):
        decay = torch.exp(dt[:, i] * a)  # (batch, heads)
        inp = b[:, i, None, :, None] * (dt[:, i, :, None, None] * x[:, i, :, None, :])
        state = decay[..., None, None] * state + inp
        ys.append(torch.einsum("bn,bhnp->bhp", c[:, i], state))
    return torch.stack(ys, dim=1)


def scan_chunked(x: Tensor, dt: Tensor, a: Tensor, b: Tensor, c: Tensor, chunk: int = 32,
                 masks: tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None) -> Tensor:
    """The same recurrence in chunks of ``chunk`` tokens, as matrix products (Mamba-2 SSD).

    ``T`` must be a multiple of ``chunk`` (the models choose their token count so that it is).
    Equal to :func:`scan_reference` to float rounding, for any Δ ≥ 0. ``masks``: the
    :func:`segsum_masks` of ``chunk`` and of ``T / chunk + 1`` (built here when not given).
    """
    _check(x, dt, a, b, c)
    bsz, t, h, p = x.shape
    n = b.shape[-1]
    if t % chunk:
        raise ValueError(f"sequence length {t} is not a multiple of the chunk length {chunk}")
    nc = t // chunk
    xd = (x * dt.unsqueeze(-1)).reshape(bsz, nc, chunk, h, p).permute(0, 3, 1, 2, 4)  # (b, h, c, L, p)
    da = (dt * a).reshape(bsz, nc, chunk, h).permute(0, 3, 1, 2)  # (b, h, c, L), ≤ 0
    bc = b.reshape(bsz, nc, chunk, n)  # (b, c, L, n)
    cc = c.reshape(bsz, nc, chunk, n)

    intra, inter = masks if masks is not None else (None, None)
    decay = torch.exp(segsum(da, intra))  # (b, h, c, L, L): decay from token j to token i in a chunk
    scores = torch.matmul(cc, bc.transpose(-1, -2))  # (b, c, L, L) = C_i · B_j
    y_diag = torch.matmul(scores.unsqueeze(1) * decay, xd)  # (b, h, c, L, p)

    # state each chunk leaves behind (from its own tokens only)
    to_end = decay[..., -1, :]  # (b, h, c, L): decay from token j to the chunk's last token
    states = torch.matmul(bc.transpose(-1, -2).unsqueeze(1) * to_end.unsqueeze(-2), xd)  # (b, h, c, n, p)
    # pass states across chunks: a second (small) segment-sum decay matrix over chunk totals
    totals = F.pad(da.sum(-1), (1, 0))  # (b, h, c + 1)
    chunk_decay = torch.exp(segsum(totals, inter))  # (b, h, c + 1, c + 1)
    states = torch.cat([torch.zeros_like(states[:, :, :1]), states], dim=2).reshape(bsz, h, nc + 1, n * p)
    entering = torch.matmul(chunk_decay, states)[:, :, :-1].reshape(bsz, h, nc, n, p)  # state entering chunk
    from_start = torch.exp(torch.cumsum(da, dim=-1)).unsqueeze(-1)  # (b, h, c, L, 1): decay since chunk start
    y_off = torch.matmul(cc.unsqueeze(1), entering) * from_start  # (b, h, c, L, p)
    return (y_diag + y_off).permute(0, 2, 3, 1, 4).reshape(bsz, t, h, p)
