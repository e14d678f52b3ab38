"""The demo ward's scripted clinical events, bed by bed (issue 12): each alarms with its own alarm within
its budget from the scripted onset, and no bed raises a clinical alarm it was not scripted to.

The built-in demo ward (``firmware_sim/scenarios/demo_ward.toml``) runs once as ``ecgstream demo
--pace 0`` steps it — the virtual wearables (with their faults: loss, jitter, drift) in stream time,
as fast as possible — into an edge agent with the gateway's own pipeline for the default edge
configuration (:func:`edge.gateway.open_pipeline`: the shipped reconstruction VAE and classifier), in
process: sessions, QRS detection, windows, ST, alarm rules, the alerts as they leave for the outbox.
(The broker and uplink of ``ecgstream demo`` carry the same alerts and are tested in ``test_demo``.)

Budgets (issue 12): VT ≤ 5 s, asystole ≤ 6 s, AF ≤ 30 s, STEMI (ST change) ≤ 60 s from onset; SVT
≤ 15 s (the rate alarms' 10 s persistence, counted from the run's first beat, plus the detector).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from ecgstream.edge_sim import run_scenario_into_agent
from edge.agent import AgentConfig, EdgeAgent, MemorySink
from edge.config import load_config
from edge.gateway import open_pipeline
from firmware_sim.scenario import Scenario, demo_ward
from protocol.messages import Alert, AlertCategory


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


@pytest.fixture(scope="module")
def demo() -> tuple[Scenario, list[Alert]]:
    """The demo ward once through the agent as fast as it goes; every alert message it sent."""
    scenario = demo_ward()
    sink = MemorySink(keep_windows=False)
    pipeline = open_pipeline(load_config(None, env={}))
    assert pipeline is not None and pipeline.second_stage is not None        # VAE and classifier, as shipped
    agent = EdgeAgent(AgentConfig(patients={p.device_id: p.patient_id for p in scenario.patients}), sink,
                      pipeline=pipeline)
    asyncio.run(run_scenario_into_agent(scenario, agent))
    return scenario, list(sink.alerts)


def test_every_bed_is_in_the_table(demo: tuple[Scenario, list[Alert]]) -> None:
    scenario, _ = demo
    assert {p.patient_id for p in scenario.patients} == set(BEDS)


@pytest.mark.parametrize("bed", list(BEDS))
def test_the_scripted_event_alarms_within_budget_and_nothing_else_clinical(
        bed: str, demo: tuple[Scenario, list[Alert]]) -> None:
    scenario, alerts = demo
    script = next(p for p in scenario.patients if p.patient_id == bed)
    clinical = [a for a in alerts if a.patient_id == bed and a.category is AlertCategory.CLINICAL
                and a.details["event"] in ("raised", "escalated")]
    raised = [(str(a.details["family"]), float(a.details["at_s"])) for a in clinical]      # pause → asystole
    want = BEDS[bed]
    if want is None:
        assert raised == [], raised
        return
    (onset,) = [c.at_s for c in script.rhythm if c.rhythm == want.rhythm]
    assert {family for family, _ in raised} == {want.alarm}, raised
    first = min(t for family, t in raised if family == want.alarm)
    assert onset - 1.0 <= first <= onset + want.budget_s, (want, first - onset, raised)
