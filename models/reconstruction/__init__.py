"""3→12 lead reconstruction: the wearable's II, V1, V5 in, the 12 standard leads out.

Only the independent leads I, V2, V3, V4, V6 are predicted; II, V1, V5 pass through unchanged and
III, aVR, aVL, aVF follow exactly from I and II (Einthoven, Goldberger), so the output always obeys
the lead relations a clinician expects. This package's top level is numpy only: the torch model
(:mod:`models.reconstruction.vae`), training and export import torch themselves.
"""

from __future__ import annotations

import numpy as np

from protocol.leads import STANDARD_LEADS

INPUT_LEADS: tuple[str, ...] = ("II", "V1", "V5")
"""Leads the wearable measures (model input, passed through unchanged)."""
PREDICTED_LEADS: tuple[str, ...] = ("I", "V2", "V3", "V4", "V6")
"""Independent leads the model predicts."""
DERIVED_LEADS: tuple[str, ...] = ("III", "aVR", "aVL", "aVF")
"""Leads computed exactly from I and II."""
RECONSTRUCTED_LEADS: tuple[str, ...] = tuple(lead for lead in STANDARD_LEADS if lead not in INPUT_LEADS)
"""Every lead not measured (predicted or derived): the leads metrics are averaged over."""

INPUT_INDEX = tuple(STANDARD_LEADS.index(lead) for lead in INPUT_LEADS)
PREDICTED_INDEX = tuple(STANDARD_LEADS.index(lead) for lead in PREDICTED_LEADS)
Z90 = 1.6448536269514722
"""Half-width of the central 90 % interval of a standard normal."""


def assemble_leads(x_in: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(…, 3, n) inputs II, V1, V5 and (…, 5, n) predicted I, V2, V3, V4, V6 → (…, 12, n) standard leads."""
    x_in = np.asarray(x_in)
    predicted = np.asarray(predicted)
    out = np.empty(x_in.shape[:-2] + (12, x_in.shape[-1]), dtype=np.result_type(x_in, predicted))
    lead_i, lead_ii = predicted[..., 0, :], x_in[..., 0, :]
    out[..., 0, :] = lead_i
    out[..., 1, :] = lead_ii
    out[..., 2, :] = lead_ii - lead_i
    out[..., 3, :] = -(lead_i + lead_ii) / 2
    out[..., 4, :] = lead_i - lead_ii / 2
    out[..., 5, :] = lead_ii - lead_i / 2
    out[..., 6, :] = x_in[..., 1, :]
    out[..., 7:10, :] = predicted[..., 1:4, :]
    out[..., 10, :] = x_in[..., 2, :]
    out[..., 11, :] = predicted[..., 4, :]
    return out


def assemble_uncertainty(predicted_halfwidth: np.ndarray) -> np.ndarray:
    """(…, 5, n) band half-widths of I, V2, V3, V4, V6 → (…, 12, n): 0 for measured leads.

    II is measured (no error), so a derived lead's error is a fixed multiple of I's:
    III = II − I → |1|, aVR = −(I+II)/2 → 1/2, aVL = I − II/2 → 1, aVF = II − I/2 → 1/2.
    """
    h = np.asarray(predicted_halfwidth)
    out = np.zeros(h.shape[:-2] + (12, h.shape[-1]), dtype=h.dtype)
    hi = h[..., 0, :]
    out[..., 0, :] = hi
    out[..., 2, :] = hi
    out[..., 3, :] = hi / 2
    out[..., 4, :] = hi
    out[..., 5, :] = hi / 2
    out[..., 7:10, :] = h[..., 1:4, :]
    out[..., 11, :] = h[..., 4, :]
    return out
