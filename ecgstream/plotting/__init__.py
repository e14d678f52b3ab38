"""ECG strips on paper: what ``ecgstream plot`` draws and where its signal comes from.

- :mod:`ecgstream.plotting.strip`: :class:`Strip`, the signal, labels and annotations to draw;
- :mod:`ecgstream.plotting.sources`: strips from a record file (WFDB, EDF, CSV, with its WFDB
  annotations), from the simulator, or from a window stored in the cloud database;
- :mod:`ecgstream.plotting.grid`: the drawing, on ECG paper (25 mm/s, 10 mm/mV, 1 mm minor and
  5 mm major lines) to PNG or PDF.
"""

from ecgstream.plotting.grid import MM_PER_MV, MM_PER_S, plot_strip
from ecgstream.plotting.sources import (
    PlotSourceError,
    strip_from_record,
    strip_from_store,
    strip_from_synthesis,
    strip_from_window,
)
from ecgstream.plotting.strip import Strip

__all__ = [
    "MM_PER_MV",
    "MM_PER_S",
    "PlotSourceError",
    "Strip",
    "plot_strip",
    "strip_from_record",
    "strip_from_store",
    "strip_from_synthesis",
    "strip_from_window",
]
