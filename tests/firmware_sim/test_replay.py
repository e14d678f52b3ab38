"""Replaying recorded ECG as a SignalSource."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.faults import LeadOff
from firmware_sim.records import MissingLeadError, Recording, ReplayError, read_record, select_leads
from firmware_sim.replay import ReplaySource, absent_lead_electrodes, absent_lead_off, open_replay
from firmware_sim.source import SignalSource
from protocol.leads import WEARABLE_LEADS


def _ramp(n: int = 37, fs: float = 250.0) -> Recording:
    """Three leads whose samples number themselves, so any reordering shows."""
    signals = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    return Recording(signals=signals, fs=fs, lead_names=WEARABLE_LEADS, name="test/ramp")


# --- real records ---------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_open_replay_streams_the_wearable_leads_at_the_device_rate(data: Path) -> None:
    source = open_replay(data / "cinc2021/E07500")
    assert isinstance(source, SignalSource)
    assert (source.fs, source.lead_names, source.n_samples) == (250.0, WEARABLE_LEADS, 2500)
    assert source.duration_s == pytest.approx(10.0)
    block = source.read(250)
    assert block.shape == (250, 3) and block.dtype == np.float64
    assert (source.position, source.position_s) == (250, 1.0)


@pytest.mark.shared_data
def test_replay_at_the_record_rate_is_the_record(data: Path) -> None:
    rec = read_record(data / "ptbdb/s0010_re")
    source = ReplaySource(rec, leads=("ii", "v1", "v5"))
    assert (source.fs, source.lead_names, source.filled_samples) == (1000.0, WEARABLE_LEADS, 0)
    streamed = np.concatenate([source.read(4096) for _ in range(10)])
    np.testing.assert_array_equal(streamed, select_leads(rec, WEARABLE_LEADS).signals)
    assert source.finished


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("record", "leads", "fs_in"), [("mitdb/100", ("II", "V5"), 360), ("ptbxl/00001_lr", WEARABLE_LEADS, 100)]
)
def test_replay_resamples_and_keeps_the_duration(data: Path, record: str, leads: tuple, fs_in: int) -> None:
    source = open_replay(data / record, leads=leads, fs=250.0)
    original = read_record(data / record)
    assert original.fs == fs_in and source.fs == 250.0
    assert abs(source.duration_s - original.duration_s) < 1 / 250
    assert source.recording.lead_names == leads


@pytest.mark.shared_data
def test_replay_fills_the_invalid_samples_and_counts_them(data: Path) -> None:
    source = ReplaySource(data / "challenge2015/v102s", leads=("II", "V"), fs=500.0)
    assert source.filled_samples == 5  # 3 in II, 2 in V; PLETH and RESP are not replayed
    streamed = source.read(source.n_samples)
    assert len(streamed) == 150_000 and not np.isnan(streamed).any()


@pytest.mark.shared_data
def test_replay_of_a_record_without_the_leads_says_which(data: Path) -> None:
    with pytest.raises(MissingLeadError, match=r"^record 'mitdb/100' has no lead V1 \(it has II, V5\)$"):
        open_replay(data / "mitdb/100")


@pytest.mark.shared_data
def test_replay_refuses_channels_that_are_not_in_millivolts(data: Path) -> None:
    with pytest.raises(ReplayError, match=r"record 'challenge2015/a103l': cannot stream PLETH \(NU\) as mV"):
        ReplaySource(data / "challenge2015/a103l", leads=("II", "PLETH"))


# --- stream mechanics -----------------------------------------------------------------------------


def test_without_loop_the_replay_ends() -> None:
    source = ReplaySource(_ramp(10), leads=WEARABLE_LEADS)
    assert source.read(8).shape == (8, 3)
    assert not source.finished
    tail = source.read(8)
    np.testing.assert_array_equal(tail, _ramp(10).signals[8:])
    assert source.finished and source.position == 10
    assert source.read(8).shape == (0, 3)


def test_with_loop_the_replay_wraps_seamlessly() -> None:
    rec = _ramp(10)
    source = ReplaySource(rec, loop=True)
    streamed = source.read(25)
    np.testing.assert_array_equal(streamed, np.concatenate([rec.signals, rec.signals, rec.signals[:5]]))
    assert source.position == 25 and not source.finished and source.loop


def test_blocks_are_owned_by_the_caller() -> None:
    source = ReplaySource(_ramp(10))
    block = source.read(4)
    block[:] = -1.0
    np.testing.assert_array_equal(source.recording.signals[:4], _ramp(10).signals[:4])


def test_bad_requests() -> None:
    with pytest.raises(ValueError, match="n_samples must be >= 0"):
        ReplaySource(_ramp()).read(-1)
    empty = Recording(signals=np.empty((0, 3)), fs=250, lead_names=WEARABLE_LEADS, name="test/empty")
    with pytest.raises(ReplayError, match="record 'test/empty' has no samples to replay"):
        ReplaySource(empty, loop=True)


def test_replay_derives_a_missing_limb_lead_when_asked() -> None:
    i, iii, v1 = np.random.default_rng(1).normal(size=(3, 100))
    rec = Recording(
        signals=np.column_stack([i, iii, v1]), fs=500, lead_names=("I", "III", "V1"), name="test/limb"
    )
    with pytest.raises(MissingLeadError, match="no lead II "):
        ReplaySource(rec, leads=("II", "V1"))
    source = ReplaySource(rec, leads=("II", "V1"), derive=True)
    np.testing.assert_allclose(source.read(100), np.column_stack([i + iii, v1]), atol=1e-12)


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 40),
    loop=st.booleans(),
    blocks=st.lists(st.integers(0, 60), min_size=1, max_size=20),
)
def test_any_block_sizes_give_the_same_stream(n: int, loop: bool, blocks: list[int]) -> None:
    rec = _ramp(n)
    source = ReplaySource(rec, loop=loop)
    streamed = np.concatenate([source.read(size) for size in blocks])
    total = sum(blocks)
    expected = np.tile(rec.signals, (total // n + 1, 1))[:total] if loop else rec.signals[:total]
    np.testing.assert_array_equal(streamed, expected)
    assert source.position == len(expected)


# --- channel maps: 1- and 2-lead records on a 3-lead wearable ------------------------------------


@pytest.mark.shared_data
def test_a_two_lead_record_replays_through_a_channel_map(data: Path) -> None:
    source = ReplaySource(data / "mitdb/100", fs=250.0, channels={"II": "MLII", "V5": "V5"})
    original = read_record(data / "mitdb/100")
    assert source.lead_names == WEARABLE_LEADS and source.absent_leads == ("V1",)
    block = source.read(2500)
    assert not block[:, 1].any()  # V1 is flat: the device flags it as lead-off
    assert np.std(block[:, 0]) > 0.05 and np.std(block[:, 2]) > 0.05
    assert abs(source.duration_s - original.duration_s) < 1 / 250
    assert absent_lead_off(source) == LeadOff(0.0, 1e9, ("V1",))


def test_a_channel_map_streams_the_named_channel_as_the_lead() -> None:
    rec = Recording(signals=np.arange(20, dtype=np.float64).reshape(10, 2), fs=250.0,
                    lead_names=("I", "V2"), name="test/two")
    source = ReplaySource(rec, channels={"II": "I", "V1": "V2"})
    block = source.read(10)
    np.testing.assert_array_equal(block[:, 0], rec.signals[:, 0])
    np.testing.assert_array_equal(block[:, 1], rec.signals[:, 1])
    assert not block[:, 2].any() and source.absent_leads == ("V5",)


def test_a_channel_map_must_name_the_devices_leads_and_the_records_channels() -> None:
    rec = _ramp()
    with pytest.raises(ReplayError, match="cannot map channels to V6: the device streams II, V1, V5"):
        ReplaySource(rec, channels={"V6": "II"})
    with pytest.raises(MissingLeadError, match=r"has no lead V4 \(it has II, V1, V5\)"):
        ReplaySource(rec, channels={"II": "V4"})


def test_lead_off_flags_only_electrodes_no_present_lead_uses() -> None:
    assert absent_lead_electrodes(["V1"], ["II", "V5"]) == ("V1",)
    assert absent_lead_electrodes(["V1", "V5"], ["II"]) == ("V1", "V5")
    assert absent_lead_electrodes(["II"], ["V1", "V5"]) == ()  # RA, LL and RL also feed V1 and V5


def test_channels_that_share_a_name_are_mapped_by_number() -> None:
    rec = Recording(signals=np.arange(20, dtype=np.float64).reshape(10, 2), fs=250.0,
                    lead_names=("ECG", "ECG"), name="svdb/like")
    with pytest.raises(ReplayError, match=r"has 2 channels named ECG: pick one by number \(#1, #2\)"):
        ReplaySource(rec, channels={"II": "ECG"})
    source = ReplaySource(rec, channels={"II": "#1", "V5": "#2"})
    block = source.read(10)
    np.testing.assert_array_equal(block[:, [0, 2]], rec.signals)
    assert source.absent_leads == ("V1",)
    with pytest.raises(ReplayError, match=r"has channels #1-#2, not #3"):
        ReplaySource(rec, channels={"II": "#3"})


@pytest.mark.shared_data
def test_svdb_replays_with_numbered_channels(data: Path) -> None:
    source = ReplaySource(data / "svdb/800", fs=250.0, channels={"II": "#1", "V5": "#2"})
    assert source.lead_names == WEARABLE_LEADS and source.absent_leads == ("V1",)
    assert np.std(source.read(2500)[:, 0]) > 0.05
