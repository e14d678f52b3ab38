"""Training and evaluation data: the label vocabulary and loaders for public ECG databases.

>>> ds = load_dataset("ptbxl", "~/data/ptb-xl", rate=500, split="train")   # doctest: +SKIP
>>> for rec in ds:                                                          # doctest: +SKIP
...     x, y = rec.recording.signals, rec.target
>>> print(ds.report.summary())                                              # doctest: +SKIP

Synthetic windows from the simulator live in :mod:`models.data.synthetic`; map their
rhythm names to classes with :func:`labels_from_rhythm`.

The vocabulary (numpy only) is imported at once; the loaders, which need wfdb and the
record readers, are imported on first use, so ``import models.data.synthetic`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from models.data.labels import (
    CLASS_INDEX,
    CLASSES,
    DESCRIPTIONS,
    SIM_RHYTHM_LABELS,
    VOCABULARY,
    LabelClass,
    labels_from_beats,
    labels_from_mitbih_rhythm,
    labels_from_multi_hot,
    labels_from_rhythm,
    labels_from_scp,
    labels_from_snomed,
    multi_hot,
)

if TYPE_CHECKING:
    from models.data.cinc import CincDataset
    from models.data.cpsc2021 import Cpsc2021Dataset, af_episodes_s
    from models.data.incart import IncartDataset
    from models.data.mitbih import MitBihDataset
    from models.data.ptbxl import SPLITS, PtbXlDataset
    from models.data.records import (
        BeatAnnotations,
        DatasetError,
        LabeledRecord,
        LoadReport,
        RecordDataset,
        RhythmInterval,
    )
    from models.data.registry import LOADERS, load_dataset

_LAZY = {
    "CincDataset": "models.data.cinc",
    "Cpsc2021Dataset": "models.data.cpsc2021",
    "af_episodes_s": "models.data.cpsc2021",
    "IncartDataset": "models.data.incart",
    "MitBihDataset": "models.data.mitbih",
    "SPLITS": "models.data.ptbxl",
    "PtbXlDataset": "models.data.ptbxl",
    "BeatAnnotations": "models.data.records",
    "DatasetError": "models.data.records",
    "LabeledRecord": "models.data.records",
    "LoadReport": "models.data.records",
    "RecordDataset": "models.data.records",
    "RhythmInterval": "models.data.records",
    "LOADERS": "models.data.registry",
    "load_dataset": "models.data.registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'models.data' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CLASSES",
    "CLASS_INDEX",
    "DESCRIPTIONS",
    "LOADERS",
    "SIM_RHYTHM_LABELS",
    "SPLITS",
    "VOCABULARY",
    "BeatAnnotations",
    "CincDataset",
    "Cpsc2021Dataset",
    "DatasetError",
    "IncartDataset",
    "LabelClass",
    "LabeledRecord",
    "LoadReport",
    "MitBihDataset",
    "PtbXlDataset",
    "RecordDataset",
    "RhythmInterval",
    "af_episodes_s",
    "labels_from_beats",
    "labels_from_mitbih_rhythm",
    "labels_from_multi_hot",
    "labels_from_rhythm",
    "labels_from_scp",
    "labels_from_snomed",
    "load_dataset",
    "multi_hot",
]
