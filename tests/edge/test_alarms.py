"""Alarm engine end to end on synthetic ECG: simulator → filter → real QRS detector (lead II) → engine.

Every figure is stream time (s of signal), never wall-clock. Quality per 2-s block comes from
``edge.stream.quality.signal_quality`` and is given to the engine before the beats of that block.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field

import numpy as np
import pytest

from edge.alarms import (
    AlarmConfig,
    AlarmEngine,
    BeatEvidence,
    LeadQuality,
    LinearClock,
    QrsWidthMeter,
    TechnicalState,
)
from edge.signal.filters import EcgFilter, FilterSpec
from edge.signal.qrs import QrsDetector
from edge.signal.rr import RrStats
from edge.stream.quality import leads_off, signal_quality
from firmware_sim.synthesis import (
    NoiseEpisode,
    NoiseSpec,
    RhythmSegment,
    Synthesis,
    synthesize,
    synthesize_timeline,
)
from protocol.messages import Alert, AlertCategory, Priority, decode_message, encode_message

FS = 250.0
BLOCK_S = 2.0
PACKET = 50
CLOCK = LinearClock(device_us0=5_000_000, gateway_us0=1_700_000_000_000_000, drift_ppm=40.0)
MILD = NoiseSpec(baseline_mv=0.1, emg_mv=0.03, motion_mv=0.2, powerline_mv=0.05)


@dataclass
class Run:
    """The alerts of one synthetic stream, with the stream time at which each was emitted."""

    alerts: list[tuple[float, Alert]] = field(default_factory=list)
    engine: AlarmEngine | None = None

    def raised(self, category: AlertCategory | None = None) -> list[tuple[float, Alert]]:
        return [(t, a) for t, a in self.alerts if a.details["event"] == "raised"
                and (category is None or a.category is category)]

    def first(self, alert_type: str) -> float | None:
        """Stream time (s) at which ``alert_type`` was first raised or escalated to."""
        hits = [t for t, a in self.alerts if a.alert_type == alert_type and a.details["event"] != "cleared"]
        return min(hits) if hits else None


def replay(syn: Synthesis, *, config: AlarmConfig | None = None, battery: float = 80.0) -> Run:
    """Feed ``syn`` through the edge path; lead-off follows the synthesis's ground truth."""
    x = syn.lead("II")
    filt, det, width = EcgFilter(FS, 1, FilterSpec(notch_hz=None, lowpass_hz=40.0)), QrsDetector(FS), QrsWidthMeter(FS)
    engine = AlarmEngine("patient-1", "dev-1", CLOCK, config)
    rr, last = RrStats(), None          # like the session: its own RR statistics from the detector's beats
    run = Run(engine=engine)
    off_events = [e for e in syn.events if e.kind == "lead_off"]
    block = int(BLOCK_S * FS)
    for b0 in range(0, x.size - block + 1, block):
        t0, t1 = b0 / FS, (b0 + block) / FS
        y = filt.process(x[b0 : b0 + block])
        electrodes = tuple(sorted({el for e in off_events if e.onset_s < t1 and e.offset_s > t0
                                   for el in e.label.split("+")}))
        sqi, flat, sat = signal_quality(x[b0 : b0 + block, None], FS)
        quality = LeadQuality(float(sqi[0]), lead_off=bool(leads_off(electrodes, ["II"])[0]), flat=bool(flat[0]),
                              saturated=bool(sat[0]), rms_mv=float(np.std(y)))
        tech = TechnicalState(t0, t1, {"II": quality}, electrodes, battery_pct=battery)
        run.alerts += [(t1, a) for a in engine.update(t0, technical=tech)]
        for p0 in range(0, block, PACKET):
            seg = y[p0 : p0 + PACKET]
            r = det.process(seg)
            width.push(seg)
            for b in r.beats.tolist():
                if last is not None:
                    rr.add((b - last) / FS)
                last = b
            ev = BeatEvidence(det.samples_seen / FS, tuple((r.beats / FS).tolist()), tuple(width.widths(r.beats)),
                              rr.heart_rate_bpm, rr.irregularity)
            now = det.samples_seen / FS
            run.alerts += [(now, a) for a in engine.update(now, beats=ev)]
    return run


