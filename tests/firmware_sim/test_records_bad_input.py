"""Bad record files: each is refused with one line of RecordError, or read with a RecordWarning
that says what was changed; nothing is bent silently.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyedflib
import pytest
import wfdb

from firmware_sim.records import RecordError, RecordWarning, fill_gaps, read_record

SINE = (np.sin(np.arange(2500) / 20.0) * 1.5).reshape(-1, 1)  # 10 s at 250 Hz, ±1.5 mV


def _wfdb(folder: Path, name: str, header: str | None = None) -> Path:
    """A one-lead record ``name`` (format 16, 2500 samples); ``header`` replaces the header text."""
    wfdb.wrsamp(name, fs=250, units=["mV"], sig_name=["II"], p_signal=SINE, fmt=["16"],
                adc_gain=[1000.0], baseline=[0], write_dir=str(folder))
    if header is not None:
        (folder / f"{name}.hea").write_text(header.format(name=name))
    return folder / f"{name}.hea"


def _refused(path: Path, message: str, **kwargs: object) -> RecordError:
    with pytest.raises(RecordError, match=message) as caught:
        read_record(path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
    return caught.value


def _no_warning(path: Path, **kwargs: object) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecordWarning)
        read_record(path, **kwargs)  # type: ignore[arg-type]


# --- WFDB -------------------------------------------------------------------------------------


def test_a_sound_header_reads_without_a_word(tmp_path: Path) -> None:
    path = _wfdb(tmp_path, "ok")
    _no_warning(path)
    rec = read_record(path)
    assert (rec.fs, rec.n_samples) == (250, 2500)
    np.testing.assert_allclose(rec.signals, SINE, atol=1e-3)


def test_an_unknown_format_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = _wfdb(tmp_path, "f999", "{name} 1 250 2500\n{name}.dat 999 1000/mV 16 0 0 0 0 II\n")
    _refused(path, r"signal 1 \(II\) has format 999, which is not a WFDB signal format \(known: 8, 16, ")


def test_a_negative_sampling_rate_is_refused(tmp_path: Path) -> None:
    path = _wfdb(tmp_path, "neg", "{name} 1 -250 2500\n{name}.dat 16 1000/mV 16 0 0 0 0 II\n")
    _refused(path, "sampling rate -250 Hz is not positive")


@pytest.mark.parametrize("fs", ["0", "nan", "inf", "fast"])
def test_other_impossible_sampling_rates_are_refused(tmp_path: Path, fs: str) -> None:
    path = _wfdb(tmp_path, "bad", f"{{name}} 1 {fs} 2500\n{{name}}.dat 16 1000/mV 16 0 0 0 0 II\n")
    _refused(path, "sampling rate")


def test_a_header_without_a_rate_is_read_at_250_hz_with_a_warning(tmp_path: Path) -> None:
    path = _wfdb(tmp_path, "nofs", "{name} 1\n{name}.dat 16 1000/mV 16 0 0 0 0 II\n")
    with pytest.warns(RecordWarning, match="states no sampling rate; read at the WFDB default 250 Hz"):
        assert read_record(path).fs == 250


@pytest.mark.parametrize("gain", ["0", "0(0)/mV", "0.0/mV", "-0/mV"])
def test_a_gain_of_zero_is_refused(tmp_path: Path, gain: str) -> None:
    path = _wfdb(tmp_path, "g0", f"{{name}} 1 250 2500\n{{name}}.dat 16 {gain} 16 0 0 0 0 II\n")
    _refused(path, r"signal 1 \(II\) has ADC gain .*uncalibrated signal: its amplitude in mV is unknown")


def test_a_negative_gain_is_an_inverted_lead_and_is_read(tmp_path: Path) -> None:
    path = _wfdb(tmp_path, "inv", "{name} 1 250 2500\n{name}.dat 16 -1000/mV 16 0 0 0 0 II\n")
    np.testing.assert_allclose(read_record(path).signals, -SINE, atol=1e-3)


def test_a_header_claiming_fewer_samples_is_obeyed_with_a_warning(tmp_path: Path) -> None:
    path = _wfdb(tmp_path, "fewer", "{name} 1 250 1000\n{name}.dat 16 1000/mV 16 0 0 0 0 II\n")
    with pytest.warns(RecordWarning, match=r"says 1000 samples, fewer.dat holds 2500; read 1000$"):
        rec = read_record(path)
    assert rec.n_samples == 1000


def test_a_header_claiming_more_samples_than_the_file_holds_is_refused(tmp_path: Path) -> None:
    path = _wfdb(tmp_path, "more", "{name} 1 250 5000\n{name}.dat 16 1000/mV 16 0 0 0 0 II\n")
    _refused(path, "says 5000 samples, but more.dat holds 2500: the record is truncated")


def test_a_212_record_with_an_odd_sample_count_reads_without_a_word(tmp_path: Path) -> None:
    wfdb.wrsamp("odd", fs=250, units=["mV"], sig_name=["II"], p_signal=SINE[:2499], fmt=["212"],
                adc_gain=[200.0], baseline=[0], write_dir=str(tmp_path))
    _no_warning(tmp_path / "odd.hea")
    assert read_record(tmp_path / "odd.hea").n_samples == 2499


def test_non_integer_adc_fields_and_stray_null_signals_are_refused(tmp_path: Path) -> None:
    path = _wfdb(tmp_path, "res", "{name} 1 250 2500\n{name}.dat 16 1000/mV 16 -1.0 0 0 0 II\n")
    _refused(path, r"ADC zero '-1.0' is not a whole number")
    path = _wfdb(tmp_path, "null", "{name} 1 250 2500\n~ 16 1000/mV 16 0 0 0 0 II\n")
    _refused(path, r"is a null signal \('~'\)")


def test_an_unnamed_signal_gets_a_name_by_position(tmp_path: Path) -> None:
    path = _wfdb(tmp_path, "anon", "{name} 1 250 2500\n{name}.dat 16 1000/mV\n")
    assert read_record(path).lead_names == ("signal 1",)


def test_multi_segment_records_are_checked_segment_by_segment(tmp_path: Path) -> None:
    for name in ("seg1", "seg2"):
        _wfdb(tmp_path, name)
    whole = tmp_path / "whole.hea"
    whole.write_text("whole/2 1 250 5000\nseg1 2500\nseg2 2500\n")
    assert read_record(whole).n_samples == 5000
    whole.write_text("whole/3 1 250 100005000\nseg1 2500\n~ 100000000\nseg2 2500\n")
    _refused(whole, "100000000 samples of null segments for 5000 samples of data")
    whole.write_text("whole/2 1 250 5000\nseg1 2500\nseg3 2500\n")
    _refused(whole, "segment 'seg3' has no header seg3.hea")


# --- CSV --------------------------------------------------------------------------------------


def test_text_cells_are_refused_with_their_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "text.csv"
    path.write_text("# fs=250\ntime,II,V1\n0.000,0.1,0.2\n\n# a note\n0.004,0.3,n/a\n0.008,0.2,0.4\n")
    _refused(path, r"text.csv, line 6, column V1: 'n/a' is not a number \(leave a cell empty for a missing sample\)")


@pytest.mark.parametrize("cell", ["1_000", "0x10", '"0.1"', "TRUE"])
def test_other_cells_float_would_bend_are_refused(tmp_path: Path, cell: str) -> None:
    path = tmp_path / "odd.csv"
    path.write_text(f"# fs=250\nII\n0.1\n{cell}\n")
    _refused(path, f"line 4, column II: '{cell}' is not a number".replace('"', '.'))


def test_empty_and_nan_cells_are_still_missing_samples(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("# fs=250\nII,V1\n0.1,nan\n,0.3\n0.2,NaN\n")
    _no_warning(path)
    np.testing.assert_array_equal(np.isnan(read_record(path).signals), [[False, True], [True, False], [False, True]])


def test_infinite_samples_become_gaps_with_a_warning_that_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "inf.csv"
    path.write_text("# fs=250\nII,V1,V5\n0.1,0.2,0.3\ninf,0.3,0.4\n0.2,-inf,0.5\n0.3,0.4,0.6\n")
    with pytest.warns(RecordWarning, match=r"2 infinite samples \(in II, V1\) treated as gaps \(NaN\)"):
        rec = read_record(path)
    assert not np.isinf(rec.signals).any()
    filled, n_filled = fill_gaps(rec)
    assert n_filled == 2
    np.testing.assert_allclose(filled.signals[:, 0], [0.1, 0.15, 0.2, 0.3])  # interpolated, not full scale


def test_a_rate_that_is_not_finite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fast.csv"
    path.write_text("# fs=inf\nII\n0.1\n0.2\n")
    _refused(path, "sampling rate must be positive and finite")


def test_ragged_rows_name_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("# fs=250\nII,V1\n0.1,0.2\n0.1,0.2,0.3\n")
    _refused(path, "is malformed: line 4 has 3 cells, line 3 has 2")


# --- EDF --------------------------------------------------------------------------------------


def _edf(path: Path) -> bytes:
    headers = [pyedflib.highlevel.make_signal_header("II", "mV", 250, -5, 5)]
    pyedflib.highlevel.write_edf(str(path), [SINE[:, 0]], headers)
    return path.read_bytes()


def test_an_edf_file_holding_more_than_its_header_counts_is_read_as_the_header_says(tmp_path: Path) -> None:
    data = _edf(tmp_path / "ok.edf")
    longer = tmp_path / "longer.edf"
    longer.write_bytes(data + bytes(4000))
    with pytest.warns(RecordWarning, match=r"the header says 10 data records, the file holds \d+ .*; read 10"):
        assert read_record(longer).n_samples == 2500


def test_a_truncated_edf_file_is_refused(tmp_path: Path) -> None:
    data = _edf(tmp_path / "ok.edf")
    short = tmp_path / "short.edf"
    short.write_bytes(data[:-700])
    _refused(short, "the header says 10 data records, the file holds 8: it is truncated")


def test_an_absurd_gain_overflowing_to_infinity_gives_gaps_and_one_kind_of_warning(tmp_path: Path) -> None:
    path = _wfdb(tmp_path, "tiny", "{name} 1 250 2500\n{name}.dat 16 1e-300(99999999999)/mV 16 0 0 0 0 II\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = read_record(path)
    assert [w.category for w in caught] == [RecordWarning]
    assert "2500 infinite samples (in II) treated as gaps" in str(caught[0].message)
    assert np.isnan(rec.signals).all()
