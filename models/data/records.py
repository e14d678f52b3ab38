"""What every database loader yields, the base class they share, and WFDB annotation reading.

A loader is a :class:`RecordDataset`: it lists its record ids cheaply (from a
metadata table or file names, without reading signals), reads one record on
demand with :meth:`RecordDataset.read`, and iterates over all of them. Signals are
always read by :func:`firmware_sim.records.read_record`, so every loader gives the
same :class:`~firmware_sim.records.Recording` (mV, canonical lead names, NaN for
invalid samples) as replay and evaluation do.

Nothing is lost silently: records that cannot be read are skipped (or raised, with
``on_error="raise"``) and listed with the reason in the loader's :class:`LoadReport`,
together with every source code the label vocabulary did not map.
"""

from __future__ import annotations

import logging
import os
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import wfdb

from firmware_sim.records import RecordError, Recording, ReplayError
from models.data.labels import (
    MITBIH_RHYTHM_TO_LABELS,
    clean_aux,
    labels_from_beats,
    labels_from_mitbih_rhythm,
    multi_hot,
)

log = logging.getLogger(__name__)

OnError = Literal["skip", "raise"]

BEAT_SYMBOLS: frozenset[str] = frozenset("NLRBAaJSVrFejnE/fQ?")
"""WFDB annotation symbols that mark a beat (QRS); the others (``+ ~ | " [ ] !`` ...) are events."""

AF_EPISODE_STARTS: frozenset[str] = frozenset({"(AFIB", "(AFL"})
"""Aux notes that open an AF episode in CPSC 2021 (its scoring code counts flutter as AF)."""


class DatasetError(ValueError):
    """A dataset path is missing or not in the layout its loader expects."""


@dataclass(frozen=True, eq=False)
class BeatAnnotations:
    """Beat annotations of a record: sample index and WFDB symbol of each beat, in time order."""

    samples: np.ndarray
    symbols: tuple[str, ...]

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.int64).reshape(-1)
        if samples.shape[0] != len(self.symbols):
            raise ValueError(f"{samples.shape[0]} beat samples but {len(self.symbols)} symbols")
        samples.flags.writeable = False
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "symbols", tuple(self.symbols))

    def __len__(self) -> int:
        return len(self.symbols)

    def counts(self) -> Counter[str]:
        """How many beats of each symbol."""
        return Counter(self.symbols)

    def between(self, start: int, stop: int) -> tuple[str, ...]:
        """Symbols of the beats with ``start <= sample < stop``."""
        lo, hi = np.searchsorted(self.samples, [start, stop], side="left")
        return self.symbols[int(lo) : int(hi)]


@dataclass(frozen=True)
class RhythmInterval:
    """A stretch of a record with one rhythm (or noise), from a rhythm annotation.

    ``start`` and ``stop`` are sample indices (``stop`` exclusive) at the record's rate ``fs``.
    """

    start: int
    stop: int
    fs: float
    code: str
    """The source annotation, e.g. ``"(AFIB"``, ``"(T"``, or ``"~"`` for a noise stretch."""
    labels: frozenset[str]

    @property
    def start_s(self) -> float:
        """Start in seconds from the beginning of the record."""
        return self.start / self.fs

    @property
    def stop_s(self) -> float:
        """End in seconds (exclusive)."""
        return self.stop / self.fs

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return (self.stop - self.start) / self.fs


