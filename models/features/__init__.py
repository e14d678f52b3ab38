"""Measured rhythm features of a classifier window (heart rate, RR irregularity, QRS width, QTc, P, ST, T):
the classifier's second input, computed the same way in training and at the edge."""

from models.features.beats import WindowBeats, detect_beats, median_beat, window_beats
from models.features.rhythm import (
    FEATURE_NAMES,
    FEATURES_VERSION,
    MEASURED_LEADS,
    N_FEATURES,
    WindowFeatures,
    feature_matrix,
    measure,
    measured_rows,
)

__all__ = [
    "FEATURE_NAMES", "FEATURES_VERSION", "MEASURED_LEADS", "N_FEATURES", "WindowBeats", "WindowFeatures",
    "detect_beats", "feature_matrix", "measure", "measured_rows", "median_beat", "window_beats",
]
