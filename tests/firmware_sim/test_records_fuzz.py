"""Fuzzing the record readers: whatever a WFDB header, a CSV file or an EDF file holds, reading it
gives a Recording or one line of RecordError, never a raw wfdb, numpy or pyedflib exception.

Each reader has a quick property (150 cases, part of the ordinary run) and a slow-marked one with
many more cases (``ECGSTREAM_RECORD_FUZZ_CASES``, default 5,000 per reader in the slow suite).
Every case writes and reads real files, so cases are dear: measured on the shared 2-core development
box (niced, under load), 20,000 cases per reader took 4.8 min (CSV), 3.7 min (WFDB) and 1.5 min
(EDF), and one 100,000-case WFDB run took 17.6 min (passed). ``ECGSTREAM_RECORD_FUZZ_CASES=100000``
runs the full profile (about 50 min; each slow test has its own one-hour timeout); the default keeps
`make test` within its half hour.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyedflib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_sim.records import RecordError, Recording, RecordWarning, read_record
from firmware_sim.records.wfdb_header import KNOWN_FORMATS

QUICK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_TIMEOUT_S = 3600  # the project's 300 s per-test limit is far too short for 100,000 cases
SLOW = settings(
    max_examples=int(os.environ.get("ECGSTREAM_RECORD_FUZZ_CASES", "5000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _read(path: Path, **kwargs: Any) -> Recording | None:
    """Read ``path``: a sound Recording or a one-line RecordError, and no warning but RecordWarning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rec = read_record(path, **kwargs)
        except RecordError as exc:
            assert str(exc).strip() and "\n" not in str(exc), repr(str(exc))
            rec = None
    strays = [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, RecordWarning)]
    assert not strays, strays
    if rec is not None:
        assert rec.fs > 0 and math.isfinite(rec.fs)
        assert rec.signals.ndim == 2 and rec.signals.shape[1] == len(rec.lead_names) == len(rec.units)
        assert not np.isinf(rec.signals).any()
    return rec


def _in_temp_dir(write: Callable[[Path], Path]) -> Recording | None:
    with tempfile.TemporaryDirectory() as folder:
        return _read(write(Path(folder)))


# --- WFDB headers -------------------------------------------------------------------------------

_NUMBERS = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "0", "-0", "nan", "inf", "-inf", "1e309", "abc", "1_0", "0x10", ".", "-", "+"]),
)
_FS = st.one_of(
    st.sampled_from(["250", "360", "500.5", "-250", "0", "250/1000", "250/-1(5)", "(250)", "1e-300", "1e300"]),
    _NUMBERS,
)
_FORMAT = st.one_of(
    st.sampled_from(KNOWN_FORMATS),
    st.integers(0, 1000).map(str),
    st.builds(
        lambda fmt, spf, skew, offset: f"{fmt}{spf}{skew}{offset}",
        st.sampled_from(["16", "212", "8", "999"]),
        st.sampled_from(["", "x1", "x2", "x0", "x100000"]),
        st.sampled_from(["", ":1", ":99999"]),
        st.sampled_from(["", "+0", "+24", "+7", "+100000"]),
    ),
)
_GAIN = st.builds(
    lambda gain, baseline, units: f"{gain}{baseline}{units}",
    st.one_of(st.sampled_from(["200", "0", "-200", "1e-300", "nan", "inf", ""]), _NUMBERS),
    st.sampled_from(["", "(0)", "(-5)", "(99999999999)", "(x)"]),
    st.sampled_from(["", "/mV", "/uV", "/V", "/NU", "/", "/µV"]),
)
_NAME = st.sampled_from(["II", "V1", "MLII", "ECG", "PLETH", "", "a b c"])