def _roundtrip(alerts: list[tuple[float, Alert]]) -> None:
    for _, a in alerts:
        assert decode_message(encode_message(a), Alert) == a


# -- clinical alarms in time -------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2])
def test_vt_raises_a_high_priority_vt_alarm_within_10_s(seed: int) -> None:
    syn = synthesize_timeline([RhythmSegment(0.0, "sinus"), RhythmSegment(30.0, "vt")], seconds=60, fs=FS,
                              seed=seed, noise=MILD)
    run = replay(syn)
    t = run.first("vt")
    assert t is not None and 30.0 < t <= 40.0, t
    vt = [a for _, a in run.raised() if a.alert_type == "vt"]
    assert len(vt) == 1 and vt[0].priority is Priority.HIGH and vt[0].category is AlertCategory.CLINICAL
    assert 29.5 <= vt[0].details["onset_s"] <= t
    assert all(a.alert_type in ("vt",) for _, a in run.raised(AlertCategory.CLINICAL)), run.alerts
    _roundtrip(run.alerts)


@pytest.mark.parametrize("seed", [1, 2])
def test_asystole_raises_within_5_s_escalating_from_pause(seed: int) -> None:
    syn = synthesize_timeline([RhythmSegment(0.0, "sinus"), RhythmSegment(30.0, "asystole")], seconds=50, fs=FS,
                              seed=seed, noise=NoiseSpec(emg_mv=0.02, baseline_mv=0.05))
    run = replay(syn)
    t_pause, t_asys = run.first("pause"), run.first("asystole")
    assert t_asys is not None and 30.0 < t_asys <= 35.0, t_asys
    assert t_pause is not None and t_pause <= t_asys
    events = [(a.alert_type, a.priority, a.details["event"]) for _, a in run.alerts if a.category is AlertCategory.CLINICAL]
    assert events == [("pause", Priority.MEDIUM, "raised"), ("asystole", Priority.HIGH, "escalated")], events
    ids = {a.details["episode_id"] for _, a in run.alerts if a.category is AlertCategory.CLINICAL}
    assert len(ids) == 1                                       # one episode, escalated
    _roundtrip(run.alerts)


@pytest.mark.parametrize("seed", [1, 2])
def test_af_raises_a_medium_alarm_within_60_s(seed: int) -> None:
    syn = synthesize_timeline([RhythmSegment(0.0, "sinus"), RhythmSegment(30.0, "afib")], seconds=120, fs=FS,
                              seed=seed, noise=MILD)
    run = replay(syn)
    t = run.first("af")
    assert t is not None and 30.0 < t <= 90.0, t
    clinical = run.raised(AlertCategory.CLINICAL)
    assert [a.alert_type for _, a in clinical] == ["af"] and clinical[0][1].priority is Priority.MEDIUM
    _roundtrip(run.alerts)


def test_extreme_bradycardia_but_not_ordinary_sinus_bradycardia() -> None:
    brady = replay(synthesize("sinus_brady", seconds=60, fs=FS, seed=3, heart_rate=34.0, noise=MILD))
    assert [a.alert_type for _, a in brady.raised(AlertCategory.CLINICAL)] == ["extreme_bradycardia"]
    assert brady.first("extreme_bradycardia") is not None
    ordinary = replay(synthesize("sinus_brady", seconds=60, fs=FS, seed=3, heart_rate=50.0, noise=MILD))
    assert ordinary.raised(AlertCategory.CLINICAL) == []


def test_extreme_tachycardia_but_not_ordinary_sinus_tachycardia() -> None:
    tachy = replay(synthesize("sinus_tachy", seconds=60, fs=FS, seed=3, heart_rate=170.0, noise=MILD))
    assert [a.alert_type for _, a in tachy.raised(AlertCategory.CLINICAL)] == ["extreme_tachycardia"]
    ordinary = replay(synthesize("sinus_tachy", seconds=60, fs=FS, seed=3, heart_rate=120.0, noise=MILD))
    assert ordinary.raised(AlertCategory.CLINICAL) == []


