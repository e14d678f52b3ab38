"""Windower: hop and size, gaps dropped and counted, independence of block boundaries, band-pass as in training."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.inference.windowing import STREAM_END, WindowConfig, Windower, prepare_batch
from edge.stream.records import Gap, GapReason, ModelBlock, StreamOutput
from models.preprocessing import prepare_window

FS = 125.0
T0 = 1.7e9


def blocks_of(segment_start: int, x: np.ndarray, cuts: list[int], device_fs: float) -> list[ModelBlock]:
    """Model blocks of one segment cut at ``cuts`` (model-rate offsets), gateway time = stream time + T0."""
    edges = [0, *sorted(c for c in set(cuts) if 0 < c < len(x)), len(x)]
    return [
        ModelBlock(segment_start, a, x[a:b], FS, T0 + segment_start / device_fs + a / FS)
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]


def signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    return (np.sin(2 * np.pi * 1.1 * t)[:, None] * [1.0, -0.5, 0.8] + rng.normal(0, 0.05, (n, 3))).astype(np.float32)


def test_one_segment_hop_and_size() -> None:
    x = signal(3750)  # 30 s
    w = Windower("p1", "d1", 250.0)
    wins = [win for b in blocks_of(0, x, [1000, 2000], 250.0) for win in w.push_block(b)]
    # slot k: context [625k, 625k + 1500) must fit in 3750 samples → k = 0..3
    assert [win.slot for win in wins] == [0, 1, 2, 3]
    assert [win.offset for win in wins] == [125, 750, 1375, 2000]
    for win in wins:
        assert win.samples_mv.shape == (3, 1250) and win.context_mv.shape == (1500, 3)
        np.testing.assert_array_equal(win.samples_mv, x[win.offset : win.offset + 1250].T)
        assert win.t_stream_s == pytest.approx(win.offset / FS)
        assert win.t_gateway_s == pytest.approx(T0 + win.offset / FS)
        assert (win.patient_id, win.device_id, win.leads) == ("p1", "d1", ("II", "V1", "V5"))
    assert len({win.window_id for win in wins}) == 4
    assert w.counters.emitted == 4 and w.counters.dropped_total == 0
    # the slot whose context had begun (k = 4, 5: contexts start at 2500, 3125 < 3750) is dropped at the end
    assert w.close() == 2 and w.counters.dropped == {STREAM_END: 2}


def test_configurable_geometry_and_validation() -> None:
    cfg = WindowConfig(window_s=10.0, hop_s=2.0, margin_s=1.0)
    w = Windower("p", "d", 250.0, cfg)
    wins = w.push_block(ModelBlock(0, 0, signal(3750), FS, T0))
    assert [win.offset for win in wins] == [125 + 250 * k for k in range(10)]  # (3750 - 1500) // 250 + 1 windows
    short = Windower("p", "d", 250.0, WindowConfig(window_s=2.0, hop_s=1.0, margin_s=0.0))
    assert len(short.push_block(ModelBlock(0, 0, signal(500), FS, T0))) == 3
    with pytest.raises(ValueError, match="whole number"):
        WindowConfig(hop_s=2.5 / FS)
    with pytest.raises(ValueError):
        WindowConfig(hop_s=0.0)
    with pytest.raises(ValueError, match="offset"):
        w.push_block(ModelBlock(0, 10, signal(10), FS, T0))  # not where the segment left off


def test_model_input_is_prepare_window_of_the_context() -> None:
    x = signal(2000, seed=3)
    w = Windower("p", "d", 250.0)
    (win,) = w.push_block(ModelBlock(0, 0, x, FS, T0))
    expected = prepare_window(win.context_mv.astype(np.float64), FS)  # 12 s → centre 10 s, as in training
    np.testing.assert_allclose(win.model_input(), expected, atol=1e-6)
    x2 = signal(3750, seed=4)
    wins = Windower("q", "d", 250.0).push_block(ModelBlock(0, 0, x2, FS, T0))
    batch = prepare_batch([win, *wins])
    assert batch.shape == (1 + len(wins), 3, 1250) and batch.dtype == np.float32
    for b, one in zip(batch, [win, *wins], strict=True):
        np.testing.assert_allclose(b, prepare_window(one.context_mv.astype(np.float64), FS), atol=1e-6)
    sel = prepare_batch([win], leads=("V5", "II"))
    np.testing.assert_allclose(sel[0], expected[[2, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="needs"):
        prepare_batch([win], leads=("I",))


def test_window_across_a_gap_is_dropped_with_the_gaps_reason() -> None:
    w = Windower("p", "d", 250.0)
    out = StreamOutput(model_blocks=blocks_of(0, signal(2000), [700], 250.0))  # 16 s: slot 0 only
    assert [win.slot for win in w.push(out)] == [0]
    # a 10 s disconnect: device samples [4000, 6500), next segment starts at device index 6500 (52 s model-rate 3250)
    gap = Gap(4000, 2500, GapReason.DISCONNECT, False, 16e6, T0 + 16)
    out2 = StreamOutput(gaps=[gap], model_blocks=blocks_of(6500, signal(3000, 1), [], 250.0))
    wins = w.push(out2)
    # new segment at model-rate 3250: first slot with context start >= 3250 is k = 6 (3750)
    assert [win.slot for win in wins] == [6, 7]
    assert all(win.segment_start == 6500 for win in wins)
    assert wins[0].offset == 3750 - 3250 + 125
    assert wins[0].t_stream_s == pytest.approx(6500 / 250 + wins[0].offset / FS) == pytest.approx((3750 + 125) / FS)
    assert w.counters.dropped == {"disconnect": 5}  # slots 1..5 span the gap
    assert w.counters.emitted == 3


def test_interpolated_gap_is_kept_and_flagged() -> None:
    w = Windower("p", "d", 250.0)
    w.push_gap(Gap(3000, 10, GapReason.LOST_FRAMES, True, 12e6, T0 + 12))  # device samples 3000..3010 = 12 s
    wins = w.push_block(ModelBlock(0, 0, signal(3750), FS, T0))
    flagged = {win.slot: win.interpolated_samples for win in wins}
    # windows cover [1 + 5k, 11 + 5k) s: slots 1 and 2 contain 12 s
    assert flagged == {0: 0, 1: 10, 2: 10, 3: 0}
    assert w.counters.with_interpolation == 2 and w.counters.dropped_total == 0


@st.composite
def streams(draw: st.DrawFn) -> tuple[float, list[tuple[int, int, str]], list[list[int]], float]:
    device_fs = draw(st.sampled_from([250.0, 130.0, 125.0, 500.0]))
    hop_s = draw(st.sampled_from([5.0, 2.0, 10.0, 12.0]))
    n_seg = draw(st.integers(1, 4))
    segments, splits = [], []
    start = draw(st.integers(0, 2000))
    for _ in range(n_seg):
        length = draw(st.integers(0, 5000))
        reason = draw(st.sampled_from(list(GapReason)))
        segments.append((start, length, str(reason)))
        splits.append(draw(st.lists(st.integers(1, max(length - 1, 1)), max_size=12)))
        start += round(length * device_fs / FS) + draw(st.integers(1, 3000))
    return device_fs, segments, splits, hop_s


def feed(device_fs: float, segments: list[tuple[int, int, str]], splits: list[list[int]], hop_s: float,
         data: np.ndarray, mask_max_gap_s: float = 0.0) -> tuple[Windower, list, int]:
    w = Windower("p", "d", device_fs, WindowConfig(hop_s=hop_s, mask_max_gap_s=mask_max_gap_s))
    wins = []
    prev_stop = None
    for (start, length, reason), cuts in zip(segments, splits, strict=True):
        out = StreamOutput()
        if prev_stop is not None:
            out.gaps.append(Gap(prev_stop, start - prev_stop, GapReason(reason), False, 0.0, 0.0))
        if length:
            out.model_blocks = blocks_of(start, data[:length], cuts, device_fs)
        wins += w.push(out)
        prev_stop = start + round(length * device_fs / FS)
    closed = w.close()
    return w, wins, closed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_same_windows_whatever_the_block_boundaries(case: tuple) -> None:
    device_fs, segments, splits, hop_s = case
    data = signal(5000, seed=9)
    w_ref, ref, _ = feed(device_fs, segments, [[] for _ in segments], hop_s, data)  # no masking: gaps break
    w, wins, _ = feed(device_fs, segments, splits, hop_s, data)
    key = [(x.slot, x.segment_start, x.offset) for x in wins]
    assert key == [(x.slot, x.segment_start, x.offset) for x in ref]
    for a, b in zip(wins, ref, strict=True):
        np.testing.assert_array_equal(a.context_mv, b.context_mv)
        assert a.t_gateway_s == pytest.approx(b.t_gateway_s, abs=1e-6)
    assert w.counters.dropped == w_ref.counters.dropped and w.counters.emitted == w_ref.counters.emitted == len(wins)
    # every emitted window lies inside one segment, on the grid, in slot order, no slot twice
    hop = round(hop_s * FS)
    slots = [x.slot for x in wins]
    assert slots == sorted(set(slots))
    for x in wins:
        seg = next(s for s in segments if s[0] == x.segment_start)
        assert x.offset >= 125 and x.offset + 1250 + 125 <= seg[1]
        assert abs(x.segment_start * FS / device_fs + x.offset - 125 - x.slot * hop) <= 0.5 + 1e-9
    # nothing lost silently: every grid slot from the first to the end of the data is emitted or dropped
    nonempty = [s for s in segments if s[1]]
    if nonempty:
        first_start = nonempty[0][0] * FS / device_fs
        last_start, last_len = nonempty[-1][0] * FS / device_fs, nonempty[-1][1]
        k0 = next(k for k in range(10**6) if round(k * hop - first_start) >= 0)
        k_end = next(k for k in range(10**6) if round(k * hop - last_start) >= last_len)
        assert w.counters.emitted + w.counters.dropped_total == k_end - k0
        reasons = {s[2] for s in segments[1:]} | {STREAM_END}
        assert set(w.counters.dropped) <= reasons


def test_a_short_gap_is_masked_not_dropped() -> None:
    """Frames lost for 1 s at 12 s (device 250 Hz): the windows over it are sent with the lost range masked."""
    w = Windower("p", "d", 250.0)
    x = signal(5000)
    first = w.push_block(ModelBlock(0, 0, x[:1500], FS, T0))                       # [0, 12) s
    w.push_gap(Gap(3000, 250, GapReason.LOST_FRAMES, False, 12e6, T0 + 12))      # device [3000, 3250) = [12, 13) s
    wins = first + w.push_block(ModelBlock(3250, 0, x[1625:], FS, T0 + 13))        # [13, 40) s
    assert [win.slot for win in wins] == [0, 1, 2, 3, 4, 5]
    assert w.counters.dropped_total == 0 and w.counters.with_gaps == 2
    by_slot = {win.slot: win for win in wins}
    # slot 1: content [6, 16) s → the gap is samples [6 s, 7 s) of it; slot 2: [11, 21) s → [1 s, 2 s)
    assert by_slot[1].gaps == ((750, 875),) and by_slot[2].gaps == ((125, 250),)
    assert all(not by_slot[k].gaps for k in (0, 3, 4, 5))
    for win in wins:  # filled for the band-pass, the rest exactly as received
        assert np.isfinite(win.context_mv).all()
        keep = np.ones(win.n_samples, dtype=bool)
        for a, b in win.gaps:
            keep[a:b] = False
        np.testing.assert_array_equal(win.samples_mv[:, keep], x[win.offset : win.offset + 1250].T[:, keep])
        assert win.window_id == w.window_id_for(win.slot)


def test_a_mostly_missing_window_is_dropped_and_a_long_gap_still_breaks_the_grid() -> None:
    w = Windower("p", "d", 250.0, WindowConfig(mask_max_gap_s=8.0, mask_max_fraction=0.5))
    x = signal(8000)
    w.push_block(ModelBlock(0, 0, x[:1500], FS, T0))                               # [0, 12) s
    w.push_gap(Gap(3000, 1500, GapReason.LOST_FRAMES, False, 12e6, T0 + 12))     # [12, 18) s: 6 s lost
    wins = w.push_block(ModelBlock(4500, 0, x[2250:], FS, T0 + 18))
    masked = {win.slot: win.masked_samples for win in wins if win.gaps}
    assert all(n <= 625 for n in masked.values()) and masked
    assert w.counters.dropped == {"lost_frames": 1}  # slot 2: content [11, 21) s, 6 s of it lost
    w2 = Windower("p", "d", 250.0)                                                # default: at most 4 s masked
    w2.push_block(ModelBlock(0, 0, x[:1500], FS, T0))
    w2.push_gap(Gap(3000, 1500, GapReason.LOST_FRAMES, False, 12e6, T0 + 12))
    wins2 = w2.push_block(ModelBlock(4500, 0, x[2250:], FS, T0 + 18))
    assert not any(win.gaps for win in wins2) and w2.counters.dropped == {"lost_frames": 3}  # contexts of slots 1-3


def test_window_ids_are_known_before_the_window_is_cut() -> None:
    w = Windower("p", "d", 250.0)
    # content of slot k: [1 + 5k, 11 + 5k) s
    assert w.slots_covering(12.0, 12.0) == [1, 2]
    assert w.slots_covering(0.0, 0.5) == [] and w.slots_covering(1.0, 1.5) == [0]
    assert w.slots_covering(20.0, 33.0) == [2, 3, 4, 5, 6]
    ids = w.window_ids_covering(12.0, 12.0)
    wins = w.push_block(ModelBlock(0, 0, signal(3000), FS, T0))
    assert [win.window_id for win in wins if win.slot in (1, 2)] == ids
    assert Windower("p", "d", 250.0).window_id_for(1) != ids[0]   # another stream, another id


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_masked_windows_are_the_same_whatever_the_block_boundaries_and_every_slot_counts(case: tuple) -> None:
    device_fs, segments, splits, hop_s = case
    data = signal(5000, seed=9)
    w_ref, ref, _ = feed(device_fs, segments, [[] for _ in segments], hop_s, data, mask_max_gap_s=4.0)
    w, wins, _ = feed(device_fs, segments, splits, hop_s, data, mask_max_gap_s=4.0)
    assert [(x.slot, x.gaps) for x in wins] == [(x.slot, x.gaps) for x in ref]
    for a, b in zip(wins, ref, strict=True):
        np.testing.assert_array_equal(a.context_mv, b.context_mv)
        assert np.isfinite(a.context_mv).all() and a.masked_samples <= 625
    assert w.counters.dropped == w_ref.counters.dropped and w.counters.emitted == len(wins)
    slots = [x.slot for x in wins]
    assert slots == sorted(set(slots))
    assert w.counters.with_gaps == sum(1 for x in wins if x.gaps)