def _mostly(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` five times in six, else ``odd``: most cases get past the first check."""
    return st.integers(0, 5).flatmap(lambda i: valid if i else odd)


_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3, "311": 4 / 3}


@st.composite
def _wfdb_record(draw: st.DrawFn) -> tuple[str, bytes]:
    """A WFDB header and its signal file: mostly sound, with a field or two bent out of shape."""
    if draw(st.integers(0, 19)) == 0:  # now and then, plain noise
        return draw(st.text(max_size=200)), draw(st.binary(max_size=300))
    n_sig = draw(st.integers(1, 3))
    n_frames = draw(st.integers(0, 300))
    fmt = draw(_mostly(st.sampled_from(list(_BYTES_PER_SAMPLE)), _FORMAT))
    size = int(n_frames * n_sig * _BYTES_PER_SAMPLE.get(fmt, 2) + 0.999)
    size = draw(_mostly(st.just(size), st.integers(0, size + 50)))
    signal = draw(st.binary(min_size=size, max_size=size))
    record = [
        draw(_mostly(st.just("rec"), st.sampled_from(["rec/2", "rec/0", "#rec", "rec/1"]))),
        draw(_mostly(st.just(str(n_sig)), _NUMBERS)),
        draw(_mostly(st.sampled_from(["250", "360", "500", "128", "1000/1000(0)"]), _FS)),
        draw(_mostly(st.just(str(n_frames)), st.one_of(st.just(""), _NUMBERS,
                                                     st.integers(0, 400).map(str)))),
    ]
    lines = [" ".join(record[: draw(_mostly(st.just(4), st.integers(1, 4)))])]
    for _ in range(draw(_mostly(st.just(n_sig), st.integers(0, 4)))):
        fields = [
            draw(_mostly(st.just("rec.dat"), st.sampled_from(["~", "other.dat", "../rec.dat", ""]))),
            draw(_mostly(st.just(fmt), _FORMAT)),
            draw(_mostly(st.sampled_from(["200/mV", "1000(0)/mV", "-400(12)/uV", "200", "2e4/V"]), _GAIN)),
            *(draw(_mostly(st.just(v), _NUMBERS)) for v in ("12", "0", "0", "0", "0")),
            draw(_NAME),
        ]
        lines.append(" ".join(fields[: draw(_mostly(st.just(len(fields)), st.integers(1, len(fields))))]))
    if draw(st.integers(0, 3)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), "# a comment")
    return "\n".join(lines) + "\n", signal


def _write_wfdb(header: str, signal: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / "rec.hea").write_text(header, encoding="utf-8", errors="surrogatepass")
        (folder / "rec.dat").write_bytes(signal)
        return folder / "rec.hea"

    return write


def _wfdb_case(header: str, signal: bytes) -> None:
    _in_temp_dir(_write_wfdb(header, signal))


@QUICK
@given(_wfdb_record())
def test_wfdb_headers_fuzz(record: tuple[str, bytes]) -> None:
    _wfdb_case(*record)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
@SLOW
@given(_wfdb_record())
def test_wfdb_headers_fuzz_many(record: tuple[str, bytes]) -> None:
    _wfdb_case(*record)


# --- CSV ----------------------------------------------------------------------------------------

_CELL = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-Infinity", "1e400", "abc", "1_0", "0x1", '"1.0"', "1;2"]),
    st.text(alphabet=st.characters(blacklist_characters=",\n\r"), max_size=6),
)


@st.composite
def _csv_text(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=300))
    columns = draw(st.lists(st.sampled_from(["II", "V1", "v5", "PLETH", "ECG II", "time", "sample", ""]),
                            min_size=1, max_size=4))
    if draw(st.booleans()):
        columns.insert(0, draw(st.sampled_from(["time", "sample"])))
    lines = [f"# fs={draw(_mostly(st.sampled_from(['250', '500', '360.0']), _FS))}"] if draw(st.booleans()) else []
    if draw(st.booleans()):
        lines.append(f"# units={draw(st.sampled_from(['mV', 'uV', 'V', 'NU', 'x']))}")
    lines.append(",".join(columns))
    for row in range(draw(st.integers(0, 12))):
        n = len(columns) + draw(st.integers(0, 99).map(lambda i: {0: -1, 1: 1}.get(i, 0)))
        cells = draw(st.lists(_mostly(st.floats(-10, 10).map(lambda v: f"{v:.3f}"), _CELL),
                              min_size=max(n, 0), max_size=max(n, 0)))
        if columns[0] == "time" and cells and draw(_mostly(st.just(True), st.just(False))):
            cells[0] = f"{row * 0.004:.3f}"
        lines.append(",".join(cells))
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from(["", "# note", "   "])))
    return "\n".join(lines) + "\n"


def _csv_case(text: str, fs: float | None) -> None:
    def write(folder: Path) -> Path:
        path = folder / "rec.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return path

    with tempfile.TemporaryDirectory() as folder:
        _read(write(Path(folder)), fs=fs)


_FS_ARG = _mostly(st.sampled_from([None, 250.0]), st.sampled_from([-250.0, 0.0, math.inf, math.nan, 1e-300]))


@QUICK
@given(_csv_text(), _FS_ARG)
def test_csv_fuzz(text: str, fs: float | None) -> None:
    _csv_case(text, fs)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
@SLOW
@given(_csv_text(), _FS_ARG)
def test_csv_fuzz_many(text: str, fs: float | None) -> None:
    _csv_case(text, fs)


# --- EDF ----------------------------------------------------------------------------------------


def _valid_edf() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "seed.edf"
        headers = [pyedflib.highlevel.make_signal_header(name, "uV", 250, -5000, 5000) for name in ("II", "V1")]
        signals = [np.sin(np.arange(1000) / 20) * 1000, np.cos(np.arange(1000) / 20) * 500]
        pyedflib.highlevel.write_edf(str(path), signals, headers)
        return path.read_bytes()


SEED_EDF = _valid_edf()
_EDF_FIELDS = [0, 8, 88, 168, 176, 184, 192, 236, 244, 252]  # fixed-header field offsets
_EDF_FIELDS += [256 + k for k in (0, 32, 192, 208, 224, 240, 256, 272, 288, 304, 320, 336, 432, 448)]


@st.composite
def _edf_bytes(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=1500))
    data = bytearray(SEED_EDF)
    for _ in range(draw(st.integers(0, 3))):
        offset = draw(st.sampled_from(_EDF_FIELDS) | st.integers(0, len(data) - 1))
        value = draw(st.one_of(_NUMBERS.map(lambda s: s.encode("ascii", "replace")[:8].ljust(8)), st.binary(max_size=8)))
        data[offset : offset + len(value)] = value
    cut = draw(_mostly(st.none(), st.one_of(st.integers(0, len(data)), st.integers(1, 2000))))
    if cut is None:
        return bytes(data)
    return bytes(data[:cut]) if cut <= len(data) else bytes(data) + bytes(cut)


def _edf_case(data: bytes) -> None:
    def write(folder: Path) -> Path:
        path = folder / "rec.edf"
        path.write_bytes(data)
        return path

    _in_temp_dir(write)


@QUICK
@given(_edf_bytes())
def test_edf_fuzz(data: bytes) -> None:
    _edf_case(data)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
@SLOW
@given(_edf_bytes())
def test_edf_fuzz_many(data: bytes) -> None:
    _edf_case(data)


def test_the_seed_edf_reads() -> None:
    def write(folder: Path) -> Path:
        (folder / "seed.edf").write_bytes(SEED_EDF)
        return folder / "seed.edf"

    rec = _in_temp_dir(write)
    assert rec is not None and rec.lead_names == ("II", "V1") and rec.n_samples == 1000
