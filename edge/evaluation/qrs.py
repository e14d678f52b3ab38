"""Beat-by-beat evaluation of the streaming QRS detector against reference annotations.

Every annotated record under a folder is streamed through the edge's filter chain and
:class:`edge.signal.qrs.QrsDetector` in packets (36 samples by default, as from the wearable), and
its beats are matched to the reference beats EC57-style: one-to-one, within 150 ms
(:func:`wfdb.processing.compare_annotations`). Two layouts are read:

* WFDB records with an ``.atr`` file (MIT-BIH, SVDB, …): the first signal (MLII in MIT-BIH), and
  only beat annotations as references (:data:`BEAT_SYMBOLS`; rhythm, noise and comment marks
  are not beats);
* CPSC 2019 pairs ``data/data_XXXXX.mat`` (key ``ecg``, 500 Hz, mV) and ``ref/R_XXXXX.mat`` (key
  ``R_peak``).

The whole record is scored, including the detector's learning period at the start (EC57 allows
skipping the first 5 minutes; ``skip_s`` does that, default 0). Figures are gross: sensitivity
``Se = TP / (TP + FN)`` and positive predictivity ``+P = TP / (TP + FP)`` over all beats.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb
from scipy.io import loadmat
from wfdb.processing import compare_annotations

from edge.signal.filters import EcgFilter, FilterSpec
from edge.signal.qrs import QrsConfig, QrsDetector

BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")
"""MIT-BIH annotation symbols that mark a beat (the EC57 reference beats)."""
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


def find_records(root: str | os.PathLike[str]) -> Iterator[Record]:
    """Every annotated record under ``root`` (recursively), in path order."""
    root = Path(root)
    for atr in sorted(root.rglob("*.atr")):
        if atr.with_suffix(".hea").is_file():
            yield _wfdb_record(atr, root)
    for data in sorted(root.rglob("data_*.mat")):
        ref = data.parent.parent / "ref" / data.name.replace("data_", "R_")
        if ref.is_file():
            yield _cpsc2019_record(data, ref, root)


def _wfdb_record(atr: Path, root: Path) -> Record:
    base = str(atr.with_suffix(""))
    rec = wfdb.rdrecord(base, channels=[0], physical=True)
    ann = wfdb.rdann(base, "atr")
    beats = np.array([s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in BEAT_SYMBOLS], dtype=np.int64)
    signal = np.nan_to_num(np.asarray(rec.p_signal[:, 0], dtype=np.float64))
    return Record(str(atr.relative_to(root).with_suffix("")), signal, float(rec.fs), beats)


def _cpsc2019_record(data: Path, ref: Path, root: Path) -> Record:
    signal = np.asarray(loadmat(data)["ecg"], dtype=np.float64).reshape(-1)
    beats = np.asarray(loadmat(ref)["R_peak"], dtype=np.int64).reshape(-1)
    return Record(str(data.relative_to(root).with_suffix("")), signal, CPSC2019_FS, beats)


def detect(signal: np.ndarray, fs: float, *, packet: int = 36, config: QrsConfig | None = None) -> np.ndarray:
    """R-peak samples of one lead (mV at ``fs`` Hz) streamed in packets of ``packet`` samples."""
    if packet < 1:
        raise ValueError(f"packet must be ≥ 1 sample, got {packet}")
    filt = EcgFilter(fs, 1, EVAL_FILTER)
    detector = QrsDetector(fs, config)
    found = [detector.process(filt.process(signal[s : s + packet])).beats for s in range(0, signal.size, packet)]
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
             config: QrsConfig | None = None) -> dict[str, object]:
    """Score the detector on every annotated record under ``root``; returns the JSON report.

    ``{"records": N, "se": …, "ppv": …, "per_record": {name: {"se", "ppv", "tp", "fp", "fn"}}}`` with
    gross Se and +P (fractions) over all beats. Raises ``ValueError`` when no record is found.
    """
    per_record: dict[str, RecordScore] = {}
    for record in find_records(root):
        per_record[record.name] = score(record, detect(record.signal, record.fs, packet=packet, config=config),
                                        skip_s=skip_s)
    if not per_record:
        raise ValueError(f"no annotated records under {root} (WFDB .hea+.atr, or CPSC 2019 data/ + ref/ .mat)")
    total = RecordScore(*(sum(getattr(s, f) for s in per_record.values()) for f in ("tp", "fp", "fn")))
    return {"records": len(per_record), "se": total.se, "ppv": total.ppv, "tp": total.tp, "fp": total.fp,
            "fn": total.fn, "packet_samples": packet, "skip_s": skip_s,
            "per_record": {name: s.to_dict() for name, s in per_record.items()}}
