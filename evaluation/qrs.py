"""Beat-by-beat evaluation of the streaming QRS detector against reference annotations.

Every annotated record under a folder is streamed through the edge's filter chain and
:class:`edge.signal.qrs.QrsDetector` in packets (36 samples by default, as from the wearable), and
its beats are matched to the reference beats EC57-style: one-to-one, within 150 ms
(:func:`wfdb.processing.compare_annotations`). Two layouts are read:

* WFDB records with an ``.atr`` file (MIT-BIH, SVDB, …), read by :func:`firmware_sim.records.read_record`
  (mV, invalid samples filled by :func:`firmware_sim.records.fill_gaps`): the first signal (MLII in
  MIT-BIH), and only beat annotations as references (:func:`models.data.records.read_annotations`:
  :data:`BEAT_SYMBOLS`; rhythm, noise and comment marks are not beats);
* CPSC 2019 pairs ``data/data_XXXXX.mat`` (key ``ecg``, 500 Hz, mV) and ``ref/R_XXXXX.mat`` (key
  ``R_peak``).

The whole record is scored, including the detector's learning period at the start (EC57 allows
skipping the first 5 minutes; ``skip_s`` does that, default 0). Figures are gross: sensitivity
``Se = TP / (TP + FN)`` and positive predictivity ``+P = TP / (TP + FP)`` over all beats.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import loadmat
from wfdb.processing import compare_annotations

from edge.signal.filters import EcgFilter, FilterSpec
from edge.signal.qrs import QrsConfig, QrsDetector
from evaluation.progress import NoProgress, Progress
from firmware_sim.records import RecordError, fill_gaps, read_record, select_leads
from models.data.records import BEAT_SYMBOLS, read_annotations

__all__ = ["BEAT_SYMBOLS", "MATCH_WINDOW_S", "Record", "RecordScore", "detect", "evaluate", "find_records",
           "score"]

MATCH_WINDOW_S = 0.150
"""A detection matches a reference beat within this many seconds (EC57)."""
CPSC2019_FS = 500.0
EVAL_FILTER = FilterSpec(baseline_hz=0.5, notch_hz=None, lowpass_hz=40.0)
"""The chain records go through: the mains frequency of a record is not known in general, and the
detector's own 5–15 Hz band rejects mains anyway."""


@dataclass(frozen=True)
class Record:
    """One lead of one record (mV at ``fs`` Hz) with its reference beat samples."""

    name: str
    signal: np.ndarray
    fs: float
    reference: np.ndarray


