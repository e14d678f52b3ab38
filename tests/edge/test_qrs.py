"""Streaming QRS detector on synthetic ECG: every beat, right rate, silence in asystole, exact streaming.

Validation uses the project's synthesiser only (the real records are for evaluation, see
test_eval_qrs.py). Lead II; noise: baseline wander, EMG, electrode motion and mains together.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wfdb.processing import compare_annotations

from edge.signal.filters import EcgFilter, FilterSpec
from edge.signal.qrs import QrsConfig, QrsDetector
from edge.signal.rr import RrStats
from firmware_sim.synthesis import NoiseSpec, RhythmSegment, synthesize, synthesize_timeline

NOISE = NoiseSpec(baseline_mv=0.1, emg_mv=0.03, motion_mv=0.2, powerline_mv=0.05)
SPEC = FilterSpec(notch_hz=None, lowpass_hz=40.0)


def _run(x: np.ndarray, fs: float, packet: int = 36) -> tuple[np.ndarray, np.ndarray, float, QrsDetector]:
    """Beats, the sample count when each was reported, final heart rate, and the detector."""
    filt, det = EcgFilter(fs, 1, SPEC), QrsDetector(fs)
    beats, reported, hr = [], [], float("nan")
    for start in range(0, x.size, packet):
        r = det.process(filt.process(x[start : start + packet]))
        beats += r.beats.tolist()
        reported += [det.samples_seen] * r.beats.size
        hr = r.heart_rate_bpm
    r = det.finish()
    return np.array(beats + r.beats.tolist(), dtype=np.int64), np.array(reported + [x.size] * r.beats.size), hr, det


@pytest.mark.slow
@pytest.mark.parametrize("fs", [250.0, 500.0])
@pytest.mark.parametrize("rhythm", ["sinus", "afib", "pvc_bigeminy", "pvc", "vt"])
def test_finds_every_beat_with_noise_and_the_heart_rate(rhythm: str, fs: float) -> None:
    tp = fp = fn = 0
    for seed in (0, 1, 2):
        syn = synthesize(rhythm, seconds=60, fs=fs, seed=seed, noise=NOISE)
        beats, _, hr, _ = _run(syn.lead("II"), fs)
        cmp = compare_annotations(syn.beats, beats, int(0.15 * fs))
        tp, fp, fn = tp + cmp.tp, fp + cmp.fp, fn + cmp.fn
        truth = RrStats()
        for rr in np.diff(syn.beats) / fs:
            truth.add(float(rr))
        true_hr = truth.heart_rate_bpm
        assert abs(hr - true_hr) <= 2.0, (seed, hr, true_hr)
    assert tp / (tp + fn) >= 0.99 and tp / (tp + fp) >= 0.99, (tp, fp, fn)


def test_heart_rate_is_robust_to_one_missed_beat_and_right_for_bigeminy() -> None:
    stats = RrStats()
    for rr in (0.8, 0.8, 1.6, 0.8, 0.8, 0.8, 0.8, 0.8):   # one missed beat
        stats.add(rr)
    assert stats.heart_rate_bpm == pytest.approx(75.0)
    for rr in (0.5, 1.0) * 4:                              # bigeminy: 80 beats/min on average
        stats.add(rr)
    assert stats.heart_rate_bpm == pytest.approx(80.0)
    assert RrStats().heart_rate_bpm != RrStats().heart_rate_bpm   # NaN before any interval


def test_rr_irregularity_separates_af_from_sinus_and_group_beating() -> None:
    fs = 250.0
    irregularity = {}
    for rhythm in ("sinus", "afib", "pvc_bigeminy", "pvc_trigeminy"):
        _, _, _, det = _run(synthesize(rhythm, seconds=40, fs=fs, seed=3).lead("II"), fs)
        irregularity[rhythm] = det.rr.irregularity
    regular = max(irregularity["sinus"], irregularity["pvc_bigeminy"], irregularity["pvc_trigeminy"])
    assert regular < 0.1 < 0.15 < irregularity["afib"], irregularity


def test_rr_irregularity_reads_repeating_patterns_as_regular() -> None:
    rng = np.random.default_rng(0)
    for pattern in ((0.5, 1.0), (0.8, 0.8, 0.45), (0.8,)):      # bigeminy, trigeminy, sinus
        stats = RrStats()
        for rr in np.tile(pattern, 16)[:16] * (1 + 0.01 * rng.standard_normal(16)):
            stats.add(float(rr))
        assert stats.irregularity < 0.05, pattern
    stats = RrStats()
    for rr in rng.uniform(0.45, 1.1, 16):                        # AF: no pattern at any lag
        stats.add(float(rr))
    assert stats.irregularity > 0.2
    with pytest.raises(ValueError, match="max_pattern_lag"):
        RrStats(irregularity_intervals=4, max_pattern_lag=3)


def test_no_beats_in_asystole() -> None:
    fs = 250.0
    syn = synthesize_timeline([RhythmSegment(0.0, "sinus"), RhythmSegment(10.0, "asystole")], seconds=30.0, fs=fs,
                              seed=1, noise=NoiseSpec(emg_mv=0.02, baseline_mv=0.05))
    beats, _, _, _ = _run(syn.lead("II"), fs)
    assert beats.size > 5 and beats.max() <= syn.beats.max() + 0.15 * fs
    flat, _, _, _ = _run(synthesize("asystole", seconds=20, fs=fs, seed=2, noise=NoiseSpec(emg_mv=0.02)).lead("II"), fs)
    assert flat.size == 0


def test_beats_are_reported_within_0_3_s_of_the_r_peak() -> None:
    """Once the learning period is over, each beat (but search-back ones) is out ≤ 0.3 s after its R peak."""
    fs = 250.0
    syn = synthesize("sinus", seconds=30, fs=fs, seed=4, noise=NOISE)
    filt, det = EcgFilter(fs, 1, SPEC), QrsDetector(fs)
    x = filt.process(syn.lead("II"))
    lags = []
    for n in range(x.size):
        r = det.process(x[n : n + 1])
        lags += [(n + 1 - b) / fs for b, late in zip(r.beats, r.searchback, strict=True) if not late and b > 4 * fs]
    assert lags and max(lags) <= 0.3


_RECORD = synthesize("pvc", seconds=25, fs=250.0, seed=5, noise=NOISE).lead("II")
_FILTERED = EcgFilter(250.0, 1, SPEC).process(_RECORD)


def _whole() -> tuple[list[int], list[bool], float, float]:
    det = QrsDetector(250.0)
    a, b = det.process(_FILTERED), det.finish()
    return [*a.beats.tolist(), *b.beats.tolist()], [*a.searchback.tolist(), *b.searchback.tolist()], \
        b.heart_rate_bpm, b.rr_irregularity


_WHOLE = _whole()


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 400), min_size=1, max_size=60))
def test_any_packet_sizes_give_the_same_beats_as_the_whole_record(sizes: list[int]) -> None:
    det, beats, late, start, k = QrsDetector(250.0), [], [], 0, 0
    while start < _FILTERED.size:
        size = sizes[k % len(sizes)]
        r = det.process(_FILTERED[start : start + size])
        beats += r.beats.tolist()
        late += r.searchback.tolist()
        start, k = start + size, k + 1
    end = det.finish()
    assert (beats + end.beats.tolist(), late + end.searchback.tolist()) == (_WHOLE[0], _WHOLE[1])
    assert (end.heart_rate_bpm, end.rr_irregularity) == (_WHOLE[2], _WHOLE[3])


def test_rejects_bad_rates_shapes_and_use_after_finish() -> None:
    with pytest.raises(ValueError, match="100–1000 Hz"):
        QrsDetector(50.0)
    det = QrsDetector(250.0, QrsConfig(learn_s=2.0))
    with pytest.raises(ValueError, match="one lead"):
        det.process(np.zeros((10, 2)))
    det.finish()
    with pytest.raises(RuntimeError):
        det.process(np.zeros(10))
