"""Replay a recorded ECG as a :class:`~firmware_sim.source.SignalSource`.

The recording is prepared once, up front: leads picked, gaps filled by linear
interpolation (counted in :attr:`ReplaySource.filled_samples`), resampled to the
device rate. Blocks are then handed out in order, once or looping. Pace is the
device's business: the source hands out samples whenever it is read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from firmware_sim.records import (
    Recording,
    ReplayError,
    fill_gaps,
    read_record,
    resample,
    select_leads,
)
from firmware_sim.source import ArraySource
from protocol.leads import WEARABLE_LEADS


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

    Raises:
        MissingLeadError: the record lacks one of ``leads``.
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
    ) -> None:
        if not isinstance(recording, Recording):
            recording = read_record(recording)
        selected = select_leads(recording, leads, derive=derive)
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
