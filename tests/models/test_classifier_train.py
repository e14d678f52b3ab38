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


TUNE = Path(__file__).resolve().parents[3] / "shared" / "tune" / "cinc2021"


def _featured_tiny(tmp_path: Path, **data: object) -> Path:
    """The tiny config with rhythm features, domain randomisation and shards (2 × 32 windows)."""
    text = TINY.read_text().replace("train_windows = 96", "train_windows = 64\nshard_windows = 32")
    text = text.replace('cache_dir = "out/cache/synthetic"', f'cache_dir = "{tmp_path / "cache"}"')
    for key, value in data.items():
        text = text.replace("[data]\n", f"[data]\n{key} = {json.dumps(value)}\n")
    text += "\n[augment]\nenabled = true\n\n[inputs]\nrhythm_features = true\nfeature_hidden = 8\n"
    path = tmp_path / "tiny_featured.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_sharded_featured_training_ships_a_model_that_measures_its_own_features(tmp_path: Path) -> None:
    from models.features import N_FEATURES

    cfg = load_config(_featured_tiny(tmp_path))
    res = train_classifier(cfg, "mamba", tmp_path / "out", progress=False, echo=lambda _: None)
    assert res is not None
    model = ClassifierModel.load(res.onnx_path, providers=["cpu"])
    assert model.features_name == "features" and model.info["features"][-1] == "valid"
    assert len(model.info["features"]) == N_FEATURES
    assert sorted((tmp_path / "cache").glob("shard-*.npz")).__len__() == 2   # one shard per epoch, made once
    x = np.random.default_rng(1).normal(0, 0.3, (2, 12, 1250)).astype(np.float32)
    int8 = ClassifierModel.load(res.int8_path, providers=["cpu"])
    assert model.predict(x).shape == int8.predict(x).shape == (2, len(CLASSES))
    assert "domain-randomised" in res.metrics["training_data"]


@pytest.mark.slow
@pytest.mark.skipif(not TUNE.is_dir(), reason="../shared/tune is not present")
def test_cli_trains_on_real_records_resumes_and_calibrates_thresholds_on_them(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ecgstream.cli import cli as main

    cfg = _featured_tiny(tmp_path)
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    base = ["models", "train", "classifier", "--config", str(cfg), "--arch", "resnet", "--out", str(out),
            "--checkpoints", str(ckpt), "--data", str(TUNE), "--quiet"]
    first = CliRunner().invoke(main, [*base, "--real-only"])
    assert first.exit_code == 0, first.output
    assert "53 real windows" in first.output
    m = json.loads((out / "classifier_resnet_metrics.json").read_text())
    assert m["thresholds"] is None and "real records" in m["training_data"]
    # a finished run resumed with --calibrate trains nothing more, calibrates and re-exports
    again = CliRunner().invoke(main, [*base, "--real-only", "--resume", "--calibrate", str(TUNE)])
    assert again.exit_code == 0, again.output
    assert "calibrated on 53 real records" in again.output and "epoch 1:" not in again.output
    m = json.loads((out / "classifier_resnet_metrics.json").read_text())
    assert set(m["thresholds"]) == set(CLASSES) and all(0.0 <= t <= 1.0 for t in m["thresholds"].values())
    assert m["calibration_cv"]["records"] == 53
    shipped = ClassifierModel.load(out / "classifier_resnet.onnx", providers=["cpu"])
    assert shipped.thresholds_shipped and dict(shipped.thresholds) == pytest.approx(m["thresholds"])


def test_train_cli_refuses_real_only_without_data(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ecgstream.cli import cli as main

    r = CliRunner().invoke(main, ["models", "train", "classifier", "--config", str(TINY), "--real-only",
                                  "--out", str(tmp_path)])
    assert r.exit_code != 0 and "--real-only needs --data" in r.output
