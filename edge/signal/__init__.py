"""Streaming signal processing on the edge: filters, QRS detection, heart rate and RR irregularity."""

from edge.signal.filters import EcgFilter, FilterSpec, SosStream
from edge.signal.qrs import QrsConfig, QrsDetector, QrsResult
from edge.signal.rr import RrStats

__all__ = ["EcgFilter", "FilterSpec", "QrsConfig", "QrsDetector", "QrsResult", "RrStats", "SosStream"]
