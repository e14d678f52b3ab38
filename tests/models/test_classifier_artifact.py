"""The shipped classifier artifacts (FP32, INT8, ResNet baseline), their cards, and the eval command.

The shipped models are *asserted* only on held-out synthetic windows of a seed never used in
training or in the card's test split. Real-record results are reported in the model card, never
asserted, so nothing is tuned on them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from models.classifier.metrics import multilabel_report  # noqa: E402
from models.data.labels import CLASSES  # noqa: E402
from models.runtime.classifier import DEFAULT_CLASSIFIER, DEFAULT_CLASSIFIER_INT8, ClassifierModel  # noqa: E402
from models.runtime.onnx_model import ARTIFACTS  # noqa: E402
from protocol.leads import STANDARD_LEADS  # noqa: E402

HELD_OUT_SEED = 9_300_001
SHIPPED = {"mamba": DEFAULT_CLASSIFIER, "mamba_int8": DEFAULT_CLASSIFIER_INT8,
           "resnet": ARTIFACTS / "classifier_resnet.onnx", "resnet_int8": ARTIFACTS / "classifier_resnet_int8.onnx"}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_classifier_declares_its_classes_leads_and_version(name: str) -> None:
    clf = ClassifierModel.load(SHIPPED[name], providers=["cpu"])
    assert clf.classes == CLASSES and clf.leads == STANDARD_LEADS
    assert clf.samples == 1250 and clf.info["fs_hz"] == 125.0
    assert set(clf.snomed) == set(CLASSES) and "426783006" in clf.snomed["NSR"]
    assert clf.info["precision"] == ("int8" if name.endswith("int8") else "fp32")
    assert clf.model.metadata["version"].startswith(f"classifier_{name.split('_')[0]}")
    assert "SYNTHETIC" in clf.info["training_data"]


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Held-out synthetic windows: true 12 leads, their edge view (II, V1, V5 → VAE), targets."""
    from models.classifier.data import build_windows, default_reconstructor
    from models.data.synthetic import SyntheticSpec, generate

    s = generate(SyntheticSpec(n_windows=256, seed=HELD_OUT_SEED), workers=2)
    true12 = build_windows(s.signals, s.rhythms, seed=HELD_OUT_SEED, edge_fraction=0.0, noise_fraction=0.05,
                           reconstruct=None)
    edge = build_windows(s.signals, s.rhythms, seed=HELD_OUT_SEED, edge_fraction=1.0, noise_fraction=0.05,
                         reconstruct=default_reconstructor())
    return true12.x, edge.x, true12.y


@pytest.mark.slow
def test_shipped_mamba_classifies_held_out_synthetic_windows_and_int8_keeps_its_accuracy(held_out) -> None:  # noqa: ANN001
    true12, edge, y = held_out
    fp32 = ClassifierModel.load(DEFAULT_CLASSIFIER, providers=["cpu"])
    int8 = ClassifierModel.load(DEFAULT_CLASSIFIER_INT8, providers=["cpu"])
    for x in (true12, edge):
        p32, p8 = fp32.predict(x), int8.predict(x)
        a32 = multilabel_report(y, p32)["macro_auroc"]
        a8 = multilabel_report(y, p8)["macro_auroc"]
        assert a32 > 0.9, a32
        assert a8 > a32 - 0.02, (a32, a8)
        assert np.median(np.abs(p32 - p8)) < 0.02


@pytest.mark.slow
def test_shipped_resnet_baseline_classifies_held_out_synthetic_windows(held_out) -> None:  # noqa: ANN001
    _, edge, y = held_out
    resnet = ClassifierModel.load(ARTIFACTS / "classifier_resnet.onnx", providers=["cpu"])
    assert multilabel_report(y, resnet.predict(edge))["macro_auroc"] > 0.9