# -- no false clinical alarms --------------------------------------------------------------------------

def test_ten_minutes_of_clean_sinus_raise_nothing() -> None:
    run = replay(synthesize("sinus", seconds=600, fs=FS, seed=4, noise=MILD))
    assert run.alerts == []


def test_heavy_muscle_artefact_raises_poor_signal_not_vt_or_asystole() -> None:
    noisy = NoiseSpec(emg_mv=0.6, motion_mv=1.5, motion_rate_per_min=10.0)
    syn = synthesize_timeline([RhythmSegment(0.0, "sinus")], seconds=120, fs=FS, seed=5, noise=MILD,
                              noise_episodes=[NoiseEpisode(30.0, 90.0, noisy)])
    run = replay(syn)
    assert run.raised(AlertCategory.CLINICAL) == [], run.alerts
    technical = [a for _, a in run.raised(AlertCategory.TECHNICAL)]
    assert [a.alert_type for a in technical] == ["poor_signal"] and technical[0].priority is Priority.LOW
    assert any(a.details["event"] == "cleared" and a.alert_type == "poor_signal" for _, a in run.alerts)
    _roundtrip(run.alerts)


def test_lead_off_raises_a_technical_alarm_and_no_asystole() -> None:
    syn = synthesize_timeline([RhythmSegment(0.0, "sinus")], seconds=90, fs=FS, seed=6, noise=MILD,
                              noise_episodes=[NoiseEpisode(30.0, 60.0, NoiseSpec(lead_off=("LL",)))])
    run = replay(syn)
    assert run.raised(AlertCategory.CLINICAL) == [], run.alerts
    (t, alert), = run.raised(AlertCategory.TECHNICAL)
    assert alert.alert_type == "lead_off" and alert.priority is Priority.MEDIUM and 30.0 < t <= 32.0
    assert alert.details["electrodes"] == ["LL"]
    cleared = [t for t, a in run.alerts if a.details["event"] == "cleared"]
    assert len(cleared) == 1 and 60.0 < cleared[0] <= 66.0
    _roundtrip(run.alerts)


def test_every_alert_carries_ids_onsets_and_versions() -> None:
    syn = synthesize_timeline([RhythmSegment(0.0, "sinus"), RhythmSegment(20.0, "vt")], seconds=40, fs=FS, seed=1)
    (_, vt), = [(t, a) for t, a in replay(syn).raised() if a.alert_type == "vt"]
    onset = vt.details["onset_s"]
    assert uuid.UUID(vt.alert_id) and vt.details["episode_id"] == vt.alert_id
    assert (vt.patient_id, vt.device_id) == ("patient-1", "dev-1")
    assert vt.onset_device_us == CLOCK.device_us(onset) and vt.onset_gateway_us == CLOCK.gateway_us(onset)
    assert vt.model_versions["alarm_rules"]
    again = [a for _, a in replay(syn).raised() if a.alert_type == "vt"]
    # a replay opens a new episode with a new id (issue 13: the cloud must not drop it as a duplicate)
    assert len(again) == 1 and again[0].alert_id != vt.alert_id and again[0].onset_device_us == vt.onset_device_us
    assert not math.isnan(vt.details["rate_bpm"])


def test_qrs_width_of_several_beats_at_once_equals_one_beat_at_a_time() -> None:
    """The width meter filters all templates of a call together; the widths must not depend on it."""
    fs = 250.0
    x = synthesize("pvc_bigeminy", seconds=20, fs=fs, seed=3).lead("II")
    y = EcgFilter(fs, 1, FilterSpec(notch_hz=None, lowpass_hz=40.0)).process(x)
    beats = QrsDetector(fs).process(y).beats
    assert len(beats) > 10
    together, apart = QrsWidthMeter(fs, history_s=30.0), QrsWidthMeter(fs, history_s=30.0)
    together.push(y)
    apart.push(y)
    one_by_one = [w for b in beats for w in apart.widths(np.array([b]))]
    np.testing.assert_array_equal(together.widths(beats), one_by_one)
    assert 40.0 < float(np.nanmedian(one_by_one)) < 250.0
