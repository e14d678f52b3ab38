"""The 3→12 lead reconstruction: tiny training end to end, export fidelity, lead relations, uncertainty, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from models.reconstruction import (  # noqa: E402
    INPUT_INDEX,
    PREDICTED_LEADS,
    RECONSTRUCTED_LEADS,
    assemble_leads,
    assemble_uncertainty,
)
from models.reconstruction.calibration import coverage, fit_band_scale  # noqa: E402
from models.reconstruction.config import load_config  # noqa: E402
from models.reconstruction.export import FP32_TOLERANCE_MV, max_difference  # noqa: E402
from models.reconstruction.linear import LinearBaseline  # noqa: E402
from models.runtime.onnx_model import ReconstructionModel  # noqa: E402
from protocol.leads import STANDARD_LEADS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "models" / "configs" / "reconstruction_tiny.toml"
L = STANDARD_LEADS.index


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    cfg = load_config(TINY)
    cache = tmp_path_factory.getbasetemp().parent / "ecgstream-synth-cache"
    return replace(cfg, data=replace(cfg.data, cache_dir=str(cache)))


@pytest.fixture(scope="module")
def trained(tiny_cfg, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from models.reconstruction.train import train_reconstruction

    out = tmp_path_factory.mktemp("tiny")
    result = train_reconstruction(tiny_cfg, out, progress=False, echo=lambda _s: None)
    assert result is not None
    return result


@pytest.fixture(scope="module")
def windows(tiny_cfg):  # type: ignore[no-untyped-def]
    from models.data.synthetic import SyntheticSpec, load_or_generate

    d = tiny_cfg.data
    return load_or_generate(SyntheticSpec(n_windows=d.test_windows, seed=d.test_seed), d.cache_dir).signals[:16]


# --- numpy parts -------------------------------------------------------------------------------------

def test_assemble_follows_einthoven_goldberger_and_passes_inputs() -> None:
    rng = np.random.default_rng(0)
    x, p = rng.normal(size=(2, 3, 50)), rng.normal(size=(2, 5, 50))
    out = assemble_leads(x, p)
    i, ii = out[:, L("I")], out[:, L("II")]
    np.testing.assert_allclose(out[:, L("III")], ii - i)
    np.testing.assert_allclose(out[:, L("aVR")], -(i + ii) / 2)
    np.testing.assert_allclose(out[:, L("aVL")], i - ii / 2)
    np.testing.assert_allclose(out[:, L("aVF")], ii - i / 2)
    np.testing.assert_array_equal(out[:, list(INPUT_INDEX)], x)
    np.testing.assert_array_equal(out[:, [L(n) for n in PREDICTED_LEADS]], p)
    u = assemble_uncertainty(np.abs(p))
    assert (u[:, list(INPUT_INDEX)] == 0).all()
    np.testing.assert_allclose(u[:, L("aVR")], np.abs(p[:, 0]) / 2)


def test_linear_baseline_recovers_a_linear_map(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(5, 3)), rng.normal(size=5)
    sig = np.zeros((20, 12, 100))
    sig[:, list(INPUT_INDEX)] = rng.normal(size=(20, 3, 100))
    sig[:, [L(n) for n in PREDICTED_LEADS]] = np.einsum("ij,njt->nit", w, sig[:, list(INPUT_INDEX)]) + b[:, None]
    fit = LinearBaseline.fit(sig)
    np.testing.assert_allclose(fit.weights, w, atol=1e-8)
    back = LinearBaseline.load(fit.save(tmp_path / "lin.json"))
    np.testing.assert_allclose(back.weights, w, atol=1e-8)


def test_calibration_reaches_nominal_coverage() -> None:
    rng = np.random.default_rng(2)
    sigma = rng.uniform(0.5, 2.0, size=(200, 2, 100))
    err = rng.normal(size=sigma.shape) * sigma * np.array([3.0, 0.5])[None, :, None]
    k = fit_band_scale(err, sigma)
    np.testing.assert_allclose(k, [3.0, 0.5], rtol=0.05)
    cov = coverage(err, 1.6448536 * k[None, :, None] * sigma)
    np.testing.assert_allclose(cov, 0.9, atol=0.01)


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochz = 3\n")
    with pytest.raises(ValueError, match="epochz"):
        load_config(bad)


# --- the trained tiny model ------------------------------------------------------------------------

@pytest.mark.slow
def test_tiny_training_writes_loadable_artifacts(trained) -> None:  # type: ignore[no-untyped-def]
    assert trained.onnx_path.exists() and trained.linear_path.exists()
    m = json.loads(trained.metrics_path.read_text())
    assert m["training_data"].startswith("SYNTHETIC")
    assert set(m["coverage_synthetic_test"]) == set(RECONSTRUCTED_LEADS)
    assert m["onnx_vs_torch_max_abs_mv"] <= FP32_TOLERANCE_MV
    model = ReconstructionModel.load(trained.onnx_path, providers=["cpu"])
    assert json.loads(model.model.metadata["ecgstream"])["training_data"].startswith("SYNTHETIC")


@pytest.mark.slow
def test_onnx_equals_pytorch_on_trained_weights(trained, windows) -> None:  # type: ignore[no-untyped-def]
    x = np.ascontiguousarray(windows[:, list(INPUT_INDEX)])
    assert max_difference(trained.model, trained.onnx_path, x) <= FP32_TOLERANCE_MV


@pytest.mark.slow
def test_onnx_output_lead_relations_passthrough_and_uncertainty(trained, windows) -> None:  # type: ignore[no-untyped-def]
    model = ReconstructionModel.load(trained.onnx_path, providers=["cpu"])
    x = np.ascontiguousarray(windows[:, list(INPUT_INDEX)])
    leads, unc = model.reconstruct(x)
    assert leads.shape == unc.shape == (len(x), 12, 1250)
    np.testing.assert_array_equal(leads[:, list(INPUT_INDEX)], x)            # measured: unchanged
    i, ii = leads[:, L("I")], leads[:, L("II")]
    tol = dict(atol=1e-6, rtol=0)
    np.testing.assert_allclose(leads[:, L("III")], ii - i, **tol)
    np.testing.assert_allclose(leads[:, L("aVR")], -(i + ii) / 2, **tol)
    np.testing.assert_allclose(leads[:, L("aVL")], i - ii / 2, **tol)
    np.testing.assert_allclose(leads[:, L("aVF")], ii - i / 2, **tol)
    assert (unc[:, list(INPUT_INDEX)] == 0).all()
    rec = [L(n) for n in RECONSTRUCTED_LEADS]
    assert (unc[:, rec] > 0).all()
    np.testing.assert_allclose(unc[:, L("aVR")], unc[:, L("I")] / 2, rtol=1e-6)
    one, one_unc = model.reconstruct(x[0])                                    # a single window
    np.testing.assert_allclose(one, leads[0], atol=1e-6)
    with pytest.raises(ValueError, match="1250"):
        model.reconstruct(x[:, :, :1000])


@pytest.mark.slow
def test_resume_continues_to_the_same_weights(tiny_cfg, trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from models.reconstruction.train import CHECKPOINT, train_reconstruction

    quiet = dict(progress=False, echo=lambda _s: None)
    assert train_reconstruction(tiny_cfg, tmp_path, stop_after_epoch=1, **quiet) is None
    ckpt = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert ckpt["epoch"] == 0 and len(ckpt["history"]) == 1
    resumed = train_reconstruction(tiny_cfg, tmp_path, resume=True, **quiet)
    assert resumed is not None and len(resumed.metrics["history"]) == tiny_cfg.train.epochs
    for name, value in trained.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_cli_trains_tiny_config(tiny_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ecgstream.cli import main

    cfg = tmp_path / "tiny.toml"
    text = TINY.read_text().replace('cache_dir = "out/cache/synthetic"', f'cache_dir = "{tiny_cfg.data.cache_dir}"')
    cfg.write_text(text.replace("epochs = 3", "epochs = 1"))
    assert main(["models", "train", "reconstruction", "--config", str(cfg), "--out", str(tmp_path / "o"),
                 "--quiet"]) == 0
    assert (tmp_path / "o" / "reconstruction_vae.onnx").exists()
    assert main(["models", "train", "reconstruction", "--config", str(tmp_path / "missing.toml")]) == 2
