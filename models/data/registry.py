"""One entry point for every database loader: :func:`load_dataset`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from models.data.cinc import CincDataset
from models.data.cpsc2021 import Cpsc2021Dataset
from models.data.incart import IncartDataset
from models.data.mitbih import MitBihDataset
from models.data.ptbxl import PtbXlDataset
from models.data.records import DatasetError, RecordDataset

LOADERS: Mapping[str, type[RecordDataset]] = {
    "ptbxl": PtbXlDataset,
    "cinc": CincDataset,
    "mitbih": MitBihDataset,
    "incart": IncartDataset,
    "cpsc2021": Cpsc2021Dataset,
}
"""Loader name → class."""

ALIASES: Mapping[str, str] = {
    "ptb-xl": "ptbxl",
    "cinc2020": "cinc",
    "cinc2021": "cinc",
    "challenge2020": "cinc",
    "challenge2021": "cinc",
    "mitdb": "mitbih",
    "mit-bih": "mitbih",
    "svdb": "mitbih",
    "incartdb": "incart",
}
"""Other names accepted for a loader (``"svdb"`` is read by the MIT-BIH loader)."""


def load_dataset(kind: str, path: str | os.PathLike[str], **kwargs: Any) -> RecordDataset:
    """Open a local copy of a public ECG database in its native layout.

    Args:
        kind: ``"ptbxl"``, ``"cinc"`` (2020/2021), ``"mitbih"`` (also SVDB), ``"incart"``,
            ``"cpsc2021"``, or an alias (``"mitdb"``, ``"svdb"``, ``"cinc2021"`` ...).
        path: the database folder.
        **kwargs: passed to the loader (e.g. ``rate=500, split="train"`` for PTB-XL).

    Returns:
        A :class:`~models.data.records.RecordDataset`: iterate it for
        :class:`~models.data.records.LabeledRecord` objects, ``.ids()`` lists records,
        ``.read(id)`` reads one, ``.report`` tells what was read, skipped and unmapped.

    Raises:
        DatasetError: an unknown kind, or a path that is not such a database
            (e.g. ``no ptbxl_database.csv under /x — is this a PTB-XL folder?``).
        TypeError: an option the loader does not take.
    """
    key = str(kind).strip().lower()
    key = ALIASES.get(key, key)
    if key not in LOADERS:
        names = sorted({*LOADERS, *ALIASES})
        raise DatasetError(f"unknown dataset kind {kind!r}; known: {', '.join(names)}")
    return LOADERS[key](path, **kwargs)
