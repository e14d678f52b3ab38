"""AF detection from RR intervals: the irregularity of :class:`edge.signal.rr.RrStats` (the Petrėnas
et al. 2015 detector of :mod:`edge.signal.af_detector` behind an ectopy gate) and the AF rule.

Beats are the simulator's true R-peak times (plus 4 ms of fiducial jitter, as a QRS detector
gives), RR as the session computes them, one packet of evidence per second into a real
:class:`AlarmEngine`: what is tested is the RR statistic and the rule, not QRS detection (that is
``test_alarms.py``, end to end).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.alarms import AlarmConfig, AlarmEngine, BeatEvidence, LeadQuality, LinearClock, TechnicalState
from edge.signal.af_detector import AfDetector
from edge.signal.rr import ECTOPY_GATE, GATE_FLOOR, GATE_POWER, RrStats, irregularity
from firmware_sim.synthesis import RhythmSegment, synthesize_timeline
from protocol.messages import Alert

FS = 250.0
GOOD = {"II": LeadQuality(0.8, rms_mv=0.3)}
CONFIG = AlarmConfig()


def beat_times(segments: list[RhythmSegment], seconds: float, seed: int) -> np.ndarray:
    """True R-peak times (s) of a synthetic timeline, with 4 ms SD fiducial jitter."""
    syn = synthesize_timeline(segments, seconds=seconds, fs=FS, seed=seed)
    t = syn.beats / FS
    return np.sort(t + np.random.default_rng(seed).normal(0.0, 0.004, t.size))


def run_engine(times: np.ndarray, seconds: float) -> list[Alert]:
    """Feed beats one 1-s packet at a time; the irregularity comes from a session-sized RrStats."""
    engine = AlarmEngine("p", "d", LinearClock())
    rr = RrStats()
    alerts: list[Alert] = []
    last: float | None = None
    for t0 in np.arange(0.0, seconds, 1.0):
        packet = times[(times >= t0) & (times < t0 + 1.0)]
        for b in packet.tolist():
            if last is not None:
                rr.add(b - last)
            last = b
        tech = TechnicalState(float(t0), float(t0) + 1.0, GOOD)
        ev = BeatEvidence(float(t0) + 1.0, tuple(packet.tolist()), (90.0,) * packet.size, rr.heart_rate_bpm,
                          rr.irregularity)
        alerts += engine.update(float(t0) + 1.0, beats=ev, technical=tech)
    return alerts


def af_raised(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.alert_type == "af" and a.details["event"] == "raised"]


@pytest.mark.parametrize("seed", range(6))
def test_af_after_sinus_raises_within_55_s_with_the_onset_near_the_start_of_af(seed: int) -> None:
    start = 40.0
    times = beat_times([RhythmSegment(0.0, "sinus"), RhythmSegment(start, "afib", {"rr_cv": 0.15 + 0.03 * seed})],
                       120.0, seed)
    raised = af_raised(run_engine(times, 120.0))
    assert len(raised) == 1, [a.details for a in raised]
    at, onset = raised[0].details["at_s"], raised[0].details["onset_s"]
    # persistence counts from the estimated start of the run: af_persist_s, or af_persist_beats beats
    beats_in_run = int(((times >= onset - 0.001) & (times <= at)).sum())
    assert at <= start + 55.0 and (at >= onset + CONFIG.af_persist_s or beats_in_run >= CONFIG.af_persist_beats), (
        at, onset, beats_in_run)
    # the onset points at the start of the irregular run, not at when the detector's average showed it
    assert start - 3.0 <= onset <= start + 10.0, onset


@pytest.mark.parametrize("seed", range(4))
def test_a_30_s_paroxysm_of_clearly_irregular_af_raises_with_its_onset_inside_it(seed: int) -> None:
    start, end = 60.0, 90.0
    segs = [RhythmSegment(0.0, "sinus"), RhythmSegment(start, "afib", {"rr_cv": 0.25, "heart_rate": 100.0}),
            RhythmSegment(end, "sinus")]
    raised = af_raised(run_engine(beat_times(segs, 200.0, seed), 200.0))
    assert len(raised) == 1, [a.details for a in raised]
    # the change-point estimate of the start: within a second in 26 of 28 synthetic transitions, 4.8 s early once
    assert start - 5.0 <= raised[0].details["onset_s"] <= end, raised[0].details


@pytest.mark.parametrize("seed", range(3))
def test_a_fast_paroxysm_shorter_than_30_s_raises_on_its_beats_with_the_onset_inside_it(seed: int) -> None:
    # 25 s of AF at 125 beats/min is 52 beats: enough evidence for the beat-count confirmation,
    # too short for 30 s of persistence (synthetic: 12 of 12 such paroxysms raise; 10 of 12 before)
    start, end = 60.0, 85.0
    segs = [RhythmSegment(0.0, "sinus"), RhythmSegment(start, "afib", {"rr_cv": 0.2, "heart_rate": 125.0}),
            RhythmSegment(end, "sinus")]
    raised = af_raised(run_engine(beat_times(segs, 180.0, 500 + seed), 180.0))
    assert len(raised) == 1, [a.details for a in raised]
    assert start - 5.0 <= raised[0].details["onset_s"] <= end, raised[0].details
    assert raised[0].details["at_s"] - start < 30.0, raised[0].details


@pytest.mark.parametrize("rhythm,params", [
    ("sinus", {}), ("sinus_brady", {}), ("sinus_tachy", {}),
    ("pac", {"pac_prob": 0.3, "heart_rate": 120.0}), ("pvc", {"pvc_prob": 0.25, "heart_rate": 120.0}),
    ("pac", {"pac_prob": 0.3}), ("pvc", {"pvc_prob": 0.25}),
    ("pvc_bigeminy", {}), ("pvc_trigeminy", {}),
])
@pytest.mark.parametrize("seed", range(3))
def test_sinus_ectopy_and_group_beating_raise_no_af(rhythm: str, params: dict[str, float], seed: int) -> None:
    times = beat_times([RhythmSegment(0.0, rhythm, params)], 180.0, 100 + seed)
    assert af_raised(run_engine(times, 180.0)) == []


def test_af_clears_after_a_minute_of_sinus_and_a_new_episode_raises_again() -> None:
    # AF at 90 beats/min: slow AF (< 60) reads under η (the detector divides by the mean RR; AlarmConfig)
    af = {"heart_rate": 90.0, "rr_cv": 0.2}
    segs = [RhythmSegment(0.0, "sinus"), RhythmSegment(20.0, "afib", af), RhythmSegment(100.0, "sinus"),
            RhythmSegment(200.0, "afib", af)]
    alerts = run_engine(beat_times(segs, 280.0, 7), 280.0)
    events = [(a.details["event"], round(a.details["onset_s"])) for a in alerts if a.alert_type == "af"]
    assert [e for e, _ in events] == ["raised", "cleared", "raised"], events
    assert 17 <= events[0][1] <= 35 and 197 <= events[2][1] <= 215, events


def test_persistence_counts_from_the_run_start_but_never_from_before_an_explicit_clear() -> None:
    times = beat_times([RhythmSegment(0.0, "afib", {"rr_cv": 0.25})], 150.0, 3)
    engine = AlarmEngine("p", "d", LinearClock())
    rr, last, raised_at = RrStats(), None, []
    for t0 in range(150):
        packet = times[(times >= t0) & (times < t0 + 1)]
        for b in packet.tolist():
            if last is not None:
                rr.add(b - last)
            last = b
        out = engine.update(t0 + 1.0, beats=BeatEvidence(t0 + 1.0, tuple(packet.tolist()), (), rr.heart_rate_bpm,
                                                         rr.irregularity), technical=TechnicalState(t0, t0 + 1.0, GOOD))
        raised_at += [t0 + 1 for a in out if a.alert_type == "af" and a.details["event"] == "raised"]
        if t0 == 60:
            assert engine.clear("af")                    # staff reset while AF goes on
    # the new episode persists afresh from the clear: af_persist_s, or the time af_persist_beats beats of
    # the run took (about as many beats again: the rate of AF wanders)
    beats_after_clear = int(((times >= 61) & (times <= raised_at[-1])).sum())
    assert len(raised_at) == 2 and (raised_at[1] >= 61 + CONFIG.af_persist_s
                                    or beats_after_clear >= 0.9 * CONFIG.af_persist_beats), (raised_at, beats_after_clear)


# -- the irregularity figure -------------------------------------------------------------------------

def test_figures_are_nan_until_enough_intervals_and_the_rate_is_a_trimmed_mean() -> None:
    s = RrStats()
    assert math.isnan(s.heart_rate_bpm) and math.isnan(s.irregularity) and s.mean_s(4) is None
    for rr in (0.8, 0.8, 1.6) + (0.8,) * 6:                # one missed beat
        s.add(rr)
    assert s.heart_rate_bpm == pytest.approx(75.0)
    assert math.isnan(s.irregularity)                      # 9 < 10 intervals: the detector's first window
    s.add(0.8)
    assert s.irregularity == pytest.approx(0.0, abs=1e-12)  # one missed beat does not survive the median
    rng = np.random.default_rng(1)
    irregular = RrStats()
    for rr in 0.6 * np.exp(rng.normal(0.0, 0.25, 15)):
        irregular.add(float(rr))
    early = irregular.irregularity                          # irregular, but the ectopy gate needs 16 RR
    assert math.isnan(early) or early <= GATE_FLOOR
    irregular.add(0.6)
    assert math.isfinite(irregular.irregularity)
    for rr in 0.6 * np.exp(rng.normal(0.0, 0.25, 30)):
        irregular.add(float(rr))
    assert irregular.irregularity > CONFIG.af_irregularity


def test_ring_buffer_keeps_the_latest_intervals_in_order() -> None:
    s = RrStats(4, 6, max_pattern_lag=2)
    for k in range(1, 20):
        s.add(float(k))
        assert s.last(6).tolist() == [float(x) for x in range(max(1, k - 5), k + 1)]
        assert s.mean_s(3) == pytest.approx(np.mean(range(max(1, k - 2), k + 1)))


rr_lists = st.lists(st.floats(0.3, 2.0), min_size=6, max_size=40)


@settings(max_examples=80, deadline=None)
@given(rr=rr_lists, scale=st.floats(0.25, 4.0))
def test_irregularity_is_scale_invariant(rr: list[float], scale: float) -> None:
    a, b = irregularity(np.array(rr)), irregularity(np.array(rr) * scale)
    assert a == pytest.approx(b, rel=1e-9, abs=1e-12)


@settings(max_examples=80, deadline=None)
@given(rr=rr_lists, reads=st.lists(st.integers(0, 40), max_size=6))
def test_rrstats_irregularity_is_the_gated_detector_output_however_often_it_is_read(
        rr: list[float], reads: list[int]) -> None:
    s = RrStats(8, 16)
    for k, x in enumerate(rr):
        s.add(x)
        if k in reads:                                    # reading batches the detector's input differently
            _ = s.irregularity
    robust = irregularity(np.array(rr[-16:]), 4, 0.85, 8)
    assert (math.isnan(robust) and math.isnan(s.robust_irregularity)) or s.robust_irregularity == pytest.approx(robust)
    det = AfDetector()
    for x in rr:
        det.add(x)
    o = det.output
    expect = o if not o > GATE_FLOOR else o * min(1.0, robust / ECTOPY_GATE) ** GATE_POWER   # NaN robust: NaN
    assert (math.isnan(expect) and math.isnan(s.irregularity)) or s.irregularity == pytest.approx(expect, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(base=st.floats(0.4, 1.5), pattern=st.lists(st.floats(0.5, 1.5), min_size=1, max_size=4), reps=st.integers(8, 12))
def test_any_repeating_pattern_of_up_to_4_beats_is_regular(base: float, pattern: list[float], reps: int) -> None:
    rr = np.tile(base * np.array(pattern), reps)[:32]
    assert irregularity(rr) == pytest.approx(0.0, abs=1e-9)


def test_independent_rr_read_as_their_rmssd_and_isolated_ectopy_does_not() -> None:
    rng = np.random.default_rng(0)
    af = 0.8 * np.exp(rng.normal(0.0, 0.2, (200, 32)))
    values = np.array([irregularity(w) for w in af])
    rmssd = np.sqrt(np.mean(np.diff(af, axis=1) ** 2, axis=1)) / af.mean(axis=1)
    assert 0.6 <= np.median(values / rmssd) <= 0.9       # about ¾ of RMSSD / mean in AF (see RrStats)
    sinus = 0.8 + 0.01 * rng.standard_normal(32)
    sinus[[5, 17, 26]] *= 0.6                                                 # three PACs …
    sinus[[6, 18, 27]] *= 1.05 / 1.0                                          # … resetting pauses
    assert irregularity(sinus) < 0.5 * ECTOPY_GATE < ECTOPY_GATE < float(np.median(values))   # AF passes the gate
