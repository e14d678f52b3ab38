"""Find record files and read any of them by path, whatever the format."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from firmware_sim.records.csv_io import read_csv
from firmware_sim.records.edf_io import read_edf
from firmware_sim.records.errors import RecordError
from firmware_sim.records.recording import Recording, channel_name
from firmware_sim.records.wfdb_io import read_wfdb
from protocol.leads import STANDARD_LEADS

_WFDB_SUFFIXES = {".hea", ".dat", ".mat"}
_EDF_SUFFIXES = {".edf", ".bdf"}


def _wfdb_header(path: Path) -> Path:
    """Where the ``.hea`` of a WFDB record given as its header, signal file or bare record path would be."""
    return path.with_suffix(".hea") if path.suffix.lower() in _WFDB_SUFFIXES else Path(f"{path}.hea")


def read_record(
    path: str | os.PathLike[str], *, fs: float | None = None, units: str | None = None
) -> Recording:
    """Read a recorded ECG, choosing the reader from the file.

    Formats:
        * WFDB: the ``.hea`` header, a ``.dat``/``.mat`` signal file beside it, or
          the record path without extension (``mitdb/100``); CinC 2021 ``.mat``
          records included.
        * EDF, EDF+ and BDF (``.edf``, ``.bdf``).
        * CSV (``.csv``), see :mod:`firmware_sim.records.csv_io`.

    Args:
        path: the record.
        fs: sampling rate in Hz for CSV files that state none. For WFDB and EDF
            it is checked against the header (a mismatch raises).
        units: unit of every CSV channel (default ``mV``); WFDB and EDF take their
            units from the header, so passing it for them raises.

    Returns:
        The :class:`Recording`, in mV for voltage channels, NaN where samples are invalid.

    Raises:
        RecordError: no such record, an unsupported or malformed file, or a
            rate/unit argument that contradicts the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path, fs=fs, units=units)
    if units is not None:
        raise RecordError(f"{path}: units= is for CSV files; WFDB and EDF records state their units")
    if suffix in _EDF_SUFFIXES:
        recording = read_edf(path)
    else:
        header = _wfdb_header(path)
        if not header.is_file():
            if path.is_file():
                raise RecordError(f"{path} is not a WFDB, EDF or CSV record")
            raise RecordError(f"no record at {path}: {header} does not exist")
        recording = read_wfdb(header)
    if fs is not None and abs(recording.fs - fs) > 1e-9 * fs:
        raise RecordError(f"record {recording.name!r} is sampled at {recording.fs:g} Hz, not {fs:g} Hz")
    return recording


def _is_csv_record(path: Path) -> bool:
    """Whether a CSV file's first non-comment row names at least one standard lead."""
    try:
        with path.open(encoding="utf-8") as text:
            header = next((line for line in text if line.strip() and not line.lstrip().startswith("#")), "")
    except (OSError, UnicodeDecodeError):
        return False
    return any(channel_name(cell) in STANDARD_LEADS for cell in header.split(","))


def iter_records(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Every record under ``folder`` (recursively), sorted by path.

    Yields the ``.hea`` of each WFDB record, each ``.edf``/``.bdf``, and each
    ``.csv`` whose header row names at least one standard lead (so label tables
    such as CinC 2021's ``dx_mapping_scored.csv`` are skipped). Every path it
    yields can be passed to :func:`read_record`.
    Raises :class:`RecordError` when ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RecordError(f"{folder} is not a folder")
    for path in sorted(folder.rglob("*")):
        suffix = path.suffix.lower()
        if not path.is_file():
            continue
        if suffix == ".hea" or suffix in _EDF_SUFFIXES or (suffix == ".csv" and _is_csv_record(path)):
            yield path
