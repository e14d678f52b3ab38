"""CPSC 2021 (4th China Physiological Signal Challenge: paroxysmal AF events), PhysioNet.

Native layout: ``data_<patient>_<n>.hea`` / ``.dat`` / ``.atr`` (two leads, I and II,
200 Hz). The header's comment gives the record class (``non atrial fibrillation``,
``paroxysmal atrial fibrillation``, ``persistent atrial fibrillation``). In the
``.atr``, aux ``"(AFIB"`` (or ``"(AFL"``) marks the first beat of an AF episode and
``"(N"`` its last beat; beat symbols are ``N``, ``A``, ``a``, ``V`` ...

Labels: ``AF`` when the record has an AF episode, plus ``PAC``/``PVC`` from beat
symbols. ``"(N"`` here closes an episode; it does not assert sinus rhythm, so no
``NSR`` is given. Records without an ``.atr`` get ``AF`` from their class only.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from firmware_sim.records import RecordError, read_record
from models.data.labels import labels_from_beats
from models.data.records import (
    DatasetError,
    LabeledRecord,
    OnError,
    RecordDataset,
    find_headers,
    header_comments,
    read_annotations,
)

RECORD_CLASSES: dict[str, str] = {
    "non atrial fibrillation": "non_af",
    "paroxysmal atrial fibrillation": "paroxysmal_af",
    "persistent atrial fibrillation": "persistent_af",
}
"""Header comment → record class."""


def record_class(comments: list[str]) -> str | None:
    """``"non_af"``, ``"paroxysmal_af"`` or ``"persistent_af"`` from the header comments, else None."""
    for line in comments:
        found = RECORD_CLASSES.get(" ".join(line.lower().split()))
        if found:
            return found
    return None


def af_episodes_s(record: LabeledRecord) -> list[tuple[float, float]]:
    """AF episodes of a CPSC 2021 record as ``(start_s, stop_s)`` pairs."""
    return [(r.start_s, r.stop_s) for r in record.rhythms if "AF" in r.labels]


class Cpsc2021Dataset(RecordDataset):
    """CPSC 2021 records with their class and AF episodes.

    Each record's ``metadata`` holds ``record_class`` and ``af_episodes_s`` (a tuple of
    ``(start_s, stop_s)``; ``None`` when the record has no ``.atr``); ``rhythms`` holds the
    episodes as sample intervals.
    """

    name = "cpsc2021"

    def __init__(self, root: str | os.PathLike[str], *, on_error: OnError = "skip") -> None:
        super().__init__(root, on_error=on_error)
        if not self._headers:
            raise DatasetError(f"no WFDB headers (.hea) under {self.root} — is this a CPSC 2021 folder?")
        first = next(iter(self._headers.values()))
        if record_class(header_comments(first)) is None:
            raise DatasetError(
                f"{first} does not state a CPSC 2021 record class (e.g. '# paroxysmal atrial fibrillation') "
                f"— is {self.root} a CPSC 2021 folder?"
            )

    @cached_property
    def _headers(self) -> dict[str, Path]:
        return find_headers(self.root)

    def ids(self) -> list[str]:
        """Record ids (``"data_101_6"`` ...)."""
        return list(self._headers)

    def _load(self, record_id: str) -> LabeledRecord:
        header = self._headers[record_id]
        comments = header_comments(header)
        klass = record_class(comments)
        if klass is None:
            raise RecordError(f"{header} states no CPSC 2021 record class")
        recording = read_record(header)
        metadata: dict[str, object] = {"record_class": klass, "comments": tuple(comments)}
        if not header.with_suffix(".atr").is_file():
            labels = frozenset() if klass == "non_af" else frozenset({"AF"})
            return LabeledRecord(record_id, self.name, recording, labels, codes=(klass,),
                                 metadata={**metadata, "af_episodes_s": None})
        annotations = read_annotations(recording, "atr", style="episodes")
        labels = labels_from_beats(annotations.beats.symbols)
        if annotations.rhythms:
            labels |= {"AF"}
        metadata["af_episodes_s"] = tuple((r.start_s, r.stop_s) for r in annotations.rhythms)
        metadata["beat_counts"] = dict(annotations.beats.counts())
        return LabeledRecord(
            record_id,
            self.name,
            recording,
            labels,
            codes=(klass, *annotations.notes),
            beats=annotations.beats,
            rhythms=annotations.rhythms,
            metadata=metadata,
        )