@dataclass(frozen=True, eq=False)
class LabeledRecord:
    """One record of a database, its signals and its labels in the ecgstream vocabulary.

    Attributes:
        record_id: the id within its dataset (PTB-XL ``ecg_id``, ``"E07500"``, ``"208"``).
        dataset: loader name (``"ptbxl"``, ``"cinc"``, ``"mitbih"``, ``"incart"``, ``"cpsc2021"``).
        recording: the signals, as :func:`firmware_sim.records.read_record` returns them.
        labels: class keys (see :data:`models.data.labels.CLASSES`) for the whole record;
            for long annotated records, those found anywhere in it (see :meth:`labels_between`).
        codes: the raw source codes (SNOMED codes, SCP statements, rhythm notes, record class).
        unmapped: the raw codes that map to no class.
        age: years, or None when unknown.
        sex: ``"M"``, ``"F"`` or None.
        fold: the dataset's own split fold where it has one (PTB-XL ``strat_fold`` 1–10).
        beats: beat annotations with sample indices, where the dataset has them.
        rhythms: rhythm / noise intervals with sample indices, where the dataset has them.
        metadata: anything else the source states (PTB-XL report, CPSC 2021 record class ...).
    """

    record_id: str
    dataset: str
    recording: Recording
    labels: frozenset[str]
    codes: tuple[str, ...] = ()
    unmapped: tuple[str, ...] = ()
    age: float | None = None
    sex: str | None = None
    fold: int | None = None
    beats: BeatAnnotations | None = None
    rhythms: tuple[RhythmInterval, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> np.ndarray:
        """The record's labels as a multi-hot vector over :data:`models.data.labels.CLASSES`."""
        return multi_hot(self.labels)

    def labels_between(self, start: int, stop: int) -> frozenset[str]:
        """Labels of the samples ``start:stop``: beats inside it and rhythm intervals overlapping it.

        Records without beat or rhythm annotations (PTB-XL, CinC: 10 s, one label set)
        return :attr:`labels`.
        """
        if self.beats is None and not self.rhythms:
            return self.labels
        found: set[str] = set()
        if self.beats is not None:
            found |= labels_from_beats(self.beats.between(start, stop))
        for interval in self.rhythms:
            if interval.start < stop and interval.stop > start:
                found |= interval.labels
        return frozenset(found)


@dataclass
class LoadReport:
    """What a loader read, skipped, and could not map, so nothing is lost silently."""

    dataset: str
    read: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    """Record id → why it was skipped."""
    unmapped: Counter[str] = field(default_factory=Counter)
    """Source code → how many times it was met without mapping to a class."""
    label_counts: Counter[str] = field(default_factory=Counter)
    """Class key → records carrying it."""

    def summary(self) -> str:
        """One paragraph for logs and command output."""
        lines = [f"{self.dataset}: {self.read} records read, {len(self.skipped)} skipped"]
        if self.label_counts:
            lines.append("labels: " + ", ".join(f"{k} {n}" for k, n in sorted(self.label_counts.items())))
        if self.unmapped:
            top = ", ".join(f"{code} ×{n}" for code, n in self.unmapped.most_common(10))
            more = len(self.unmapped) - min(10, len(self.unmapped))
            lines.append(f"unmapped codes: {top}" + (f" (+{more} more)" if more else ""))
        for record_id, reason in list(self.skipped.items())[:10]:
            lines.append(f"skipped {record_id}: {reason}")
        return "\n".join(lines)


class RecordDataset(ABC):
    """Base of every loader: ids without reading signals, one record on demand, iteration.

    Subclasses set :attr:`name`, check the layout in ``__init__`` (raising
    :class:`DatasetError` with a hint), and implement :meth:`ids` and :meth:`_load`.
    """

    name: ClassVar[str] = "dataset"

    def __init__(self, root: str | os.PathLike[str], *, on_error: OnError = "skip") -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"{self.root} is not a folder (expected a local copy of {self.name})")
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        self.on_error: OnError = on_error
        self.report = LoadReport(self.name)

    @abstractmethod
    def ids(self) -> list[str]:
        """Record ids in a stable order (after any filters given to the loader)."""

    @abstractmethod
    def _load(self, record_id: str) -> LabeledRecord:
        """Read one record; may raise :class:`RecordError`, ``OSError`` or ``ValueError``."""

    def read(self, record_id: str) -> LabeledRecord:
        """Read one record by id. Raises :class:`RecordError` when it is unknown or cannot be read."""
        try:
            return self._load(record_id)
        except ReplayError:
            raise
        except KeyError as exc:
            raise RecordError(f"no {self.name} record {record_id!r} under {self.root} ({exc})") from exc
        except (OSError, ValueError, IndexError) as exc:
            raise RecordError(f"{self.name} record {record_id!r} in {self.root}: {exc}") from exc

    def __len__(self) -> int:
        return len(self.ids())

    def __iter__(self) -> Iterator[LabeledRecord]:
        """Every record, in :meth:`ids` order; unreadable ones skipped and reported (or raised).

        Each new iteration starts a fresh :attr:`report`.
        """
        self.report = LoadReport(self.name)
        for record_id in self.ids():
            try:
                record = self.read(record_id)
            except RecordError as exc:
                if self.on_error == "raise":
                    raise
                self.report.skipped[record_id] = str(exc)
                log.warning("skipping %s record %s: %s", self.name, record_id, exc)
                continue
            self.report.read += 1
            self.report.unmapped.update(record.unmapped)
            self.report.label_counts.update(record.labels)
            yield record

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"


