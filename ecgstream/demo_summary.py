"""The whole-system demo's end-to-end accounting (``ecgstream demo --summary-json``).

**Alerts**, measured on the dashboard's live feed: every scripted clinical event the run reached (a
rhythm change to one of :data:`BUDGETS_S`) is an *event*; it is answered by the first feed alert of
its patient, of an alert family that answers the rhythm (:data:`ecgstream.ward_runner.EXPECTED_ALERTS`),
raised from 1 s before the onset to :data:`ecgstream.ward_runner.LATE_S` after the episode ends. Its
*latency* is what staff would see in real time: the detection delay in stream seconds (the alert's
``at_s`` minus the scripted onset; at ``--pace 1`` these are wall seconds) plus the delivery delay in
wall seconds (from the edge handing the alert to its outbox to its arrival on the feed: outbox, uplink,
broker, cloud ingest, store, feed). An event is *in budget* when that latency is within the issue's
budget (VT ≤ 5 s, asystole ≤ 6 s, AF ≤ 30 s, STEMI ≤ 60 s, SVT ≤ 30 s). A *false alarm* is a raised
clinical alert on the feed, for one of the scenario's patients, that answers no scripted event (a shared
broker may carry other patients' traffic, which the demo's auto-registering cloud stores too).

**Windows**: every window the edge produced is stored by the cloud (``windows_stored``), stored with a
gap mask (``windows_gapped``: frames lost that interpolation could not bridge), or dropped, with its
reason (``dropped_reasons``: the edge's own shedding reasons, and ``not_stored_by_cloud`` for windows
the edge sent that the cloud's store does not hold at the end, matched by window id).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ecgstream.demo_feed import FeedAlert
from ecgstream.ward_runner import EXPECTED_ALERTS, LATE_S
from firmware_sim.scenario import Scenario

BUDGETS_S: dict[str, float] = {
    "vt": 5.0, "vf": 5.0, "asystole": 6.0, "pause": 6.0, "afib": 30.0, "aflutter": 30.0, "svt": 30.0,
    "stemi_anterior": 60.0, "stemi_inferior": 60.0, "stemi_lateral": 60.0, "st_depression": 60.0,
}
"""Scripted rhythm → seconds from its onset within which its alarm must reach the dashboard (issue 12)."""


@dataclass(frozen=True)
class ScriptedEvent:
    patient_id: str
    rhythm: str
    onset_s: float
    until_s: float


@dataclass(frozen=True)
class EventOutcome:
    """One scripted event and the feed alert that answered it (None: missed)."""

    event: ScriptedEvent
    alert_type: str | None = None
    latency_s: float | None = None
    in_budget: bool = False
    detect_s: float | None = None
    """Of the latency: stream seconds from the onset to the edge raising the alert."""
    deliver_s: float | None = None
    """Of the latency: wall seconds from the edge's outbox to the live feed."""


@dataclass(frozen=True)
class WindowCounts:
    """The edge's and the cloud's window counts for one run."""

    done: int
    """Windows the edge finished and handed to its outbox."""
    masked: int
    """Of those, windows sent with a gap mask."""
    dropped: Mapping[str, int]
    """Windows the edge shed, by reason."""
    sent: int
    """Windows the edge handed to its outbox (seen by id; ``done`` counted by the agent)."""
    stored: int
    """Of those, windows without a gap mask that the cloud's store holds at the end (by window id)."""
    stored_gapped: int
    """Of those, windows with a gap mask that the cloud's store holds at the end."""


