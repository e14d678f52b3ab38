"""Replay a recorded ECG as a :class:`~firmware_sim.source.SignalSource`.

The recording is prepared once, up front: leads picked (or mapped from the
record's channels, see ``channels``), gaps filled by linear interpolation (counted
in :attr:`ReplaySource.filled_samples`), resampled to the device rate. Blocks are
then handed out in order, once or looping. Pace is the device's business: the
source hands out samples whenever it is read.

A 1- or 2-lead record (MIT-BIH, SVDB, CPSC 2021) replays on a 3-lead wearable
through a channel map, e.g. ``{"II": "MLII", "V5": "V5"}`` (or by number,
``{"II": "#1"}``, for channels that share a name): the leads the map
leaves out are streamed as zeros and listed in :attr:`ReplaySource.absent_leads`,
and :func:`absent_lead_electrodes` names the electrodes a device should flag as
detached for them (so the gateway sees lead-off, not a flat ECG).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from firmware_sim.faults import LEAD_ELECTRODES, LeadOff
from firmware_sim.records import (
    MissingLeadError,
    Recording,
    ReplayError,
    fill_gaps,
    read_record,
    resample,
    select_leads,
)
from firmware_sim.records.recording import channel_name
from firmware_sim.source import ArraySource
from protocol.leads import WEARABLE_LEADS

_FOREVER_S = 1e9
"""End of a lead-off interval that lasts the whole replay, however long it loops (~32 years)."""


class ReplaySource:
    """A recording streamed as consecutive blocks of samples in mV.

    Args:
        recording: a :class:`Recording`, or the path of a record for
            :func:`~firmware_sim.records.read_record`.
        leads: the leads to stream, in column order.
        fs: the rate to stream at, in Hz (``None``: the recording's own rate).
        loop: start over from the first sample after the last, seamlessly; otherwise
            :meth:`read` returns fewer rows, then none, once the recording ends.
        derive: compute missing limb leads from two present ones (see
            :func:`~firmware_sim.records.select_leads`).
        channels: map of lead (one of ``leads``) -> the record's channel to stream
            as it (``{"II": "MLII", "V5": "V5"}``); leads it leaves out are streamed
            as zeros (:attr:`absent_leads`). ``None``: every lead from the channel of
            the same name.

    Raises:
        MissingLeadError: the record lacks one of ``leads`` (or a channel of ``channels``).
        ReplayError: a selected channel is not in mV, or the recording is empty.
        RecordError: the record cannot be read, filled or resampled.
    """

    def __init__(
        self,
        recording: Recording | str | os.PathLike[str],
        *,
        leads: Sequence[str] = WEARABLE_LEADS,
        fs: float | None = None,
        loop: bool = False,
        derive: bool = False,
        channels: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(recording, Recording):
            recording = read_record(recording)
        self._absent: tuple[str, ...] = ()
        if channels is None:
            selected = select_leads(recording, leads, derive=derive)
        else:
            selected, self._absent = _map_channels(recording, leads, channels, derive=derive)
        not_mv = [
            f"{lead} ({unit})"
            for lead, unit in zip(selected.lead_names, selected.units, strict=True)
            if unit != "mV"
        ]
        if not_mv:
            raise ReplayError(f"record {selected.name!r}: cannot stream {', '.join(not_mv)} as mV")
        if selected.n_samples == 0:
            raise ReplayError(f"record {selected.name!r} has no samples to replay")
        filled, self._filled_samples = fill_gaps(selected)
        self._recording = filled if fs is None else resample(filled, fs)
        self._stream = ArraySource(
            self._recording.signals, self._recording.fs, self._recording.lead_names, loop=loop
        )
        self._loop = loop

    @property
    def absent_leads(self) -> tuple[str, ...]:
        """Leads the channel map left out: streamed as zeros (flag them as lead-off)."""
        return self._absent

    @property
    def fs(self) -> float:
        """Sampling rate in Hz."""
        return self._stream.fs

    @property
    def lead_names(self) -> tuple[str, ...]:
        """Lead names in column order (standard spelling)."""
        return self._stream.lead_names

    @property
    def recording(self) -> Recording:
        """The prepared recording being replayed (selected, gap-filled, resampled)."""
        return self._recording

    @property
    def loop(self) -> bool:
        """Whether the replay starts over after the last sample."""
        return self._loop

    @property
    def filled_samples(self) -> int:
        """Sample values that were missing (NaN) in the record and filled by interpolation."""
        return self._filled_samples

    @property
    def n_samples(self) -> int:
        """Samples in one pass over the recording, at :attr:`fs`."""
        return self._recording.n_samples

    @property
    def duration_s(self) -> float:
        """Length of one pass over the recording, in seconds."""
        return self._recording.duration_s

    @property
    def position(self) -> int:
        """Samples handed out so far, counting every loop."""
        return self._stream.position

    @property
    def position_s(self) -> float:
        """Stream time handed out so far, in seconds (``position / fs``)."""
        return self.position / self.fs

    @property
    def finished(self) -> bool:
        """Whether a non-looping replay has handed out its last sample (never true when looping)."""
        return not self._loop and self.position >= self.n_samples

    def read(self, n_samples: int) -> np.ndarray:
        """The next ``n_samples`` rows, shape ``(n, len(lead_names))``, float64 mV, a new array.

        Fewer rows (then 0) once a non-looping replay reaches the end.
        Raises :class:`ValueError` for a negative ``n_samples``.
        """
        return np.array(self._stream.read(n_samples))  # owned and writeable, never a view of the recording


def open_replay(
    path: str | os.PathLike[str],
    *,
    leads: Sequence[str] = WEARABLE_LEADS,
    fs: float = 250.0,
    loop: bool = False,
) -> ReplaySource:
    """Read the record at ``path`` and replay ``leads`` at ``fs`` Hz (see :class:`ReplaySource`)."""
    return ReplaySource(read_record(path), leads=leads, fs=fs, loop=loop)


def _channel_column(recording: Recording, channel: str) -> int:
    """Column of the record's channel named ``channel``, or numbered ``#k`` (1-based, in header order)."""
    if channel.startswith("#") and channel[1:].isdigit():
        k = int(channel[1:])
        if not 1 <= k <= len(recording.lead_names):
            raise ReplayError(
                f"record {recording.name!r} has channels #1-#{len(recording.lead_names)}, not {channel}"
            )
        return k - 1
    name = channel_name(channel)
    matches = [i for i, label in enumerate(recording.lead_names) if label == name]
    if not matches:
        raise MissingLeadError(recording.name, [name], recording.lead_names)
    if len(matches) > 1:
        numbers = ", ".join(f"#{i + 1}" for i in matches)
        raise ReplayError(f"record {recording.name!r} has {len(matches)} channels named {name}: pick one by number "
                          f"({numbers})")
    return matches[0]


def _map_channels(
    recording: Recording, leads: Sequence[str], channels: Mapping[str, str], *, derive: bool
) -> tuple[Recording, tuple[str, ...]]:
    """``recording`` as ``leads``, each from its mapped channel or zeros; and the leads left as zeros.

    A channel is named as in the record (``MLII``, ``V5``) or numbered ``#1``, ``#2`` … in header
    order (for records whose channels share a name, such as SVDB's two ``ECG``).
    """
    wanted = tuple(channel_name(lead) for lead in leads)
    mapping = {channel_name(lead): channel for lead, channel in channels.items()}
    stray = [lead for lead in mapping if lead not in wanted]
    if stray:
        raise ReplayError(
            f"cannot map channels to {', '.join(stray)}: the device streams {', '.join(wanted)}"
        )
    if not mapping:
        raise ReplayError("the channel map names no lead")
    columns: list[np.ndarray] = []
    units: list[str] = []
    for lead in wanted:
        if lead not in mapping:
            columns.append(np.zeros(recording.n_samples))
            units.append("mV")
            continue
        try:
            column = _channel_column(recording, mapping[lead])
        except MissingLeadError:
            if not derive:
                raise
            derived = select_leads(recording, [mapping[lead]], derive=True)
            columns.append(derived.signals[:, 0])
            units.append(derived.units[0])
            continue
        columns.append(recording.signals[:, column])
        units.append(recording.units[column])
    absent = tuple(lead for lead in wanted if lead not in mapping)
    selected = dataclasses.replace(
        recording, signals=np.column_stack(columns), lead_names=wanted, units=tuple(units)
    )
    return selected, absent


def absent_lead_electrodes(absent: Iterable[str], present: Iterable[str]) -> tuple[str, ...]:
    """Electrodes to flag as detached so the ``absent`` leads read as lead-off and the ``present`` ones do not.

    A precordial lead is flagged by its own electrode (V1 for V1); a limb lead by the electrodes
    no present lead uses. A lead whose electrodes are all shared with present leads (II when V1
    is present: both use RA and LL) cannot be flagged alone and contributes none.
    """
    present = list(present)
    keep: set[str] = set().union(*(LEAD_ELECTRODES[lead] for lead in present))
    off: set[str] = set()
    for lead in absent:
        free = LEAD_ELECTRODES[lead] - keep
        own = {electrode for electrode in free if electrode == lead}
        off |= own or free
    return tuple(sorted(off))


def absent_lead_off(source: ReplaySource) -> LeadOff | None:
    """A lead-off interval covering the whole replay for ``source``'s absent leads (None when none apply)."""
    present = [lead for lead in source.lead_names if lead not in source.absent_leads]
    electrodes = absent_lead_electrodes(source.absent_leads, present)
    return LeadOff(0.0, _FOREVER_S, electrodes) if electrodes else None
