"""Reading recorded ECG (WFDB, EDF, CSV) and the transforms on :class:`Recording`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyedflib
import pytest
import wfdb
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from firmware_sim.records import (
    MissingLeadError,
    RecordError,
    Recording,
    ReplayError,
    channel_name,
    fill_gaps,
    iter_records,
    rational_ratio,
    read_annotations,
    read_record,
    resample,
    rhythm_aux,
    select_leads,
    write_annotations,
)
from protocol.leads import STANDARD_LEADS, WEARABLE_LEADS


def _recording(
    signals: np.ndarray, fs: float, leads: tuple[str, ...], name: str = "test/synthetic"
) -> Recording:
    return Recording(signals=signals, fs=fs, lead_names=leads, name=name)


# --- reading WFDB ---------------------------------------------------------------------------------

PTB_CHANNELS = (*STANDARD_LEADS, "vx", "vy", "vz")


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("record", "fs", "n_samples", "leads", "units"),
    [
        ("cinc2021/E07500", 500, 5000, STANDARD_LEADS, ("mV",) * 12),
        ("cinc2021/JS20000.mat", 500, 5000, STANDARD_LEADS, ("mV",) * 12),
        ("cinc2021/HR06000.hea", 500, 5000, STANDARD_LEADS, ("mV",) * 12),  # header says 'mv'
        ("ptbdb/s0010_re", 1000, 38400, PTB_CHANNELS, ("mV",) * 15),
        ("ptbxl/00001_lr", 100, 1000, STANDARD_LEADS, ("mV",) * 12),
        ("mitdb/100", 360, 650000, ("II", "V5"), ("mV", "mV")),
        ("mitdb/208.dat", 360, 650000, ("II", "V1"), ("mV", "mV")),
        ("svdb/800", 128, 230400, ("ECG", "ECG"), ("mV", "mV")),
        ("challenge2015/a103l", 250, 82500, ("II", "V", "PLETH"), ("mV", "mV", "NU")),
        ("challenge2015/v102s", 250, 75000, ("II", "V", "PLETH", "RESP"), ("mV", "mV", "NU", "NU")),
    ],
)
def test_read_wfdb_records(
    data: Path, record: str, fs: int, n_samples: int, leads: tuple, units: tuple
) -> None:
    rec = read_record(data / record)
    reference = wfdb.rdrecord(str((data / record).with_suffix("")) if "." in record else str(data / record))
    assert rec.fs == fs
    assert rec.signals.shape == (n_samples, len(leads))
    assert rec.lead_names == leads
    assert rec.units == units
    assert rec.name == record.split(".")[0]
    assert rec.duration_s == pytest.approx(n_samples / fs)
    np.testing.assert_array_equal(rec.signals, reference.p_signal)


@pytest.mark.shared_data
def test_every_cinc2021_record_reads_as_ten_seconds_of_twelve_leads(data: Path) -> None:
    headers = list(iter_records(data / "cinc2021"))
    assert len(headers) == 39
    for header in headers:
        rec = read_record(header)
        assert (rec.fs, rec.n_samples, rec.lead_names) == (500, 5000, STANDARD_LEADS)
        assert not np.isnan(rec.signals).any()


@pytest.mark.shared_data
def test_iter_records_finds_every_record_sorted_and_skips_label_tables(data: Path) -> None:
    found = list(iter_records(data))
    assert found == sorted(found)
    assert found == sorted(data.rglob("*.hea"))  # dx_mapping_*.csv and CPSC2019 .mat are not records
    assert len(found) == 67


def test_iter_records_on_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="is not a folder"):
        list(iter_records(tmp_path / "nowhere"))


# --- invalid samples ------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_wfdb_invalid_samples_stay_nan_until_filled(data: Path) -> None:
    rec = read_record(data / "challenge2015/v102s")
    missing = np.isnan(rec.signals)
    assert missing.sum() == 23
    filled, count = fill_gaps(rec)
    assert count == 23
    assert not np.isnan(filled.signals).any()
    np.testing.assert_array_equal(filled.signals[~missing], rec.signals[~missing])
    row, col = np.argwhere(missing[:, :2])[0]  # an ECG gap: linear between its valid neighbours
    t = np.flatnonzero(~missing[:, col])
    assert filled.signals[row, col] == pytest.approx(np.interp(row, t, rec.signals[t, col]))


def test_fill_gaps_holds_edge_values_and_leaves_complete_records_alone() -> None:
    signals = np.array([[np.nan, 1.0], [2.0, 1.0], [np.nan, 1.0], [4.0, 1.0], [np.nan, 1.0]])
    rec = _recording(signals, 250, ("II", "V1"))
    filled, count = fill_gaps(rec)
    assert count == 3
    np.testing.assert_array_equal(filled.signals[:, 0], [2.0, 2.0, 3.0, 4.0, 4.0])
    again, zero = fill_gaps(filled)
    assert again is filled and zero == 0


def test_fill_gaps_refuses_a_channel_with_no_valid_sample() -> None:
    rec = _recording(np.array([[np.nan, 1.0], [np.nan, 2.0]]), 250, ("II", "V1"))
    with pytest.raises(RecordError, match="channel II has no valid samples"):
        fill_gaps(rec)


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 60), st.integers(1, 4)),
        elements=st.floats(-5, 5, allow_nan=False),
    ),
    st.data(),
)
def test_fill_gaps_fills_exactly_the_nans(values: np.ndarray, draw: st.DataObject) -> None:
    mask = draw.draw(arrays(np.bool_, values.shape))
    mask[0] &= mask.sum(axis=0) < len(mask)  # keep one valid sample per channel
    signals = np.where(mask, np.nan, values)
    filled, count = fill_gaps(_recording(signals, 100, ("I", "II", "III", "V1")[: values.shape[1]]))
    assert count == mask.sum()
    assert not np.isnan(filled.signals).any()
    np.testing.assert_array_equal(filled.signals[~mask], values[~mask])
    lo, hi = np.nanmin(signals, axis=0), np.nanmax(signals, axis=0)
    assert np.all((filled.signals >= lo) & (filled.signals <= hi))  # interpolation never overshoots


# --- lead selection -------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_missing_lead_error_names_the_record_and_its_leads(data: Path) -> None:
    rec = read_record(data / "mitdb/100")
    with pytest.raises(MissingLeadError) as caught:
        select_leads(rec, WEARABLE_LEADS)
    assert str(caught.value) == "record 'mitdb/100' has no lead V1 (it has II, V5)"
    assert isinstance(caught.value, RecordError | ReplayError | ValueError)
    assert caught.value.missing == ("V1",) and caught.value.available == ("II", "V5")
    with pytest.raises(MissingLeadError) as caught:
        select_leads(read_record(data / "svdb/800"))
    assert str(caught.value) == "record 'svdb/800' has no leads II, V1, V5 (it has ECG, ECG)"


@pytest.mark.shared_data
def test_select_leads_maps_lowercase_labels_and_keeps_the_requested_order(data: Path) -> None:
    rec = read_record(data / "ptbdb/s0010_re")
    raw = wfdb.rdrecord(str(data / "ptbdb/s0010_re")).p_signal
    picked = select_leads(rec, ("v5", "ii", "V1", "vx"))
    assert picked.lead_names == ("V5", "II", "V1", "vx")
    np.testing.assert_array_equal(picked.signals, raw[:, [10, 1, 6, 12]])
    assert (picked.fs, picked.name) == (rec.fs, rec.name)


@pytest.mark.shared_data
def test_derived_limb_leads_match_the_recorded_ones(data: Path) -> None:
    rec = read_record(data / "ptbdb/s0010_re")
    only_i_iii = select_leads(rec, ("I", "III", "V1", "V5"))
    with pytest.raises(MissingLeadError, match="has no lead II "):
        select_leads(only_i_iii, WEARABLE_LEADS)
    derived = select_leads(only_i_iii, ("II", "aVR", "aVL", "aVF"), derive=True)
    recorded = select_leads(rec, ("II", "aVR", "aVL", "aVF"))
    np.testing.assert_allclose(derived.signals, recorded.signals, atol=1.5e-3)  # 3 ADC steps of 0.5 µV


def test_derivation_is_exact_einthoven_and_goldberger() -> None:
    i, ii = np.random.default_rng(0).normal(size=(2, 500))
    rec = _recording(np.column_stack([ii - i, -(i + ii) / 2]), 500, ("III", "aVR"))
    out = select_leads(rec, ("I", "II", "aVL", "aVF"), derive=True)
    np.testing.assert_allclose(out.signals, np.column_stack([i, ii, i - ii / 2, ii - i / 2]), atol=1e-12)
    with pytest.raises(MissingLeadError, match="no lead V1"):
        select_leads(rec, ("V1",), derive=True)


# --- resampling -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("fs_in", "fs_out"), [(360, 250), (128, 250), (1000, 500), (500, 130), (100, 250)])
def test_resampling_keeps_a_sines_frequency_amplitude_and_duration(fs_in: float, fs_out: float) -> None:
    duration, freqs, amps = 8.0, np.array([7.0, 11.0]), np.array([1.5, 0.4])
    t_in = np.arange(int(duration * fs_in)) / fs_in
    rec = _recording(amps * np.sin(2 * np.pi * freqs * t_in[:, None]), fs_in, ("II", "V5"))
    out = resample(rec, fs_out)
    assert out.fs == fs_out
    assert out.n_samples == math.ceil(rec.n_samples * fs_out / fs_in)
    assert abs(out.duration_s - rec.duration_s) < 1 / fs_out
    t_out = np.arange(out.n_samples) / fs_out
    interior = (t_out > 0.5) & (t_out < duration - 0.5)
    expected = amps * np.sin(2 * np.pi * freqs * t_out[:, None])
    np.testing.assert_allclose(out.signals[interior], expected[interior], atol=0.01 * amps.max())


@pytest.mark.shared_data
def test_resampling_a_real_record_keeps_its_duration(data: Path) -> None:
    rec = select_leads(read_record(data / "mitdb/100"), ("II", "V5"))
    out = resample(rec, 250)
    assert out.n_samples == 451389 and out.lead_names == ("II", "V5")
    assert abs(out.duration_s - rec.duration_s) < 1 / 250
    assert np.mean(rec.signals, axis=0) == pytest.approx(np.mean(out.signals, axis=0), abs=1e-3)


def test_resampling_refuses_nans_and_skips_same_rate() -> None:
    rec = _recording(np.array([[0.0], [np.nan], [1.0]]), 360, ("II",))
    with pytest.raises(RecordError, match="1 missing .NaN. samples; fill_gaps"):
        resample(rec, 250)
    assert resample(rec, 360.0) is rec
    with pytest.raises(ValueError, match="must be positive"):
        resample(rec, 0)


def test_rational_ratio() -> None:
    assert rational_ratio(360, 250) == (25, 36)
    assert rational_ratio(128, 250) == (125, 64)
    assert rational_ratio(1000, 130) == (13, 100)
    assert rational_ratio(250, 250) == (1, 1)


@settings(max_examples=25, deadline=None)
@given(st.integers(50, 1000), st.integers(50, 1000), st.integers(1, 400))
def test_resampling_preserves_duration_for_any_integer_rates(fs_in: int, fs_out: int, n: int) -> None:
    rec = _recording(np.ones((n, 2)), fs_in, ("II", "V1"))
    out = resample(rec, fs_out)
    assert out.n_samples == math.ceil(n * fs_out / fs_in)
    assert abs(out.duration_s - rec.duration_s) < 1 / fs_out


# --- EDF ------------------------------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.parametrize(("dimension", "per_mv"), [("uV", 1e3), ("mV", 1.0), ("V", 1e-3)])
def test_edf_round_trip_of_a_real_record(data: Path, tmp_path: Path, dimension: str, per_mv: float) -> None:
    rec = read_record(data / "mitdb/100")
    ten_s = rec.signals[: 10 * 360]
    headers = [
        pyedflib.highlevel.make_signal_header(
            label,
            dimension=dimension,
            sample_frequency=360,
            physical_min=-5 * per_mv,
            physical_max=5 * per_mv,
            digital_min=-32768,
            digital_max=32767,
        )
        for label in ("ECG MLII", "EKG V5")
    ]
    path = tmp_path / "mitdb100.edf"
    assert pyedflib.highlevel.write_edf(str(path), np.ascontiguousarray(ten_s.T * per_mv), headers)
    back = read_record(path)
    assert (back.fs, back.lead_names, back.units) == (360, ("II", "V5"), ("mV", "mV"))
    assert back.name == f"{tmp_path.name}/mitdb100" and back.source_path == path
    resolution_mv = 10 / 65535
    np.testing.assert_allclose(back.signals, ten_s, atol=resolution_mv)


def test_edf_errors(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="cannot read EDF file"):
        read_record(tmp_path / "absent.edf")
    garbage = tmp_path / "garbage.edf"
    garbage.write_bytes(b"not an EDF file at all")
    with pytest.raises(RecordError, match="cannot read EDF file"):
        read_record(garbage)
    mixed = tmp_path / "mixed.edf"
    headers = [pyedflib.highlevel.make_signal_header("II", "mV", rate, -5, 5) for rate in (250, 125)]
    pyedflib.highlevel.write_edf(str(mixed), [np.zeros(2500), np.zeros(1250)], headers)
    with pytest.raises(RecordError, match=r"mixes sampling rates \(II: 250 Hz, II: 125 Hz\)"):
        read_record(mixed)


# --- CSV ------------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_csv_round_trip_with_time_column_and_rate_comment(data: Path, tmp_path: Path) -> None:
    rec = read_record(data / "ptbxl/00001_lr")
    path = tmp_path / "ptbxl.csv"
    table = np.column_stack([np.arange(rec.n_samples) / rec.fs, rec.signals])
    np.savetxt(
        path,
        table,
        delimiter=",",
        fmt="%.6f",
        comments="",
        header="# fs=100\ntime," + ",".join(label.lower() for label in rec.lead_names),
    )
    back = read_record(path)
    assert (back.fs, back.lead_names, back.units, back.name) == (
        100,
        STANDARD_LEADS,
        ("mV",) * 12,
        f"{tmp_path.name}/ptbxl",
    )
    np.testing.assert_allclose(back.signals, rec.signals, atol=5e-7)


@pytest.mark.shared_data
def test_csv_in_microvolts_with_sample_column_and_fs_argument(data: Path, tmp_path: Path) -> None:
    rec = select_leads(read_record(data / "cinc2021/E07500"), WEARABLE_LEADS)
    path = tmp_path / "e07500.csv"
    table = np.column_stack([np.arange(rec.n_samples), rec.signals * 1000])
    np.savetxt(path, table, delimiter=",", fmt="%.3f", header="sample,II,V1,V5", comments="")
    back = read_record(path, fs=500, units="uV")
    assert (back.fs, back.lead_names, back.units) == (500, WEARABLE_LEADS, ("mV",) * 3)
    np.testing.assert_allclose(back.signals, rec.signals, atol=5e-7)


def test_csv_rate_from_time_column_and_empty_cells_as_nan(tmp_path: Path) -> None:
    path = tmp_path / "gappy.csv"
    path.write_text("time,II,PLETH\n0.000,0.1,5\n0.004,,6\n0.008,0.3,7\n")
    rec = read_record(path)
    assert rec.fs == pytest.approx(250)
    assert rec.lead_names == ("II", "PLETH")
    np.testing.assert_array_equal(np.isnan(rec.signals), [[False, False], [True, False], [False, False]])


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("II,V1\n0,1\n", {}, "states no sampling rate: add a '# fs=<Hz>' line or pass --fs <Hz>"),
        (
            "# fs=250\nII,V1\n0,1\n",
            {"fs": 500},
            r"sampling rates disagree \(250 Hz from the '# fs=' comment, 500 Hz from the fs argument\)",
        ),
        ("# fs=fast\nII\n0\n", {}, "'# fs=fast' is not a number"),
        ("# fs=250\n# units=uV\nII\n0\n", {"units": "mV"}, "says units=uV but units=mV was passed"),
        ("# fs=250\nII,V1\n0,1\n2,3,4\n", {}, "is malformed"),
        ("# fs=250\nII,V1\n0,1,2\n", {}, "rows have 3 cells but the header names 2"),
        ("# fs=250\nII,V1\n", {}, "has no samples"),
        ("# fs=250\n", {}, "has no header row"),
        ("time,II\n0,1\n0.5,1\n0.6,1\n", {}, "not evenly spaced"),
    ],
)
def test_csv_errors(tmp_path: Path, text: str, kwargs: dict, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(RecordError, match=message):
        read_record(path, **kwargs)


# --- dispatch and read errors ---------------------------------------------------------------------


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r"no record at .*/nothing: .*/nothing.hea does not exist"):
        read_record(tmp_path / "nothing")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(RecordError, match="is not a WFDB, EDF or CSV record"):
        read_record(other)
    with pytest.raises(RecordError, match=r"no record at .*/absent.hea: .*/absent.hea does not exist"):
        read_record(tmp_path / "absent.hea")
    with pytest.raises(RecordError, match="cannot read CSV file"):
        read_record(tmp_path / "absent.csv", fs=250)


def test_malformed_wfdb_records(tmp_path: Path) -> None:
    (tmp_path / "bad.hea").write_text("this is not a header\n")
    with pytest.raises(RecordError, match="cannot read WFDB record .*bad.hea: invalid syntax"):
        read_record(tmp_path / "bad")
    (tmp_path / "nodat.hea").write_text("nodat 1 250 100\nnodat.dat 16 200 16 0 0 0 0 II\n")
    with pytest.raises(RecordError, match="cannot read WFDB record .*nodat.hea: .*No such file"):
        read_record(tmp_path / "nodat.hea")


@pytest.mark.shared_data
def test_header_rate_and_units_cannot_be_overridden(data: Path) -> None:
    assert read_record(data / "mitdb/100", fs=360).fs == 360
    with pytest.raises(RecordError, match="record 'mitdb/100' is sampled at 360 Hz, not 250 Hz"):
        read_record(data / "mitdb/100", fs=250)
    with pytest.raises(RecordError, match="units= is for CSV files"):
        read_record(data / "mitdb/100", units="uV")
    with pytest.raises(RecordError, match="is not a WFDB, EDF or CSV record"):
        read_record(next((data / "cpsc2019/data").glob("*.mat")))


# --- the Recording itself -------------------------------------------------------------------------


def test_recording_validates_and_is_read_only() -> None:
    with pytest.raises(RecordError, match=r"signals of shape \(10, 2\) do not match 3 channel names"):
        _recording(np.zeros((10, 2)), 250, ("II", "V1", "V5"))
    with pytest.raises(RecordError, match="sampling rate must be positive"):
        _recording(np.zeros((10, 1)), 0, ("II",))
    source = np.zeros((10, 1))
    rec = _recording(source, 250, ("II",))
    assert rec.units == ("mV",) and rec.duration_s == 0.04 and rec.source_path is None
    with pytest.raises(ValueError, match="read-only"):
        rec.signals[0, 0] = 1.0
    source[0, 0] = 2.0  # the caller's array stays writeable


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("ii", "II"),
        ("MLII", "II"),
        ("avr", "aVR"),
        ("ECG V5", "V5"),
        ("EKG-aVF", "aVF"),
        ("PLETH", "PLETH"),
        (" vx ", "vx"),
    ],
)
def test_channel_names(label: str, name: str) -> None:
    assert channel_name(label) == name


# --- WFDB annotations -----------------------------------------------------------------------------


def test_beats_and_rhythm_changes_round_trip_through_an_annotation_file(tmp_path: Path) -> None:
    beats = [(90, "N"), (300, "N"), (480, "V"), (700, "A")]
    written = write_annotations(tmp_path / "rec", 360.0, beats, [(0, "(N"), (480, "(VT")])
    assert written == tmp_path / "rec.atr"
    back = read_annotations(tmp_path / "rec")
    assert back is not None and back.extension == "atr" and back.fs == 360.0
    assert back.beats() == beats
    assert back.rhythm_changes() == [(0, "(N"), (480, "(VT")]


def test_a_record_without_annotations_has_none(tmp_path: Path) -> None:
    assert read_annotations(tmp_path / "nothing") is None
    with pytest.raises(RecordError, match="cannot read the 'qrs' annotations"):
        read_annotations(tmp_path / "nothing", "qrs")


@pytest.mark.shared_data
def test_mitdb_annotations_give_beat_symbols_and_rhythm_labels(data: Path) -> None:
    ann = read_annotations(data / "mitdb/208.hea")
    assert ann is not None
    symbols = {s for _, s in ann.beats()}
    assert {"N", "V", "F"} <= symbols and "+" not in symbols
    assert ann.rhythm_changes()[0] == (ann.rhythm_changes()[0][0], "(N")
    assert any(label == "(T" for _, label in ann.rhythm_changes())


def test_simulator_rhythms_have_physionet_rhythm_labels() -> None:
    assert (rhythm_aux("afib"), rhythm_aux("vt"), rhythm_aux("sinus")) == ("(AFIB", "(VT", "(N")
