"""Pace pulses: found in the raw stream, kept out of the VT rule, never seen in body signals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.signal.pacing import PacePulseDetector
from evaluation.replay import Recording, replay
from firmware_sim.synthesis import NoiseSpec, RhythmSegment, synthesize, synthesize_timeline

MILD = NoiseSpec(baseline_mv=0.1, emg_mv=0.03, motion_mv=0.2, powerline_mv=0.05)


def _pulses(x: np.ndarray, at: np.ndarray, fs: float, *, mv: float = 2.0, ring: bool = False) -> np.ndarray:
    """``x`` with a pacing artefact (one sample, or a ringing burst) ``10 ms`` before each index in ``at``."""
    y = x.copy()
    lead = int(round(0.01 * fs))
    for i in at - lead:
        if ring:
            y[i : i + 6] += mv * np.array([1, -1, 1, -1, 0.5, -0.5])
        else:
            y[i] += mv
    return y


@pytest.mark.parametrize("fs", [250.0, 500.0])
@pytest.mark.parametrize("rhythm", ["sinus", "vt", "lbbb", "sinus_tachy", "afib"])
def test_body_signals_have_no_pace_pulses(rhythm: str, fs: float) -> None:
    x = synthesize(rhythm, seconds=20, fs=fs, seed=4, noise=MILD).lead("II")
    det = PacePulseDetector(fs)
    for chunk in np.array_split(x, 37):
        det.push(chunk)
    assert det.pulses_total == 0


@pytest.mark.parametrize("ring", [False, True])
def test_pulses_before_beats_mark_exactly_those_beats_paced(ring: bool) -> None:
    fs = 250.0
    syn = synthesize("vt", seconds=20, fs=fs, seed=2, noise=MILD)
    beats = syn.beats[(syn.beats > 50) & (syn.beats < syn.beats.max() - 50)]
    paced_beats = beats[::2]
    x = _pulses(syn.lead("II"), paced_beats, fs, ring=ring)
    det = PacePulseDetector(fs, history_s=60.0)
    det.push(x)
    assert det.paced(beats) == [bool(b in set(paced_beats.tolist())) for b in beats]
    assert det.paced(np.array([], dtype=np.int64)) == []


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 4999), max_size=12, unique=True))
def test_chunking_never_changes_what_is_found(cuts: list[int]) -> None:
    fs = 250.0
    rng = np.random.default_rng(0)
    x = 0.05 * rng.standard_normal(5000)
    x = _pulses(x, np.arange(300, 4900, 400), fs)
    whole, parts = PacePulseDetector(fs, history_s=60.0), PacePulseDetector(fs, history_s=60.0)
    whole.push(x)
    for chunk in np.split(x, sorted(cuts)):
        parts.push(chunk)
    probe = np.arange(0, 5000, 25)
    assert parts.pulses_total == whole.pulses_total > 0
    assert parts.paced(probe) == whole.paced(probe)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        PacePulseDetector(0.0)
    with pytest.raises(ValueError):
        PacePulseDetector(250.0, threshold_mv=0.0)


def _recording(x: np.ndarray, fs: float) -> Recording:
    signal = x[:, None].copy()
    return Recording("paced", fs, fs, ("II",), signal, signal.shape[0] / fs, (), ())


@pytest.mark.slow
def test_a_paced_rhythm_at_110_bpm_raises_no_vt_but_the_same_unpaced_rhythm_does() -> None:
    """Wide complexes at 110 bpm: VT unless a pacemaker drives them (the classic false VT alarm)."""
    fs = 250.0
    syn = synthesize_timeline([RhythmSegment(0.0, "sinus"), RhythmSegment(20.0, "vt", {"heart_rate": 110.0})],
                              seconds=60, fs=fs, seed=5, noise=MILD)
    x = syn.lead("II")
    wide = syn.beats[syn.beats > 20.5 * fs]
    paced = replay(_recording(_pulses(x, wide, fs), fs))
    unpaced = replay(_recording(x, fs))
    assert "vt" in {a.alert_type for a in unpaced.alerts}
    assert "vt" not in {a.alert_type for a in paced.alerts}, [a.alert_type for a in paced.alerts]
    assert paced.stream["paced_beats"] >= 0.9 * wide.size
    assert unpaced.stream["paced_beats"] == 0
