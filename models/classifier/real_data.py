"""Classifier windows from real labelled records (CinC 2020/2021 or PTB-XL), numpy only (no torch).

:func:`load_real_windows` is the real-data twin of :func:`models.classifier.data.build_windows`:
every record under a folder becomes 10 s, 125 Hz, 12-lead windows (the format of
:mod:`models.classifier.data`), with multi-hot targets over :data:`models.data.labels.CLASSES`
and, for a share of the windows, the edge view (II, V1, V5 through the shipped VAE). It is what
``ecgstream models train classifier --data DIR`` trains and calibrates on (issue 12).

Decisions (each one visible in :attr:`RealWindows.skipped` when it drops a record):

* **Layout**: a folder holding ``ptbxl_database.csv`` is PTB-XL (500 Hz records when
  ``records500/`` is there, else 100 Hz); any other folder with WFDB headers carrying ``# Dx:``
  is CinC 2020/2021. Both are read by the loaders of :mod:`models.data` (so the SNOMED/SCP
  mapping, equivalence classes and unmapped-code counting are theirs).
* **Windows** are cut exactly as evaluation cuts them
  (:func:`models.classifier.evaluate.record_windows`): the whole record is preprocessed with
  :func:`models.preprocessing.prepare_record` and cut by :func:`models.preprocessing.split_windows`
  every ``hop_s`` (10 s by default: one window for a 10–19.9 s record). A record's windows all
  carry the record's labels (CinC and PTB-XL label whole 10–60 s records).
* **Shorter than 10 s: skipped**, not padded. Zero padding would show the classifier a flat
  stretch it never sees in service (the edge always has 10 s of signal), and the Challenge's short
  records are few.
* **Not 12-lead, or a lead with no valid sample: skipped.** Isolated NaN gaps are filled by
  :func:`firmware_sim.records.fill_gaps` as in evaluation.
* **Records whose codes map to no class** (e.g. left anterior fascicular block alone, paced
  rhythm, 2nd-degree AV block) are **kept as all-negative** when they state at least one
  diagnosis code: those codes are known findings that the vocabulary deliberately leaves out, so
  "none of the 18 classes" is what the record says. A record with no code at all (an empty
  ``# Dx:``, an empty ``scp_codes``) says nothing and is skipped. Pass
  ``keep_no_class=False`` to drop the all-negative records too. Caveat: the Challenge often leaves
  the underlying rhythm unlabelled (a record labelled "RBBB" alone is usually sinus), so NSR
  negatives from real data are noisier than the synthetic ones.
* **Edge view**: each window is seen through the VAE with probability ``edge_fraction`` (drawn
  from ``seed``, per window, like ``build_windows``); with ``reconstruct=None`` every window stays
  true 12-lead. Only the nine reconstructed leads change.
* ``rhythms`` (the simulator rhythm in synthetic sets) holds ``"<dataset>:<labels>"`` per window,
  e.g. ``"cinc:NSR+PAC"`` (``"cinc:-"`` for all-negative), so reports that group by it still work.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.classifier.data import Reconstructor, WindowSet, edge_view
from models.data.labels import CLASSES, multi_hot
from models.data.records import DatasetError, LabeledRecord, RecordDataset
from models.preprocessing import WINDOW_S, WINDOW_SAMPLES, prepare_record, split_windows
from protocol.leads import STANDARD_LEADS


@dataclass(frozen=True)
class RealWindows(WindowSet):
    """Classifier windows from real records: :class:`~models.classifier.data.WindowSet` (``x`` (n, 12, 1250)
    float32 mV, ``y`` (n, 18) multi-hot float32, ``edge`` (n,) bool, ``rhythms``) plus the record of every
    window (``record_ids``, for record-level folds and aggregation), the dataset name, the records skipped
    with the reason, and the source codes that mapped to no class (code → records)."""

    record_ids: tuple[str, ...] = ()
    dataset: str = ""
    skipped: Mapping[str, str] = field(default_factory=dict)
    unmapped: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        if not (self.y.shape[0] == self.edge.shape[0] == len(self.rhythms) == len(self.record_ids) == n):
            raise ValueError(
                f"x, y, edge, rhythms and record_ids must have one entry per window, got {n}, "
                f"{self.y.shape[0]}, {self.edge.shape[0]}, {len(self.rhythms)}, {len(self.record_ids)}"
            )

    @property
    def records(self) -> tuple[str, ...]:
        """Distinct record ids, in order of first window."""
        return tuple(dict.fromkeys(self.record_ids))

    def windows_per_class(self) -> dict[str, int]:
        """Class key → windows carrying it."""
        return {c: int(self.y[:, j].sum()) for j, c in enumerate(CLASSES)}

    def records_per_class(self) -> dict[str, int]:
        """Class key → records carrying it (a record's windows share its labels)."""
        ids = np.asarray(self.record_ids)
        out: dict[str, int] = {}
        for j, c in enumerate(CLASSES):
            out[c] = len(set(ids[self.y[:, j] > 0.5].tolist()))
        return out


def open_dataset(root: str | os.PathLike[str]) -> RecordDataset:
    """The loader for the records under ``root``: PTB-XL when it holds ``ptbxl_database.csv``, else CinC.

    Raises :class:`~models.data.records.DatasetError` naming the folder when it is neither.
    """
    from models.data.ptbxl import DATABASE_CSV
    from models.data.registry import load_dataset

    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(f"{path} is not a folder (expected CinC 2020/2021 or PTB-XL records)")
    if (path / DATABASE_CSV).is_file():
        rate = 500 if (path / "records500").is_dir() else 100
        return load_dataset("ptbxl", path, rate=rate)
    try:
        return load_dataset("cinc", path)
    except DatasetError as exc:
        raise DatasetError(
            f"no CinC 2020/2021 or PTB-XL records under {path}: expected WFDB headers with '# Dx:' lines "
            f"(CinC) or {DATABASE_CSV} with records100/ or records500/ (PTB-XL) ({exc})"
        ) from exc


def _record_windows(rec: LabeledRecord, hop_s: float) -> np.ndarray:
    """(k, 12, 1250) float32 windows of one record; raises ``RecordError``/``ValueError`` with the reason."""
    from firmware_sim.records import fill_gaps, select_leads

    recording = select_leads(rec.recording, STANDARD_LEADS)
    if recording.duration_s < WINDOW_S:
        raise ValueError(f"shorter than {WINDOW_S:g} s ({recording.duration_s:.1f} s)")
    recording, _ = fill_gaps(recording)
    windows = split_windows(prepare_record(np.asarray(recording.signals, dtype=np.float64), recording.fs), hop_s)
    if windows.shape[0] == 0:
        raise ValueError(f"no complete {WINDOW_S:g} s window")
    return windows


def _progress(items: Iterable[LabeledRecord], total: int, enabled: bool, desc: str) -> Iterator[LabeledRecord]:
    if not enabled:
        yield from items
        return
    from tqdm import tqdm

    with tqdm(items, total=total, desc=desc, unit="rec", dynamic_ncols=True) as bar:
        yield from bar


def load_real_windows(
    root: str | os.PathLike[str],
    *,
    reconstruct: Reconstructor | None,
    edge_fraction: float,
    seed: int,
    progress: bool = False,
    hop_s: float = WINDOW_S,
    keep_no_class: bool = True,
) -> RealWindows:
    """Every CinC 2020/2021 or PTB-XL record under ``root`` → classifier windows (see the module notes).

    Args:
        root: the folder (searched recursively for CinC; PTB-XL's own layout).
        reconstruct: the VAE for the edge view (:func:`models.classifier.data.default_reconstructor`);
            None keeps every window true 12-lead.
        edge_fraction: share of windows seen through ``reconstruct`` (0–1).
        seed: draws which windows get the edge view.
        progress: a tqdm bar over records.
        hop_s: window hop in seconds (10: non-overlapping, as evaluation cuts).
        keep_no_class: keep records whose codes map to no class as all-negative windows.

    Raises:
        DatasetError: ``root`` is not a CinC or PTB-XL folder, or no record in it gave a window
            (the message names the folder and the first reasons).
        ValueError: ``edge_fraction`` outside 0–1.
    """
    from firmware_sim.records import RecordError

    if not 0.0 <= edge_fraction <= 1.0:
        raise ValueError(f"edge_fraction must be within 0–1, got {edge_fraction}")
    dataset = open_dataset(root)
    ids = dataset.ids()
    windows: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    rhythms: list[str] = []
    record_ids: list[str] = []
    skipped: dict[str, str] = {}
    unmapped: Counter[str] = Counter()
    for rec in _progress(dataset, len(ids), progress, f"{dataset.name} records"):
        unmapped.update(set(rec.unmapped))
        if not rec.codes:
            skipped[rec.record_id] = "no diagnosis code"
            continue
        if not rec.labels and not keep_no_class:
            skipped[rec.record_id] = f"no class among its codes ({','.join(rec.codes)})"
            continue
        try:
            w = _record_windows(rec, hop_s)
        except (RecordError, ValueError) as exc:
            skipped[rec.record_id] = str(exc)
            continue
        windows.append(w)
        targets.append(np.repeat(multi_hot(rec.labels)[None, :], w.shape[0], axis=0))
        tag = f"{dataset.name}:{'+'.join(c for c in CLASSES if c in rec.labels) or '-'}"
        rhythms.extend([tag] * w.shape[0])
        record_ids.extend([rec.record_id] * w.shape[0])
    skipped.update(dataset.report.skipped)
    if not windows:
        reasons = "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:3])
        raise DatasetError(
            f"no usable 12-lead record of at least {WINDOW_S:g} s under {dataset.root} "
            f"({len(ids)} records, {len(skipped)} skipped{': ' + reasons if reasons else ''})"
        )
    x = np.concatenate(windows).astype(np.float32, copy=False)
    rng = np.random.default_rng([seed, 11])
    edge = np.asarray(rng.random(x.shape[0]) < edge_fraction)
    if reconstruct is None:
        edge[:] = False
    if edge.any():
        assert reconstruct is not None
        sel = np.flatnonzero(edge)
        x[sel] = edge_view(x[sel], reconstruct)
    assert x.shape[1:] == (len(STANDARD_LEADS), WINDOW_SAMPLES)
    return RealWindows(
        x=x,
        y=np.concatenate(targets).astype(np.float32, copy=False),
        edge=edge,
        rhythms=tuple(rhythms),
        record_ids=tuple(record_ids),
        dataset=dataset.name,
        skipped=skipped,
        unmapped=dict(unmapped),
    )
