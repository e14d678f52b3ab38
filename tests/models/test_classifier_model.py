"""The classifier models, their ONNX export (FP32 and INT8) and the numpy runtime that loads them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from models.classifier import INPUT_NAME, OUTPUT_NAME  # noqa: E402
from models.classifier.config import config_from_dict, load_config  # noqa: E402
from models.classifier.export import FP32_TOLERANCE, export_onnx, torch_probabilities  # noqa: E402
from models.classifier.mamba import count_parameters  # noqa: E402
from models.classifier.quantize import quantizable_nodes, quantize_int8  # noqa: E402
from models.classifier.train import build_model  # noqa: E402
from models.data.labels import CLASSES, VOCABULARY  # noqa: E402
from models.runtime.classifier import ClassifierModel  # noqa: E402
from protocol.leads import STANDARD_LEADS  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "models" / "configs"


@pytest.fixture(scope="module")
def tiny_cfg():  # noqa: ANN201
    return load_config(CONFIGS / "classifier_tiny.toml")


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return np.random.default_rng(0).normal(0, 0.4, (6, 12, 1250)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tiny_cfg, tmp_path_factory) -> tuple[torch.nn.Module, Path]:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_model("mamba", tiny_cfg).eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "m.onnx", {"architecture": "mamba",
                                                                          "config_hash": "test"})
    return model, path


@pytest.mark.parametrize("arch", ["mamba", "resnet"])
def test_models_map_a_window_to_one_logit_per_class_and_learn(arch: str, tiny_cfg) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_model(arch, tiny_cfg)
    x = torch.randn(4, 12, 1250)
    y = torch.zeros(4, len(CLASSES))
    y[:, 0] = 1
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert model(x).shape == (4, len(CLASSES))
    assert losses[-1] < losses[0] * 0.5


def test_full_config_models_are_of_similar_size() -> None:
    cfg = load_config(CONFIGS / "classifier_full.toml")
    mamba, resnet = count_parameters(build_model("mamba", cfg)), count_parameters(build_model("resnet", cfg))
    assert 0.7 < resnet / mamba < 1.4, (mamba, resnet)


def test_config_refuses_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        config_from_dict({"mamba": {"d_modle": 8}})
    with pytest.raises(ValueError, match="unknown section"):
        config_from_dict({"optimiser": {}})
    with pytest.raises(ValueError, match="seeds must differ"):
        config_from_dict({"data": {"train_seed": 1, "test_seed": 1}})
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("transformer", config_from_dict({}))


def test_onnx_export_matches_torch_and_carries_the_class_metadata(exported, windows) -> None:  # noqa: ANN001
    model, path = exported
    clf = ClassifierModel.load(path, providers=["cpu"])
    assert clf.model.input_names == [INPUT_NAME] and clf.model.output_names == [OUTPUT_NAME]
    assert clf.classes == CLASSES and clf.leads == STANDARD_LEADS and clf.samples == 1250
    assert clf.info["fs_hz"] == 125.0
    assert clf.snomed["AF"] == sorted(next(c for c in VOCABULARY if c.key == "AF").snomed)
    assert clf.snomed["NOISE"] == []
    assert clf.model.metadata["version"] == clf.version and clf.version.startswith("classifier_mamba@")
    prob = clf.predict(windows)
    assert prob.shape == (6, len(CLASSES)) and ((prob >= 0) & (prob <= 1)).all()
    assert np.abs(prob - torch_probabilities(model, windows)).max() < FP32_TOLERANCE
    np.testing.assert_allclose(clf.predict(windows[0]), prob[0], atol=1e-5)    # one window, no batch axis
    assert clf.labels(prob[0], threshold=0.0) == frozenset(CLASSES)


def test_runtime_refuses_bad_input_clearly(exported) -> None:  # noqa: ANN001
    clf = ClassifierModel.load(exported[1], providers=["cpu"])
    with pytest.raises(ValueError, match=r"expected \(B, 12, 1250\)"):
        clf.predict(np.zeros((2, 3, 1250), np.float32))
    bad = np.zeros((1, 12, 1250), np.float32)
    bad[0, 3, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(bad)
    assert clf.predict(np.zeros((0, 12, 1250), np.float32)).shape == (0, len(CLASSES))


def test_int8_quantizes_convolutions_and_projections_and_keeps_the_scan_float(exported, windows,  # noqa: ANN001
                                                                               tmp_path: Path) -> None:
    _, fp32 = exported
    int8 = quantize_int8(fp32, tmp_path / "m_int8.onnx", windows)
    proto = onnx.load(str(int8))
    producers = {out: node for node in proto.graph.node for out in node.output}
    # every Conv and weight MatMul reads a dequantized weight ...
    weighted = [n for n in proto.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")
                and n.input[1] in producers and producers[n.input[1]].op_type == "DequantizeLinear"]
    assert len(weighted) == len(quantizable_nodes(fp32)) > 0
    # ... while the scan (Exp, CumSum and the weight-free matrix products) stays float
    for node in proto.graph.node:
        if node.op_type in ("Exp", "CumSum"):
            assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for i in node.input)
    info = json.loads({p.key: p.value for p in proto.metadata_props}["ecgstream"])
    assert info["precision"] == "int8" and info["classes"] == list(CLASSES)
    a = ClassifierModel.load(fp32, providers=["cpu"]).predict(windows)
    b = ClassifierModel.load(int8, providers=["cpu"]).predict(windows)
    assert np.isfinite(b).all() and np.abs(a - b).max() < 0.1
    assert int8.stat().st_size < fp32.stat().st_size * 1.2
