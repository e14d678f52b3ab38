"""Read EDF, EDF+ and BDF files with pyedflib."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyedflib

from firmware_sim.records.errors import RecordError
from firmware_sim.records.recording import Recording, from_channels


def read_edf(path: Path) -> Recording:
    """Read the signal channels of an EDF/EDF+/BDF file (annotations are not signals).

    Every channel must share one sampling rate. Samples are physical values,
    converted to mV from the header's physical dimension (``uV``, ``mV``, ``V``).
    Raises :class:`RecordError` for a missing or malformed file or mixed rates.
    """
    path = Path(path)
    try:
        with pyedflib.EdfReader(str(path)) as reader:
            n = reader.signals_in_file
            labels = reader.getSignalLabels()
            rates = np.array(reader.getSampleFrequencies(), dtype=np.float64)
            units = [reader.getPhysicalDimension(i) for i in range(n)]
            channels = [reader.readSignal(i) for i in range(n)]
    except OSError as exc:
        raise RecordError(f"cannot read EDF file {path}: {exc}") from exc
    if n == 0:
        raise RecordError(f"EDF file {path} has no signal channels")
    if np.any(rates != rates[0]):
        listed = ", ".join(f"{label}: {rate:g} Hz" for label, rate in zip(labels, rates, strict=True))
        raise RecordError(f"EDF file {path} mixes sampling rates ({listed}); only one rate is supported")
    return from_channels(np.column_stack(channels), float(rates[0]), labels, units, path)
