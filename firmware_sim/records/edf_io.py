"""Read EDF, EDF+ and BDF files with pyedflib.

Before pyedflib opens a file, its fixed header is read here to compare the number of data
records it states with what the file holds: a truncated file is refused with one line, and
a file holding more than its header counts is read as the header says, with a
:class:`~firmware_sim.records.errors.RecordWarning`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyedflib

from firmware_sim.records.errors import RecordError, RecordWarning
from firmware_sim.records.recording import Recording, from_channels

_FIXED = 256  # bytes of the fixed header, and of each signal's header
_SAMPLES_PER_RECORD = 216  # offset (times the signal count) of the samples-per-record fields


def _check_size(path: Path) -> None:
    """Compare the header's data-record count with the file size (nothing to say if the header is unreadable)."""
    try:
        with path.open("rb") as file:
            fixed = file.read(_FIXED)
            n_signals = int(fixed[252:256].decode("ascii"))
            n_records = int(fixed[236:244].decode("ascii"))
            if not 0 < n_signals <= 4096 or n_records < 0:
                return  # pyedflib says what is wrong
            file.seek(_FIXED + n_signals * _SAMPLES_PER_RECORD)
            fields = file.read(8 * n_signals)
            per_record = sum(int(fields[i : i + 8].decode("ascii")) for i in range(0, len(fields), 8))
    except (OSError, ValueError):
        return
    bytes_per_sample = 3 if fixed.startswith(b"\xffBIOSEMI") else 2
    record_bytes = per_record * bytes_per_sample
    data_bytes = path.stat().st_size - _FIXED * (n_signals + 1)
    if record_bytes <= 0 or data_bytes < 0:
        return
    holds = data_bytes // record_bytes
    if data_bytes < n_records * record_bytes:
        raise RecordError(
            f"EDF file {path}: the header says {n_records} data records, the file holds {holds}: it is truncated"
        )
    if data_bytes > n_records * record_bytes:
        extra = "" if data_bytes % record_bytes == 0 else " and a partial one"
        warnings.warn(
            f"EDF file {path}: the header says {n_records} data records, the file holds {holds}{extra}; "
            f"read {n_records}",
            RecordWarning,
            stacklevel=3,
        )


def read_edf(path: Path) -> Recording:
    """Read the signal channels of an EDF/EDF+/BDF file (annotations are not signals).

    Every channel must share one sampling rate. Samples are physical values,
    converted to mV from the header's physical dimension (``uV``, ``mV``, ``V``).
    Raises :class:`RecordError` for a missing, malformed or truncated file or mixed rates.
    """
    path = Path(path)
    _check_size(path)
    try:
        with pyedflib.EdfReader(str(path)) as reader:
            n = reader.signals_in_file
            labels = reader.getSignalLabels()
            rates = np.array(reader.getSampleFrequencies(), dtype=np.float64)
            units = [reader.getPhysicalDimension(i) for i in range(n)]
            channels = [reader.readSignal(i) for i in range(n)]
    except Exception as exc:  # noqa: BLE001 - pyedflib parses untrusted files; any failure there is a bad file
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecordError(f"cannot read EDF file {path}: {detail}") from exc
    if n == 0:
        raise RecordError(f"EDF file {path} has no signal channels")
    if np.any(rates != rates[0]):
        listed = ", ".join(f"{label}: {rate:g} Hz" for label, rate in zip(labels, rates, strict=True))
        raise RecordError(f"EDF file {path} mixes sampling rates ({listed}); only one rate is supported")
    if not np.isfinite(rates[0]) or rates[0] <= 0:
        raise RecordError(f"EDF file {path}: sampling rate {rates[0]:g} Hz is not positive")
    return from_channels(np.column_stack(channels), float(rates[0]), labels, units, path)
