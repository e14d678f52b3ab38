"""Packetiser: frames decode back to the quantised source; seq, timestamps, drift and flags."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.packetizer import DeviceClock, Packetizer, encode_for_wire
from firmware_sim.profiles import PROFILES, BatteryModel, DeviceProfile, WireFormat, get_profile
from protocol.ble_frame import MAX_ATT_PAYLOAD, SampleFormat, decode_frame, max_samples_per_frame, quantize
from protocol.leads import WEARABLE_LEADS, electrode_mask
from protocol.polar_pmd import decode_pmd_ecg


def _profile(fs: int, fmt: SampleFormat, lsb_nv: int) -> DeviceProfile:
    base = get_profile("ecgstream-250")
    return DeviceProfile(
        name=f"test-{fs}", fs_hz=fs, leads=WEARABLE_LEADS, sample_format=fmt, lsb_nv=lsb_nv,
        samples_per_frame=max_samples_per_frame(3, fmt), wire=WireFormat.ECGSTREAM, battery=base.battery,
    )


@settings(max_examples=40, deadline=None)
@given(
    fs=st.sampled_from([125, 250, 360, 500, 1000]),
    fmt=st.sampled_from(list(SampleFormat)),
    lsb_nv=st.sampled_from([250, 500, 1000]),
    block_sizes=st.lists(st.integers(1, 400), min_size=1, max_size=8),
    seed=st.integers(0, 2**16),
)
def test_frames_decode_to_the_quantised_source(fs, fmt, lsb_nv, block_sizes, seed):
    profile = _profile(fs, fmt, lsb_nv)
    signal = np.random.default_rng(seed).normal(0, 2.0, size=(sum(block_sizes), 3))
    packetizer = Packetizer(profile, clock=DeviceClock(offset_us=1_000_000))
    frames, start = [], 0
    for n in block_sizes:
        for batch in packetizer.packetize(signal[start : start + n], battery_pct=77):
            frames += [decode_frame(b) for b in encode_for_wire(batch, WireFormat.ECGSTREAM)]
        start += n

    decoded = np.concatenate([f.samples for f in frames])
    np.testing.assert_array_equal(decoded, quantize(signal, lsb_nv, fmt))
    assert [f.seq for f in frames] == list(range(len(frames)))
    first_samples = np.cumsum([0] + [f.n_samples for f in frames[:-1]])
    assert [f.t0_us for f in frames] == [1_000_000 + round(i * 1e6 / fs) for i in first_samples]
    assert all(f.fs_hz == fs and f.leads == WEARABLE_LEADS and f.battery_pct == 77 for f in frames)
    assert all(f.n_samples <= profile.samples_per_frame for f in frames)


@settings(max_examples=25, deadline=None)
@given(ppm=st.floats(-300, 300), offset_us=st.integers(0, 2**40))
def test_drift_measured_from_timestamps_equals_the_injected_one(ppm, offset_us):
    profile = get_profile("ecgstream-250")
    packetizer = Packetizer(profile, clock=DeviceClock(offset_us=offset_us, drift_ppm=ppm))
    hour = np.zeros((250 * 3600, 3))
    (batch,) = packetizer.packetize(hour)
    t0 = batch.t0_us.astype(np.float64)
    true_s = np.arange(len(batch)) * profile.samples_per_frame / profile.fs_hz
    measured_ppm = ((t0[-1] - t0[0]) / ((true_s[-1] - true_s[0]) * 1e6) - 1) * 1e6
    assert measured_ppm == pytest.approx(ppm, abs=0.01)
    assert int(batch.t0_us[0]) == offset_us


def test_sequence_numbers_wrap_at_u32():
    packetizer = Packetizer(get_profile("ecgstream-250"), first_seq=2**32 - 3)
    (batch,) = packetizer.packetize(np.zeros((36 * 6, 3)))
    assert batch.seq.tolist() == [2**32 - 3, 2**32 - 2, 2**32 - 1, 0, 1, 2]
    assert packetizer.next_seq == 3


def test_lead_off_flags_only_the_frames_that_contain_flagged_samples():
    packetizer = Packetizer(get_profile("ecgstream-250"))
    mask = np.zeros(36 * 4, dtype=np.uint16)
    mask[40:41] = electrode_mask(["V1"])  # inside frame 1
    mask[108:] = electrode_mask(["RA", "LL"])  # all of frame 3
    (batch,) = packetizer.packetize(np.zeros((36 * 4, 3)), lead_off=mask)
    frames = [decode_frame(b) for b in encode_for_wire(batch, WireFormat.ECGSTREAM)]
    assert [f.lead_off for f in frames] == [(), ("V1",), (), ("RA", "LL")]


def test_int16_clips_a_railed_input_instead_of_wrapping():
    packetizer = Packetizer(get_profile("ecgstream-250"))
    (batch,) = packetizer.packetize(np.array([[1e6, -1e6, 0.0]] * 36))
    assert batch.samples[0, 0].tolist() == [32767, -32768, 0]


def test_polar_frames_are_pmd_notifications_of_73_microvolt_samples():
    profile = get_profile("polar-h10")
    signal = np.random.default_rng(1).normal(0, 1.0, size=(73 * 3, 1))
    packetizer = Packetizer(profile, clock=DeviceClock(offset_us=5_000))
    (batch,) = packetizer.packetize(signal)
    notes = [decode_pmd_ecg(b) for b in encode_for_wire(batch, WireFormat.POLAR_PMD)]
    assert [len(n.samples_uv) for n in notes] == [73, 73, 73]
    np.testing.assert_array_equal(np.concatenate([n.samples_uv for n in notes]), np.rint(signal[:, 0] * 1000))
    expected_ns = [5_000_000 + i * 73 * 1e9 / 130 for i in range(3)]
    assert [n.first_sample_ns() for n in notes] == pytest.approx(expected_ns, abs=1000)  # µs device clock


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_fits_one_ble_notification(name):
    profile = get_profile(name)
    (batch,) = Packetizer(profile).packetize(np.zeros((profile.samples_per_frame, profile.n_leads)))
    (data,) = encode_for_wire(batch, profile.wire)
    assert len(data) <= MAX_ATT_PAYLOAD


def test_unknown_profile_error_lists_the_valid_names():
    with pytest.raises(ValueError, match="ecgstream-250.*ecgstream-500.*polar-h10"):
        get_profile("ecgstream-9000")


def test_a_profile_whose_frames_do_not_fit_ble_is_rejected():
    with pytest.raises(ValueError, match="exceed"):
        DeviceProfile(
            name="too-big", fs_hz=250, leads=WEARABLE_LEADS, sample_format=SampleFormat.INT24, lsb_nv=1000,
            samples_per_frame=36, wire=WireFormat.ECGSTREAM, battery=BatteryModel(200, 2.5),
        )


def test_battery_model_drains_linearly_to_zero():
    battery = BatteryModel(capacity_mah=100, streaming_current_ma=10)  # 10 h
    assert battery.pct_at(5 * 3600) == pytest.approx(50)
    assert battery.pct_at(20 * 3600) == 0
    assert battery.empty_at_s(speedup=10) == pytest.approx(3600)
