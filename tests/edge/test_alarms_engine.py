"""Alarm engine life cycle on hand-made evidence: latching, hysteresis, de-duplication, classifier
and ST evidence with reconstructed leads, technical alarms. Stream time only."""

from __future__ import annotations

import math
import uuid

from edge.alarms import (
    RULES_VERSION,
    AlarmEngine,
    BeatEvidence,
    GapEvent,
    LeadQuality,
    LinearClock,
    StMeasurement,
    TechnicalState,
    WindowEvidence,
)
from protocol.messages import Alert, AlertCategory, Priority, decode_message, encode_message

GOOD = {"II": LeadQuality(0.9)}


class Feed:
    """Drives an engine with beats at a given rate (bpm), 1-s steps, good quality unless told."""

    def __init__(self) -> None:
        self.engine = AlarmEngine("p-7", "d-7", LinearClock(1_000, 2_000))
        self.t = 0.0
        self.next_beat = 0.0
        self.alerts: list[Alert] = []

    def run(self, seconds: float, bpm: float | None, *, width_ms: float = 80.0, irregularity: float = 0.03,
            quality: dict[str, LeadQuality] | None = None, windows: tuple[WindowEvidence, ...] = (),
            battery: float | None = 90.0, electrodes: tuple[str, ...] = ()) -> list[Alert]:
        out: list[Alert] = []
        for _ in range(round(seconds)):
            t1 = self.t + 1.0
            beats = []
            while bpm and self.next_beat < t1:
                beats.append(self.next_beat)
                self.next_beat += 60.0 / bpm
            if not bpm:
                self.next_beat = t1
            tech = TechnicalState(self.t, t1, quality or GOOD, electrodes, battery_pct=battery)
            ev = BeatEvidence(t1, tuple(beats), (width_ms,) * len(beats), bpm or math.nan, irregularity)
            out += self.engine.update(t1, beats=ev, technical=tech, windows=windows if windows else ())
            self.t = t1
        for a in out:
            assert decode_message(encode_message(a), Alert) == a
        self.alerts += out
        return out


def events(alerts: list[Alert]) -> list[tuple[str, str]]:
    return [(a.alert_type, a.details["event"]) for a in alerts]


def test_hysteresis_heart_rate_oscillating_around_the_threshold_does_not_flap() -> None:
    for width, alarm in ((math.nan, "extreme_tachycardia"), (80.0, "svt")):   # QRS width unknown / narrow
        f = Feed()
        f.run(20, 80, width_ms=width)
        f.run(12, 160, width_ms=width)
        for _ in range(10):                       # 145–160 bpm: inside the 140–150 band or above it
            f.run(4, 145, width_ms=width)
            f.run(4, 158, width_ms=width)
        assert events(f.alerts) == [(alarm, "raised")]


def test_rate_below_threshold_for_less_than_the_persistence_raises_nothing() -> None:
    f = Feed()
    f.run(20, 70)
    for _ in range(6):
        f.run(8, 35)                          # 8 s < 10 s persistence, then back
        f.run(4, 70)
    assert f.alerts == []


def test_high_priority_alarm_latches_until_acknowledged() -> None:
    f = Feed()
    f.run(20, 70)
    raised = f.run(15, 30)
    assert events(raised) == [("extreme_bradycardia", "raised")] and raised[0].priority is Priority.HIGH
    assert f.run(60, 70) == []                # condition gone, still latched
    assert "extreme_bradycardia" in f.engine.active
    cleared = f.engine.acknowledge(raised[0].alert_id)
    assert events(cleared) == [("extreme_bradycardia", "cleared")]
    assert cleared[0].details["episode_id"] == raised[0].alert_id and cleared[0].alert_id != raised[0].alert_id
    again = f.run(15, 30)                     # a new episode gets a new id
    assert events(again) == [("extreme_bradycardia", "raised")] and again[0].alert_id != raised[0].alert_id


def test_acknowledged_alarm_clears_by_itself_when_the_condition_ends() -> None:
    f = Feed()
    f.run(20, 70)
    (raised,) = f.run(15, 30)
    assert f.engine.acknowledge(raised.alert_id) == []   # still present
    assert events(f.run(10, 70)) == [("extreme_bradycardia", "cleared")]


