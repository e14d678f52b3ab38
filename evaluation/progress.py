"""Progress of a long evaluation on stderr: records done / total, elapsed time, stream time.

An evaluation reports to a :class:`Progress`: :meth:`~Progress.start` with the number of
records, :meth:`~Progress.stream` with the stream seconds replayed so far in the current record
(as often as it likes), :meth:`~Progress.record_done` after each record, :meth:`~Progress.finish`
at the end. :func:`progress_for` picks the display: a rich progress bar on a terminal
(:class:`RichProgress`), otherwise one plain line every few seconds (:class:`LineProgress`), so a
log file or CI output gets a readable heartbeat instead of bar redraws. :class:`NoProgress` shows
nothing (the library default).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar


def format_duration(seconds: float) -> str:
    """``1h02m03s``, ``2m03s`` or ``3.0s``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Where an evaluation reports how far it is; counts records and stream time, shows nothing.

    Subclasses show it; they call the base methods to keep the counts.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.total = 0
        self.done = 0
        self.stream_s = 0.0
        """Stream seconds replayed in the records done (and the current one, as far as reported)."""
        self._finished_s = 0.0
        self._started = clock()

    @property
    def elapsed_s(self) -> float:
        """Wall seconds since :meth:`start`."""
        return self._clock() - self._started

    def start(self, total: int) -> None:
        """An evaluation of ``total`` records begins."""
        self.total, self.done, self.stream_s, self._finished_s = total, 0, 0.0, 0.0
        self._started = self._clock()

    def stream(self, record_s: float) -> None:
        """The current record has been replayed up to ``record_s`` stream seconds."""
        self.stream_s = self._finished_s + max(0.0, record_s)

    def record_done(self, name: str, duration_s: float) -> None:
        """Record ``name`` (``duration_s`` stream seconds long) is done."""
        self.done += 1
        self._finished_s += max(0.0, duration_s)
        self.stream_s = self._finished_s

    def finish(self) -> None:
        """The evaluation ended (normally or not)."""

    def summary(self) -> str:
        """``records 3/20, elapsed 4.2s, stream time 12m30s``."""
        return (f"records {self.done}/{self.total}, elapsed {format_duration(self.elapsed_s)}, "
                f"stream time {format_duration(self.stream_s)}")


class NoProgress(Progress):
    """Shows nothing (the default of the evaluation functions)."""


class LineProgress(Progress):
    """One line on ``out`` (stderr) at most every ``every_s`` wall seconds, and one at the end."""

    def __init__(self, label: str, out: TextIO | None = None, *, every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.label = label
        self.every_s = every_s
        self._out = out
        self._last_line = -float("inf")

    def _write(self) -> None:
        out = self._out if self._out is not None else sys.stderr
        out.write(f"{self.label}: {self.summary()}\n")
        out.flush()
        self._last_line = self._clock()

    def _maybe_write(self) -> None:
        if self._clock() - self._last_line >= self.every_s:
            self._write()

    def start(self, total: int) -> None:
        super().start(total)
        self._last_line = self._clock()   # the first line comes after every_s, not at once

    def stream(self, record_s: float) -> None:
        super().stream(record_s)
        self._maybe_write()

    def record_done(self, name: str, duration_s: float) -> None:
        super().record_done(name, duration_s)
        self._maybe_write()

    def finish(self) -> None:
        if self.total:
            self._write()


class RichProgress(Progress):
    """A rich progress bar (records done / total, elapsed, stream time), on stderr, for a terminal."""

    def __init__(self, label: str, console: Console | None = None) -> None:
        super().__init__()
        self._bar = RichBar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("records"), TimeElapsedColumn(), TextColumn("stream {task.fields[stream]}"),
                            console=console or Console(stderr=True), transient=False)
        self._task = self._bar.add_task(label, total=None, stream=format_duration(0.0), start=False)

    def start(self, total: int) -> None:
        super().start(total)
        self._bar.update(self._task, total=total, completed=0)
        self._bar.start_task(self._task)
        self._bar.start()

    def stream(self, record_s: float) -> None:
        super().stream(record_s)
        self._bar.update(self._task, stream=format_duration(self.stream_s))

    def record_done(self, name: str, duration_s: float) -> None:
        super().record_done(name, duration_s)
        self._bar.update(self._task, completed=self.done, stream=format_duration(self.stream_s))

    def finish(self) -> None:
        self._bar.stop()


def progress_for(label: str, out: TextIO | None = None, *, every_s: float = 5.0) -> Progress:
    """A rich bar when ``out`` (default stderr) is a terminal, else a :class:`LineProgress`."""
    stream = out if out is not None else sys.stderr
    if stream.isatty():
        return RichProgress(label, Console(file=stream))
    return LineProgress(label, out, every_s=every_s)
