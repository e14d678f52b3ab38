"""Training the zero-shot model end to end (tiny config) and building its text encoder in ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from models.runtime.zeroshot import ZeroShotModel  # noqa: E402
from protocol.leads import STANDARD_LEADS  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "models" / "configs" / "zeroshot_tiny.toml"


@pytest.mark.slow
def test_tiny_training_exports_a_model_the_runtime_opens(tmp_path: Path) -> None:
    from models.zeroshot.train import load_config, train

    summary = train(load_config(CONFIG), tmp_path, log=lambda *_: None)
    assert summary["windows"] == 64 and summary["history"]
    m = ZeroShotModel.load(tmp_path / "zeroshot_merl.onnx")
    assert m.version == f"zeroshot-merl-{summary['config_hash']}"
    out = m.run(np.random.default_rng(0).normal(0, 0.1, (2, 12, 1250)), 125.0, STANDARD_LEADS)
    assert len(out) == 2 and len(out[0]["labels"]) == len(m.default_labels)


@pytest.mark.slow
def test_the_text_encoder_in_onnx_matches_minilm_and_serves_free_text(tmp_path: Path) -> None:
    from models.zeroshot.export_text import export_text_encoder

    report = export_text_encoder(tmp_path / "text.onnx")
    assert report["fp32_min_cosine"] >= 0.999
    assert report["precision"] == "fp32" or report["int8_min_cosine"] >= 0.99
    m = ZeroShotModel.load(text_onnx=tmp_path / "text.onnx")
    x = np.random.default_rng(1).normal(0, 0.1, (1, 12, 1250))
    r = m.classify(x, 125.0, STANDARD_LEADS, ["atrial fibrillation", "an ECG with a wandering atrial pacemaker"])
    assert r.scores.shape == (1, 2) and r.scores.sum() == pytest.approx(1.0, abs=1e-5)
    # the free-text path embeds a knowledge-base name close to the shipped plain embedding of that label
    shipped = m.label_embeddings(["atrial fibrillation"], "plain")[0]
    assert float(m.embed_text(["atrial fibrillation"])[0] @ shipped) > 0.99