def test_medium_alarm_clears_automatically_and_explicit_clear_rearms() -> None:
    f = Feed()
    f.run(20, 70)
    f.run(40, 90, irregularity=1.2)
    assert events(f.alerts) == [("af", "raised")]
    f.run(70, 70, irregularity=0.0)
    assert events(f.alerts) == [("af", "raised"), ("af", "cleared")]
    f.run(40, 90, irregularity=1.2)
    f.alerts += f.engine.clear("af")
    assert events(f.alerts)[-2:] == [("af", "raised"), ("af", "cleared")]
    f.run(20, 90, irregularity=1.2)          # persists afresh (30 s) before a new episode
    assert events(f.alerts)[-1] == ("af", "cleared")
    f.run(15, 90, irregularity=1.2)
    assert events(f.alerts)[-1] == ("af", "raised")


def test_vt_supersedes_extreme_tachycardia_and_wide_beats_are_needed() -> None:
    f = Feed()
    f.run(20, 70)
    f.run(30, 180, width_ms=160.0)
    assert events(f.alerts) == [("vt", "raised")]
    g = Feed()
    g.run(20, 70)
    g.run(30, 180, width_ms=80.0)             # narrow, regular, abrupt: SVT, not VT (nor the generic alarm)
    assert events(g.alerts) == [("svt", "raised")] and g.alerts[0].priority is Priority.HIGH
    assert 20.0 <= g.alerts[0].details["onset_s"] <= 21.0           # the run's first beat, not 10 s later


def test_classifier_evidence_raises_vt_vf_af_with_window_and_model_versions() -> None:
    def window(t: float, **p: float) -> WindowEvidence:
        return WindowEvidence(str(uuid.uuid5(uuid.NAMESPACE_URL, f"w{t}")), t - 10, t, p,
                              model_versions={"classifier": "mamba-0.3"})
    f = Feed()
    f.run(20, 80)
    (af,) = [a for a in f.run(1, 80, windows=(window(21, AF=0.9),)) + f.run(1, 80, windows=(window(22, AF=0.95),))]
    assert af.alert_type == "af" and af.window_id == window(22).window_id
    assert af.model_versions == {"alarm_rules": RULES_VERSION, "classifier": "mamba-0.3"} and af.details["source"] == "classifier"
    (vf,) = [a for a in f.run(1, 80, windows=(window(23, VF=0.97),)) if a.alert_type == "vf"]
    assert vf.priority is Priority.HIGH and vf.window_id == window(23).window_id


def test_st_change_on_reconstructed_leads_needs_the_band_and_carries_uncertainty() -> None:
    def window(t: float, dev: float, unc: float) -> WindowEvidence:
        st = {"II": StMeasurement(0.0), "V2": StMeasurement(dev, True, unc), "V3": StMeasurement(dev, True, unc),
              "V4": StMeasurement(dev * 0.6, True, unc)}
        return WindowEvidence(str(uuid.uuid5(uuid.NAMESPACE_URL, f"st{t}")), t - 10, t, st=st,
                              model_versions={"reconstruction": "vae-1.2"})
    f = Feed()
    f.run(10, 70)
    for k in range(70):                       # +0.25 mV from the start: the patient's own baseline, no alarm
        f.run(1, 70, windows=(window(11 + k, 0.25, 0.1),))
    assert f.alerts == [] and f.engine.state.st_baseline == {"II": 0.0, "V2": 0.25, "V3": 0.25, "V4": 0.15}
    for k in range(70):                       # +0.15 mV of change, but ±0.1 mV: the band's near edge is under 0.1
        f.run(1, 70, windows=(window(81 + k, 0.4, 0.1),))
    assert f.alerts == []
    for k in range(70):
        f.run(1, 70, windows=(window(151 + k, 0.5, 0.1),))
    (st,) = f.alerts
    assert st.alert_type == "st_change" and st.priority is Priority.MEDIUM
    assert st.reconstructed_leads == {"V2": 0.1, "V3": 0.1}       # V4: +0.15 ± 0.1 mV of change, not enough
    assert st.details["st_mv"] == {"V2": 0.5, "V3": 0.5}
    assert st.details["st_change_mv"] == {"V2": 0.25, "V3": 0.25}
    assert st.details["st_baseline_mv"] == {"V2": 0.25, "V3": 0.25}
    assert st.model_versions["reconstruction"] == "vae-1.2"
    assert 30.0 <= st.details["at_s"] - 151.0 <= 32.0           # 30 s of persistence