@dataclass(frozen=True)
class RecordScore:
    """Matched (``tp``), extra (``fp``) and missed (``fn``) beats of one record."""

    tp: int
    fp: int
    fn: int

    @property
    def se(self) -> float:
        """Sensitivity (fraction; NaN without reference beats)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def ppv(self) -> float:
        """Positive predictivity (fraction; NaN without detections)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready form."""
        return {"se": self.se, "ppv": self.ppv, "tp": self.tp, "fp": self.fp, "fn": self.fn}


def _record_files(root: Path) -> list[tuple[Path, Path | None]]:
    """``(.atr, None)`` of each WFDB record with beat annotations, then ``(data, ref)`` of each CPSC 2019 pair."""
    found: list[tuple[Path, Path | None]] = [(atr, None) for atr in sorted(root.rglob("*.atr"))
                                             if atr.with_suffix(".hea").is_file()]
    for data in sorted(root.rglob("data_*.mat")):
        ref = data.parent.parent / "ref" / data.name.replace("data_", "R_")
        if ref.is_file():
            found.append((data, ref))
    return found


def _read(root: Path, path: Path, ref: Path | None) -> Record:
    return _wfdb_record(path, root) if ref is None else _cpsc2019_record(path, ref, root)


def find_records(root: str | os.PathLike[str]) -> Iterator[Record]:
    """Every annotated record under ``root`` (recursively), in path order (WFDB first, then CPSC 2019)."""
    root = Path(root)
    for path, ref in _record_files(root):
        yield _read(root, path, ref)


def _wfdb_record(atr: Path, root: Path) -> Record:
    recording = read_record(atr.with_suffix(".hea"))
    beats = read_annotations(recording, "atr").beats.samples
    try:
        filled, _ = fill_gaps(select_leads(recording, recording.lead_names[:1]))
        signal = np.array(filled.signals[:, 0])
    except RecordError:  # no valid sample at all: a flat lead, every beat missed
        signal = np.zeros(recording.n_samples)
    return Record(str(atr.relative_to(root).with_suffix("")), signal, recording.fs, beats)


def _cpsc2019_record(data: Path, ref: Path, root: Path) -> Record:
    signal = np.asarray(loadmat(data)["ecg"], dtype=np.float64).reshape(-1)
    beats = np.asarray(loadmat(ref)["R_peak"], dtype=np.int64).reshape(-1)
    return Record(str(data.relative_to(root).with_suffix("")), signal, CPSC2019_FS, beats)


def detect(signal: np.ndarray, fs: float, *, packet: int = 36, config: QrsConfig | None = None,
           on_stream: Callable[[float], None] | None = None) -> np.ndarray:
    """R-peak samples of one lead (mV at ``fs`` Hz) streamed in packets of ``packet`` samples.

    ``on_stream`` hears the stream seconds reached about every minute of signal (for progress displays).
    """
    if packet < 1:
        raise ValueError(f"packet must be ≥ 1 sample, got {packet}")
    filt = EcgFilter(fs, 1, EVAL_FILTER)
    detector = QrsDetector(fs, config)
    every = max(1, int(60 * fs) // packet)
    found = []
    for k, s in enumerate(range(0, signal.size, packet)):
        found.append(detector.process(filt.process(signal[s : s + packet])).beats)
        if on_stream is not None and k % every == 0:
            on_stream(s / fs)
    found.append(detector.finish().beats)
    return np.concatenate(found)


def score(record: Record, beats: np.ndarray, *, skip_s: float = 0.0) -> RecordScore:
    """Match ``beats`` to the record's references within :data:`MATCH_WINDOW_S`, ignoring the first ``skip_s`` s."""
    start = int(round(skip_s * record.fs))
    ref, test = record.reference[record.reference >= start], beats[beats >= start]
    if ref.size == 0 or test.size == 0:
        return RecordScore(0, int(test.size), int(ref.size))
    cmp = compare_annotations(ref, test, int(round(MATCH_WINDOW_S * record.fs)))
    return RecordScore(int(cmp.tp), int(cmp.fp), int(cmp.fn))


def evaluate(root: str | os.PathLike[str], *, packet: int = 36, skip_s: float = 0.0,
             config: QrsConfig | None = None, progress: Progress | None = None) -> dict[str, object]:
    """Score the detector on every annotated record under ``root``; returns the JSON report.

    ``{"records": N, "se": …, "ppv": …, "per_record": {name: {"se", "ppv", "tp", "fp", "fn"}}}`` with
    gross Se and +P (fractions) over all beats. Raises ``ValueError`` when no record is found.
    ``progress`` hears of each record done (see :mod:`evaluation.progress`).
    """
    root = Path(root)
    files = _record_files(root)
    if not files:
        raise ValueError(f"no annotated records under {root} (WFDB .hea+.atr, or CPSC 2019 data/ + ref/ .mat)")
    progress = progress or NoProgress()
    progress.start(len(files))
    per_record: dict[str, RecordScore] = {}
    try:
        for path, ref in files:
            record = _read(root, path, ref)
            beats = detect(record.signal, record.fs, packet=packet, config=config, on_stream=progress.stream)
            per_record[record.name] = score(record, beats, skip_s=skip_s)
            progress.record_done(record.name, record.signal.size / record.fs)
    finally:
        progress.finish()
    total = RecordScore(*(sum(getattr(s, f) for s in per_record.values()) for f in ("tp", "fp", "fn")))
    return {"records": len(per_record), "se": total.se, "ppv": total.ppv, "tp": total.tp, "fp": total.fp,
            "fn": total.fn, "packet_samples": packet, "skip_s": skip_s,
            "per_record": {name: s.to_dict() for name, s in per_record.items()}}
