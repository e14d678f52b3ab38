"""Training from a config (tiny: seconds): artifacts, metrics, resumable checkpoints, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from models.classifier.config import load_config  # noqa: E402
from models.classifier.train import load_trained, train_classifier  # noqa: E402
from models.data.labels import CLASSES  # noqa: E402
from models.runtime.classifier import ClassifierModel  # noqa: E402

TINY = Path(__file__).resolve().parents[2] / "models" / "configs" / "classifier_tiny.toml"


@pytest.mark.slow
def test_tiny_training_writes_fp32_int8_weights_and_metrics(tmp_path: Path) -> None:
    cfg = load_config(TINY)
    res = train_classifier(cfg, "mamba", tmp_path, progress=False, echo=lambda _: None)
    assert res is not None
    m = json.loads(res.metrics_path.read_text())
    for view in ("true12", "edge"):
        for kind in ("torch_fp32", "onnx_fp32", "onnx_int8"):
            rep = m["held_out_synthetic"][view][kind]
            assert set(rep["per_class"]) == set(CLASSES)
            assert rep["macro_auroc"] is None or 0.0 <= rep["macro_auroc"] <= 1.0
    assert m["onnx_vs_torch_max_abs"] < 1e-4 and "SYNTHETIC" in m["training_data"]
    assert m["int8_macro_auroc_change"].keys() == {"true12", "edge"}
    x = np.random.default_rng(0).normal(0, 0.3, (3, 12, 1250)).astype(np.float32)
    fp32 = ClassifierModel.load(res.onnx_path, providers=["cpu"]).predict(x)
    int8 = ClassifierModel.load(res.int8_path, providers=["cpu"]).predict(x)
    assert fp32.shape == int8.shape == (3, len(CLASSES))
    reloaded = load_trained(tmp_path / "classifier_mamba.pt")
    with torch.no_grad():
        np.testing.assert_allclose(torch.sigmoid(reloaded(torch.from_numpy(x))).numpy(), fp32, atol=1e-4)


@pytest.mark.slow
def test_interrupted_training_resumes_to_the_same_weights(tmp_path: Path) -> None:
    cfg = load_config(TINY)
    full = train_classifier(cfg, "resnet", tmp_path / "a", progress=False, echo=lambda _: None)
    assert train_classifier(cfg, "resnet", tmp_path / "b", progress=False, stop_after_epoch=1,
                            echo=lambda _: None) is None
    assert (tmp_path / "b" / "checkpoints" / "classifier_resnet_last.pt").exists()
    lines: list[str] = []
    resumed = train_classifier(cfg, "resnet", tmp_path / "b", resume=True, progress=False, echo=lines.append)
    assert any("resuming" in line for line in lines)
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, msg=k)


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path: Path) -> None:
    from models.classifier.config import config_from_dict

    cfg = load_config(TINY)
    assert train_classifier(cfg, "resnet", tmp_path, progress=False, stop_after_epoch=1, echo=lambda _: None) is None
    other = config_from_dict({**cfg.to_dict(), "train": {**cfg.to_dict()["train"], "lr": 1e-3}})
    with pytest.raises(ValueError, match="another config"):
        train_classifier(other, "resnet", tmp_path, resume=True, progress=False, echo=lambda _: None)


@pytest.mark.slow
def test_train_cli_runs_the_tiny_config(tmp_path: Path) -> None:
    from ecgstream.cli import main

    assert main(["models", "train", "classifier", "--config", str(TINY), "--arch", "resnet", "--out",
                 str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "classifier_resnet.onnx").exists() and (tmp_path / "classifier_resnet_int8.onnx").exists()


def test_train_cli_reports_a_bad_config_clearly(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ecgstream.commands.models import models

    bad = tmp_path / "bad.toml"
    bad.write_text("[mamba]\nd_modle = 3\n")
    res = CliRunner().invoke(models, ["train", "classifier", "--config", str(bad)])
    assert res.exit_code != 0 and "unknown key" in res.output
