"""An ECG strip drawn on paper at the standard scale: 25 mm/s, 10 mm/mV, on a millimetre grid.

:func:`render_strip` draws the stored window's leads one under the other (reconstructed leads named
so, with their 90 % band shaded) and returns PNG or PDF bytes. The page is sized from the scale, so
printed at 100 % (or viewed at the PNG's stated resolution) a second is 25 mm and a millivolt 10 mm:
page width = ``LEFT_MM + seconds × 25 + RIGHT_MM``, height = ``TOP_MM + leads × ROW_MM + BOTTOM_MM``.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from protocol.window_payload import EcgWindow

MM_PER_S = 25.0
MM_PER_MV = 10.0
ROW_MM = 25.0
"""Height of one lead's row (2.5 mV)."""
LEFT_MM, RIGHT_MM, TOP_MM, BOTTOM_MM = 18.0, 6.0, 14.0, 8.0
PNG_DPI = 200
MM_PER_INCH = 25.4
StripFormat = Literal["png", "pdf"]


def page_size_mm(duration_s: float, n_leads: int) -> tuple[float, float]:
    """The page (width, height) in mm of a strip of ``duration_s`` seconds and ``n_leads`` rows."""
    return LEFT_MM + duration_s * MM_PER_S + RIGHT_MM, TOP_MM + n_leads * ROW_MM + BOTTOM_MM


def _grid(ax: object, width_mm: float, height_mm: float) -> None:
    """Millimetre grid (every 1 mm light, every 5 mm darker) in data units (s, mV)."""
    from matplotlib.collections import LineCollection

    for step_mm, colour, lw in ((1.0, "#f6c9c9", 0.3), (5.0, "#e58b8b", 0.6)):
        xs = np.arange(0.0, width_mm + 1e-9, step_mm) / MM_PER_S
        ys = -np.arange(0.0, height_mm + 1e-9, step_mm) / MM_PER_MV
        segs = [((x, 0.0), (x, ys[-1])) for x in xs] + [((0.0, y), (xs[-1], y)) for y in ys]
        ax.add_collection(LineCollection(segs, colors=colour, linewidths=lw, zorder=0))  # type: ignore[attr-defined]


def render_strip(window: EcgWindow, fmt: StripFormat, *, title: str = "") -> bytes:
    """The window's leads at 25 mm/s and 10 mm/mV as ``fmt`` bytes (PNG at :data:`PNG_DPI`, which the
    file states, so viewers that honour it show true size). matplotlib is imported here, on first use,
    so the service starts without it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mv = np.asarray(window.millivolts(), dtype=np.float64).copy()
    for start, end in window.gaps:                    # lost samples are drawn as gaps, never bridged
        mv[:, start:end] = np.nan
    unc = window.uncertainty_mv()
    n_leads, n = mv.shape
    duration_s = n / window.fs_hz
    width_mm, height_mm = page_size_mm(duration_s, n_leads)
    fig = Figure(figsize=(width_mm / MM_PER_INCH, height_mm / MM_PER_INCH))
    FigureCanvasAgg(fig)
    plot_w, plot_h = duration_s * MM_PER_S, n_leads * ROW_MM
    ax = fig.add_axes((LEFT_MM / width_mm, BOTTOM_MM / height_mm, plot_w / width_mm, plot_h / height_mm))
    ax.set_xlim(0.0, duration_s)
    ax.set_ylim(-plot_h / MM_PER_MV, 0.0)
    ax.set_axis_off()
    _grid(ax, plot_w, plot_h)
    t = np.arange(n) / window.fs_hz
    for i, lead in enumerate(window.leads):
        base = -(i + 0.5) * ROW_MM / MM_PER_MV
        reconstructed = lead in window.reconstructed
        if reconstructed and unc is not None:
            band = unc[window.reconstructed.index(lead)]
            ax.fill_between(t, base + mv[i] - band, base + mv[i] + band, color="#9ab7e0", alpha=0.5, lw=0,
                            zorder=1)
        ax.plot(t, base + mv[i], color="#1f3f8f" if reconstructed else "black", lw=0.6, zorder=2)
        fig.text(2.0 / width_mm, (BOTTOM_MM + plot_h - (i + 0.5) * ROW_MM) / height_mm,
                 f"{lead}{'*' if reconstructed else ''}", fontsize=8, va="center")
    started = datetime.fromtimestamp(window.t0_us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    heading = f"{title or window.patient_id}  ·  {started}  ·  25 mm/s, 10 mm/mV"
    if window.reconstructed:
        heading += "  ·  * reconstructed from 3 leads (band: 90 % uncertainty)"
    fig.text(LEFT_MM / width_mm, 1.0 - 7.0 / height_mm, heading, fontsize=8, va="center")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=PNG_DPI, metadata={"Title": f"ECG strip {window.window_id}"})
    return buf.getvalue()


__all__ = ["MM_PER_MV", "MM_PER_S", "PNG_DPI", "StripFormat", "page_size_mm", "render_strip"]
