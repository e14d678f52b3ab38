"""MIT-BIH Arrhythmia and Supraventricular Arrhythmia databases (and any WFDB set annotated alike).

Native layout: a folder of ``NNN.hea`` / ``NNN.dat`` / ``NNN.atr``. Beat symbols and
their sample indices come from the ``.atr``; rhythm intervals from its aux notes
(``"(N"``, ``"(AFIB"``, ``"(T"`` ...), each lasting until the next rhythm note; noise
stretches from ``~`` annotations that mark every signal noisy. Age and sex come
from the header's first patient comment (``"# 69 M 1085 1629 x1"``).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from firmware_sim.records import read_record
from models.data.records import (
    DatasetError,
    LabeledRecord,
    OnError,
    RecordDataset,
    annotated_labels,
    find_headers,
    header_comments,
    mitbih_age_sex,
    read_annotations,
    unmapped_notes,
)


class MitBihDataset(RecordDataset):
    """Records of an MIT-BIH-style WFDB folder with beat and rhythm annotations.

    Args:
        root: the database folder (e.g. a local copy of ``mitdb/1.0.0``).
        annotator: annotation file extension (``"atr"`` is the reference).
        require_annotations: leave out records with no annotation file (they carry no
            labels); each is listed in :attr:`report` ``.skipped``. With ``False`` they are
            yielded with ``beats=None`` and empty labels.
        records: only these record ids (e.g. ``["100", "208"]``).
        on_error: ``"skip"`` (report and go on) or ``"raise"`` for an unreadable record.
    """

    name = "mitbih"
    layout_hint = "an MIT-BIH folder (NNN.hea, NNN.dat, NNN.atr)"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        annotator: str = "atr",
        require_annotations: bool = True,
        records: list[str] | None = None,
        on_error: OnError = "skip",
    ) -> None:
        super().__init__(root, on_error=on_error)
        self.annotator = annotator
        self.require_annotations = require_annotations
        if not self._headers:
            raise DatasetError(f"no WFDB headers (.hea) under {self.root} — is this {self.layout_hint}?")
        if require_annotations and not any(self._annotation_path(h).is_file() for h in self._headers.values()):
            raise DatasetError(
                f"no .{annotator} annotation files beside the headers under {self.root} — is this "
                f"{self.layout_hint}? (require_annotations=False reads the signals without labels)"
            )
        if records is not None:
            missing = [r for r in records if r not in self._headers]
            if missing:
                raise DatasetError(f"no record {', '.join(missing)} under {self.root}")
            self._wanted: list[str] | None = list(records)
        else:
            self._wanted = None

    @cached_property
    def _headers(self) -> dict[str, Path]:
        return find_headers(self.root)

    def _annotation_path(self, header: Path) -> Path:
        return header.with_suffix(f".{self.annotator}")

    def ids(self) -> list[str]:
        """Record ids (file stems); without ``require_annotations=False``, only annotated ones."""
        out = []
        for record_id in self._wanted if self._wanted is not None else self._headers:
            header = self._headers[record_id]
            if self.require_annotations and not self._annotation_path(header).is_file():
                self.report.skipped[record_id] = f"no .{self.annotator} annotation file"
                continue
            out.append(record_id)
        return out

    def _patient(self, comments: list[str]) -> tuple[float | None, str | None, dict[str, object]]:
        """Age, sex and extra metadata from the header comments."""
        age, sex = mitbih_age_sex(comments)
        return age, sex, {}

    def _load(self, record_id: str) -> LabeledRecord:
        header = self._headers[record_id]
        recording = read_record(header)
        comments = header_comments(header)
        age, sex, extra = self._patient(comments)
        metadata: dict[str, object] = {"comments": tuple(comments), **extra}
        if not self._annotation_path(header).is_file():
            return LabeledRecord(record_id, self.name, recording, frozenset(), age=age, sex=sex,
                                 metadata={**metadata, "annotated": False})
        annotations = read_annotations(recording, self.annotator, style="intervals")
        metadata.update(annotated=True, beat_counts=dict(annotations.beats.counts()))
        return LabeledRecord(
            record_id,
            self.name,
            recording,
            annotated_labels(annotations),
            codes=annotations.notes,
            unmapped=unmapped_notes(annotations.notes),
            age=age,
            sex=sex,
            beats=annotations.beats,
            rhythms=annotations.rhythms,
            metadata=metadata,
        )
