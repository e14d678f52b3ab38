"""The fast chunked selective scan equals the sequential reference scan, for any Δ, and never overflows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from models.classifier.mamba import ECGMamba, Mamba2Mixer  # noqa: E402
from models.classifier.scan import scan_chunked, scan_reference, segsum  # noqa: E402
from models.runtime.onnx_model import ARTIFACTS  # noqa: E402


def _inputs(seed: int, b: int, t: int, h: int, p: int, n: int, dt: torch.Tensor | None = None,
            dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, h, p, generator=g, dtype=dtype)
    if dt is None:
        dt = torch.rand(b, t, h, generator=g, dtype=dtype) * 0.3
    a = -(torch.rand(h, generator=g, dtype=dtype) * 15 + 0.5)
    bb = torch.randn(b, t, n, generator=g, dtype=dtype)
    cc = torch.randn(b, t, n, generator=g, dtype=dtype)
    return x, dt.to(dtype), a, bb, cc


def test_segsum_is_the_sum_over_each_segment_with_minus_infinity_above_the_diagonal() -> None:
    x = torch.tensor([1.0, -2.0, 3.0, -4.0])
    s = segsum(x)
    for i in range(4):
        for j in range(4):
            if j > i:
                assert s[i, j] == float("-inf")
            else:
                assert s[i, j].item() == pytest.approx(float(x[j + 1 : i + 1].sum()))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), b=st.integers(1, 3), chunks=st.integers(1, 4), chunk=st.sampled_from([4, 8, 16]),
       h=st.integers(1, 3), p=st.integers(1, 5), n=st.integers(1, 6))
def test_chunked_scan_equals_the_sequential_reference(seed: int, b: int, chunks: int, chunk: int, h: int, p: int,
                                                      n: int) -> None:
    x, dt, a, bb, cc = _inputs(seed, b, chunks * chunk, h, p, n)
    ref = scan_reference(x, dt, a, bb, cc)
    got = scan_chunked(x, dt, a, bb, cc, chunk)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("chunk", [16, 32, 64])
def test_extreme_delta_gives_finite_output_equal_to_the_reference(chunk: int) -> None:
    """Δ from 1e-6 to 1e3 (log-uniform, so huge and tiny steps mix inside every chunk), in float32:
    a chunk's summed decay reaches −1e6, far past where exp(cumsum) overflows (~88)."""
    g = torch.Generator().manual_seed(1)
    b, t, h = 2, 128, 3
    dt = 10 ** (torch.rand(b, t, h, generator=g) * 9 - 6)
    dt[0, 40:80] = 1e3                       # a stretch of huge steps
    dt[1, :64] = 1e-6                        # a stretch where the state barely decays
    x, dt32, a, bb, cc = _inputs(2, b, t, h, 4, 8, dt=dt, dtype=torch.float32)
    got = scan_chunked(x, dt32, a, bb, cc, chunk)
    assert torch.isfinite(got).all()
    ref = scan_reference(*(v.double() for v in (x, dt32, a, bb, cc)))
    scale = ref.abs().amax(dim=(1, 3), keepdim=True) + 1e-6      # per sequence and head
    assert ((got.double() - ref).abs() / scale).max() < 1e-4


def test_chunked_scan_gradients_are_finite_for_extreme_delta() -> None:
    dt = torch.full((1, 64, 2), 1e3)
    dt[0, ::3] = 1e-6
    x, dt, a, bb, cc = _inputs(3, 1, 64, 2, 4, 4, dt=dt, dtype=torch.float32)
    for v in (x, dt, bb, cc):
        v.requires_grad_(True)
    scan_chunked(x, dt, a, bb, cc, 32).sum().backward()
    for v in (x, dt, bb, cc):
        assert torch.isfinite(v.grad).all()


def test_scan_refuses_bad_shapes() -> None:
    x, dt, a, bb, cc = _inputs(0, 1, 48, 2, 4, 4)
    with pytest.raises(ValueError, match="multiple of the chunk"):
        scan_chunked(x, dt, a, bb, cc, 32)
    with pytest.raises(ValueError, match="dt must be"):
        scan_chunked(x, dt[:, :, :1], a, bb, cc, 16)
    with pytest.raises(ValueError, match="B and C"):
        scan_reference(x, dt, a, bb, cc[:, :10])


def _shipped_mamba() -> torch.nn.Module:
    from models.classifier.train import load_trained

    path = ARTIFACTS / "classifier_mamba.pt"
    if not path.exists():
        pytest.fail(f"{path} is missing: the shipped ECG-Mamba weights should be in models/artifacts")
    return load_trained(path)


def test_trained_model_with_chunked_scan_equals_reference_scan() -> None:
    """On the shipped (trained) weights, whole-model probabilities agree between the two scans."""
    from models.data.synthetic import SyntheticSpec, generate
    from models.features import feature_matrix, measured_rows
    from models.preprocessing import MODEL_FS
    from protocol.leads import STANDARD_LEADS

    model = _shipped_mamba()
    signals = generate(SyntheticSpec(n_windows=4, seed=9_100_001), workers=1).signals
    x, f = torch.from_numpy(signals), torch.from_numpy(feature_matrix(signals, MODEL_FS, measured_rows(STANDARD_LEADS)))
    with torch.no_grad():
        fast = torch.sigmoid(model(x, f))
        model.set_reference_scan(True)
        slow = torch.sigmoid(model(x, f))
        model.set_reference_scan(False)
    assert torch.isfinite(fast).all()
    assert (fast - slow).abs().max().item() < 1e-4


def test_trained_mixer_scan_matches_reference_under_extreme_delta() -> None:
    """The trained first mixer's own x, B, C and A, with its Δ scaled to 1e-6…1e3."""
    model = _shipped_mamba()
    mixer = next(m for m in model.modules() if isinstance(m, Mamba2Mixer))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        tokens = model.stem(torch.randn(2, 12, 1250, generator=g) * 0.5)
        _, x, dt, a, b, c = mixer.ssm_inputs(model.blocks[0].norm(tokens))
        for scale in (1e-6, 1.0, 1e3):
            got = scan_chunked(x, dt * scale, a, b, c, mixer.chunk)
            ref = scan_reference(*(v.double() for v in (x, dt * scale, a, b, c)))
            assert torch.isfinite(got).all()
            err = (got.double() - ref).abs().max() / (ref.abs().max() + 1e-12)
            assert err < 1e-4, (scale, err)


def test_model_is_the_same_function_on_every_batch_size() -> None:
    model = ECGMamba(d_model=16, n_blocks=1, d_state=4, headdim=16, stem_width=8).eval()
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 0.5, (3, 12, 1250)).astype(np.float32))
    with torch.no_grad():
        whole = model(x)
        one = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(whole, one, rtol=1e-4, atol=1e-5)
