"""Exceptions raised by :mod:`firmware_sim.synthesis` on bad requests."""

from __future__ import annotations

from collections.abc import Iterable


class SynthesisError(ValueError):
    """A synthesis request that cannot be honoured (bad duration, rate, parameter, electrode…)."""


class UnknownRhythmError(SynthesisError):
    """A rhythm name that is not in the catalogue; the message lists the valid names."""

    def __init__(self, name: str, valid: Iterable[str]) -> None:
        self.name = name
        self.valid = tuple(valid)
        super().__init__(f"unknown rhythm {name!r}; valid rhythms are: {', '.join(self.valid)}")
