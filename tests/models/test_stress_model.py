"""The stress model: training and leave-one-subject-out evaluation on tiny synthetic sets, and the runtime's
results per the project's contract (the shipped artifact)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firmware_sim.synthesis import synthesize
from models.runtime.stress import DEFAULT_STRESS, StressModel, stress_adapter
from models.stress import CLASSES
from protocol.leads import STANDARD_LEADS

TINY = "models/configs/stress_tiny.toml"


def _windows(state: str | None, seeds: range, fs: float = 250.0) -> np.ndarray:
    params = {state: 1.0} if state else {}
    return np.stack([synthesize("sinus", seconds=10, fs=fs, seed=s, params=params).signals.T for s in seeds]
                    ).astype(np.float32)


@pytest.mark.slow
def test_loso_eval_writes_the_report_shape(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ecgstream.commands.models import models

    out = tmp_path / "loso.json"
    res = CliRunner().invoke(models, ["eval", "stress", "--config", TINY, "--subjects", "2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["subjects"] == 2 and report["source"] == "synthetic"
    assert 0.0 <= report["loso"]["accuracy"] <= 1.0 and 0.0 <= report["loso"]["macro_f1"] <= 1.0
    assert set(report["loso"]["per_class"]) == set(CLASSES)
    assert set(report["loso"]["per_subject"]) == {"sim-6-0", "sim-6-1"}
    assert set(report["loso"]["stress_vs_rest"]) == {"accuracy", "sensitivity", "specificity"}
    assert "leave-one-subject-out" in res.output
    assert report["artifact"]["trained_on"] == "synthetic"                # the shipped model, scored as it is


@pytest.mark.slow
def test_the_exported_graph_computes_what_the_trained_network_does(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from models.stress.config import load_config
    from models.stress.data import synthetic_set
    from models.stress.train import fit, predict, train_stress

    cfg = load_config(TINY)
    data = synthetic_set(2, 1, seed=3)
    train_stress(cfg, tmp_path, data, echo=lambda _: None)
    runtime = StressModel.load(tmp_path / "stress_transformer.onnx")
    onnx_out = runtime.model.run(ecg=data.windows[:, None, :], features=data.features)["probabilities"]
    np.testing.assert_allclose(onnx_out, predict(fit(data, cfg), data.windows, data.features), atol=1e-4)
    assert runtime.trained_on == "synthetic"


def test_stress_vs_rest_reads_the_confusion_matrix() -> None:
    from models.stress.metrics import one_vs_rest

    # rows true, columns predicted: baseline, stress, amusement
    assert one_vs_rest(np.array([[8, 2, 0], [1, 9, 0], [0, 0, 10]]), 1) == {
        "accuracy": 0.9, "sensitivity": 0.9, "specificity": 0.9}


@pytest.fixture(scope="module")
def shipped() -> StressModel:
    if not DEFAULT_STRESS.exists():
        pytest.fail(f"{DEFAULT_STRESS} is not shipped (ecgstream models train stress --out models/artifacts)")
    return StressModel.load()


def test_runtime_results_follow_the_contract(shipped: StressModel) -> None:
    results = shipped.run(_windows("stress", range(2)), 250.0, STANDARD_LEADS)
    assert len(results) == 2
    for r in results:
        assert set(r) == {"estimate", "probabilities", "hrv", "note"}
        assert r["estimate"] in CLASSES and list(r["probabilities"]) == list(CLASSES)
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert r["estimate"] == max(r["probabilities"], key=r["probabilities"].get)
        assert set(r["hrv"]) == {"hr_bpm", "rmssd_ms", "sdnn_ms", "pnn50", "lf_hf", "resp_rate_bpm"}
        assert 40 < r["hrv"]["hr_bpm"] < 160
        assert r["note"] == "estimate from a model trained on synthetic data"
    json.dumps(results)
    assert shipped.version.startswith("stress-transformer-")
    assert shipped.run(np.zeros((0, 12, 2500), np.float32), 250.0, STANDARD_LEADS) == []


def test_runtime_reads_lead_ii_of_a_three_lead_wearable_at_125_hz(shipped: StressModel) -> None:
    three = _windows(None, range(1), fs=125.0)[:, [1, 6, 10], :]      # II, V1, V5
    (r,) = shipped.run(three, 125.0, ("II", "V1", "V5"))
    assert r["estimate"] in CLASSES


def test_stressed_subjects_read_as_more_stressed_than_at_rest(shipped: StressModel) -> None:
    seeds = range(900, 912)                                    # subjects the model never saw
    rest = shipped.run(_windows(None, seeds), 250.0, STANDARD_LEADS)
    stress = shipped.run(_windows("stress", seeds), 250.0, STANDARD_LEADS)
    p_rest = np.mean([r["probabilities"]["stress"] for r in rest])
    p_stress = np.mean([r["probabilities"]["stress"] for r in stress])
    assert p_stress > p_rest + 0.2
    assert np.mean([r["hrv"]["hr_bpm"] for r in stress]) > np.mean([r["hrv"]["hr_bpm"] for r in rest])


def test_windows_without_lead_ii_or_too_short_are_refused(shipped: StressModel) -> None:
    w = _windows(None, range(1))
    with pytest.raises(ValueError, match="lead II"):
        shipped.run(w[:, [0, 6, 10], :], 250.0, ("I", "V1", "V5"))
    with pytest.raises(ValueError, match="10 s"):
        shipped.run(w[:, :, :1000], 250.0, STANDARD_LEADS)


def test_the_cloud_adapter_opens_the_artifact_a_spec_names() -> None:
    class Spec:
        path = DEFAULT_STRESS

    if DEFAULT_STRESS.exists():
        assert isinstance(stress_adapter(Spec()), StressModel)


def test_the_cloud_worker_hosts_it_as_kind_stress(shipped: StressModel) -> None:
    from cloud.model_worker.adapters import ADAPTERS, default_specs
    from cloud.model_worker.hosted import ModelSpec

    assert "stress" in ADAPTERS
    assert any(s.kind == "stress" and s.path == DEFAULT_STRESS for s in default_specs())
    adapter = ADAPTERS["stress"](ModelSpec(name="stress", path=DEFAULT_STRESS, kind="stress"))
    assert adapter.version == shipped.version
    x = _windows("stress", range(2), fs=125.0)[:, [1], :]                 # lead II only, as the worker hands it
    (first, _) = adapter.run(x, 125.0, ("II",))
    assert first["estimate"] in CLASSES and first["note"].startswith("estimate from a model trained on")


def test_the_card_says_synthetic_and_reports_the_shipped_evaluation() -> None:
    card = DEFAULT_STRESS.with_suffix(".md").read_text(encoding="utf-8")
    report = json.loads((DEFAULT_STRESS.parent / "stress_transformer_eval_synthetic.json").read_text())
    assert "Trained on synthetic data only" in card and "Not a medical device" in card
    assert "ecgstream models eval stress" in card and "Must not be used for" in card
    assert report["source"] == "synthetic" and report["subjects"] >= 12
    assert f"{report['loso']['accuracy']:.3f}" in card and f"{report['loso']['macro_f1']:.3f}" in card