def test_shipped_model_cards_and_metrics_exist() -> None:
    for arch in ("mamba", "resnet"):
        card = (ARTIFACTS / f"classifier_{arch}.md").read_text()
        assert "SYNTHETIC" in card and "not a medical device" in card.lower()
        m = json.loads((ARTIFACTS / f"classifier_{arch}_metrics.json").read_text())
        assert set(m["held_out_synthetic"]["edge"]["onnx_int8"]["per_class"]) == set(CLASSES)
        ev = json.loads((ARTIFACTS / f"classifier_{arch}_eval_cinc2021.json").read_text())
        assert ev["records"] > 0 and {"true12", "edge"} <= set(ev)


@pytest.mark.shared_data
def test_eval_cli_writes_the_report_schema_with_absent_classes(data: Path, tmp_path: Path) -> None:
    from ecgstream.cli import main

    subset = tmp_path / "real"
    subset.mkdir()
    for src in sorted((data / "cinc2021").glob("E075[01]*"))[:16]:
        (subset / src.name).symlink_to(src)
    out = tmp_path / "report.json"
    assert main(["models", "eval", "classifier", "--data", str(subset), "--json", str(out),
                 "--bootstrap", "50"]) == 0
    rep = json.loads(out.read_text())
    assert rep["records"] == 8 and rep["skipped_records"] == 0
    for view in ("true12", "edge"):
        r = rep[view]
        assert set(r["per_class"]) == set(CLASSES)
        for c in CLASSES:
            e = r["per_class"][c]
            if rep["label_counts"][c] == 0:
                assert e["status"] == "absent" and e["positives"] == 0  # absent, not a zero AUROC or F1
                assert "auroc" not in e and e["sensitivity"] is None and e["f1"] is None
                assert e["tp"] == e["fn"] == 0 and e["specificity"] == e["tn"] / 8
                assert c in r["classes_absent"]
            elif e["status"] == "present":
                assert 0.0 <= e["auroc"] <= 1.0 and len(e["auroc_ci95"]) == 2
        assert r["macro_auroc"] is None or 0.0 <= r["macro_auroc"] <= 1.0


def test_eval_cli_refuses_a_folder_without_cinc_records(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ecgstream.commands.models import models

    res = CliRunner().invoke(models, ["eval", "classifier", "--data", str(tmp_path), "--json",
                                      str(tmp_path / "r.json")])
    assert res.exit_code != 0 and "no WFDB headers" in res.output
    assert not (tmp_path / "r.json").exists()


def test_edge_backend_stage_runs_the_shipped_classifier_on_reconstructed_leads() -> None:
    """The edge's own second stage (``ClassifierStage`` over ``OnnxRuntimeBackend``) takes the artifact as is:
    it measures the rhythm features the model reads and passes the shipped thresholds on."""
    from edge.inference.backends import OnnxRuntimeBackend
    from edge.inference.classifier_stage import ClassifierStage
    from edge.inference.pipeline import StageBatch
    from models.runtime.onnx_model import ReconstructionModel

    x3 = np.random.default_rng(1).normal(0, 0.3, (3, 3, 1250)).astype(np.float32)
    leads12, unc = ReconstructionModel.load(providers=["cpu"]).reconstruct(x3)
    for path in (DEFAULT_CLASSIFIER, DEFAULT_CLASSIFIER_INT8):
        stage = ClassifierStage(OnnxRuntimeBackend(path))
        assert "classifier_mamba" in stage.version and stage.features_name == "features"
        out = stage(StageBatch(windows=[object()] * 3, model_input=x3, leads12=leads12, uncertainty=unc,  # type: ignore[list-item]
                               lead_names=STANDARD_LEADS))
        reference = ClassifierModel.load(path, providers=["cpu"])
        assert len(out) == 3 and list(out[1]["probabilities"]) == list(CLASSES)
        np.testing.assert_allclose(list(out[1]["probabilities"].values()), reference.predict(leads12)[1], atol=1e-6)
        assert out[1]["thresholds"] == pytest.approx(dict(reference.info["thresholds"]))
