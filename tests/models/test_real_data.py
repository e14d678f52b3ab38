"""Real-record classifier windows (models.classifier.real_data) on the 53 CinC 2021 tuning records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("wfdb")

from models.classifier.real_data import RealWindows, load_real_windows, open_dataset  # noqa: E402
from models.data.labels import CLASS_INDEX, CLASSES  # noqa: E402
from models.data.records import DatasetError  # noqa: E402
from models.preprocessing import WINDOW_SAMPLES  # noqa: E402
from models.reconstruction import INPUT_INDEX, PREDICTED_INDEX  # noqa: E402

TUNE = Path(__file__).resolve().parents[3] / "shared" / "tune" / "cinc2021"
needs_tune = pytest.mark.skipif(not TUNE.is_dir(), reason=f"{TUNE} not present")

# Records per class in ../shared/tune/SOURCES.md's table, after the vocabulary's equivalences:
# RBBB 2 + JS20052's CRBBB; PVC = VPB (E07548) + PVC (JS14622, JS23463); LQT (E07524, E07529); STD (HR09739).
EXPECTED_RECORDS = {"NSR": 19, "SB": 11, "STACH": 6, "AF": 3, "AFL": 3, "PAC": 5, "PVC": 3, "IAVB": 1,
                    "LBBB": 1, "RBBB": 3, "STD": 1, "LQT": 2}
ALL_NEGATIVE = {"E07528", "E07531", "E07541", "HR12083"}  # LAnFB, NSSTTA, AVB, paced rhythm: no class


@pytest.fixture(scope="module")
def true12() -> RealWindows:
    return load_real_windows(TUNE, reconstruct=None, edge_fraction=0.0, seed=0, progress=False)


@needs_tune
def test_tune_set_gives_one_window_per_record_with_the_sources_md_labels(true12: RealWindows) -> None:
    assert true12.dataset == "cinc"
    assert true12.x.shape == (53, 12, WINDOW_SAMPLES) and true12.x.dtype == np.float32
    assert true12.y.shape == (53, len(CLASSES)) and not true12.edge.any()
    assert len(true12.records) == 53 and not true12.skipped
    assert {k: v for k, v in true12.records_per_class().items() if v} == EXPECTED_RECORDS
    assert np.isfinite(true12.x).all() and 0.05 < float(np.abs(true12.x).max()) < 20  # mV, filtered


@needs_tune
def test_record_ids_carry_each_record_labels(true12: RealWindows) -> None:
    row = {r: i for i, r in enumerate(true12.record_ids)}
    a1041 = true12.y[row["A1041"]]
    assert a1041[CLASS_INDEX["AF"]] == 1 and a1041[CLASS_INDEX["LBBB"]] == 1 and a1041.sum() == 2
    assert true12.rhythms[row["A1041"]] == "cinc:AF+LBBB"
    for record in ALL_NEGATIVE:  # known findings outside the vocabulary: kept, all-negative
        assert true12.y[row[record]].sum() == 0
    assert "445118002" in true12.unmapped  # LAnFB counted as unmapped


@needs_tune
def test_no_class_records_can_be_dropped() -> None:
    ws = load_real_windows(TUNE, reconstruct=None, edge_fraction=0.0, seed=0, keep_no_class=False)
    assert set(ws.skipped) == ALL_NEGATIVE and len(ws) == 53 - len(ALL_NEGATIVE)
    assert (ws.y.sum(axis=1) > 0).all()


@needs_tune
def test_edge_view_changes_only_the_reconstructed_leads(true12: RealWindows) -> None:
    pytest.importorskip("onnxruntime")
    from models.classifier.data import default_reconstructor

    ws = load_real_windows(TUNE, reconstruct=default_reconstructor(), edge_fraction=0.5, seed=3)
    assert ws.record_ids == true12.record_ids
    np.testing.assert_array_equal(ws.y, true12.y)
    assert 0 < int(ws.edge.sum()) < len(ws)
    measured, predicted = list(INPUT_INDEX), list(PREDICTED_INDEX)
    np.testing.assert_allclose(ws.x[:, measured], true12.x[:, measured], atol=1e-5)
    np.testing.assert_array_equal(ws.x[~ws.edge], true12.x[~ws.edge])
    changed = np.abs(ws.x[ws.edge][:, predicted] - true12.x[ws.edge][:, predicted]).max(axis=(1, 2))
    assert (changed > 1e-3).all()
    again = load_real_windows(TUNE, reconstruct=default_reconstructor(), edge_fraction=0.5, seed=3)
    np.testing.assert_array_equal(again.edge, ws.edge)  # the seed decides which windows


def test_a_folder_without_records_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DatasetError, match=str(tmp_path)):
        load_real_windows(tmp_path, reconstruct=None, edge_fraction=0.0, seed=0)
    with pytest.raises(DatasetError, match="not a folder"):
        open_dataset(tmp_path / "missing")


@needs_tune
def test_short_records_are_skipped_with_the_reason(tmp_path: Path) -> None:
    import wfdb

    rec = wfdb.rdrecord(str(TUNE / "E07520"))
    keep = int(8 * rec.fs)
    wfdb.wrsamp("short", fs=rec.fs, units=rec.units, sig_name=rec.sig_name, p_signal=rec.p_signal[:keep],
                fmt=["16"] * rec.n_sig, comments=["Age: 50", "Sex: Male", "Dx: 426783006"], write_dir=str(tmp_path))
    wfdb.wrsamp("long", fs=rec.fs, units=rec.units, sig_name=rec.sig_name, p_signal=rec.p_signal,
                fmt=["16"] * rec.n_sig, comments=["Age: 50", "Sex: Male", "Dx: 426783006"], write_dir=str(tmp_path))
    ws = load_real_windows(tmp_path, reconstruct=None, edge_fraction=0.0, seed=0)
    assert ws.records == ("long",)
    assert "shorter than 10 s" in ws.skipped["short"]


@needs_tune
def test_a_ptbxl_layout_is_detected_and_mapped_from_scp_codes(tmp_path: Path) -> None:
    import wfdb

    rec = wfdb.rdrecord(str(TUNE / "HR09589"))  # a PTB-XL record (500 Hz) from the tuning set
    folder = tmp_path / "records500" / "00000"
    folder.mkdir(parents=True)
    rows = ["ecg_id,patient_id,age,sex,scp_codes,strat_fold,filename_lr,filename_hr"]
    for i, codes in ((1, "{'NORM': 100.0, 'SR': 0.0}"), (2, "{'CRBBB': 100.0, 'SR': 0.0}"), (3, "{}")):
        wfdb.wrsamp(f"{i:05d}_hr", fs=rec.fs, units=rec.units, sig_name=rec.sig_name, p_signal=rec.p_signal,
                    fmt=["16"] * rec.n_sig, write_dir=str(folder))
        rows.append(f'{i},{i},50,0,"{codes}",1,records100/00000/{i:05d}_lr,records500/00000/{i:05d}_hr')
    (tmp_path / "ptbxl_database.csv").write_text("\n".join(rows) + "\n")
    assert open_dataset(tmp_path).name == "ptbxl"
    ws = load_real_windows(tmp_path, reconstruct=None, edge_fraction=0.0, seed=0)
    assert ws.dataset == "ptbxl" and ws.records == ("1", "2") and ws.skipped == {"3": "no diagnosis code"}
    assert ws.rhythms == ("ptbxl:NSR", "ptbxl:NSR+RBBB")
    assert ws.x.shape == (2, 12, WINDOW_SAMPLES)
