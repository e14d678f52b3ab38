"""Classifier training windows as the edge sees them: VAE view, unreadable windows, targets."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from models.classifier.data import NOISE_INDEX, build_windows, default_reconstructor, make_unreadable, targets  # noqa: E402
from models.data.labels import CLASS_INDEX  # noqa: E402
from models.data.synthetic import SyntheticSpec, generate  # noqa: E402
from models.reconstruction import INPUT_INDEX, PREDICTED_INDEX  # noqa: E402


@pytest.fixture(scope="module")
def synth() -> tuple[np.ndarray, tuple[str, ...]]:
    s = generate(SyntheticSpec(n_windows=24, seed=9_200_001), workers=1)
    return s.signals, s.rhythms


def test_targets_follow_the_simulator_rhythm() -> None:
    y = targets(["pvc", "afib", "vf"])
    assert y[0, CLASS_INDEX["NSR"]] == 1 and y[0, CLASS_INDEX["PVC"]] == 1 and y[0].sum() == 2
    assert y[1, CLASS_INDEX["AF"]] == 1 and y[1].sum() == 1
    assert y[2].sum() == 0                       # VF is not a class: an all-zero target


def test_edge_view_keeps_the_measured_leads_and_reconstructs_the_others(synth) -> None:  # noqa: ANN001
    signals, rhythms = synth
    ws = build_windows(signals, rhythms, seed=1, edge_fraction=1.0, noise_fraction=0.0,
                       reconstruct=default_reconstructor())
    assert ws.edge.all() and ws.x.dtype == np.float32 and ws.x.shape == signals.shape
    np.testing.assert_allclose(ws.x[:, list(INPUT_INDEX)], signals[:, list(INPUT_INDEX)], atol=1e-5)
    assert not np.allclose(ws.x[:, list(PREDICTED_INDEX)], signals[:, list(PREDICTED_INDEX)], atol=1e-3)
    np.testing.assert_array_equal(ws.y, targets(rhythms))


def test_unreadable_windows_are_labelled_noise_only_and_the_same_in_every_view(synth) -> None:  # noqa: ANN001
    signals, rhythms = synth
    true12 = build_windows(signals, rhythms, seed=2, edge_fraction=0.0, noise_fraction=0.4, reconstruct=None)
    edge = build_windows(signals, rhythms, seed=2, edge_fraction=1.0, noise_fraction=0.4,
                         reconstruct=default_reconstructor())
    noisy = true12.y[:, NOISE_INDEX] == 1
    assert 0 < noisy.sum() < len(noisy)
    assert (true12.y[noisy].sum(1) == 1).all()
    assert all(r == "unreadable" for r, n in zip(true12.rhythms, noisy, strict=True) if n)
    np.testing.assert_array_equal(edge.y, true12.y)
    np.testing.assert_allclose(edge.x[:, list(INPUT_INDEX)], true12.x[:, list(INPUT_INDEX)], atol=1e-5)
    np.testing.assert_array_equal(true12.x[~noisy], signals[~noisy])


def test_make_unreadable_buries_the_signal(synth) -> None:  # noqa: ANN001
    signals, _ = synth
    out = make_unreadable(signals[:16], np.random.default_rng(0))
    assert out.shape == (16, 12, 1250) and np.isfinite(out).all()
    # after corruption the window no longer correlates well with the clean one (or is gone)
    a = signals[:16].reshape(16, -1)
    b = out.reshape(16, -1)
    r = [np.corrcoef(x, y)[0, 1] if y.std() > 0 else 0.0 for x, y in zip(a, b, strict=True)]
    assert np.median(r) < 0.8
    assert make_unreadable(signals[:0], np.random.default_rng(0)).shape == (0, 12, 1250)
