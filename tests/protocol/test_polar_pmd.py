"""Polar H10 PMD ECG notifications."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import PolarEcgFrame, ProtocolError, decode_pmd_ecg, encode_pmd_ecg
from protocol.polar_pmd import POLAR_ECG_FS_HZ

# A notification as the H10 sends it: type 0 (ECG), u64 ns stamp, frame type 0, then int24 µV samples.
_REAL_SHAPED = bytes.fromhex("00" "00e40b5402000000" "00" "ff ff ff" "0a 00 00" "00 00 80".replace(" ", ""))


def test_a_device_shaped_notification_decodes_to_microvolts_and_nanoseconds() -> None:
    frame = decode_pmd_ecg(_REAL_SHAPED)
    assert frame.timestamp_ns == 0x02540BE400 == 10_000_000_000
    assert frame.samples_uv.tolist() == [-1, 10, -(1 << 23)]
    assert frame.first_sample_ns() == 10_000_000_000 - round(2e9 / POLAR_ECG_FS_HZ)


@given(st.integers(0, 2**64 - 1), st.lists(st.integers(-(2**23), 2**23 - 1), min_size=1, max_size=80))
def test_round_trip(stamp: int, samples: list[int]) -> None:
    frame = PolarEcgFrame(timestamp_ns=stamp, samples_uv=np.array(samples, dtype=np.int32))
    back = decode_pmd_ecg(encode_pmd_ecg(frame))
    assert back.timestamp_ns == stamp
    assert back.samples_uv.tolist() == samples


@given(st.binary(max_size=300))
def test_decoder_raises_only_protocol_errors(data: bytes) -> None:
    try:
        decode_pmd_ecg(data)
    except ProtocolError:
        pass


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x02" + bytes(9) + bytes(3), "not ECG"),
        (b"\x00" + bytes(8) + b"\x80" + bytes(3), "not supported"),
        (b"\x00" + bytes(9) + bytes(4), "whole number"),
        (b"\x00" + bytes(9), "too short"),
    ],
)
def test_bad_notifications_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_pmd_ecg(data)
