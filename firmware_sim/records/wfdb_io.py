"""Read WFDB records (``.hea`` + ``.dat``/``.mat``, CinC 2021 ``.mat`` included) with wfdb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import wfdb

from firmware_sim.records.errors import RecordError
from firmware_sim.records.recording import Recording, from_channels
from firmware_sim.records.wfdb_header import check_header, check_sample_count


def read_wfdb(header: Path) -> Recording:
    """Read the WFDB record whose header is ``header`` (a ``.hea`` path).

    Samples are physical values converted to mV; WFDB invalid samples are NaN.
    The header is checked first (:func:`~firmware_sim.records.wfdb_header.check_header`):
    a sampling rate that is not positive, an unknown signal format or an ADC gain of 0
    is refused, and a header that counts fewer samples than its file holds is obeyed
    with a :class:`~firmware_sim.records.errors.RecordWarning`.
    Raises :class:`RecordError` when the header or its signal files are missing or malformed.
    """
    header = Path(header)
    facts = check_header(header)
    check_sample_count(header, facts)
    try:
        with np.errstate(all="ignore"):  # an absurd gain overflows to inf: from_channels counts those as gaps
            record = wfdb.rdrecord(str(header.with_suffix("")))
    except Exception as exc:  # noqa: BLE001 - wfdb parses untrusted files; any failure there is a bad record
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecordError(f"cannot read WFDB record {header}: {detail}") from exc
    if record.p_signal is None or record.n_sig == 0:
        raise RecordError(f"WFDB record {header} has no signals")
    names = [name or f"signal {i + 1}" for i, name in enumerate(record.sig_name or [None] * record.n_sig)]
    units = [unit or "mV" for unit in (record.units or [None] * record.n_sig)]  # WFDB: mV when unstated
    return from_channels(record.p_signal, record.fs, names, units, header)
