"""Draw a :class:`~ecgstream.plotting.strip.Strip` on ECG paper and save it as PNG or PDF.

Paper geometry is the clinical one, at true size: 25 mm per second, 10 mm per mV, 1 mm minor and
5 mm major grid lines. Each lead gets its own row (tall enough for its amplitude), labelled at the
left; reconstructed leads are drawn dashed and labelled "(reconstructed)". Beat annotations are
written above the beats on a band at the top, rhythm changes (``(AFIB``) below them.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from ecgstream.plotting.strip import Strip  # noqa: E402

MM_PER_S = 25.0
"""Paper speed."""
MM_PER_MV = 10.0
"""Gain."""
MM_PER_INCH = 25.4
FORMATS = (".png", ".pdf")
"""File types :func:`plot_strip` writes."""

_LABEL_MM = 22.0     # left margin for lead labels
_RIGHT_MM = 5.0
_TITLE_MM = 10.0
_NOTE_MM = 14.0      # beat symbols and rhythm labels above the first lead
_FOOT_MM = 12.0
_MIN_WIDTH_MM = 200.0  # room for the title on short strips
_ROW_MIN_MM = 25.0
_ROW_MAX_MM = 80.0
_MINOR = "#f6c4c4"
_MAJOR = "#e07a7a"
_TRACE = "#111111"
_RECON = "#1f4fbf"


def _row_heights(strip: Strip) -> tuple[np.ndarray, np.ndarray]:
    """Each lead's row height (mm, whole 5 mm squares) and the mV value drawn at the row's middle."""
    sig = strip.signals
    with np.errstate(all="ignore"):
        lo, hi = np.nanmin(sig, axis=0), np.nanmax(sig, axis=0)
    lo, hi = np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)
    heights = np.clip((hi - lo) * MM_PER_MV + 10.0, _ROW_MIN_MM, _ROW_MAX_MM)
    return np.ceil(heights / 5.0) * 5.0, (lo + hi) / 2.0


def _grid(ax: plt.Axes, x0: float, x1: float, y0: float, y1: float) -> None:
    """Minor (1 mm) and major (5 mm) lines over ``[x0, x1] × [y0, y1]`` (mm; x0 and y0 on a major line)."""
    for step, color, width in ((1.0, _MINOR, 0.25), (5.0, _MAJOR, 0.6)):
        xs = x0 + np.arange(0.0, x1 - x0 + 1e-9, step)
        ys = y0 + np.arange(0.0, y1 - y0 + 1e-9, step)
        segments = [((x, y0), (x, y1)) for x in xs] + [((x0, y), (x1, y)) for y in ys]
        ax.add_collection(LineCollection(segments, colors=color, linewidths=width, zorder=1))


def plot_strip(strip: Strip, out: str | os.PathLike[str], *, dpi: int = 200) -> Path:
    """Draw ``strip`` at true paper size into ``out`` (``.png`` or ``.pdf``); returns the path written.

    Raises :class:`ValueError` for another file type.
    """
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"{out}: the plot is written as PNG or PDF, name it .png or .pdf")
    heights, centres = _row_heights(strip)
    paper_width_mm = float(np.ceil(strip.duration_s * MM_PER_S / 5.0) * 5.0)
    width_mm = max(_LABEL_MM + paper_width_mm + _RIGHT_MM, _MIN_WIDTH_MM)
    paper_mm = _NOTE_MM + float(heights.sum())
    height_mm = _TITLE_MM + paper_mm + _FOOT_MM
    fig = plt.figure(figsize=(width_mm / MM_PER_INCH, height_mm / MM_PER_INCH))
    try:
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_xlim(0.0, width_mm)
        ax.set_ylim(0.0, height_mm)
        ax.set_axis_off()
        x0, x1 = _LABEL_MM, _LABEL_MM + paper_width_mm
        y_bottom, y_top = _FOOT_MM, _FOOT_MM + paper_mm
        _grid(ax, x0, x1, y_bottom, y_top)
        t = np.arange(strip.signals.shape[0]) / strip.fs
        x = x0 + t * MM_PER_S
        top = y_top - _NOTE_MM
        for i, lead in enumerate(strip.lead_names):
            middle = top - heights[:i].sum() - heights[i] / 2.0
            y = middle + (strip.signals[:, i] - centres[i]) * MM_PER_MV
            recon = lead in strip.reconstructed
            ax.plot(x, y, color=_RECON if recon else _TRACE, linewidth=0.6, linestyle="--" if recon else "-",
                    zorder=3)
            label = f"{lead}\n(reconstructed)" if recon else lead
            ax.text(_LABEL_MM - 2.0, middle, label, ha="right", va="center", fontsize=7 if recon else 9,
                    color=_RECON if recon else _TRACE, zorder=4)
            if i:
                ax.plot((x0, x1), (top - heights[:i].sum(),) * 2, color=_MAJOR, linewidth=0.9, zorder=2)
        ax.plot((x0, x1), (top, top), color=_MAJOR, linewidth=0.9, zorder=2)
        for at, symbol in strip.beats:
            ax.text(x0 + at * MM_PER_S, top + 9.0, symbol, ha="center", va="center", fontsize=6, zorder=4)
        for at, rhythm in strip.rhythms:
            ax.text(x0 + at * MM_PER_S, top + 3.5, rhythm, ha="left", va="center", fontsize=7, zorder=4,
                    color="#7a1f1f", fontweight="bold")
        ax.text(x0, height_mm - _TITLE_MM / 2.0, strip.title, ha="left", va="center", fontsize=8)
        for second in range(int(np.floor(strip.duration_s)) + 1):
            ax.text(x0 + second * MM_PER_S, _FOOT_MM - 3.0, f"{strip.start_s + second:g} s", ha="center",
                    va="center", fontsize=6)
        ax.text(x0, 2.5, f"{MM_PER_S:g} mm/s, {MM_PER_MV:g} mm/mV", ha="left", va="center", fontsize=6,
                color="#555555")
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=dpi)
    finally:
        plt.close(fig)
    return out
