"""Training the prototype layer: the push makes every prototype a real feature patch of a window of its class,
the tiny config trains and exports end to end, and the faithfulness report has its documented shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.data.labels import CLASSES  # noqa: E402
from models.prototypes.network import PrototypeHead  # noqa: E402
from models.prototypes.train import push, similarity_table  # noqa: E402
from tests.conftest import skip_or_fail  # noqa: E402

TUNE = Path(__file__).resolve().parents[3] / "shared" / "tune"
TINY = "models/configs/prototypes_tiny.toml"


def _tune() -> Path:
    if not TUNE.is_dir():
        skip_or_fail(f"the real tune records are not at {TUNE}")
    return TUNE


def test_push_turns_each_prototype_into_a_patch_of_a_window_of_its_class() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    head = PrototypeHead(d_in=8, n_classes=3, per_class=2, patch_tokens=4, proto_dim=4).eval()
    tokens = rng.normal(size=(12, 160, 8)).astype(np.float32)
    y = np.zeros((12, 3), dtype=np.float32)
    y[np.arange(12), np.arange(12) % 3] = 1.0
    real = np.arange(12) >= 9
    pushed = push(head, tokens, y, real, real_margin=0.0)
    sims, pos = similarity_table(head, tokens)
    for j, p in enumerate(pushed):
        assert y[p.window, j // 2] == 1.0                                  # a window of the prototype's class
        assert sims[p.window, j] == pytest.approx(1.0, abs=1e-4)             # it IS that window's patch
        assert 0 <= p.position <= 160 - 4
    for c in range(3):                                                      # siblings come from different windows
        assert pushed[2 * c].window != pushed[2 * c + 1].window


def test_push_prefers_a_real_window_within_the_margin() -> None:
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    head = PrototypeHead(d_in=8, n_classes=1, per_class=1, patch_tokens=4, proto_dim=4).eval()
    tokens = rng.normal(size=(6, 160, 8)).astype(np.float32)
    y = np.ones((6, 1), dtype=np.float32)
    real = np.array([False] * 5 + [True])
    assert push(head, tokens, y, real, real_margin=1.0)[0].window == 5


@pytest.mark.slow
def test_tiny_config_trains_pushes_and_exports(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ecgstream.commands.models import models
    from models.runtime.prototypes import PrototypeModel

    _tune()
    res = CliRunner().invoke(models, ["train", "prototypes", "--config", TINY, "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    for name in ("prototypes.onnx", "prototypes_strips.json", "prototypes_metrics.json", "prototypes.md"):
        assert (tmp_path / name).is_file(), name
    model = PrototypeModel.load(tmp_path / "prototypes.onnx", providers=["cpu"])
    assert len(model.prototypes) == 2 * len(CLASSES)
    metrics = json.loads((tmp_path / "prototypes_metrics.json").read_text())
    assert metrics["onnx_max_abs_diff"] < 1e-4
    held_out = set(metrics["real_heldout"]["records"])
    assert not held_out & {p["record"] for p in model.prototypes}          # held-out records are never pushed on
    assert "Not a medical device" in (tmp_path / "prototypes.md").read_text()


@pytest.mark.slow
def test_eval_writes_the_faithfulness_report_on_real_records(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ecgstream.commands.models import models

    out = tmp_path / "faith.json"
    res = CliRunner().invoke(models, ["eval", "prototypes", "--data", str(_tune() / "cinc2021"), "--json", str(out),
                                      "--max-records", "4", "--random-segments", "3"])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["records"] == 4 and r["windows"] >= 4 and len(r["per_window"]) == r["windows"]
    for key in ("mean_drop_matched", "mean_drop_random", "ratio", "fraction_matched_greater"):
        assert key in r and key in r["logit"]
    assert 0.0 <= r["fraction_matched_greater"] <= 1.0
    for w in r["per_window"]:
        assert w["class"] in CLASSES and 0.0 <= w["segment_s"][0] < w["segment_s"][1] <= 10.0
    assert "ratio" in res.output


def test_eval_names_a_folder_without_records(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ecgstream.commands.models import models

    res = CliRunner().invoke(models, ["eval", "prototypes", "--data", str(tmp_path), "--json", str(tmp_path / "x.json")])
    assert res.exit_code != 0 and str(tmp_path) in res.output
