"""Streaming signal processing on the edge: filters, QRS detection, heart rate and RR irregularity, ST deviation.

Everything here works packet by packet with carried state, so what is tested on whole records is
what runs live, and knows nothing of alarms or models (the alarm rules read its results):

- :mod:`.filters`: one second-order-section chain per stream (baseline, mains notch, low-pass);
- :mod:`.qrs`: :class:`QrsDetector`, Hamilton–Tompkins style, with heart rate;
- :mod:`.rr`: RR irregularity (what the AF rule reads);
- :mod:`.pacing`: pace pulses on the raw samples, so paced beats never count as VT;
- :mod:`.st`: ST deviation per lead over a window (:class:`StMeasurement`);
- :mod:`.median`: fast medians the others share.
"""

from edge.signal.filters import EcgFilter, FilterSpec, SosStream
from edge.signal.qrs import QrsConfig, QrsDetector, QrsResult
from edge.signal.rr import RrStats
from edge.signal.st import StConfig, StMeasurement, StResult, measure_st

__all__ = ["EcgFilter", "FilterSpec", "QrsConfig", "QrsDetector", "QrsResult", "RrStats", "SosStream", "StConfig", "StMeasurement", "StResult", "measure_st"]
