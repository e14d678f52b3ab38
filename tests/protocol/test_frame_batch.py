"""The vectorised batch codec gives exactly the per-frame bytes and isolates bad frames."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    FrameBatch,
    FrameError,
    IntegrityError,
    SampleFormat,
    decode_frame,
    decode_frames,
    encode_frame,
    encode_frames,
)
from protocol.leads import WEARABLE_LEADS


def _batch(count: int, fmt: SampleFormat, seed: int, n: int | None = None) -> FrameBatch:
    rng = np.random.default_rng(seed)
    lo, hi = fmt.limits
    n = n or (36 if fmt is SampleFormat.INT16 else 24)
    return FrameBatch(
        seq=((np.arange(count, dtype=np.uint64) + 2**32 - 5) % 2**32).astype(np.uint32),  # wraps
        t0_us=np.arange(count, dtype=np.uint64) * 144_000,
        lead_off=rng.integers(0, 1 << 10, count).astype(np.uint16),
        battery_pct=rng.integers(-1, 101, count),
        samples=rng.integers(lo, hi + 1, (count, n, 3)).astype(np.int32),
        fs_hz=250,
        leads=WEARABLE_LEADS,
        sample_format=fmt,
    )


@given(st.integers(1, 40), st.sampled_from(list(SampleFormat)), st.integers(0, 2**32 - 1), st.integers(1, 24))
@settings(max_examples=60)
def test_batch_encode_equals_frame_by_frame_and_decodes_back(count: int, fmt: SampleFormat, seed: int, n: int) -> None:
    batch = _batch(count, fmt, seed, n)
    encoded = encode_frames(batch)
    assert encoded == [encode_frame(batch.frame(i)) for i in range(count)]
    decoded = decode_frames(encoded)
    assert decoded.ok.all() and not decoded.errors
    np.testing.assert_array_equal(decoded.samples, batch.samples)
    np.testing.assert_array_equal(decoded.seq, batch.seq)
    np.testing.assert_array_equal(decoded.battery_pct, batch.battery_pct)
    assert all(decoded.frame(i) == decode_frame(encoded[i]) for i in range(count))


def test_one_corrupt_frame_does_not_disturb_the_rest_of_the_batch() -> None:
    batch = _batch(50, SampleFormat.INT16, 1)
    encoded = encode_frames(batch)
    encoded[10] = encoded[10][:-1] + bytes([encoded[10][-1] ^ 1])
    encoded[20] = encoded[20][:9]
    decoded = decode_frames(encoded)
    assert set(decoded.errors) == {10, 20}
    assert isinstance(decoded.errors[10], IntegrityError)
    assert decoded.ok.sum() == 48
    keep = decoded.ok
    np.testing.assert_array_equal(decoded.samples[keep], batch.samples[keep])


def test_a_frame_of_another_layout_is_set_aside_not_misread() -> None:
    a = encode_frames(_batch(3, SampleFormat.INT16, 2))
    b = encode_frames(_batch(1, SampleFormat.INT24, 3, n=36 * 2 // 3))  # same byte length, other format
    decoded = decode_frames(a + b)
    assert list(decoded.ok) == [True, True, True, False]
    assert "layout differs" in str(decoded.errors[3])


def test_a_batch_with_no_decodable_frame_raises() -> None:
    with pytest.raises(FrameError, match="none of the 2 frames decodes"):
        decode_frames([b"junk", b""])
