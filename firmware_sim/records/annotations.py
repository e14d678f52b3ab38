"""WFDB annotations: beat symbols and rhythm changes, read from and written beside a record.

A beat annotation is a sample index and an MIT-BIH beat symbol (``N``, ``V``, ``A`` …); a
rhythm change is the symbol ``+`` with an aux note such as ``(AFIB`` at the sample where the
rhythm starts (the PhysioNet convention). :func:`write_annotations` writes both into one
annotation file (``.atr`` by default) with :func:`wfdb.wrann`; :func:`read_annotations` reads
any annotator of a record (``atr``, ``qrs``, ``ecg`` …) into :class:`Annotations`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb

from firmware_sim.records.errors import RecordError

RHYTHM_AUX: dict[str, str] = {
    "sinus": "(N", "sinus_brady": "(SBR", "sinus_tachy": "(ST", "afib": "(AFIB", "aflutter": "(AFL",
    "pac": "(N", "pvc": "(N", "pvc_bigeminy": "(B", "pvc_trigeminy": "(T", "vt": "(VT", "vf": "(VFL",
    "svt": "(SVTA", "av_block_1": "(BI", "wenckebach": "(BII", "lbbb": "(N", "rbbb": "(N",
    "stemi_anterior": "(N", "stemi_inferior": "(N", "stemi_lateral": "(N", "st_depression": "(N",
    "t_inversion": "(N", "long_qt": "(N", "pause": "(N", "asystole": "(ASYS",
}
"""Simulator rhythm name -> MIT-BIH rhythm aux note (the rhythm's label; morphology-only rhythms are ``(N``)."""

RHYTHM_SYMBOL = "+"
"""The WFDB annotation symbol of a rhythm change."""

_NON_BEAT = frozenset("+~|!x[]\"=^()pt*uTs`'@D")  # rhythm, noise, comments, waves: not beats
_ANNOTATORS = ("atr", "qrs", "ecg", "ari", "atrx", "qrsc")


@dataclass(frozen=True, eq=False)
class Annotations:
    """Annotations of one record: parallel arrays, in sample order.

    ``samples``: sample index at the record's rate; ``symbols``: the WFDB symbol (``N``, ``V``,
    ``+`` …); ``aux_notes``: the aux note (``"(AFIB"`` on rhythm changes, ``""`` mostly);
    ``extension``: the annotator read (``atr``).
    """

    samples: np.ndarray
    symbols: tuple[str, ...]
    aux_notes: tuple[str, ...]
    fs: float
    extension: str

    def beats(self) -> list[tuple[int, str]]:
        """(sample, symbol) of every beat annotation."""
        return [(int(s), sym) for s, sym in zip(self.samples, self.symbols, strict=True) if sym not in _NON_BEAT]

    def rhythm_changes(self) -> list[tuple[int, str]]:
        """(sample, aux note) of every rhythm change (``+`` with a ``(…`` note)."""
        return [
            (int(s), aux.strip("\x00 ")) for s, sym, aux in zip(self.samples, self.symbols, self.aux_notes, strict=True)
            if sym == RHYTHM_SYMBOL and aux.strip("\x00 ").startswith("(")
        ]


def annotation_files(record: str | os.PathLike[str]) -> list[str]:
    """The annotators present beside a WFDB record (``record`` without extension), most usual first."""
    base = Path(record)
    found = [ext for ext in _ANNOTATORS if base.with_name(f"{base.name}.{ext}").is_file()]
    return found


def read_annotations(record: str | os.PathLike[str], extension: str | None = None) -> Annotations | None:
    """The annotations of the WFDB record at ``record`` (path without extension, or its ``.hea``).

    ``extension``: the annotator (``atr``, ``qrs`` …); ``None`` takes the first present of the usual
    ones, and returns ``None`` when the record has none. Raises :class:`RecordError` when a named
    annotator is missing or cannot be read.
    """
    base = Path(record)
    if base.suffix.lower() in {".hea", ".dat", ".mat"}:
        base = base.with_suffix("")
    if extension is None:
        present = annotation_files(base)
        if not present:
            return None
        extension = present[0]
    try:
        ann = wfdb.rdann(str(base), extension)
    except (OSError, ValueError, IndexError) as exc:
        raise RecordError(f"cannot read the {extension!r} annotations of {base}: {exc}") from exc
    n = len(ann.sample)
    aux = tuple(str(a or "") for a in (ann.aux_note or [""] * n))
    return Annotations(
        samples=np.asarray(ann.sample, dtype=np.int64),
        symbols=tuple(str(s) for s in ann.symbol),
        aux_notes=aux,
        fs=float(ann.fs) if ann.fs else float("nan"),
        extension=extension,
    )


def write_annotations(
    record: str | os.PathLike[str],
    fs: float,
    beats: Sequence[tuple[int, str]],
    rhythm_changes: Sequence[tuple[int, str]] = (),
    *,
    extension: str = "atr",
) -> Path:
    """Write beat symbols and rhythm changes beside the record ``record`` (path without extension).

    ``beats``: (sample, MIT-BIH symbol); ``rhythm_changes``: (sample, aux note such as ``"(AFIB"``),
    written as ``+`` annotations. A rhythm change and a beat at the same sample are both kept (the
    change first). Returns the annotation file's path.
    """
    base = Path(record)
    if base.suffix.lower() in {".hea", ".dat"}:
        base = base.with_suffix("")
    rows = [(int(s), 0, RHYTHM_SYMBOL, aux) for s, aux in rhythm_changes]
    rows += [(int(s), 1, sym, "") for s, sym in beats]
    rows.sort(key=lambda r: (r[0], r[1]))
    if not rows:
        raise RecordError(f"no annotations to write for {base}")
    try:
        wfdb.wrann(
            base.name, extension,
            sample=np.array([r[0] for r in rows], dtype=np.int64),
            symbol=[r[2] for r in rows],
            aux_note=[r[3] for r in rows],
            fs=float(fs),
            write_dir=str(base.parent),
        )
    except (ValueError, TypeError) as exc:
        raise RecordError(f"cannot write annotations for {base}: {exc}") from exc
    return base.with_name(f"{base.name}.{extension}")


def rhythm_aux(rhythm: str) -> str:
    """The MIT-BIH rhythm aux note (``"(AFIB"``) of a simulator rhythm name (``"afib"``); ``(N`` if unknown."""
    return RHYTHM_AUX.get(rhythm, "(N")
