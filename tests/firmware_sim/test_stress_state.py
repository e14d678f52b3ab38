"""Affective states in the simulator: stress scripted in a scenario raises the heart rate and lowers HRV."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim.scenario import parse_scenario
from firmware_sim.synthesis import (
    RhythmSegment,
    SynthesisError,
    random_patient,
    synthesize,
    synthesize_timeline,
)
from firmware_sim.synthesis.affect import affected_patient
from firmware_sim.transports.loopback import LoopbackHub
from firmware_sim.ward import build_ward

SCENARIO = """
name = "stress-test"
duration_s = 240
seed = 11
[[patient]]
id = "subject-01"
rhythm = [ { at = 0, name = "sinus" }, { at = 120, name = "sinus", stress = 1 } ]
[[patient]]
id = "subject-02"
rhythm = [ { at = 0, name = "sinus" }, { at = 120, name = "sinus", amusement = 1 } ]
"""


def _hr_rmssd(beats_s: np.ndarray) -> tuple[float, float]:
    rr = np.diff(beats_s)
    return 60.0 / rr.mean(), float(np.sqrt(np.mean(np.diff(rr) ** 2)))


def test_stress_scripted_in_a_scenario_raises_heart_rate_and_lowers_rmssd() -> None:
    hub = LoopbackHub()
    beds = build_ward(parse_scenario(SCENARIO), lambda device, profile: hub.transport(device, wire=profile.wire))
    bed = beds[0]
    bed.source.read(int(240 * bed.source.fs))
    beats_s = bed.source.beats / bed.source.fs
    hr_rest, rmssd_rest = _hr_rmssd(beats_s[(beats_s > 10) & (beats_s < 115)])
    hr_stress, rmssd_stress = _hr_rmssd(beats_s[(beats_s > 130) & (beats_s < 235)])
    assert hr_stress > hr_rest + 5
    assert rmssd_stress < 0.8 * rmssd_rest


def test_the_ground_truth_names_the_scripted_state() -> None:
    s = synthesize_timeline([RhythmSegment(0.0, "sinus"), RhythmSegment(30.0, "sinus", {"amusement": 1.0})],
                            seconds=60, fs=250, seed=2)
    states = [(e.onset_s, e.offset_s, e.label) for e in s.events if e.kind == "state"]
    assert states == [(30.0, 60.0, "amusement")]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_subject_reacts_to_stress_in_every_direction_but_by_its_own_amount(seed: int) -> None:
    rest = random_patient(seed)
    stressed = affected_patient(rest, "stress", 1.0)
    assert stressed.heart_rate_bpm > rest.heart_rate_bpm
    assert stressed.hrv_fraction < rest.hrv_fraction
    assert stressed.lf_hf_ratio > rest.lf_hf_ratio
    assert stressed.resp_rate_hz > rest.resp_rate_hz and stressed.resp_depth < rest.resp_depth
    assert affected_patient(rest, "stress", 1.0) == stressed                     # the same subject reacts alike
    other = affected_patient(random_patient(seed + 10), "stress", 1.0)
    assert other.heart_rate_bpm - random_patient(seed + 10).heart_rate_bpm != pytest.approx(
        stressed.heart_rate_bpm - rest.heart_rate_bpm)


def test_without_a_state_the_signal_is_what_it_always_was() -> None:
    plain = synthesize("sinus", seconds=20, fs=250, seed=5)
    zero = synthesize("sinus", seconds=20, fs=250, seed=5, params={"stress": 0.0})
    np.testing.assert_array_equal(plain.signals, zero.signals)


def test_breathing_is_faster_under_stress() -> None:
    rest = synthesize("sinus", seconds=120, fs=250, seed=4)
    stress = synthesize("sinus", seconds=120, fs=250, seed=4, params={"stress": 1.0})
    assert stress.patient.resp_rate_hz == rest.patient.resp_rate_hz          # the stream's patient is at rest
    patient = affected_patient(rest.patient, "stress", 1.0)
    assert patient.resp_rate_hz * 60 > rest.patient.resp_rate_hz * 60 + 2       # ≥ 2 breaths/min faster


def test_bad_state_levels_and_two_states_at_once_are_clear_errors() -> None:
    with pytest.raises(SynthesisError, match="stress level"):
        synthesize("sinus", seconds=5, params={"stress": 3.0})
    with pytest.raises(SynthesisError, match="one affective state"):
        synthesize("sinus", seconds=5, params={"stress": 1.0, "amusement": 1.0})
    with pytest.raises(SynthesisError, match="does not take stress"):
        synthesize("afib", seconds=5, params={"stress": 1.0})
