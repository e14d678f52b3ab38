"""What the alarm evaluation scores against: the records it finds and their references.

* **CPSC 2021** (AF): the record class is the header comment, parsed by
  :func:`models.data.cpsc2021.record_class`; reference AF episodes come from the ``.atr`` rhythm
  annotations as :mod:`models.data.cpsc2021` reads them
  (:func:`models.data.records.read_annotations`, ``style="episodes"``): an ``(AFIB`` (or ``(AFL``)
  opens an episode and the next ``(N`` closes it on that beat; an episode still open at the end
  runs to the end of the record. In seconds, a closed episode ends at its closing beat, and one that
  reaches the record's last sample (open, or closed on that sample, as CPSC 2021's persistent-AF
  records are) at the record's end, so a record in AF throughout has no non-AF time.
* **PhysioNet/CinC 2015** (false alarms): the header names the alarm (``Asystole``,
  ``Ventricular_Tachycardia``, …) and whether it was true or false.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_sim.records import RecordError, Recording
from models.data.cpsc2021 import record_class
from models.data.records import header_comments, read_annotations

__all__ = [
    "AF_CLASS_NAMES",
    "CHALLENGE2015_ALARMS",
    "AfEpisode",
    "Found",
    "af_class",
    "af_episodes",
    "challenge2015_alarm",
    "find_records",
]

AF_CLASS_NAMES = {"non_af": "non AF", "paroxysmal_af": "paroxysmal AF", "persistent_af": "persistent AF"}
"""CPSC 2021 record class (:data:`models.data.cpsc2021.RECORD_CLASSES`) → its name in reports."""

CHALLENGE2015_ALARMS = {
    "asystole": "asystole",
    "extreme_bradycardia": "extreme_bradycardia",
    "extreme_tachycardia": "extreme_tachycardia",
    "ventricular_tachycardia": "vt",
    "ventricular_flutter_fib": "vf",
}
"""PhysioNet/CinC 2015 alarm names (lower case) → the edge's ``alert_type``."""


@dataclass(frozen=True)
class AfEpisode:
    """One reference AF episode, in record seconds."""

    start_s: float
    end_s: float


def af_class(comments: Sequence[str]) -> str | None:
    """CPSC 2021 record class (``"non AF"``, ``"paroxysmal AF"``, ``"persistent AF"``) from the header
    comments, or None when the record is not of that kind."""
    klass = record_class(list(comments))
    return None if klass is None else AF_CLASS_NAMES[klass]


def challenge2015_alarm(comments: Sequence[str]) -> tuple[str, bool] | None:
    """(alarm name, true alarm?) from a PhysioNet/CinC 2015 header, or None."""
    lowered = [line.strip().lower() for line in comments]
    alarm = next((line for line in lowered if line in CHALLENGE2015_ALARMS), None)
    verdict = next((line for line in lowered if line in ("true alarm", "false alarm")), None)
    if alarm is None or verdict is None:
        return None
    return alarm, verdict == "true alarm"


def af_episodes(base: str | os.PathLike[str], fs: float, sig_len: int) -> list[AfEpisode]:
    """Reference AF episodes of the record at ``base`` (``fs`` Hz, ``sig_len`` samples) from its ``.atr``."""
    base = Path(base)
    # the annotations need only where the record is and how long: a signal-less stand-in says it
    where = Recording(np.zeros((sig_len, 0)), fs, (), base.name, source_path=base.with_name(f"{base.name}.hea"))
    episodes = []
    for r in read_annotations(where, "atr", style="episodes").rhythms:
        end = r.stop if r.stop >= sig_len else r.stop - 1   # closed earlier: on its closing beat (stop exclusive)
        if end > r.start:
            episodes.append(AfEpisode(r.start / fs, end / fs))
    return episodes


@dataclass(frozen=True)
class Found:
    """A record the alarm evaluation reads."""

    base: Path
    name: str
    kind: str
    """``af`` (CPSC 2021 layout) or ``alarm`` (PhysioNet/CinC 2015)."""
    comments: tuple[str, ...] = ()


def find_records(root: str | os.PathLike[str]) -> Iterator[Found]:
    """CPSC 2021-style records (AF class comment + ``.atr``) and PhysioNet 2015 alarm records under ``root``."""
    root = Path(root)
    for hea in sorted(root.rglob("*.hea")):
        base = hea.with_suffix("")
        try:
            comments = header_comments(hea)
        except RecordError:  # not a record this evaluation reads
            continue
        name = str(base.relative_to(root)) if base.parent != root else base.name
        if af_class(comments) is not None and hea.with_suffix(".atr").is_file():
            yield Found(base, name, "af", tuple(comments))
        elif challenge2015_alarm(comments) is not None:
            yield Found(base, name, "alarm", tuple(comments))