# --- header comments ---------------------------------------------------------------------------

_SEX = {"m": "M", "male": "M", "f": "F", "female": "F"}


def parse_sex(value: object) -> str | None:
    """``"M"``/``"F"`` from ``Male``, ``F``, ``female`` ...; None for unknown or missing."""
    return _SEX.get(str(value).strip().lower())


def parse_age(value: object) -> float | None:
    """Age in years from ``"78"``, ``"78.0"``; None for ``NaN``, ``Unknown``, ``?``, blank or negative."""
    try:
        age = float(str(value).strip())
    except ValueError:
        return None
    return age if np.isfinite(age) and age >= 0 else None


def header_comments(header: Path) -> list[str]:
    """The comment lines of a WFDB header (without ``#``), read with wfdb."""
    try:
        return [str(c).strip() for c in wfdb.rdheader(str(Path(header).with_suffix(""))).comments]
    except (OSError, ValueError, IndexError) as exc:
        raise RecordError(f"cannot read WFDB header {header}: {exc}") from exc


def comment_fields(comments: list[str]) -> dict[str, str]:
    """``Key: value`` comment lines as a dict (``{"Age": "78", "Dx": "426177001"}``)."""
    out: dict[str, str] = {}
    for line in comments:
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


# --- WFDB annotations ----------------------------------------------------------------------------

_MITBIH_PATIENT = re.compile(r"^\s*(\d+|\?)\s+([MF?])\b")


def mitbih_age_sex(comments: list[str]) -> tuple[float | None, str | None]:
    """Age and sex from an MIT-BIH style comment line (``"69 M 1085 1629 x1"``), if any."""
    for line in comments:
        match = _MITBIH_PATIENT.match(line)
        if match:
            return parse_age(match.group(1)), parse_sex(match.group(2))
    return None, None


def _all_signals_noisy(subtype: int, n_signals: int) -> bool:
    """Whether a ``~`` annotation's subtype marks every signal noisy or unreadable.

    WFDB: bits 0–3 mark signals 0–3 noisy, bits 4–7 unreadable; -1 means all unreadable.
    """
    if subtype == -1:
        return True
    if subtype <= 0 or n_signals > 4:
        return False
    flagged = (subtype | (subtype >> 4)) & 0x0F
    every = (1 << n_signals) - 1
    return flagged & every == every


@dataclass(frozen=True)
class Annotations:
    """Beats, rhythm intervals and the raw rhythm notes read from one annotation file."""

    beats: BeatAnnotations
    rhythms: tuple[RhythmInterval, ...]
    notes: tuple[str, ...]
    """Distinct rhythm notes met, in order of first appearance."""


