"""PhysioNet/CinC Challenge 2020/2021 12-lead records (``.hea`` + ``.mat``, SNOMED CT labels).

Native layout: any tree of folders holding ``<id>.hea`` / ``<id>.mat`` pairs (the
Challenge ships one folder per source: ``cpsc_2018``, ``georgia``, ``ptb-xl``,
``chapman_shaoxing``, ``ningbo`` ...). Each header ends with comments::

    # Age: 78
    # Sex: Male
    # Dx: 67741000119109,426177001
    # Rx: Unknown

Signals are read by :func:`firmware_sim.records.read_record` (wfdb reads the ``.mat``),
the comments by wfdb's header reader; ``Dx`` codes are mapped with
:func:`models.data.labels.labels_from_snomed`.
"""

from __future__ import annotations

import os
from collections import Counter
from functools import cached_property
from pathlib import Path

from firmware_sim.records import RecordError, read_record
from models.data.labels import labels_from_snomed
from models.data.records import (
    DatasetError,
    LabeledRecord,
    OnError,
    RecordDataset,
    comment_fields,
    find_headers,
    header_comments,
    parse_age,
    parse_sex,
)


class CincDataset(RecordDataset):
    """Challenge 2020/2021 records under ``root`` (searched recursively).

    Args:
        root: a Challenge training folder, or a parent of several.
        on_error: ``"skip"`` (report and go on) or ``"raise"`` for an unreadable record
            or a header without ``# Dx:``.
    """

    name = "cinc"

    def __init__(self, root: str | os.PathLike[str], *, on_error: OnError = "skip") -> None:
        super().__init__(root, on_error=on_error)
        if not self._headers:
            raise DatasetError(f"no WFDB headers (.hea) under {self.root} — is this a CinC 2020/2021 folder?")
        first = next(iter(self._headers.values()))
        if "Dx" not in comment_fields(header_comments(first)):
            raise DatasetError(
                f"{first} has no '# Dx:' comment — is {self.root} a CinC 2020/2021 folder "
                "(headers with '# Age:', '# Sex:', '# Dx:' lines)?"
            )

    @cached_property
    def _headers(self) -> dict[str, Path]:
        return find_headers(self.root)

    def ids(self) -> list[str]:
        """Record ids (``"E07500"``; relative paths where stems repeat)."""
        return list(self._headers)

    def _load(self, record_id: str) -> LabeledRecord:
        header = self._headers[record_id]
        fields = comment_fields(header_comments(header))
        if "Dx" not in fields:
            raise RecordError(f"{header} has no '# Dx:' comment")
        codes = tuple(c.strip() for c in fields["Dx"].split(",") if c.strip())
        unmapped: Counter[str] = Counter()
        labels = labels_from_snomed(codes, unmapped=unmapped)
        recording = read_record(header)
        metadata = {k: v for k, v in fields.items() if k not in ("Age", "Sex", "Dx")}
        metadata["source_folder"] = header.parent.relative_to(self.root).as_posix()
        return LabeledRecord(
            record_id,
            self.name,
            recording,
            labels,
            codes=codes,
            unmapped=tuple(unmapped),
            age=parse_age(fields.get("Age", "")),
            sex=parse_sex(fields.get("Sex", "")),
            metadata=metadata,
        )
