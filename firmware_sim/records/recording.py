"""The in-memory recording every reader returns and every transform takes.

Channels that are standard leads get their standard name (``ii`` -> ``II``,
``MLII`` -> ``II``, ``ECG V5`` -> ``V5``); other channels (``PLETH``, ``vx``)
keep their label. Channels in a voltage unit are converted to mV; other
channels keep their values and unit (see :attr:`Recording.units`). Infinite
samples a file may hold become gaps (NaN), with a :class:`RecordWarning` that
counts them.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware_sim.records.errors import RecordError, RecordWarning
from protocol.errors import ProtocolError
from protocol.leads import canonical_lead_name

_TO_MV = {"mv": 1.0, "uv": 1e-3, "\u00b5v": 1e-3, "\u03bcv": 1e-3, "nv": 1e-6, "v": 1e3}
_ECG_PREFIX = re.compile(r"^(ECG|EKG)[\s_\-:]*", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class Recording:
    """A multi-channel recording held in memory.

    Attributes:
        signals: ``(n_samples, n_channels)`` float64, read-only; mV for every
            channel whose unit is ``"mV"``. Invalid samples are NaN (see
            :func:`firmware_sim.records.fill_gaps`).
        fs: sampling rate in Hz.
        lead_names: channel names in column order; standard leads spelled as
            in :data:`protocol.leads.STANDARD_LEADS`, other channels as labelled.
        name: short record name, ``"<folder>/<record>"`` (e.g. ``"mitdb/100"``).
        source_path: the file it was read from, or ``None`` if built in memory.
        units: unit of each channel; defaults to ``"mV"`` for every channel.
    """

    signals: np.ndarray
    fs: float
    lead_names: tuple[str, ...]
    name: str
    source_path: Path | None = None
    units: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        signals = np.asarray(self.signals, dtype=np.float64).view()
        if signals.ndim != 2 or signals.shape[1] != len(self.lead_names):
            raise RecordError(
                f"record {self.name!r}: signals of shape {signals.shape} do not match "
                f"{len(self.lead_names)} channel names"
            )
        if not (self.fs > 0 and math.isfinite(self.fs)):
            raise RecordError(f"record {self.name!r}: sampling rate must be positive and finite, got {self.fs}")
        units = tuple(self.units) or ("mV",) * len(self.lead_names)
        if len(units) != len(self.lead_names):
            raise RecordError(f"record {self.name!r}: {len(units)} units for {len(self.lead_names)} channels")
        signals.flags.writeable = False
        object.__setattr__(self, "signals", signals)
        object.__setattr__(self, "fs", float(self.fs))
        object.__setattr__(self, "lead_names", tuple(self.lead_names))
        object.__setattr__(self, "units", units)

    @property
    def n_samples(self) -> int:
        """Number of samples per channel."""
        return int(self.signals.shape[0])

    @property
    def duration_s(self) -> float:
        """Length in seconds (``n_samples / fs``)."""
        return self.n_samples / self.fs


def channel_name(label: str) -> str:
    """Standard lead name for a channel label, or the stripped label if it is not a standard lead.

    Accepts the labels of WFDB headers (``ii``, ``MLII``, ``AVR``) and the EDF
    convention ``ECG II`` / ``EKG-V5``.
    """
    for candidate in (label, _ECG_PREFIX.sub("", label.strip())):
        try:
            return canonical_lead_name(candidate)
        except ProtocolError:
            continue
    return label.strip()


def record_name(path: Path) -> str:
    """``"<folder>/<stem>"`` of a record file, e.g. ``"mitdb/100"``."""
    path = Path(path)
    stem = path.stem if path.suffix.lower() in {".hea", ".edf", ".bdf", ".csv"} else path.name
    return f"{path.parent.name}/{stem}" if path.parent.name else stem


def from_channels(
    signals: np.ndarray,
    fs: float,
    labels: Sequence[str],
    units: Sequence[str],
    path: Path,
) -> Recording:
    """Build a :class:`Recording` from raw channels: name the leads, convert voltages to mV.

    Args:
        signals: ``(n_samples, n_channels)`` physical values in ``units``.
        fs: sampling rate in Hz.
        labels: channel labels as found in the file.
        units: unit of each channel as found in the file (``mV``, ``uV``, ``µV``, ``V``, ``NU`` ...).
        path: the file read, for the record's name and :attr:`Recording.source_path`.

    Infinite samples (in the file, or beyond float range once in mV) are made gaps
    (NaN), like invalid samples, with a :class:`RecordWarning` naming how many and where.
    """
    scale = np.array([_TO_MV.get(u.strip().lower(), 1.0) for u in units])
    out_units = tuple("mV" if u.strip().lower() in _TO_MV else u.strip() for u in units)
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(signals, dtype=np.float64) * scale
    infinite = np.isinf(values)
    if infinite.any():
        values[infinite] = np.nan
        names = [channel_name(label) for label, hit in zip(labels, infinite.any(axis=0), strict=False) if hit]
        count = int(infinite.sum())
        warnings.warn(
            f"record {record_name(path)!r}: {count} infinite sample{'s' if count != 1 else ''} "
            f"(in {', '.join(names)}) treated as gaps (NaN), like missing samples",
            RecordWarning,
            stacklevel=3,
        )
    return Recording(
        signals=values,
        fs=fs,
        lead_names=tuple(channel_name(label) for label in labels),
        name=record_name(path),
        source_path=Path(path),
        units=out_units,
    )
