"""Case-based explanations (ProtoECGNet-style): a prototype layer over the shipped ECG-Mamba classifier's
token embedding.

The classifier's CNN stem and bidirectional Mamba blocks (frozen, :mod:`models.classifier.mamba`) turn a
10 s 12-lead window into 160 tokens of 64 ms. A small add-on (two 1×1 convolutions, ReLU) maps them to
non-negative features; each class has :data:`PER_CLASS` prototypes, each a patch of ``patch_tokens``
consecutive feature tokens, so a prototype matches a *segment* of the window. A prototype's similarity to a
window is the best cosine similarity (in [0, 1]: both sides are non-negative) over all positions; a last
linear layer turns the similarities into class scores. After training every prototype is projected (the
ProtoPNet push) onto the training segment nearest to it, a real ``../shared/tune`` record or a synthetic
window, so each one *is* a known strip.

This package's top level is numpy-only (the runtime and the faithfulness check read it); torch lives in
:mod:`models.prototypes.network` and :mod:`models.prototypes.train`.
"""

from __future__ import annotations

from models.preprocessing import MODEL_FS, WINDOW_SAMPLES

STEM_STRIDE = 8
PADDED_SAMPLES = 1280
N_TOKENS = PADDED_SAMPLES // STEM_STRIDE
"""The classifier's token grid (:mod:`models.classifier.mamba`, repeated here without torch; the network
module checks they agree)."""

PER_CLASS = 3
"""Prototypes per class (default)."""
PATCH_TOKENS = 16
"""Tokens a prototype spans (default): 16 × 64 ms ≈ 1 s, about one beat with its surroundings."""
LEAD = "II"
"""The lead whose strip is stored for each prototype (what the dashboard draws)."""
INPUT_NAME = "leads12"
OUTPUTS = ("scores", "similarities", "positions")
"""ONNX outputs: sigmoid class scores (B, classes), best similarity per prototype (B, P) and the token
position (B, P) where each prototype matched best."""
LEFT_PAD = (PADDED_SAMPLES - WINDOW_SAMPLES) // 2
"""Samples the classifier's stem pads on the left of a window (token i starts at sample 8·i − LEFT_PAD)."""
ARTIFACT = "prototypes.onnx"
STRIPS = "prototypes_strips.json"


def segment_samples(position: int, patch_tokens: int, *, stride: int = STEM_STRIDE, left_pad: int = LEFT_PAD,
                    n_samples: int = WINDOW_SAMPLES) -> tuple[int, int]:
    """The window samples ``[start, stop)`` that tokens ``position … position + patch_tokens − 1`` stand for
    (clipped to the window)."""
    if position < 0 or position + patch_tokens > N_TOKENS:
        raise ValueError(f"position {position} with {patch_tokens} tokens is outside the {N_TOKENS} tokens")
    start = position * stride - left_pad
    stop = (position + patch_tokens) * stride - left_pad
    return max(0, start), min(n_samples, stop)


def segment_seconds(position: int, patch_tokens: int, fs_hz: float = MODEL_FS, **kwargs: int) -> tuple[float, float]:
    """:func:`segment_samples` in seconds from the window's start."""
    a, b = segment_samples(position, patch_tokens, **kwargs)
    return round(a / fs_hz, 3), round(b / fs_hz, 3)


__all__ = ["ARTIFACT", "INPUT_NAME", "LEAD", "LEFT_PAD", "N_TOKENS", "OUTPUTS", "PATCH_TOKENS", "PER_CLASS", "STRIPS",
           "segment_samples", "segment_seconds"]
