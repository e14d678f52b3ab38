"""Issue 12's new alarm conditions, stream time only:

- SVT: a paroxysmal narrow regular tachycardia ≥ 150 bpm on synthetic ECG through the real QRS detector
  and width meter raises ``svt`` (high) instead of the generic extreme tachycardia; fast AF does not;
  a tachycardia whose onset was not seen is SVT only when the classifier says so at its shipped
  threshold;
- atrial flutter: the classifier's ``AFL`` at its shipped threshold in consecutive windows raises
  ``aflutter`` (medium), never on top of an AF alarm;
- ST change from the patient's own baseline: a sinus patient with an early, tall T wave (J + 60 ms on
  the T upstroke reads ≥ 0.2 mV in V3–V4, over the absolute criteria) raises nothing, the same
  patient's anterior STEMI raises ``st_change`` within 60 s of onset, and a restarted gateway keeps the
  baseline (ST measured by :func:`edge.signal.st.measure_st` on the simulator's true 12 leads).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from edge.alarms import AlarmEngine, BeatEvidence, LeadQuality, LinearClock, TechnicalState, WindowEvidence
from edge.signal.st import measure_st
from firmware_sim.synthesis import RhythmSegment, Synthesis, synthesize_timeline
from firmware_sim.synthesis.patient import PatientProfile
from models.preprocessing import MODEL_FS, WINDOW_SAMPLES, prepare_window
from protocol.messages import Alert, AlertCategory, Priority
from tests.edge.test_alarms import FS, MILD, replay
from tests.edge.test_alarms_engine import Feed, events

# -- SVT -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2])
def test_paroxysmal_svt_raises_svt_not_extreme_tachycardia(seed: int) -> None:
    syn = synthesize_timeline([RhythmSegment(0.0, "sinus", {"heart_rate": 80.0}),
                               RhythmSegment(30.0, "svt", {"heart_rate": 185.0})], seconds=70, fs=FS, seed=seed,
                              noise=MILD)
    run = replay(syn)
    clinical = run.raised(AlertCategory.CLINICAL)
    assert [a.alert_type for _, a in clinical] == ["svt"], [(t, a.alert_type) for t, a in clinical]
    t, svt = clinical[0]
    assert svt.priority is Priority.HIGH and 30.0 <= t <= 30.0 + 15.0, (t, svt.details)
    assert 29.0 <= svt.details["onset_s"] <= 32.0 and svt.details["qrs_ms"] < 120.0, svt.details


def test_fast_atrial_fibrillation_is_not_svt() -> None:
    syn = synthesize_timeline([RhythmSegment(0.0, "sinus", {"heart_rate": 80.0}),
                               RhythmSegment(20.0, "afib", {"heart_rate": 165.0, "rr_cv": 0.12})],
                              seconds=90, fs=FS, seed=3, noise=MILD)
    run = replay(syn)
    assert "svt" not in {a.alert_type for _, a in run.raised()}, [(t, a.alert_type) for t, a in run.raised()]


def _window(t: float, thresholds: dict[str, float] | None = None, **p: float) -> WindowEvidence:
    return WindowEvidence(str(uuid.uuid5(uuid.NAMESPACE_URL, f"w{t}")), t - 10, t, p,
                          thresholds=thresholds or {})


def test_a_tachycardia_whose_onset_was_not_seen_is_svt_only_on_the_classifiers_word() -> None:
    shipped = {"SVT": 0.3}
    f = Feed()                                   # 170 bpm narrow and regular from the first beat
    for k in range(30):
        f.run(1, 170, windows=(_window(10 + k, shipped, SVT=0.45),))
    assert events(f.alerts) == [("svt", "raised")] and f.alerts[0].details["source"] == "classifier"
    g = Feed()                                   # the same probability, no shipped threshold: 0.8 applies
    for k in range(30):
        g.run(1, 170, windows=(_window(10 + k, SVT=0.45),))
    assert events(g.alerts) == [("extreme_tachycardia", "raised")]


# -- atrial flutter ---------------------------------------------------------------------------------------

def test_atrial_flutter_from_the_classifier_at_its_shipped_threshold() -> None:
    shipped = {"AFL": 0.35, "AF": 0.5}
    f = Feed()
    f.run(20, 75)
    out = f.run(1, 75, windows=(_window(21, shipped, AFL=0.4),)) + f.run(1, 75, windows=(_window(22, shipped, AFL=0.5),))
    (afl,) = out
    assert afl.alert_type == "aflutter" and afl.priority is Priority.MEDIUM and afl.category is AlertCategory.CLINICAL
    assert afl.window_id == _window(22).window_id and afl.details["threshold"] == 0.35
    assert events(f.run(10, 75, windows=(_window(33, shipped, AFL=0.05),))) == [("aflutter", "cleared")]
    g = Feed()                                   # no shipped threshold: 0.4 and 0.5 are under the default 0.8
    g.run(20, 75)
    assert g.run(2, 75, windows=(_window(22, AFL=0.5),)) == []


def test_atrial_flutter_does_not_double_raise_over_an_af_alarm() -> None:
    f = Feed()
    f.run(20, 75)
    f.run(1, 75, windows=(_window(21, AF=0.95),))
    f.run(1, 75, windows=(_window(22, AF=0.95),))
    assert events(f.alerts) == [("af", "raised")]
    for k in range(10):                          # the classifier now leans to flutter: still one alarm
        f.run(1, 75, windows=(_window(23 + k, AF=0.9, AFL=0.9),))
    assert events(f.alerts) == [("af", "raised")]


# -- ST change from the patient's own baseline ---------------------------------------------------------------

TALL_T = PatientProfile(heart_rate_bpm=100.0, t_scale=2.0, qtc_s=0.38, hrv_fraction=0.02)
"""A sinus patient whose tall T wave starts right after the QRS: J + 60 ms lies on the T upstroke."""
HOP_S, LENGTH_S, MARGIN_S = 5.0, 10.0, 1.0


def st_windows(syn: Synthesis, seconds: float) -> Iterator[WindowEvidence]:
    """The edge's 10 s windows every 5 s (what ``prepare_window`` gives the models), each measured for ST
    at the synthesised R peaks; a second either side is filtered with it and dropped."""
    cut = round(MARGIN_S * MODEL_FS)
    for start in np.arange(MARGIN_S, seconds - LENGTH_S - MARGIN_S + 1e-9, HOP_S):
        a, b = round((start - MARGIN_S) * FS), round((start + LENGTH_S + MARGIN_S) * FS)
        x = prepare_window(syn.signals[a:b], FS)                # keeps the centre 10 s
        beats = np.rint((syn.beats[(syn.beats >= a) & (syn.beats < b)] - a) * MODEL_FS / FS).astype(int) - cut
        st = measure_st(x, MODEL_FS, beats[(beats >= 0) & (beats < WINDOW_SAMPLES)])
        yield WindowEvidence(str(uuid.uuid5(uuid.NAMESPACE_URL, f"st{start}")), float(start),
                             float(start + LENGTH_S), st=st.st)


def feed(engine: AlarmEngine, syn: Synthesis, seconds: float, *, from_s: float = 0.0) -> list[tuple[float, Alert]]:
    """Beats each second (narrow, regular) and each window a second after it ends (inference latency)."""
    windows = [w for w in st_windows(syn, seconds) if w.end_s + 1.0 > from_s]
    beat_s = syn.beats / FS
    out: list[tuple[float, Alert]] = []
    for t in np.arange(from_s + 1.0, seconds + 1e-9, 1.0):
        now = float(t)
        beats = tuple(float(b) for b in beat_s[(beat_s >= now - 1.0) & (beat_s < now)])
        due = [w for w in windows if now - 1.0 < w.end_s + 1.0 <= now]
        tech = TechnicalState(now - 1.0, now, {"II": LeadQuality(0.9)}, battery_pct=90.0)
        ev = BeatEvidence(now, beats, (80.0,) * len(beats), 100.0, 0.02)
        out += [(now, a) for a in engine.update(now, beats=ev, windows=due, technical=tech)]
    return out


def test_an_early_tall_t_wave_is_the_patients_baseline_and_their_stemi_still_alarms_within_60_s() -> None:
    sinus = synthesize_timeline([RhythmSegment(0.0, "sinus")], seconds=180, fs=FS, seed=5, patient=TALL_T)
    windows = list(st_windows(sinus, 180))
    # on its own the tall T reads as ST elevation over the absolute criteria (≥ 0.2 mV in V3 and V4)
    assert np.median([min(w.st["V3"].deviation_mv, w.st["V4"].deviation_mv) for w in windows]) >= 0.2
    engine = AlarmEngine("p-t", "d-t", LinearClock())
    assert [a for _, a in feed(engine, sinus, 180) if a.category is AlertCategory.CLINICAL] == []
    assert engine.state.st_baseline is not None and engine.state.st_baseline["V3"] >= 0.2
    stemi = synthesize_timeline([RhythmSegment(0.0, "sinus"), RhythmSegment(60.0, "stemi_anterior")],
                                seconds=150, fs=FS, seed=5, patient=TALL_T)
    engine = AlarmEngine("p-t", "d-t", LinearClock())
    raised = [(t, a) for t, a in feed(engine, stemi, 150) if a.details["event"] == "raised"]
    assert [a.alert_type for _, a in raised] == ["st_change"], raised
    t, st = raised[0]
    assert 60.0 + 30.0 <= t <= 60.0 + 60.0, (t, st.details)
    assert {"V2", "V3"} <= set(st.details["st_change_mv"]), st.details


def test_a_restarted_gateway_keeps_the_st_baseline() -> None:
    stemi = synthesize_timeline([RhythmSegment(0.0, "sinus"), RhythmSegment(60.0, "stemi_anterior")],
                                seconds=150, fs=FS, seed=5, patient=TALL_T)
    first = AlarmEngine("p-t", "d-t", LinearClock())
    assert feed(first, stemi, 50) == []
    saved = json.loads(json.dumps(first.export_state()))          # what edge.persistence stores
    assert saved["st_baseline"]["baseline_mv"] == first.state.st_baseline is not None
    second = AlarmEngine("p-t", "d-t", LinearClock())
    second.import_state(saved)
    assert second.state.st_baseline == first.state.st_baseline
    # the restarted engine sees only the infarct: learning anew would take it for the patient's normal
    raised = [(t, a) for t, a in feed(second, stemi, 150, from_s=55.0) if a.details["event"] == "raised"]
    assert [a.alert_type for _, a in raised] == ["st_change"] and raised[0][0] <= 60.0 + 60.0, raised
    fresh = AlarmEngine("p-t", "d-t", LinearClock())
    assert [a for _, a in feed(fresh, stemi, 150, from_s=55.0) if a.category is AlertCategory.CLINICAL] == []
    half = AlarmEngine("p-t", "d-t", LinearClock())                # saved mid-learning: the windows go on counting
    feed(half, stemi, 20)
    partial = json.loads(json.dumps(half.export_state()))
    assert partial["st_baseline"]["baseline_mv"] is None and 0 < len(partial["st_baseline"]["learning"]) < 6
    resumed = AlarmEngine("p-t", "d-t", LinearClock())
    resumed.import_state(partial)
    assert resumed.state.st_learning == half.state.st_learning
    assert not math.isnan(sum(resumed.state.st_learning[0].values()))
