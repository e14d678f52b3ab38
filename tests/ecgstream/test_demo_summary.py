"""The demo's end-to-end accounting (:mod:`ecgstream.demo_summary`): what ``--summary-json`` reports."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ecgstream.demo_feed import FeedAlert
from ecgstream.demo_summary import WindowCounts, summarize
from firmware_sim.scenario import parse_scenario

WARD = parse_scenario("""
name = "two-beds"
duration_s = 60
[[patient]]
id = "bed-01"
device = "es-0001"
rhythm = [ { at = 0, name = "sinus" }, { at = 20, name = "vt" }, { at = 30, name = "sinus" } ]
[[patient]]
id = "bed-02"
device = "es-0002"
rhythm = [ { at = 0, name = "sinus" }, { at = 40, name = "afib" } ]
""")

NO_WINDOWS = WindowCounts(done=0, masked=0, dropped={}, sent=0, stored=0, stored_gapped=0)


def alert(patient: str, kind: str, at_s: float, *, event: str = "raised", category: str = "clinical") -> dict[str, Any]:
    return {"alert_id": str(uuid.uuid4()), "episode_id": str(uuid.uuid4()), "patient_id": patient,
            "alert_type": kind, "category": category, "event": event, "priority": "high", "details": {"at_s": at_s}}


def test_an_alarm_on_the_feed_answers_its_event_and_its_latency_adds_detection_and_delivery() -> None:
    vt = alert("bed-01", "vt", 23.0)
    summary = summarize(WARD, 60.0, [FeedAlert(100.5, vt)], {vt["alert_id"]: 100.0}, NO_WINDOWS).as_json()
    assert summary["events"] == 2                      # VT on bed-01, AF on bed-02
    assert summary["alerts_in_budget"] == 1 and summary["false_alarms"] == 0
    vt_event = next(e for e in summary["per_event"] if e["rhythm"] == "vt")
    assert vt_event["latency_s"] == 3.5 and vt_event["in_budget"]     # 3 s to detect + 0.5 s to the feed
    af_event = next(e for e in summary["per_event"] if e["rhythm"] == "afib")
    assert af_event["alert_type"] is None and not af_event["in_budget"]


def test_a_late_alarm_is_out_of_budget_and_an_unscripted_one_is_a_false_alarm() -> None:
    late_vt, stray = alert("bed-01", "vt", 27.0), alert("bed-02", "vt", 10.0)
    foreign = alert("someone-else", "vt", 5.0)          # another ward on a shared broker: not counted
    technical = alert("bed-02", "lead_off", 12.0, category="technical")
    feed = [FeedAlert(0.0, a) for a in (late_vt, stray, foreign, technical)]
    summary = summarize(WARD, 60.0, feed, {}, NO_WINDOWS).as_json()
    assert summary["alerts_in_budget"] == 0
    assert summary["false_alarms"] == 1 and summary["false_alarm_alerts"][0]["patient_id"] == "bed-02"


def test_events_after_the_end_of_the_run_are_not_counted() -> None:
    assert summarize(WARD, 35.0, [], {}, NO_WINDOWS).as_json()["events"] == 1


@given(sent=st.integers(0, 500), stored=st.integers(0, 500), gapped=st.integers(0, 500),
       shed=st.dictionaries(st.sampled_from(["queue_full", "stale"]), st.integers(0, 50)))
def test_every_window_produced_is_stored_gapped_or_dropped_with_a_reason(
        sent: int, stored: int, gapped: int, shed: dict[str, int]) -> None:
    stored, gapped = min(stored, sent), min(gapped, sent - min(stored, sent))
    windows = WindowCounts(done=sent, masked=gapped, dropped=shed, sent=sent, stored=stored, stored_gapped=gapped)
    s = summarize(WARD, 60.0, [], {}, windows).as_json()
    assert s["windows_produced"] == s["windows_stored"] + s["windows_gapped"] + s["windows_dropped"]
    assert sum(s["dropped_reasons"].values()) == s["windows_dropped"]
    assert s["dropped_reasons"].get("not_stored_by_cloud", 0) == sent - stored - gapped
