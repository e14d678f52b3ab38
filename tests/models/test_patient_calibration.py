"""Patient calibration of the reconstruction: fitted on a patient's own 12 leads, it must beat the
generic model on the part of the recording it did not see, keep its band honest, and refuse what it
cannot use. Synthetic patients (a seed never used in training) and the shipped ONNX model; no mocks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from models.reconstruction import INPUT_INDEX, PREDICTED_INDEX, RECONSTRUCTED_LEADS  # noqa: E402
from models.reconstruction.calibration import coverage  # noqa: E402
from models.reconstruction.evaluate import lead_metrics  # noqa: E402
from models.reconstruction.patient_calibration import (  # noqa: E402
    CalibrationError,
    CalibrationStore,
    PatientCalibration,
    fit_calibration,
)
from models.runtime.onnx_model import ReconstructionModel  # noqa: E402
from protocol.leads import STANDARD_LEADS  # noqa: E402

HELD_OUT_SEED = 9_000_002
HALF = 625


@pytest.fixture(scope="module")
def vae() -> ReconstructionModel:
    return ReconstructionModel.load(providers=["cpu"])


@pytest.fixture(scope="module")
def patients() -> np.ndarray:
    from models.data.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(n_windows=48, seed=HELD_OUT_SEED, rhythm_weights={"sinus": 3.0, "pvc": 1.0, "afib": 1.0})
    return generate(spec, workers=1).signals.astype(np.float64)


def first_half() -> np.ndarray:
    mask = np.zeros((1, 1250), dtype=bool)
    mask[:, :HALF] = True
    return mask


def test_calibration_beats_generic_on_unseen_samples_with_an_honest_band(vae, patients) -> None:  # type: ignore[no-untyped-def]
    x = np.ascontiguousarray(patients[:, list(INPUT_INDEX)], dtype=np.float32)
    g12, gunc = vae.reconstruct(x)
    c12, cunc = np.empty_like(g12), np.empty_like(gunc)
    for i in range(len(patients)):
        cal = fit_calibration(patients[i : i + 1], vae.reconstruct, patient_id=f"p{i}", model_version="m",
                              mask=first_half())
        c12[i], cunc[i] = cal.apply(x[i], g12[i], gunc[i])
        measured = [STANDARD_LEADS.index(lead) for lead in ("II", "V1", "V5")]
        np.testing.assert_array_equal(c12[i, measured], x[i])          # measured leads untouched
        assert (cunc[i, measured] == 0).all()
        lead_i, lead_ii = c12[i, 0], c12[i, 1]
        np.testing.assert_allclose(c12[i, 2], lead_ii - lead_i, atol=1e-5)   # Einthoven still holds
    truth = patients[..., HALF:]
    generic = lead_metrics(truth, g12[..., HALF:])
    calibrated = lead_metrics(truth, c12[..., HALF:])
    assert calibrated["mean_r"] > generic["mean_r"] + 0.01, (generic["mean_r"], calibrated["mean_r"])
    assert calibrated["mean_rmse_uv"] < generic["mean_rmse_uv"]
    cov = coverage(truth - c12[..., HALF:], cunc[..., HALF:])
    for lead in RECONSTRUCTED_LEADS:
        assert 0.8 <= cov[STANDARD_LEADS.index(lead)] <= 0.97, (lead, cov)


def test_saved_calibration_reloads_to_the_same_output(vae, patients, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cal = fit_calibration(patients[:1], vae.reconstruct, patient_id="bed-7", model_version="abc", reference="adm.hea")
    back = PatientCalibration.load(cal.save(tmp_path / "bed-7.json"))
    assert back.version == cal.version and back.reference == "adm.hea" and back.calibration_s == 10.0
    x = np.ascontiguousarray(patients[1:3, list(INPUT_INDEX)], dtype=np.float32)
    g12, gunc = vae.reconstruct(x)
    for a, b in zip(cal.apply(x, g12, gunc), back.apply(x, g12, gunc), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert set(back.in_sample_r) == {STANDARD_LEADS[i] for i in PREDICTED_INDEX}


def test_unusable_references_are_refused_with_the_reason(vae, patients) -> None:  # type: ignore[no-untyped-def]
    short = np.zeros((1, 1250), dtype=bool)
    short[:, :100] = True
    with pytest.raises(CalibrationError, match="too short"):
        fit_calibration(patients[:1], vae.reconstruct, patient_id="p", model_version="m", mask=short)
    flat = patients[:1].copy()
    flat[:, list(INPUT_INDEX)] = 0.0
    with pytest.raises(CalibrationError, match="flat"):
        fit_calibration(flat, vae.reconstruct, patient_id="p", model_version="m")
    bad = patients[:1].copy()
    bad[0, 7, 10] = np.nan
    with pytest.raises(CalibrationError, match="NaN"):
        fit_calibration(bad, vae.reconstruct, patient_id="p", model_version="m")
    with pytest.raises(CalibrationError, match="windows, 12, samples"):
        fit_calibration(patients[0], vae.reconstruct, patient_id="p", model_version="m")


def test_store_uses_only_good_files_for_the_running_model(vae, patients, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = CalibrationStore(tmp_path, model_version="m1")
    assert store.get("nobody") is None and not store.problems
    cal = fit_calibration(patients[:1], vae.reconstruct, patient_id="a", model_version="m1")
    cal.save(tmp_path / "a.json")
    assert store.get("a") is not None and store.get("a").version == cal.version
    other = fit_calibration(patients[1:2], vae.reconstruct, patient_id="b", model_version="m0")
    other.save(tmp_path / "b.json")
    assert store.get("b") is None and "fitted on m0" in store.problems["b"]
    other.save(tmp_path / "c.json")                                   # holds patient b
    assert store.get("c") is None and "holds patient 'b'" in store.problems["c"]
    (tmp_path / "d.json").write_text("{not json")
    assert store.get("d") is None and "cannot read" in store.problems["d"]
    (tmp_path / "e.json").write_text(json.dumps({**cal.to_dict(), "weights": [[1.0, 2.0]]}))
    assert store.get("e") is None and "5x3" in store.problems["e"]
    # a file replaced on disk is read again
    newer = fit_calibration(patients[2:3], vae.reconstruct, patient_id="a", model_version="m1")
    newer.save(tmp_path / "a.json")
    st = (tmp_path / "a.json").stat()
    os.utime(tmp_path / "a.json", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert store.get("a") is not None and np.allclose(store.get("a").weights, newer.weights)
    (tmp_path / "a.json").unlink()
    assert store.get("a") is None
    assert CalibrationStore(None, model_version="m1").get("a") is None