@dataclass
class DemoSummary:
    """What ``--summary-json`` writes (:meth:`as_json`)."""

    outcomes: list[EventOutcome]
    false_alarms: list[dict[str, Any]]
    windows: WindowCounts
    feed_alerts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def windows_produced(self) -> int:
        return self.windows.done + sum(self.windows.dropped.values())

    @property
    def windows_gapped(self) -> int:
        return self.windows.stored_gapped

    @property
    def windows_stored(self) -> int:
        return self.windows.stored

    def dropped_reasons(self) -> dict[str, int]:
        reasons = {k: v for k, v in self.windows.dropped.items() if v}
        missing = self.windows.sent - self.windows.stored - self.windows.stored_gapped
        if missing:
            reasons["not_stored_by_cloud"] = missing
        unseen = self.windows.done - self.windows.sent
        if unseen:
            reasons["not_sent_by_edge"] = unseen
        return reasons

    def as_json(self) -> dict[str, Any]:
        latencies = [o.latency_s for o in self.outcomes if o.latency_s is not None]
        reasons = self.dropped_reasons()
        return {
            "events": len(self.outcomes),
            "alerts_in_budget": sum(o.in_budget for o in self.outcomes),
            "false_alarms": len(self.false_alarms),
            "windows_produced": self.windows_produced,
            "windows_stored": self.windows_stored,
            "windows_gapped": self.windows_gapped,
            "windows_dropped": sum(reasons.values()),
            "dropped_reasons": reasons,
            "latency_s": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)},
            "per_event": [
                {"patient_id": o.event.patient_id, "rhythm": o.event.rhythm, "onset_s": o.event.onset_s,
                 "alert_type": o.alert_type, "latency_s": _round(o.latency_s), "detect_s": _round(o.detect_s),
                 "deliver_s": _round(o.deliver_s),
                 "budget_s": BUDGETS_S[o.event.rhythm], "in_budget": o.in_budget}
                for o in self.outcomes],
            "false_alarm_alerts": [{k: a.get(k) for k in ("patient_id", "alert_type", "priority")}
                                   | {"at_s": a.get("details", {}).get("at_s")} for a in self.false_alarms],
            "feed_alerts": self.feed_alerts,
            **self.extra,
        }


def scripted_events(scenario: Scenario, duration_s: float) -> list[ScriptedEvent]:
    """The clinical events the run reached (onset before ``duration_s``), in onset order."""
    events = []
    for p in scenario.patients:
        changes = list(p.rhythm)
        for i, c in enumerate(changes):
            if 0 < c.at_s < duration_s and c.rhythm in BUDGETS_S:
                until = changes[i + 1].at_s if i + 1 < len(changes) else scenario.duration_s
                events.append(ScriptedEvent(p.patient_id, c.rhythm, c.at_s, until))
    return sorted(events, key=lambda e: (e.onset_s, e.patient_id))


def alert_key(alert_id: str) -> str:
    """An alert id in one spelling (the feed writes UUIDs with dashes)."""
    try:
        return str(uuid.UUID(alert_id))
    except ValueError:
        return alert_id


def summarize(scenario: Scenario, duration_s: float, feed: Sequence[FeedAlert], emitted_s: Mapping[str, float],
              windows: WindowCounts) -> DemoSummary:
    """Match the feed's alerts to the script (module docstring); ``emitted_s``: alert id (:func:`alert_key`)
    → when the edge handed it to its outbox (monotonic seconds)."""
    ours = {p.patient_id for p in scenario.patients}   # a shared broker may carry other wards' traffic too
    raised = [f for f in feed if f.alert.get("event") in ("raised", "escalated") and f.alert.get("patient_id") in ours]
    used: set[str] = set()          # episode ids that answered an event
    outcomes = []
    events = scripted_events(scenario, duration_s)
    for event in events:
        hit = next((f for f in raised if _answers(f, event)), None)
        if hit is None:
            outcomes.append(EventOutcome(event))
            continue
        used.add(str(hit.alert.get("episode_id")))
        detect = max(0.0, _at_s(hit) - event.onset_s)
        sent = emitted_s.get(alert_key(str(hit.alert.get("alert_id"))))
        deliver = max(0.0, hit.arrived_s - sent) if sent is not None else 0.0
        latency = detect + deliver
        outcomes.append(EventOutcome(event, str(hit.alert.get("alert_type")), latency,
                                     latency <= BUDGETS_S[event.rhythm], detect, deliver))
    false_alarms = [f.alert for f in raised if f.alert.get("category") == "clinical" and f.alert.get("event") == "raised"
                    and str(f.alert.get("episode_id")) not in used and not any(_answers(f, e) for e in events)]
    return DemoSummary(outcomes, false_alarms, windows, feed_alerts=len(feed))


def _answers(f: FeedAlert, event: ScriptedEvent) -> bool:
    """Whether the feed alert ``f`` answers ``event``: its patient, a family for the rhythm, in time."""
    a = f.alert
    return (a.get("patient_id") == event.patient_id and a.get("category") == "clinical"
            and a.get("alert_type") in EXPECTED_ALERTS[event.rhythm]
            and event.onset_s - 1.0 <= _at_s(f) <= event.until_s + LATE_S)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _at_s(f: FeedAlert) -> float:
    value = f.alert.get("details", {}).get("at_s")
    return float(value) if isinstance(value, int | float) else math.nan


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 3)
