"""Read ECG from CSV text: one header row of channel names, one row per sample.

Layout::

    # fs=500
    # units=uV            (optional; default mV)
    time,II,V1,V5         (optional first column: ``time`` in s, or ``sample``)
    0.000,0.12,-0.05,0.31
    ...

Comment lines start with ``#`` and may set ``fs=`` and ``units=``. Empty
cells (and ``nan``) are missing samples and become NaN; a cell that is not a
number is refused, naming its line and column; ``inf`` cells become gaps too,
with a warning that counts them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from firmware_sim.records.errors import RecordError
from firmware_sim.records.recording import Recording, from_channels

_SETTING = re.compile(r"\b(fs|units)\s*=\s*([^\s,;]+)", re.IGNORECASE)
_INDEX_COLUMNS = ("time", "sample")


def _preamble(path: Path, lines: list[str]) -> tuple[dict[str, str], list[str], int]:
    """Settings from the leading comments, the header's column names, and the header's line index."""
    settings: dict[str, str] = {}
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#"):
            settings.update((key.lower(), value) for key, value in _SETTING.findall(stripped))
        elif stripped:
            return settings, [name.strip() for name in stripped.split(",")], number
    raise RecordError(f"CSV file {path} has no header row")


def _data_lines(lines: list[str], first: int) -> tuple[list[str], list[int]]:
    """The data rows from line index ``first`` on (inline ``#`` comments dropped, blank lines skipped)
    and each one's line number (1-based)."""
    texts: list[str] = []
    numbers: list[int] = []
    for index in range(first, len(lines)):
        text = lines[index].split("#", 1)[0].strip()
        if text:
            texts.append(text)
            numbers.append(index + 1)
    return texts, numbers


def _cells(path: Path, texts: list[str], numbers: list[int]) -> np.ndarray:
    """The cells of every data row, as stripped strings. Raises :class:`RecordError` for ragged rows."""
    rows = [text.split(",") for text in texts]
    lengths = np.array([len(row) for row in rows])
    odd = np.flatnonzero(lengths != lengths[0])
    if odd.size:
        raise RecordError(
            f"CSV file {path} is malformed: line {numbers[odd[0]]} has {lengths[odd[0]]} cells, "
            f"line {numbers[0]} has {lengths[0]}"
        )
    return np.char.strip(np.array(rows, dtype=str))


def _parse(path: Path, texts: list[str], numbers: list[int], columns: list[str]) -> np.ndarray:
    """The data rows as a float64 table: numpy's fast parser when every cell is a number, else
    cell by cell (empty cells as NaN, the first cell that is not a number refused by line and column)."""
    try:
        return np.loadtxt(texts, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        pass
    return _parse_cells(path, _cells(path, texts, numbers), numbers, columns)


def _parse_cells(path: Path, cells: np.ndarray, numbers: list[int], columns: list[str]) -> np.ndarray:
    """Cells to float64: an empty cell or ``nan`` is a missing sample (NaN); text is refused.

    Raises :class:`RecordError` naming the line, column and text of the first cell that is
    not a number.
    """
    cells = cells.copy()
    cells[cells == ""] = "nan"
    try:
        if np.char.find(cells, "_").max(initial=-1) >= 0:  # float() reads "1_000" as 1000; a file should not
            raise ValueError("underscore")
        return cells.astype(np.float64)
    except ValueError:
        pass
    for row, line in zip(cells, numbers, strict=True):
        for column, cell in enumerate(row):
            try:
                if "_" in cell:
                    raise ValueError(cell)
                float(cell)
            except ValueError:
                name = columns[column] if column < len(columns) else f"#{column + 1}"
                raise RecordError(
                    f"CSV file {path}, line {line}, column {name}: {str(cell)[:40]!r} is not a number "
                    "(leave a cell empty for a missing sample)"
                ) from None
    raise RecordError(f"CSV file {path} holds cells that are not numbers")  # pragma: no cover


def _settled_rate(path: Path, stated: str | None, given: float | None, time: np.ndarray | None) -> float:
    """The one sampling rate the comment, the argument and the time column agree on."""
    rates = {}
    if stated is not None:
        try:
            rates["the '# fs=' comment"] = float(stated)
        except ValueError:
            raise RecordError(f"CSV file {path}: '# fs={stated}' is not a number") from None
    if given is not None:
        rates["the fs argument"] = float(given)
    if time is not None and len(time) > 1:
        steps = np.diff(time)
        if not np.allclose(steps, steps[0], rtol=1e-3, atol=1e-6) or steps[0] <= 0:
            raise RecordError(f"CSV file {path}: the time column is not evenly spaced and increasing")
        rates["the time column"] = 1.0 / float(np.mean(steps))
    if not rates:
        raise RecordError(f"CSV file {path} states no sampling rate: add a '# fs=<Hz>' line or "
                          "pass --fs <Hz> (fs= in Python)")
    first = next(iter(rates.values()))
    if not all(np.isclose(rate, first, rtol=1e-3) for rate in rates.values()):
        listed = ", ".join(f"{rate:g} Hz from {source}" for source, rate in rates.items())
        raise RecordError(f"CSV file {path}: sampling rates disagree ({listed})")
    return first


def read_csv(path: Path, *, fs: float | None = None, units: str | None = None) -> Recording:
    """Read a CSV recording.

    Args:
        path: the ``.csv`` file.
        fs: sampling rate in Hz, for files without a ``# fs=`` comment or ``time``
            column (if both are given they must agree).
        units: unit of every channel (``mV`` default, ``uV``/``µV``, ``V``), for files
            without a ``# units=`` comment (if both are given they must agree).

    Raises :class:`RecordError` for a missing or malformed file, a missing or
    inconsistent rate, rows of the wrong length, or a cell that is not a number.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"cannot read CSV file {path}: {exc}") from exc
    settings, columns, header_line = _preamble(path, lines)
    texts, numbers = _data_lines(lines, header_line + 1)
    if not texts:
        raise RecordError(f"CSV file {path} has no samples")
    data = _parse(path, texts, numbers, columns)
    if data.shape[1] != len(columns):
        raise RecordError(
            f"CSV file {path}: rows have {data.shape[1]} cells but the header names {len(columns)}"
        )
    stated_units = settings.get("units")
    if units is not None and stated_units is not None and units.lower() != stated_units.lower():
        raise RecordError(f"CSV file {path} says units={stated_units} but units={units} was passed")
    unit = units or stated_units or "mV"
    index = columns[0].lower() if columns[0].lower() in _INDEX_COLUMNS else None
    rate = _settled_rate(path, settings.get("fs"), fs, data[:, 0] if index == "time" else None)
    channels = columns[1:] if index else columns
    if not channels:
        raise RecordError(f"CSV file {path} has no signal columns")
    signals = data[:, 1:] if index else data
    return from_channels(signals, rate, channels, [unit] * len(channels), path)
