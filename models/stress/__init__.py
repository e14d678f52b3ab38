"""Stress estimation (WESAD classes baseline / stress / amusement) from one ECG lead.

:mod:`models.stress.hrv` (HRV features) and :mod:`models.stress.data` (labelled windows, synthetic or
WESAD) are numpy only; :mod:`models.stress.model`, :mod:`models.stress.train` and
:mod:`models.stress.evaluate` need torch (training extras). Serving is :mod:`models.runtime.stress`.
"""

CLASSES = ("baseline", "stress", "amusement")
"""Class order of every stress model output (WESAD labels 1, 2, 3)."""
LEAD = "II"
"""The lead the model reads (the chest devices record it; WESAD's chest ECG stands in for it)."""

__all__ = ["CLASSES", "LEAD"]
