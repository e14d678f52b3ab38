"""A :class:`~firmware_sim.source.SignalSource` over a synthesised stream, keeping its ground truth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from firmware_sim.synthesis.engine import GroundTruthEvent, StreamSynthesizer
from protocol.leads import STANDARD_LEADS, canonical_lead_name


class SynthesisSource:
    """The chosen leads of a :class:`StreamSynthesizer`, block by block, in mV.

    Every beat (absolute sample index, MIT-BIH label) and every ground-truth
    event seen so far is kept, so a run can export exactly what was streamed.
    """

    def __init__(self, stream: StreamSynthesizer, leads: Sequence[str]) -> None:
        self.stream = stream
        self._lead_names = tuple(canonical_lead_name(lead) for lead in leads)
        self._columns = [STANDARD_LEADS.index(lead) for lead in self._lead_names]
        self._beats: list[np.ndarray] = []
        self._labels: list[str] = []
        self._events: dict[tuple[float, str, str], GroundTruthEvent] = {}

    @property
    def fs(self) -> float:
        return self.stream.fs

    @property
    def lead_names(self) -> tuple[str, ...]:
        return self._lead_names

    def read(self, n_samples: int) -> np.ndarray:
        chunk = self.stream.read(n_samples)
        self._beats.append(chunk.beats)
        self._labels.extend(chunk.beat_labels)
        for event in chunk.events:  # an event spanning chunks is reported by each: keep its latest form
            self._events[(event.onset_s, event.kind, event.label)] = event
        return chunk.signals[:, self._columns]

    @property
    def beats(self) -> np.ndarray:
        """Sample index of every beat streamed so far."""
        return np.concatenate(self._beats) if self._beats else np.zeros(0, dtype=np.int64)

    @property
    def beat_labels(self) -> tuple[str, ...]:
        return tuple(self._labels)

    @property
    def events(self) -> list[GroundTruthEvent]:
        """Ground-truth events that overlap what was streamed so far, by onset."""
        return sorted(self._events.values(), key=lambda e: (e.onset_s, e.kind))