def read_annotations(
    recording: Recording,
    extension: str = "atr",
    *,
    style: Literal["intervals", "episodes"] = "intervals",
) -> Annotations:
    """Read ``<record>.<extension>`` beside ``recording``'s header.

    Styles of rhythm annotation:
        * ``"intervals"`` (MIT-BIH, SVDB, INCART): each rhythm aux note (``"(AFIB"``)
          starts an interval that lasts until the next rhythm note or the record's end.
          ``~`` annotations marking every signal noisy or unreadable start a ``NOISE``
          interval that lasts until the next ``~``.
        * ``"episodes"`` (CPSC 2021): ``"(AFIB"``/``"(AFL"`` opens an AF episode and the
          next ``"(N"`` closes it *on* its sample (the last AF beat), so the interval's
          ``stop`` is that sample + 1, clipped to the record.

    Raises :class:`RecordError` when the file is missing or malformed.
    """
    if recording.source_path is None:
        raise RecordError(f"record {recording.name!r} was not read from a file, so it has no annotations")
    base = Path(recording.source_path).with_suffix("")
    path = base.with_name(f"{base.name}.{extension}")
    if not path.is_file():
        raise RecordError(f"record {recording.name!r} has no annotation file {path}")
    try:
        ann = wfdb.rdann(str(base), extension)
    except (OSError, ValueError, IndexError, EOFError) as exc:
        raise RecordError(f"cannot read annotations {path}: {exc}") from exc
    n, fs, n_sig = recording.n_samples, recording.fs, recording.signals.shape[1]
    samples = np.asarray(ann.sample, dtype=np.int64)
    symbols = list(ann.symbol)
    aux = [clean_aux(a) for a in (ann.aux_note or [""] * len(symbols))]
    subtypes = np.asarray(ann.subtype if ann.subtype is not None else np.zeros(len(symbols)), dtype=np.int64)
    order = np.argsort(samples, kind="stable")
    is_beat = [symbols[i] in BEAT_SYMBOLS for i in order]
    beats = BeatAnnotations(samples[order][is_beat], tuple(symbols[i] for i, b in zip(order, is_beat, strict=True) if b))

    notes = [(int(samples[i]), aux[i]) for i in order if aux[i].startswith("(")]
    rhythms: list[RhythmInterval] = []
    if style == "episodes":
        opened: tuple[int, str] | None = None
        for sample, note in notes:
            if note in AF_EPISODE_STARTS and opened is None:
                opened = (sample, note)
            elif note == "(N" and opened is not None:
                rhythms.append(RhythmInterval(opened[0], min(sample + 1, n), fs, opened[1], frozenset({"AF"})))
                opened = None
        if opened is not None:  # never closed: AF to the end of the record
            rhythms.append(RhythmInterval(opened[0], n, fs, opened[1], frozenset({"AF"})))
    else:
        for k, (sample, note) in enumerate(notes):
            stop = notes[k + 1][0] if k + 1 < len(notes) else n
            if stop > sample:
                rhythms.append(RhythmInterval(sample, min(stop, n), fs, note, labels_from_mitbih_rhythm(note)))
        noise = [(int(samples[i]), int(subtypes[i])) for i in order if symbols[i] == "~"]
        for k, (sample, subtype) in enumerate(noise):
            stop = noise[k + 1][0] if k + 1 < len(noise) else n
            if _all_signals_noisy(subtype, n_sig) and stop > sample:
                rhythms.append(RhythmInterval(sample, min(stop, n), fs, "~", frozenset({"NOISE"})))
        rhythms.sort(key=lambda r: (r.start, r.stop))
    seen = tuple(dict.fromkeys(note for _, note in notes))
    return Annotations(beats, tuple(rhythms), seen)


def annotated_labels(annotations: Annotations) -> frozenset[str]:
    """Record-level labels: every class a beat or a rhythm interval of the record shows."""
    found = set(labels_from_beats(annotations.beats.symbols))
    for interval in annotations.rhythms:
        found |= interval.labels
    return frozenset(found)


def unmapped_notes(notes: tuple[str, ...]) -> tuple[str, ...]:
    """Rhythm notes that map to no class (known no-class rhythms included)."""
    return tuple(note for note in notes if note not in MITBIH_RHYTHM_TO_LABELS)


def _natural_key(text: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def find_headers(root: Path) -> dict[str, Path]:
    """Every WFDB header under ``root`` (recursively) by record id, in natural order.

    The id is the file stem (``"E07500"``, ``"208"``) when stems are unique, otherwise the
    path relative to ``root`` without suffix (``"g1/E07500"``).
    """
    headers = sorted(Path(root).rglob("*.hea"), key=lambda p: _natural_key(p.relative_to(root).as_posix()))
    stems = [h.stem for h in headers]
    if len(set(stems)) == len(stems):
        return {h.stem: h for h in headers}
    return {h.relative_to(root).with_suffix("").as_posix(): h for h in headers}
