"""The Petrėnas et al. (2015) RR detector (:mod:`edge.signal.af_detector`) and the AF rule's fusion
with the classifier (:mod:`edge.alarms.rules.af`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.alarms import (
    AlarmConfig,
    AlarmEngine,
    BeatEvidence,
    LeadQuality,
    LinearClock,
    TechnicalState,
    WindowEvidence,
)
from edge.signal.af_detector import AfDetector, AfDetectorConfig
from protocol.messages import Alert

CONFIG = AlarmConfig()
ETA = CONFIG.af_irregularity


def feed(rr: np.ndarray, config: AfDetectorConfig | None = None) -> np.ndarray:
    d = AfDetector(config)
    return np.array([d.add(float(x)) for x in rr])


# -- the detector ---------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(rr=st.lists(st.floats(0.3, 2.0), min_size=0, max_size=60), cuts=st.lists(st.integers(0, 60), max_size=8))
def test_batches_give_what_one_beat_at_a_time_gives(rr: list[float], cuts: list[int]) -> None:
    one = AfDetector()
    for x in rr:
        one.add(x)
    batched = AfDetector()
    edges = sorted({0, len(rr), *(c for c in cuts if c <= len(rr))})
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        batched.extend(rr[a:b])
    assert batched.count == one.count == len(rr)
    for name in ("output", "irregularity", "bigeminy"):
        x, y = getattr(one, name), getattr(batched, name)
        assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-9, abs=1e-12), name


def test_nan_until_the_first_window_and_after_a_reset() -> None:
    d = AfDetector()
    for _ in range(9):
        assert math.isnan(d.add(0.8))
    assert d.add(0.8) == 0.0                       # N + 2 = 10 RR: the first full window of filtered RR
    d.reset()
    assert math.isnan(d.output) and d.count == 0


def test_af_reads_above_eta_and_sinus_with_isolated_ectopy_and_sinus_arrhythmia_at_zero() -> None:
    rng = np.random.default_rng(0)
    af = 0.6 * np.exp(rng.normal(0.0, 0.2, 300))              # independent RR, CV 0.2, 100 beats/min
    assert np.median(feed(af)[50:]) > ETA
    sinus = np.full(300, 0.9) * (1 + 0.005 * rng.standard_normal(300))
    sinus[20::17] *= 0.65                                     # an isolated PAC every 17 beats …
    sinus[21::17] *= 1.2                                      # … and its pause
    assert np.max(feed(sinus)[20:]) < 0.2 * ETA
    n = np.arange(300)
    rsa = 1.0 + 0.08 * np.sin(2 * np.pi * n / 4.5)            # strong respiratory sinus arrhythmia at 60/min
    assert np.max(feed(rsa)[20:]) < 0.2 * ETA                 # irregular pairs, but the median leaves it: B̄ < δ


def test_bigeminy_is_suppressed_although_every_pair_differs() -> None:
    rr = np.tile([0.45, 1.05], 100) * (1 + 0.005 * np.random.default_rng(1).standard_normal(200))
    d = AfDetector()
    d.extend(rr)
    assert d.irregularity > ETA                 # the pair count alone would call it AF …
    assert d.bigeminy < d.config.delta and d.output == d.bigeminy < 1e-3   # … the bigeminy ratio does not


def test_slower_averaging_reacts_later() -> None:
    rng = np.random.default_rng(2)
    rr = np.r_[np.full(60, 0.8), 0.6 * np.exp(rng.normal(0.0, 0.2, 120))]
    first = [int(np.argmax(feed(rr, AfDetectorConfig(alpha=a)) >= ETA)) for a in (0.1, 0.02)]
    assert 60 < first[0] < first[1]


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="even"):
        AfDetectorConfig(window_beats=7)
    with pytest.raises(ValueError, match="alpha"):
        AfDetectorConfig(alpha=0.0)


# -- the rule's fusion with the classifier -------------------------------------------------------------

GOOD = {"II": LeadQuality(0.8, rms_mv=0.3)}


def run(irregularity: float, seconds: int, probs: dict[str, float] | None = None,
        thresholds: dict[str, float] | None = None) -> list[Alert]:
    """20 s of sinus, then ``seconds`` of beats at 90/min whose detector reads ``irregularity``; a
    10-s window every 5 s with ``probs`` (none when None)."""
    engine = AlarmEngine("p", "d", LinearClock())
    out: list[Alert] = []
    rng = np.random.default_rng(0)
    t, k = 0.0, 0
    for second in range(20 + seconds):
        irr = 0.0 if second < 20 else irregularity
        beats = []
        while t < second + 1:
            beats.append(t)
            t += 0.8 * (1 + (0.25 * rng.standard_normal() if second >= 20 else 0.0))
        windows = []
        if probs is not None and second >= 10 and second % 5 == 0:
            windows.append(WindowEvidence(f"w{k}", second - 10.0, float(second), dict(probs), thresholds=dict(thresholds or {})))
            k += 1
        ev = BeatEvidence(second + 1.0, tuple(beats), (90.0,) * len(beats), 75.0, irr)
        out += engine.update(second + 1.0, beats=ev, windows=windows, technical=TechnicalState(second, second + 1.0, GOOD))
    return [a for a in out if a.alert_type == "af" and a.details["event"] == "raised"]


def test_rr_alone_raises_after_persistence_and_a_borderline_run_below_eta_never() -> None:
    (a,) = run(0.9, 60)
    assert a.details["source"] == "rr" and a.details["onset_s"] >= 20 - 3 and a.details["at_s"] >= a.details["onset_s"] + 30
    assert run(0.6, 120) == []


def test_classifier_af_supports_a_less_irregular_shorter_run() -> None:
    probs = {"AF": 0.7, "NSR": 0.1}
    (a,) = run(0.6, 40, probs, {"AF": 0.6, "NSR": 0.5})       # below η, but above the supported level
    assert a.details["source"] in ("rr+classifier", "classifier")
    assert run(0.6, 40, {"AF": 0.4, "NSR": 0.1}, {"AF": 0.9, "NSR": 0.5}) == []  # the shipped threshold decides
    assert run(0.6, 40, probs, {"AF": 0.9}) == []              # not calibrated for sinus rhythm: no leaning support


def test_a_calibrated_classifier_leaning_to_af_and_away_from_sinus_supports_like_af_at_its_threshold() -> None:
    leaning = {"AF": 0.3, "NSR": 0.1}                          # AF ≥ half its threshold, NSR below its own
    (a,) = run(0.6, 40, leaning, {"AF": 0.5, "NSR": 0.5})
    assert a.details["source"] == "rr+classifier (leaning)" and a.details["at_s"] <= 20 + 30
    assert run(0.6, 40, {"AF": 0.3, "NSR": 0.6}, {"AF": 0.5, "NSR": 0.5}) == []     # it still sees sinus rhythm
    assert run(0.45, 60, leaning, {"AF": 0.5, "NSR": 0.5}) == []                    # RR under the supported level


def test_a_calibrated_confident_sinus_classifier_vetoes_a_borderline_run_but_not_clear_af() -> None:
    sinus = {"AF": 0.02, "NSR": 0.95}
    assert run(0.9, 90, sinus, {"AF": 0.5, "NSR": 0.6}) == []
    assert len(run(1.3, 90, sinus, {"AF": 0.5, "NSR": 0.6})) == 1
    # an artifact without thresholds (p(NSR) was 0.86–1.00 on real AF) never vetoes
    assert len(run(0.9, 90, sinus)) == 1
