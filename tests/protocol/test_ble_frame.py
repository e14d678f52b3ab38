"""BLE ECG frame v1: round trips, size limits, and rejection of every kind of bad frame."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    MAX_ATT_PAYLOAD,
    EcgFrame,
    FrameError,
    IntegrityError,
    ProtocolError,
    SampleFormat,
    UnsupportedVersionError,
    decode_frame,
    encode_frame,
    max_samples_per_frame,
    quantize,
)
from protocol.leads import ELECTRODES, STANDARD_LEADS, WEARABLE_LEADS


@st.composite
def frames(draw: st.DrawFn) -> EcgFrame:
    fmt = draw(st.sampled_from(list(SampleFormat)))
    lead_idx = draw(st.lists(st.integers(0, 11), min_size=1, max_size=12, unique=True))
    leads = tuple(STANDARD_LEADS[i] for i in sorted(lead_idx))
    cap = max_samples_per_frame(len(leads), fmt)
    n = draw(st.integers(1, cap))
    lo, hi = fmt.limits
    flat = draw(st.lists(st.integers(lo, hi), min_size=n * len(leads), max_size=n * len(leads)))
    return EcgFrame(
        seq=draw(st.integers(0, 2**32 - 1)),
        t0_us=draw(st.integers(0, 2**64 - 1)),
        fs_hz=draw(st.integers(1, 2**16 - 1)),
        leads=leads,
        samples=np.array(flat, dtype=np.int32).reshape(n, len(leads)),
        lead_off=tuple(e for e in ELECTRODES if draw(st.booleans())),
        battery_pct=draw(st.one_of(st.none(), st.integers(0, 100))),
        lsb_nv=draw(st.integers(1, 2**16 - 1)),
        sample_format=fmt,
    )


@given(frames())
@settings(max_examples=300)
def test_any_valid_frame_round_trips_and_fits_one_notification(frame: EcgFrame) -> None:
    data = encode_frame(frame)
    assert len(data) <= MAX_ATT_PAYLOAD
    assert decode_frame(data) == frame


@given(st.binary(max_size=400))
@settings(max_examples=2000)
def test_decoder_raises_only_protocol_errors_on_arbitrary_bytes(data: bytes) -> None:
    try:
        decode_frame(data)
    except ProtocolError:
        pass


@given(frames(), st.data())
@settings(max_examples=300)
def test_any_single_bit_flip_is_caught(frame: EcgFrame, data: st.DataObject) -> None:
    encoded = bytearray(encode_frame(frame))
    bit = data.draw(st.integers(0, len(encoded) * 8 - 1))
    encoded[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ProtocolError):
        decode_frame(bytes(encoded))


@given(frames(), st.data())
def test_truncated_or_extended_frames_are_rejected(frame: EcgFrame, data: st.DataObject) -> None:
    encoded = encode_frame(frame)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(ProtocolError):
        decode_frame(encoded[:cut])
    with pytest.raises(ProtocolError):
        decode_frame(encoded + b"\x00")


def test_wearable_frame_capacity_is_what_the_spec_promises() -> None:
    assert max_samples_per_frame(3, SampleFormat.INT16) == 36
    assert max_samples_per_frame(3, SampleFormat.INT24) == 24


def test_unknown_version_is_rejected_with_the_versions_we_speak() -> None:
    frame = EcgFrame(seq=1, t0_us=0, fs_hz=250, leads=WEARABLE_LEADS, samples=np.zeros((4, 3), np.int32))
    data = bytearray(encode_frame(frame))
    data[0] = 7
    with pytest.raises(UnsupportedVersionError, match="version 7 is not supported"):
        decode_frame(bytes(data))


def test_crc_mismatch_is_an_integrity_error() -> None:
    frame = EcgFrame(seq=1, t0_us=0, fs_hz=250, leads=WEARABLE_LEADS, samples=np.ones((4, 3), np.int32))
    data = bytearray(encode_frame(frame))
    data[30] ^= 0xFF
    with pytest.raises(IntegrityError):
        decode_frame(bytes(data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"samples": np.zeros((37, 3), np.int32)}, "exceeds the 244-byte limit"),
        ({"samples": np.full((2, 3), 40000, np.int32)}, "outside the INT16 range"),
        ({"leads": ("V1", "II", "V5")}, "standard order"),
        ({"battery_pct": 101}, "battery_pct"),
        ({"fs_hz": 0}, "fs_hz"),
    ],
)
def test_encoder_refuses_frames_that_break_the_contract(change: dict, message: str) -> None:
    fields = {"seq": 1, "t0_us": 0, "fs_hz": 250, "leads": WEARABLE_LEADS, "samples": np.zeros((4, 3), np.int32)}
    fields.update(change)
    with pytest.raises(FrameError, match=message):
        encode_frame(EcgFrame(**fields))


@given(st.lists(st.floats(-30, 30, allow_nan=False), min_size=3, max_size=300).filter(lambda v: len(v) % 3 == 0))
def test_quantised_millivolts_come_back_within_half_an_lsb(values: list[float]) -> None:
    mv = np.array(values).reshape(-1, 3)
    counts = quantize(mv, 1000, SampleFormat.INT16)
    frame = EcgFrame(seq=0, t0_us=0, fs_hz=250, leads=WEARABLE_LEADS, samples=counts[:36])
    back = decode_frame(encode_frame(frame)).millivolts()
    assert np.max(np.abs(back - mv[:36])) <= 0.0005 + 1e-12
