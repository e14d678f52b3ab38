"""Read WFDB records (``.hea`` + ``.dat``/``.mat``, CinC 2021 ``.mat`` included) with wfdb."""

from __future__ import annotations

from pathlib import Path

import wfdb

from firmware_sim.records.errors import RecordError
from firmware_sim.records.recording import Recording, from_channels


def read_wfdb(header: Path) -> Recording:
    """Read the WFDB record whose header is ``header`` (a ``.hea`` path).

    Samples are physical values converted to mV; WFDB invalid samples are NaN.
    Raises :class:`RecordError` when the header or its signal files are missing or malformed.
    """
    header = Path(header)
    try:
        record = wfdb.rdrecord(str(header.with_suffix("")))
    except (OSError, ValueError, IndexError) as exc:
        raise RecordError(f"cannot read WFDB record {header}: {exc}") from exc
    if record.p_signal is None or record.n_sig == 0:
        raise RecordError(f"WFDB record {header} has no signals")
    return from_channels(record.p_signal, record.fs, record.sig_name, record.units, header)
