"""Recorded ECG in, one :class:`Recording` out: read WFDB, EDF and CSV files, pick leads,
fill gaps and resample, as plain functions over one immutable record class; read and
write WFDB beat and rhythm annotations.

A file the readers cannot take as it is raises :class:`RecordError` (one line: an unknown
WFDB format, a rate that is not positive, an uncalibrated gain, a truncated file, a CSV cell
that is not a number); a file read with a change says so with a :class:`RecordWarning`
(infinite samples made gaps, a header counting fewer samples than its file holds).

>>> rec = read_record("mitdb/100")                  # doctest: +SKIP
>>> rec = select_leads(rec, ("II", "V5"))           # doctest: +SKIP
>>> rec, n_filled = fill_gaps(rec)                  # doctest: +SKIP
>>> rec = resample(rec, 250.0)                      # doctest: +SKIP
"""

from firmware_sim.records.annotations import (
    Annotations,
    read_annotations,
    rhythm_aux,
    write_annotations,
)
from firmware_sim.records.errors import MissingLeadError, RecordError, RecordWarning, ReplayError
from firmware_sim.records.gaps import fill_gaps
from firmware_sim.records.reader import iter_records, read_record
from firmware_sim.records.recording import Recording, channel_name
from firmware_sim.records.resampling import rational_ratio, resample
from firmware_sim.records.selection import select_leads

__all__ = [
    "Annotations",
    "MissingLeadError",
    "RecordError",
    "RecordWarning",
    "Recording",
    "ReplayError",
    "channel_name",
    "fill_gaps",
    "iter_records",
    "rational_ratio",
    "read_annotations",
    "read_record",
    "resample",
    "rhythm_aux",
    "select_leads",
    "write_annotations",
]
