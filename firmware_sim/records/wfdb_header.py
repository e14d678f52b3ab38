"""Check a WFDB header before wfdb reads the record: the fields wfdb would silently bend.

wfdb's header parser is lenient where a careful reader must not be: a negative sampling
rate is read as the default 250 Hz, an ADC gain of 0 (the WFDB mark of an uncalibrated
signal) as 200 units/mV, an unknown signal format fails deep inside with a ``KeyError``, and a
header that claims fewer samples than its signal file holds is obeyed without a word.
:func:`check_header` refuses the first three with one :class:`RecordError` line and returns
what :func:`check_sample_count` needs to compare the header's sample count with the files.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from firmware_sim.records.errors import RecordError, RecordWarning

# Bytes a block of samples takes in each WFDB signal format: (samples, bytes).
_BLOCKS: dict[str, tuple[int, int]] = {
    "8": (1, 1), "16": (1, 2), "24": (1, 3), "32": (1, 4), "61": (1, 2), "80": (1, 1), "160": (1, 2),
    "212": (2, 3), "310": (3, 4), "311": (3, 4),
}
_COMPRESSED = ("508", "516", "524")  # FLAC: sizes say nothing about the sample count
KNOWN_FORMATS = (*_BLOCKS, *_COMPRESSED)
"""The WFDB signal formats this reader accepts."""

_FORMAT_FIELD = re.compile(r"(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?")
_DEFAULT_FS = 250.0


@dataclass(frozen=True)
class _SignalFile:
    """One signal file of a record: its name, format, byte offset and samples per frame."""

    name: str
    fmt: str
    offset: int
    samples_per_frame: int


@dataclass(frozen=True)
class HeaderFacts:
    """What the header states: the sample count (None when absent) and its signal files."""

    sig_len: int | None
    files: tuple[_SignalFile, ...]


def _number(text: str, what: str, header: Path) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RecordError(f"WFDB header {header}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RecordError(f"WFDB header {header}: {what} {text!r} is not a finite number")
    return value


def _lines(header: Path) -> list[str]:
    try:
        text = header.read_text(encoding="latin-1")
    except OSError as exc:
        raise RecordError(f"cannot read WFDB header {header}: {exc}") from exc
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _check_rate(header: Path, fields: list[str]) -> None:
    if len(fields) < 3:
        warnings.warn(
            f"WFDB header {header} states no sampling rate; read at the WFDB default {_DEFAULT_FS:g} Hz",
            RecordWarning,
            stacklevel=4,
        )
        return
    fs_text = re.split(r"[/(]", fields[2], maxsplit=1)[0]
    fs = _number(fs_text, "sampling rate", header)
    if fs <= 0:
        raise RecordError(f"WFDB header {header}: sampling rate {fs_text} Hz is not positive")


def _check_integers(header: Path, label: str, fields: list[str]) -> None:
    """ADC resolution, ADC zero, initial value, checksum and block size: whole numbers where present.

    The description may follow any of them, so the first field that is not a number at all ends
    the check; a number that is not whole (``-1.0``, ``4e-85``) is refused.
    """
    for name, text in zip(("ADC resolution", "ADC zero", "initial value", "checksum", "block size"),
                          fields[3:8], strict=False):
        if re.fullmatch(r"-?\d+", text):
            continue
        try:
            float(text)
        except ValueError:
            return
        raise RecordError(f"WFDB header {header}: {label}: {name} {text!r} is not a whole number")


def _check_signal(header: Path, number: int, line: str, *, layout: bool = False) -> _SignalFile:
    fields = line.split()
    label = f"signal {number}" + (f" ({' '.join(fields[8:])})" if len(fields) > 8 else "")
    if len(fields) < 2:
        raise RecordError(f"WFDB header {header}: {label} has no format field")
    _check_integers(header, label, fields)
    spec = _FORMAT_FIELD.fullmatch(fields[1])
    if spec is None:
        raise RecordError(f"WFDB header {header}: {label} has a malformed format field {fields[1]!r}")
    fmt, per_frame, _skew, offset = spec.groups()
    if fields[0] == "~":  # a null signal (no samples stored): only in a multi-segment layout
        if not layout:
            raise RecordError(f"WFDB header {header}: {label} is a null signal ('~'), which only a "
                              "multi-segment layout may have")
        return _SignalFile(fields[0], fmt, 0, 1)
    if fmt not in KNOWN_FORMATS:
        raise RecordError(
            f"WFDB header {header}: {label} has format {fmt}, which is not a WFDB signal format "
            f"(known: {', '.join(KNOWN_FORMATS)})"
        )
    gain_text = re.split(r"[/(]", fields[2], maxsplit=1)[0] if len(fields) > 2 else ""
    gain = _number(gain_text, f"{label}: ADC gain", header) if gain_text else 0.0
    if gain == 0:
        raise RecordError(
            f"WFDB header {header}: {label} has ADC gain {gain_text or 'missing'}, the WFDB mark of an "
            "uncalibrated signal: its amplitude in mV is unknown"
        )
    return _SignalFile(fields[0], fmt, int(offset or 0), int(per_frame or 1) or 1)


_NULL_SEGMENT_FACTOR = 10  # a multi-segment record may be mostly gap, but not more than 10x its data


def _check_segments(header: Path, lines: list[str]) -> None:
    """Check every segment of a multi-segment record, and that its gaps are not out of all proportion.

    Null segments (``~``) are read as NaN arrays of their stated length, so a header could
    otherwise make the reader allocate any amount of memory.
    """
    if len(lines) < 2:
        raise RecordError(f"WFDB header {header}: a multi-segment record without segment lines")
    data, gaps = 0, 0
    for line in lines[1:]:
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise RecordError(f"WFDB header {header}: malformed segment line {line[:60]!r}")
        name, length = fields[0], int(fields[1])
        if name == "~":
            gaps += length
            continue
        segment = header.parent / f"{name}.hea"
        if not re.fullmatch(r"[-\w]+", name) or not segment.is_file():
            raise RecordError(f"WFDB header {header}: segment {name!r} has no header {segment.name}")
        lines_of_segment = _lines(segment)
        if lines_of_segment and "/" in lines_of_segment[0].split()[0]:
            raise RecordError(f"WFDB header {header}: segment {name!r} is itself a multi-segment record")
        facts = check_header(segment, layout=length == 0)
        check_sample_count(segment, facts)
        if facts.sig_len is not None and length and facts.sig_len != length:
            raise RecordError(
                f"WFDB header {header}: segment {name!r} is {length} samples long here, {facts.sig_len} in its header"
            )
        data += length
    if gaps > _NULL_SEGMENT_FACTOR * data:
        raise RecordError(
            f"WFDB header {header}: {gaps} samples of null segments for {data} samples of data; "
            "refusing a record that is almost all gap"
        )


def check_header(header: Path, *, layout: bool = False) -> HeaderFacts:
    """Refuse what wfdb would misread in ``header``; return its sample count and signal files.

    Raises :class:`RecordError` for a sampling rate that is not a positive number, an unknown
    signal format, or an ADC gain of 0 or missing (an uncalibrated signal). Warns
    (:class:`RecordWarning`) when the header states no rate (the WFDB default 250 Hz is used).
    ``layout``: the header is a multi-segment record's layout segment, whose signals are null (``~``).
    """
    lines = _lines(header)
    if not lines:
        raise RecordError(f"WFDB header {header} has no record line")
    record = lines[0].split()
    if len(record) < 2 or not record[1].isdigit():
        raise RecordError(f"cannot read WFDB record {header}: invalid syntax in the record line {lines[0]!r}")
    if "/" in record[0]:
        _check_segments(header, lines)
        return HeaderFacts(None, ())
    _check_rate(header, record)
    n_sig = int(record[1])
    if len(lines) < 1 + n_sig:
        raise RecordError(f"WFDB header {header} names {n_sig} signals but has {len(lines) - 1} signal lines")
    if n_sig == 0:
        raise RecordError(f"WFDB header {header} names no signals")
    files = tuple(
        _check_signal(header, i + 1, line, layout=layout) for i, line in enumerate(lines[1 : 1 + n_sig])
    )
    sig_len = None
    if len(record) > 3:
        if not record[3].isdigit():
            raise RecordError(f"WFDB header {header}: sample count {record[3]!r} is not a whole number")
        sig_len = int(record[3])
        if sig_len == 0 and not layout:
            raise RecordError(f"WFDB header {header} says the record has 0 samples")
    return HeaderFacts(sig_len, files)


def check_sample_count(header: Path, facts: HeaderFacts) -> None:
    """Compare the header's sample count with what its signal files hold.

    Raises :class:`RecordError` when a file holds fewer samples than the header says (the
    record is truncated); warns (:class:`RecordWarning`) when it holds more, and the header's
    count is what gets read. Files that are absent (wfdb reports them) or FLAC-compressed are
    not compared.
    """
    if facts.sig_len is None:
        return
    by_file: dict[str, list[_SignalFile]] = {}
    for signal in facts.files:
        by_file.setdefault(signal.name, []).append(signal)
    for name, signals in by_file.items():
        path = header.parent / name
        fmt = signals[0].fmt
        if fmt not in _BLOCKS or name.startswith("~") or not path.is_file():
            continue
        block_samples, block_bytes = _BLOCKS[fmt]
        per_frame = sum(s.samples_per_frame for s in signals)
        data_bytes = path.stat().st_size - signals[0].offset
        holds = math.floor(Fraction(max(data_bytes, 0) * block_samples, block_bytes * per_frame))
        samples = facts.sig_len * per_frame
        needed = math.ceil(Fraction(samples, block_samples)) * block_bytes  # whole blocks
        # 212 may end in a half block (two bytes for a last odd sample); wfdb reads 310/311 only whole
        least = needed if block_samples == 3 else math.ceil(Fraction(samples * block_bytes, block_samples))
        if data_bytes < least:
            raise RecordError(
                f"WFDB header {header} says {facts.sig_len} samples, but {name} holds {holds}: "
                "the record is truncated"
            )
        if data_bytes > needed:
            warnings.warn(
                f"WFDB header {header} says {facts.sig_len} samples, {name} holds {holds}; "
                f"read {facts.sig_len}",
                RecordWarning,
                stacklevel=3,
            )
