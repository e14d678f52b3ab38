"""The shipped reconstruction artifact, and the real-data evaluation command.

The shipped model is *asserted* only on held-out synthetic windows (a seed never used in training,
calibration or the card's test split). Real-record results are reported in the model card, never
asserted, so nothing is tuned on them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from models.reconstruction import INPUT_INDEX, RECONSTRUCTED_LEADS  # noqa: E402
from models.reconstruction.calibration import coverage  # noqa: E402
from models.reconstruction.evaluate import evaluate_windows  # noqa: E402
from models.reconstruction.linear import LinearBaseline  # noqa: E402
from models.runtime.onnx_model import ARTIFACTS, DEFAULT_RECONSTRUCTION, ReconstructionModel  # noqa: E402
from protocol.leads import STANDARD_LEADS  # noqa: E402

HELD_OUT_SEED = 9_000_001


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    from models.data.synthetic import SyntheticSpec, generate

    return generate(SyntheticSpec(n_windows=192, seed=HELD_OUT_SEED), workers=2).signals


@pytest.mark.slow
def test_shipped_artifact_beats_linear_baseline_on_held_out_synthetic(held_out: np.ndarray) -> None:
    vae = ReconstructionModel.load(DEFAULT_RECONSTRUCTION, providers=["cpu"])
    assert "SYNTHETIC" in vae.info["training_data"]
    baseline = LinearBaseline.load(ARTIFACTS / "reconstruction_linear.json")
    res = evaluate_windows(held_out, {"baseline": baseline.reconstruct, "vae": vae})
    assert res["vae"]["mean_rmse_uv"] < res["baseline"]["mean_rmse_uv"], res
    assert res["vae"]["mean_r"] > res["baseline"]["mean_r"], res
    leads, unc = vae.reconstruct(np.ascontiguousarray(held_out[:, list(INPUT_INDEX)]))
    cov = coverage(held_out - leads, unc)
    for lead in RECONSTRUCTED_LEADS:
        assert 0.8 <= cov[STANDARD_LEADS.index(lead)] <= 0.97, (lead, cov)


def test_shipped_model_card_and_metrics_exist() -> None:
    card = (ARTIFACTS / "reconstruction_vae.md").read_text()
    assert "SYNTHETIC" in card.upper() and "not a medical device" in card.lower()
    m = json.loads((ARTIFACTS / "reconstruction_metrics.json").read_text())
    assert set(m["coverage_synthetic_test"]) == set(RECONSTRUCTED_LEADS)


@pytest.mark.shared_data
def test_eval_cli_writes_the_report_schema(data: Path, tmp_path: Path) -> None:
    from ecgstream.cli import main

    subset = tmp_path / "real"
    subset.mkdir()
    for src in sorted((data / "cinc2021").glob("E0750[0-2].*")) + sorted((data / "ptbxl").glob("*")):
        if src.is_file():
            (subset / src.name).symlink_to(src)
    for ext in (".hea", ".dat"):                      # a 2-lead record: skipped and counted
        (subset / f"100{ext}").symlink_to(data / "mitdb" / f"100{ext}")
    out = tmp_path / "report.json"
    assert main(["models", "eval", "reconstruction", "--data", str(subset), "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["records"] >= 3 and rep["skipped_records"] >= 1
    for name in ("baseline", "vae"):
        assert set(rep[name]["per_lead"]) == set(RECONSTRUCTED_LEADS)
        for v in rep[name]["per_lead"].values():
            assert -1 <= v["r"] <= 1 and v["rmse_uv"] > 0
        assert {"mean_r", "mean_rmse_uv"} <= set(rep[name])
    cal = rep["patient_calibrated"]              # on by default: first 5 s calibrate, last 5 s scored
    assert cal["calibration_s"] == 5.0 and cal["scored_s"] == 5.0 and cal["windows"] == rep["windows"]
    for name in ("baseline", "vae", "baseline_calibrated", "vae_calibrated"):
        assert set(cal[name]["per_lead"]) == set(RECONSTRUCTED_LEADS)
    assert set(cal["vae_calibrated"]["coverage_90"]) == set(RECONSTRUCTED_LEADS)
    off = tmp_path / "off.json"
    assert main(["models", "eval", "reconstruction", "--data", str(subset), "--json", str(off),
                 "--calibration-seconds", "0"]) == 0
    assert "patient_calibrated" not in json.loads(off.read_text())


@pytest.mark.shared_data
def test_calibrate_cli_writes_what_the_edge_reads_and_refuses_a_two_lead_record(data: Path, tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from ecgstream.cli import main
    from models.reconstruction.patient_calibration import CalibrationStore

    out = tmp_path / "cal"
    assert main(["models", "calibrate", "reconstruction", "--reference", str(data / "ptbdb" / "s0010_re.hea"),
                 "--patient", "bed-3", "--out", str(out)]) == 0
    vae = ReconstructionModel.load(DEFAULT_RECONSTRUCTION, providers=["cpu"])
    cal = CalibrationStore(out, model_version=str(vae.info["config_hash"])).get("bed-3")
    assert cal is not None and cal.calibration_s == 30.0 and cal.reference.endswith("s0010_re.hea")
    assert all(cal.in_sample_r[lead] >= cal.generic_r[lead] for lead in cal.in_sample_r)
    assert "wrote" in capsys.readouterr().out
    assert main(["models", "calibrate", "reconstruction", "--reference", str(data / "mitdb" / "100.hea"),
                 "--patient", "bed-4", "--out", str(out)]) != 0
    assert "has no leads" in capsys.readouterr().err and not (out / "bed-4.json").exists()
    assert main(["models", "calibrate", "reconstruction", "--reference", str(data / "ptbdb" / "s0010_re.hea"),
                 "--patient", "../escape", "--out", str(out)]) != 0
