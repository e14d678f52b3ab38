"""Streaming signal processing on the edge: filters, QRS detection, heart rate and RR irregularity, ST deviation."""

from edge.signal.filters import EcgFilter, FilterSpec, SosStream
from edge.signal.qrs import QrsConfig, QrsDetector, QrsResult
from edge.signal.rr import RrStats
from edge.signal.st import StConfig, StResult, measure_st

__all__ = ["EcgFilter", "FilterSpec", "QrsConfig", "QrsDetector", "QrsResult", "RrStats", "SosStream", "StConfig", "StResult", "measure_st"]