def test_technical_alarms_battery_disconnect_gap_are_kept_apart() -> None:
    f = Feed()
    f.run(20, 70)
    assert events(f.run(5, 70, battery=15.0)) == [("low_battery", "raised")]
    assert f.run(5, 70, battery=22.0) == []  # hysteresis: clears at 25 %
    assert events(f.run(1, 70, battery=30.0)) == [("low_battery", "cleared")]
    silent = f.engine.update(f.t + 12.0)      # nothing arrives for 12 s
    assert events(silent) == [("device_disconnected", "raised")] and silent[0].priority is Priority.MEDIUM
    f.t += 12.0
    f.next_beat = f.t
    tech = TechnicalState(f.t, f.t + 1, GOOD, gaps=(GapEvent(f.t - 12.0, f.t),))
    back = f.engine.update(f.t + 1, technical=tech, beats=BeatEvidence(f.t + 1, (f.t + 0.5,), (), 70.0, 0.03))
    assert events(back) == [("device_disconnected", "cleared"), ("data_gap", "raised")]
    assert all(a.category is AlertCategory.TECHNICAL for a in back)
    assert [a for a in f.alerts + back if a.category is AlertCategory.CLINICAL] == []   # no asystole from the gap


def test_a_recurrence_after_the_condition_ended_raises_a_new_episode_while_the_old_one_stays_latched() -> None:
    f = Feed()
    f.run(20, 70)
    (first,) = f.run(15, 30)                 # extreme bradycardia: high, latching
    assert f.run(30, 70) == []               # condition ended: nothing sent, still shown (latched)
    assert list(f.engine.latched) == [first.alert_id] and f.engine.latched[first.alert_id].details["latched"]
    (second,) = f.run(15, 30)                # the same condition again, the first one not acknowledged
    assert events([second]) == [("extreme_bradycardia", "raised")]
    assert second.details["episode_id"] != first.details["episode_id"]
    assert {a.details["episode_id"] for a in f.engine.shown} == {first.alert_id, second.alert_id}
    assert f.engine.active["extreme_bradycardia"].alert_id == second.alert_id
    # staff acknowledge the old episode: it clears (its own message), the new one goes on
    (cleared,) = f.engine.acknowledge(first.alert_id)
    assert events([cleared]) == [("extreme_bradycardia", "cleared")] and cleared.details["reason"] == "acknowledged"
    assert cleared.details["episode_id"] == first.alert_id
    assert f.engine.acknowledge(first.alert_id) == []    # a repeated ack (at-least-once downlink) is harmless
    assert [a.alert_id for a in f.engine.shown] == [second.alert_id]


def test_a_high_alarm_recurring_three_times_raises_three_episodes() -> None:
    f = Feed()
    f.run(20, 70)
    for _ in range(3):
        f.run(15, 30)
        f.run(30, 70)
    raised = [a for a in f.alerts if a.details["event"] == "raised"]
    assert events(raised) == [("extreme_bradycardia", "raised")] * 3
    assert len({a.details["episode_id"] for a in raised}) == 3
    assert len(f.engine.latched) == 3 and len(f.engine.shown) == 3
    f.alerts += f.engine.clear("extreme_bradycardia")   # the explicit reset clears the latched ones too
    assert events(f.alerts)[-3:] == [("extreme_bradycardia", "cleared")] * 3 and f.engine.shown == []


def test_message_ids_are_per_episode_never_repeat_across_runs_and_name_their_episode() -> None:
    def run() -> list[Alert]:
        f = Feed()
        f.run(20, 70)
        f.run(12, 160)                       # SVT, high
        f.run(20, 70)
        f.alerts += f.engine.acknowledge(f.alerts[0].alert_id)
        f.run(20, 70)
        f.run(40, 90, irregularity=1.2)     # AF, medium: clears by itself
        f.run(70, 70, irregularity=0.0)
        return f.alerts

    one, two = run(), run()                  # the same device clock values twice (a replay, a reboot)
    assert events(one) == events(two) == [("svt", "raised"), ("svt", "cleared"),
                                           ("af", "raised"), ("af", "cleared")]
    assert not {a.alert_id for a in one} & {a.alert_id for a in two}
    assert not {a.details["episode_id"] for a in one} & {a.details["episode_id"] for a in two}
    for alerts in (one, two):
        assert len({a.alert_id for a in alerts}) == len(alerts)
        for a in alerts:
            episode = uuid.UUID(a.details["episode_id"])
            if a.details["event"] == "raised":
                assert a.alert_id == str(episode) and episode.version == 4
            else:                            # later messages: UUID 5 of the episode, event and sequence
                assert uuid.UUID(a.alert_id).version == 5 and a.alert_id != str(episode)
