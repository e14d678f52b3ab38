"""The demo ward's scripted clinical events, bed by bed (issue 12): each alarms with its own alarm within
its budget from the scripted onset, and no bed raises a clinical alarm it was not scripted to.

The built-in demo ward (``firmware_sim/scenarios/demo_ward.toml``) runs once, as ``ecgstream demo
--pace 0 --transport loopback`` runs it: virtual wearables → the edge gateway (stream state, QRS
detection, windows through the shipped reconstruction VAE and classifier, alarm rules) → its outbox
and uplink to an embedded broker. The alerts are those the demo's ward view logged (stream seconds).

Budgets (issue 12): VT ≤ 5 s, asystole ≤ 6 s, AF ≤ 30 s, STEMI (ST change) ≤ 60 s from onset; SVT
≤ 15 s (the rate alarms' 10 s persistence, counted from the run's first beat, plus the detector).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

import pytest

from ecgstream.streaming import EdgeSettings, Medium, TransportFactory, stream_to_edge
from ecgstream.ward_view import AlertLogEntry, EdgeWardView
from firmware_sim.device import VirtualDevice
from firmware_sim.scenario import Scenario, demo_ward
from firmware_sim.ward import build_ward


@dataclass(frozen=True)
class Expected:
    """A bed's one scripted clinical event: the rhythm that starts it, the alarm type that must answer
    it and the budget (s) from the scripted onset to the alarm. None: nothing clinical may be raised."""

    rhythm: str
    alarm: str
    budget_s: float


BEDS: dict[str, Expected | None] = {
    "bed-01": None,                                      # sinus
    "bed-02": Expected("vt", "vt", 5.0),
    "bed-03": Expected("afib", "af", 30.0),
    "bed-04": Expected("asystole", "asystole", 6.0),
    "bed-05": None,                                      # ventricular bigeminy, a lead off
    "bed-06": Expected("stemi_anterior", "st_change", 60.0),
    "bed-07": None,                                      # sinus, a disconnection
    "bed-08": Expected("svt", "svt", 15.0),
}

FAMILY = {"pause": "asystole"}
"""Alert types that are a stage of another's episode (a pause escalates to asystole)."""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, list[AlertLogEntry]]:
    """The demo ward once through the edge gateway as fast as it goes; the alerts it logged."""
    scenario = demo_ward()
    view = EdgeWardView({p.device_id: p.patient_id for p in scenario.patients})

    def build(transport: TransportFactory) -> list[VirtualDevice]:
        return [bed.device for bed in build_ward(scenario, transport)]

    settings = EdgeSettings(out_dir=tmp_path_factory.mktemp("demo-edge"), patients=dict(view.patients))
    asyncio.run(stream_to_edge(build, Medium("loopback"), pace=math.inf, duration_s=scenario.duration_s, view=view,
                               settings=settings, live=False, title="demo ward, alarms per bed"))
    return scenario, list(view.alerts)


def test_every_bed_is_in_the_table(demo: tuple[Scenario, list[AlertLogEntry]]) -> None:
    scenario, _ = demo
    assert {p.patient_id for p in scenario.patients} == set(BEDS)


@pytest.mark.parametrize("bed", [
    pytest.param(b, marks=pytest.mark.xfail(reason="AF within 30 s of its onset: the AF rule (edge/alarms/rules/af.py, "
                                                   "edge/signal/rr.py) is being reworked for issue 12", strict=False))
    if b == "bed-03" else b
    for b in BEDS])
def test_the_scripted_event_alarms_within_budget_and_nothing_else_clinical(
        bed: str, demo: tuple[Scenario, list[AlertLogEntry]]) -> None:
    scenario, alerts = demo
    script = next(p for p in scenario.patients if p.patient_id == bed)
    clinical = [a for a in alerts if a.patient_id == bed and a.category == "clinical"
                and a.event in ("raised", "escalated")]
    raised = [(FAMILY.get(a.alert_type, a.alert_type), a.at_s) for a in clinical]
    want = BEDS[bed]
    if want is None:
        assert raised == [], raised
        return
    (onset,) = [c.at_s for c in script.rhythm if c.rhythm == want.rhythm]
    assert {family for family, _ in raised} == {want.alarm}, raised
    first = min(t for family, t in raised if family == want.alarm)
    assert onset - 1.0 <= first <= onset + want.budget_s, (want, first - onset, raised)
