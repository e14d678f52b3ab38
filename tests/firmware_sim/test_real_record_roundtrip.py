"""Real records replayed through wearable frames come back as the same samples after quantisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_sim.packetizer import Packetizer
from firmware_sim.profiles import get_profile
from firmware_sim.records import read_record, resample, select_leads
from firmware_sim.replay import ReplaySource
from protocol import (
    FrameBatch,
    SampleFormat,
    decode_frame,
    decode_frames,
    encode_frame,
    encode_frames,
    quantize,
)

pytestmark = pytest.mark.shared_data


@pytest.mark.parametrize("profile_name", ["ecgstream-250", "ecgstream-500"])
@pytest.mark.parametrize("record", ["cinc2021/E07509", "cinc2021/JS20003", "cinc2021/HR06002"])
def test_cinc2021_records_survive_the_wearable_frames(data: Path, record: str, profile_name: str) -> None:
    profile = get_profile(profile_name)
    source = ReplaySource(data / record, leads=profile.leads, fs=profile.fs_hz)
    signal = source.read(source.n_samples)
    batches = Packetizer(profile).packetize(signal, battery_pct=90)
    frames = [f for batch in batches for f in encode_frames(batch)]
    received = np.concatenate([decode_frame(f).millivolts() for f in frames])
    lsb_mv = profile.lsb_nv * 1e-6
    assert received.shape == signal.shape  # every sample, the last frame a short one
    assert np.max(np.abs(received - signal)) <= lsb_mv / 2 + 1e-9
    seqs = [decode_frame(f).seq for f in frames]
    assert seqs == list(range(len(frames)))


@pytest.mark.parametrize(("record", "leads"), [("mitdb/100", ("II", "V5")), ("mitdb/208", ("II", "V1"))])
def test_mitdb_two_lead_records_survive_frames_bit_exactly(data: Path, record: str, leads: tuple[str, str]) -> None:
    rec = resample(select_leads(read_record(data / record), leads), 250.0)
    mv = rec.signals[: (len(rec.signals) // 36) * 36]
    counts = quantize(mv, 1000, SampleFormat.INT16).reshape(-1, 36, 2)
    batch = FrameBatch(
        seq=np.arange(len(counts), dtype=np.uint32), t0_us=(np.arange(len(counts)) * 144_000).astype(np.uint64),
        lead_off=np.zeros(len(counts), np.uint16), battery_pct=np.full(len(counts), -1), samples=counts,
        fs_hz=250, leads=leads,
    )
    frames = encode_frames(batch)
    assert all(len(f) <= 244 for f in frames)
    back = decode_frames(frames)
    assert back.ok.all()
    np.testing.assert_array_equal(back.samples, counts)
    assert np.max(np.abs(back.samples.reshape(-1, 2) * 1e-3 - mv)) <= 0.0005 + 1e-9
    assert encode_frame(back.frame(7)) == frames[7]
