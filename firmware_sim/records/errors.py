"""Errors raised while reading, preparing or replaying a recorded ECG.

Everything here derives from :class:`ValueError`, so a caller replaying many
records can catch :class:`ReplayError` around one record and carry on with the
next; wfdb, pyedflib and numpy errors never escape raw from this package.
When a reader accepts a file but changes what it read (infinite samples made
gaps, a header's shorter sample count obeyed), it says so with a
:class:`RecordWarning`.
"""

from __future__ import annotations

from collections.abc import Sequence


class ReplayError(ValueError):
    """Base class: a recording cannot be read, prepared or replayed."""


class RecordWarning(UserWarning):
    """A record was read, but something in it was changed or assumed; the message says what."""


class RecordError(ReplayError):
    """A record file is missing, unreadable, malformed, or lacks what was asked of it."""


class MissingLeadError(RecordError):
    """A record lacks leads that were asked for.

    The message names the record, the missing leads and the channels it has, e.g.
    ``record 'mitdb/100' has no lead V1 (it has II, V5)``.
    """

    def __init__(self, record: str, missing: Sequence[str], available: Sequence[str]) -> None:
        self.record = record
        self.missing = tuple(missing)
        self.available = tuple(available)
        noun = "lead" if len(self.missing) == 1 else "leads"
        has = ", ".join(self.available) if self.available else "no channels"
        super().__init__(f"record {record!r} has no {noun} {', '.join(self.missing)} (it has {has})")
