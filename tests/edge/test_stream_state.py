"""StreamState against the simulator's ground truth: gaps, order, duplicates, interpolation, resampling, Polar."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import signal as sps

from edge.errors import EdgeError
from edge.stream import (
    GapReason,
    StreamConfig,
    StreamFormatError,
    StreamOutput,
    StreamState,
    model_fs_from_metadata,
)
from firmware_sim.faults import LOST_KINDS, FaultConfig, FaultInjector, GilbertElliott, Interval, LeadOff
from firmware_sim.packetizer import DeviceClock, Packetizer, encode_frame_for_wire, quantize_blocks
from firmware_sim.profiles import WireFormat, get_profile
from firmware_sim.synthesis import synthesize
from protocol.ble_frame import decode_frame, encode_frame
from protocol.polar_pmd import decode_pmd_ecg

GATEWAY_T0 = 1.7e9
LATENCY_S = 0.02


@dataclass
class Run:
    """A simulated stream after faults, fed through a StreamState."""

    state: StreamState
    out: StreamOutput
    truth_mv: np.ndarray  # quantised samples as sent, (n, leads)
    first_seq: int
    spf: int
    lost_seqs: set[int]
    delivered_seqs: list[int]


def simulate(
    faults: FaultConfig, *, seconds: float = 30.0, profile: str = "ecgstream-250", spf: int | None = None,
    first_seq: int = 0, config: StreamConfig | None = None, wire: bool = False, signal: str = "sinus",
) -> Run:
    prof = get_profile(profile)
    spf = spf or prof.samples_per_frame
    n = int(seconds * prof.fs_hz) // spf * spf
    if signal == "sinus":
        syn = synthesize("sinus", seconds=n / prof.fs_hz + 1, fs=prof.fs_hz, seed=faults.seed)
        x = np.stack([syn.lead(lead) for lead in prof.leads], axis=1)[:n]
    else:
        x = np.sin(2 * np.pi * 1.2 * np.arange(n) / prof.fs_hz)[:, None] * np.ones(prof.n_leads)
    inj: FaultInjector = FaultInjector(faults, spf / prof.fs_hz)
    mask: np.ndarray | int = 0
    if faults.lead_off:
        x, mask = inj.apply_lead_off(x, 0.0, prof.fs_hz, prof.leads, prof.full_scale_mv)
    pk = Packetizer(prof, samples_per_frame=spf, first_seq=first_seq,
                    clock=DeviceClock(faults.clock_offset_us, faults.clock_drift_ppm))
    (block,) = pk.frame_blocks(x, lead_off=mask)
    batch = quantize_blocks(prof, [block])
    frames = [batch.frame(i) for i in range(len(batch))]
    due = (np.arange(len(frames)) + 1) * spf / prof.fs_hz
    deliveries = inj.route(frames, due, block.seq, spf)
    deliveries.sort(key=lambda d: d.release_s)
    state = StreamState(config)
    out = StreamOutput()
    for d in deliveries:
        frame = d.payload
        if wire:
            frame = (decode_pmd_ecg(encode_frame_for_wire(frame, WireFormat.POLAR_PMD))
                     if prof.wire is WireFormat.POLAR_PMD else decode_frame(encode_frame(frame)))
        out.extend(state.push(frame, GATEWAY_T0 + d.release_s + LATENCY_S))
    out.extend(state.flush())
    lost = {e.seq for e in inj.events if e.kind in LOST_KINDS and e.seq is not None}
    truth = batch.samples.reshape(-1, prof.n_leads) * (prof.lsb_nv * 1e-6)
    return Run(state, out, truth, first_seq, spf, lost, [d.seq for d in deliveries])


def expected_gaps(run: Run) -> list[tuple[int, int]]:
    """(start, length) of every run of lost frames between the first and last received frame."""
    first = (run.delivered_seqs[0] - run.first_seq) % 2**32  # the stream starts at the first frame to arrive
    last = max((s - run.first_seq) % 2**32 for s in run.delivered_seqs)
    lost = sorted(i for i in ((s - run.first_seq) % 2**32 for s in run.lost_seqs) if first < i < last)
    gaps: list[tuple[int, int]] = []
    for i in lost:
        if gaps and gaps[-1][0] + gaps[-1][1] == (i - first) * run.spf:
            gaps[-1] = (gaps[-1][0], gaps[-1][1] + run.spf)
        else:
            gaps.append(((i - first) * run.spf, run.spf))
    return gaps


def check_tiling(run: Run) -> None:
    """Blocks and non-interpolated gaps cover [0, next_index) once each, in order; real samples are the truth."""
    pieces = [(b.start, b.n, "block") for b in run.out.blocks]
    pieces += [(g.start, g.length, "gap") for g in run.out.gaps if not g.interpolated]
    pieces.sort()
    pos = 0
    for start, length, _ in pieces:
        assert start == pos
        pos += length
    assert pos == run.state.next_index
    first = (run.delivered_seqs[0] - run.first_seq) % 2**32 * run.spf
    for b in run.out.blocks:
        if not b.interpolated:
            np.testing.assert_allclose(b.samples_mv, run.truth_mv[first + b.start : first + b.stop], atol=1e-6)
    c = run.state.counters
    assert c.samples == sum(b.n for b in run.out.blocks if not b.interpolated)
    assert c.samples_lost == sum(g.length for g in run.out.gaps)
    assert c.samples_interpolated == sum(g.length for g in run.out.gaps if g.interpolated)
    assert c.samples + c.samples_lost == run.state.next_index


ALL_FAULTS = FaultConfig(
    seed=7, loss_p=0.02, burst=GilbertElliott(0.01, 0.3), jitter_mean_s=0.015, jitter_max_s=0.05,
    reorder_p=0.05, reorder_depth=3, duplicate_p=0.05, disconnects=(Interval(40.0, 45.0),), clock_drift_ppm=120.0,
)


def test_every_injected_loss_is_a_gap_of_exactly_the_lost_samples() -> None:
    run = simulate(ALL_FAULTS, seconds=120.0, first_seq=2**32 - 300)
    c = run.state.counters
    assert c.late == 0
    assert [(g.start, g.length) for g in run.out.gaps] == expected_gaps(run)
    assert c.duplicates == sum(1 for s in run.delivered_seqs) - len(set(run.delivered_seqs))
    assert c.reordered > 0 and c.duplicates > 0
    check_tiling(run)
    disconnects = [g for g in run.out.gaps if g.reason is GapReason.DISCONNECT]
    assert any(g.start <= (40 * 250) - run.first_seq % 36 and g.length >= 5 * 250 - 36 for g in disconnects)
    assert all((g.reason is GapReason.DISCONNECT) == (g.length >= 250) for g in run.out.gaps)
    # one lost 36-sample frame (144 ms) is within the 150 ms interpolation limit, two are not
    assert all(g.interpolated == (g.length <= 36) for g in run.out.gaps)
    assert any(g.interpolated for g in run.out.gaps) and not all(g.interpolated for g in run.out.gaps)
    assert c.gaps == len(run.out.gaps) and c.timestamp_jumps == 0 and c.device_resets == 0


def test_wire_round_trip_gives_the_same_result() -> None:
    faults = FaultConfig(seed=3, loss_p=0.03, reorder_p=0.05, reorder_depth=3, duplicate_p=0.05)
    a, b = simulate(faults, seconds=20.0), simulate(faults, seconds=20.0, wire=True)
    assert [(g.start, g.length) for g in a.out.gaps] == [(g.start, g.length) for g in b.out.gaps] == expected_gaps(a)
    check_tiling(b)


def test_short_gaps_are_interpolated_and_long_ones_never() -> None:
    # 6-sample frames at 250 Hz (24 ms) with a 50 ms limit: one or two lost frames (<= 12 samples) are filled
    run = simulate(FaultConfig(seed=11, loss_p=0.08, burst=GilbertElliott(0.01, 0.3)), seconds=30.0, spf=6,
                   config=StreamConfig(interpolate_max_s=0.05))
    assert [(g.start, g.length) for g in run.out.gaps] == expected_gaps(run)
    check_tiling(run)
    assert any(g.interpolated for g in run.out.gaps) and any(not g.interpolated for g in run.out.gaps)
    for g in run.out.gaps:
        assert g.interpolated == (g.length <= 12)
    fills = {b.start: b for b in run.out.blocks if b.interpolated}
    real = {b.stop: b for b in run.out.blocks if not b.interpolated}
    nxt = {b.start: b for b in run.out.blocks if not b.interpolated}
    for g in (g for g in run.out.gaps if g.interpolated):
        fill = fills[g.start]
        assert fill.n == g.length
        before, after = real[g.start].samples_mv[-1], nxt[g.stop].samples_mv[0]
        expected = before + (after - before) * (np.arange(1, g.length + 1) / (g.length + 1))[:, None]
        np.testing.assert_allclose(fill.samples_mv, expected, atol=1e-5)


def test_model_rate_blocks_equal_batch_resampling_of_each_segment() -> None:
    run = simulate(FaultConfig(seed=5, loss_p=0.05, disconnects=(Interval(8.0, 10.0),)), seconds=20.0)
    segments: dict[int, list] = {}
    for m in run.out.model_blocks:
        segments.setdefault(m.segment_start, []).append(m)
    assert len(segments) == sum(1 for g in run.out.gaps if not g.interpolated) + 1
    blocks = sorted(run.out.blocks, key=lambda b: b.start)
    for start, parts in segments.items():
        assert [p.offset for p in parts] == list(np.cumsum([0] + [len(p.samples_mv) for p in parts[:-1]]))
        y = np.concatenate([p.samples_mv for p in parts])
        stop = min([g.start for g in run.out.gaps if g.start > start and not g.interpolated] + [run.state.next_index])
        x = np.concatenate([b.samples_mv for b in blocks if start <= b.start < stop]).astype(np.float64)
        np.testing.assert_allclose(y, sps.resample_poly(x, 1, 2, axis=0, padtype="edge"), atol=1e-5)


def test_model_rate_comes_from_the_config() -> None:
    """Default 125 Hz (the shipped models' rate); a model of another rate gets blocks at its rate."""
    assert StreamConfig().model_fs == 125.0
    for model_fs in (125.0, 250.0 / 3):
        run = simulate(FaultConfig(seed=2), seconds=12.0, config=StreamConfig(model_fs=model_fs))
        y = np.concatenate([m.samples_mv for m in run.out.model_blocks])
        assert {m.fs for m in run.out.model_blocks} == {model_fs}
        assert abs(len(y) - run.state.next_index * model_fs / 250.0) <= 1


def test_model_rate_read_from_artifact_metadata() -> None:
    assert model_fs_from_metadata({"ecgstream": json.dumps({"fs_hz": 125.0, "samples": 1250})}) == 125.0
    assert model_fs_from_metadata({"ecgstream": json.dumps({"fs_hz": 100})}) == 100.0
    for meta in ({}, {"ecgstream": "not json"}, {"ecgstream": "{}"}, {"ecgstream": '{"fs_hz": -1}'}):
        assert model_fs_from_metadata(meta) is None


def test_polar_frames_gaps_from_timestamps() -> None:
    run = simulate(FaultConfig(seed=2, loss_p=0.05, duplicate_p=0.05, clock_drift_ppm=-80.0),
                   seconds=60.0, profile="polar-h10", wire=True)
    assert [(g.start, g.length) for g in run.out.gaps] == expected_gaps(run)
    assert all(g.reason is (GapReason.DISCONNECT if g.length >= 130 else GapReason.TIMESTAMP_GAP) for g in run.out.gaps)
    assert run.state.counters.duplicates == len(run.delivered_seqs) - len(set(run.delivered_seqs)) > 0
    check_tiling(run)


def test_lead_off_flags_and_quality() -> None:
    faults = FaultConfig(seed=4, lead_off=(LeadOff(6.0, 12.0, ("V1",)),))
    run = simulate(faults, seconds=20.0)
    leads = run.state.leads
    assert leads == ("II", "V1", "V5")
    assert run.state.counters.lead_off_intervals == 1
    for b in run.out.blocks:
        t0, t1 = b.start / 250, b.stop / 250
        inside = t0 < 12.0 and t1 > 6.0
        assert b.lead_off.tolist() == [False, inside, False]
    for q in run.out.quality:
        if q.start >= 1500 and q.stop <= 3000:
            assert q.sqi[1] == 0.0 and q.flat[1] and q.lead_off[1]
        if q.stop <= 1476 or q.start >= 3024:  # flags are per 36-sample frame
            assert (q.sqi > 0.5).all() and q.usable.all()


def test_format_change_is_a_clear_error() -> None:
    run = simulate(FaultConfig(seed=1), seconds=2.0)
    prof = get_profile("ecgstream-500")
    frame = quantize_blocks(prof, Packetizer(prof).frame_blocks(np.zeros((24, 3)))).frame(0)
    before = run.state.counters.frames
    with pytest.raises(StreamFormatError) as caught:
        run.state.push(frame, GATEWAY_T0 + 3.0)
    assert run.state.counters.frames == before and run.state.fs == 250
    # one of the edge's own errors, and still the ValueError callers catch
    assert isinstance(caught.value, EdgeError) and isinstance(caught.value, ValueError)


fault_configs = st.builds(
    FaultConfig,
    seed=st.integers(0, 2**16),
    loss_p=st.sampled_from([0.0, 0.01, 0.1, 0.5]),
    burst=st.one_of(st.none(), st.builds(GilbertElliott, st.sampled_from([0.01, 0.1]), st.sampled_from([0.2, 0.9]))),
    jitter_mean_s=st.sampled_from([0.0, 0.01, 0.05, 0.3]),
    jitter_max_s=st.sampled_from([0.05, 1.0]),
    reorder_p=st.sampled_from([0.0, 0.05, 0.3]),
    reorder_depth=st.integers(1, 12),
    duplicate_p=st.sampled_from([0.0, 0.05, 0.5]),
    disconnects=st.sampled_from([(), (Interval(2.0, 7.0),), (Interval(0.0, 1.0), Interval(9.0, 9.5))]),
    clock_drift_ppm=st.sampled_from([-200.0, 0.0, 120.0]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(faults=fault_configs, spf=st.sampled_from([6, 36]), first_seq=st.sampled_from([0, 2**32 - 40]))
def test_any_fault_mix_keeps_the_accounting(faults: FaultConfig, spf: int, first_seq: int) -> None:
    run = simulate(faults, seconds=12.0, spf=spf, first_seq=first_seq, signal="sine")
    if not run.delivered_seqs:  # every frame lost: nothing reached the state
        assert run.state.next_index == 0
        return
    check_tiling(run)
    c = run.state.counters
    assert c.frames == len(run.delivered_seqs)
    if c.late == 0 and c.device_resets == 0:
        assert [(g.start, g.length) for g in run.out.gaps] == expected_gaps(run)
    limit = int(StreamConfig().interpolate_max_s * 250 + 1e-9)
    assert all(g.length <= limit for g in run.out.gaps if g.interpolated)


def test_frames_leave_in_runs_but_quality_comes_with_the_frame_that_completes_its_window() -> None:
    """Received frames are emitted as runs (one block for many frames), yet each quality report comes
    out of the very push whose frame completes its 2-s window, and a poll emits what is held."""
    prof = get_profile("ecgstream-250")
    syn = synthesize("sinus", seconds=13, fs=prof.fs_hz, seed=2)
    n = 12 * prof.fs_hz // prof.samples_per_frame * prof.samples_per_frame
    x = np.stack([syn.lead(lead) for lead in prof.leads], axis=1)[:n]
    (block,) = Packetizer(prof).frame_blocks(x)
    batch = quantize_blocks(prof, [block])
    state, window = StreamState(), round(StreamConfig().quality_window_s * prof.fs_hz)
    blocks, pushed = [], 0
    for i in range(len(batch)):
        frame = batch.frame(i)
        out = state.push(frame, GATEWAY_T0 + i * 0.144)
        pushed += frame.n_samples
        completed = pushed // window - (pushed - frame.n_samples) // window
        assert [q.stop for q in out.quality] == [window * (pushed // window)] * completed
        blocks += out.blocks
        if i == len(batch) // 2:
            held = state.poll(GATEWAY_T0 + i * 0.144)          # a tick: nothing stays behind
            assert sum(b.n for b in blocks + held.blocks) == pushed
            blocks += held.blocks
    assert len(blocks) < len(batch) // 4                          # runs, not frames
    assert [b.start for b in blocks] == list(np.cumsum([0] + [b.n for b in blocks[:-1]]))


def test_the_agent_takes_the_model_rate_from_the_artifact_metadata(tmp_path: Path) -> None:
    """A reconstruction artifact that says it runs at 250 Hz gets the stream output and window grid at 250 Hz;
    the shipped one (125 Hz) keeps the default."""
    onnx = pytest.importorskip("onnx")
    from edge.agent import AgentConfig, EdgeAgent
    from edge.inference import InferencePipeline, select_backend
    from models.runtime.onnx_model import DEFAULT_RECONSTRUCTION

    shipped = EdgeAgent(AgentConfig(), pipeline=InferencePipeline(select_backend("cpu", DEFAULT_RECONSTRUCTION)))
    assert shipped.config.session.stream.model_fs == 125.0 and shipped.config.session.window.fs == 125.0

    proto = onnx.load(str(DEFAULT_RECONSTRUCTION))
    for prop in proto.metadata_props:
        if prop.key == "ecgstream":
            prop.value = json.dumps({**json.loads(prop.value), "fs_hz": 250})
    onnx.save(proto, str(tmp_path / "at250.onnx"))
    at_250 = EdgeAgent(AgentConfig(), pipeline=InferencePipeline(select_backend("cpu", tmp_path / "at250.onnx")))
    assert at_250.config.session.stream.model_fs == 250.0 and at_250.config.session.window.fs == 250.0
