"""Alarm identity and latching end to end (issue 13): simulated wearables → agent, in stream time.

- a patient whose VT (or asystole) recurs gets one alarm per episode, even when the earlier, latched
  episodes were never acknowledged (IEC 60601-1-8: latching, never swallowing a recurrence);
- a replay of the same scenario (a fresh gateway, the same device clock values: what a device reboot
  or a replayed record looks like) opens new episodes with new ids, and a cloud store that already
  holds the first run keeps every alert of the second.

The ground truth is the scenario's own script (when each rhythm starts). Rules only (no model): the
beat rules decide VT and asystole, and a run takes seconds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ecgstream.edge_sim import run_scenario_into_agent
from edge.agent import AgentConfig, EdgeAgent, MemorySink
from firmware_sim.scenario import Scenario, demo_ward, parse_scenario
from protocol.messages import Alert, decode_message, encode_message

RECURRING = """
name = "recurring"
duration_s = 240
seed = 3

[[patient]]
id = "p-vt"
device = "d-vt"
heart_rate = 70
rhythm = [
  { at = 0, name = "sinus" },
  { at = 30, name = "vt", heart_rate = 180 }, { at = 45, name = "sinus" },
  { at = 110, name = "vt", heart_rate = 180 }, { at = 125, name = "sinus" },
  { at = 190, name = "vt", heart_rate = 180 }, { at = 205, name = "sinus" },
]

[[patient]]
id = "p-asys"
device = "d-asys"
rhythm = [
  { at = 0, name = "sinus" },
  { at = 30, name = "asystole" }, { at = 38, name = "sinus" },
  { at = 110, name = "asystole" }, { at = 118, name = "sinus" },
]
"""


def run(scenario: Scenario) -> tuple[EdgeAgent, list[Alert]]:
    """``scenario`` into a fresh rules-only agent; the alerts as they left for the outbox."""
    sink = MemorySink()
    agent = EdgeAgent(AgentConfig(gateway_id="gw-identity", patients={p.device_id: p.patient_id
                                                                        for p in scenario.patients}), sink)
    asyncio.run(run_scenario_into_agent(scenario, agent))
    for a in sink.alerts:                       # every message survives the wire
        assert decode_message(encode_message(a), Alert) == a
    return agent, list(sink.alerts)


def raises(alerts: list[Alert], device: str, family: str) -> list[Alert]:
    return [a for a in alerts if a.device_id == device and a.details["family"] == family
            and a.details["event"] == "raised"]


def scripted_starts(scenario: Scenario, device: str, rhythm: str) -> list[float]:
    """Ground truth: when each episode of ``rhythm`` starts in the device's script (stream seconds)."""
    script = next(p for p in scenario.patients if p.device_id == device)
    return [c.at_s for c in script.rhythm if c.rhythm == rhythm]


def test_recurring_vt_and_asystole_raise_every_episode_though_none_was_acknowledged() -> None:
    scenario = parse_scenario(RECURRING)
    agent, alerts = run(scenario)
    for device, family, rhythm in (("d-vt", "vt", "vt"), ("d-asys", "asystole", "asystole")):
        raised = raises(alerts, device, family)
        truth = scripted_starts(scenario, device, rhythm)
        assert len(raised) == len(truth), [(a.alert_type, a.details["at_s"]) for a in raised]
        for a, start in zip(raised, truth, strict=True):      # each raise belongs to its own scripted episode
            assert start - 1.0 <= a.details["onset_s"] <= a.details["at_s"] <= start + 8.0, (start, a.details)
        assert len({a.details["episode_id"] for a in raised}) == len(truth)
        # no episode was acknowledged: all of them are still shown, latched, at the end of the run
        engine = agent.sessions[device].engine
        assert set(engine.latched) == {a.details["episode_id"] for a in raised}
    assert not [a for a in alerts if a.details["event"] == "cleared" and a.details["family"] in ("vt", "asystole")]
    assert agent.active_alerts() >= 5


def test_acknowledging_a_latched_episode_through_the_agent_clears_it_and_only_it() -> None:
    agent, alerts = run(parse_scenario(RECURRING))
    first, second, third = raises(alerts, "d-vt", "vt")
    assert agent.acknowledge(second.details["episode_id"]) is True
    cleared = agent.sink.alerts[len(alerts):]  # type: ignore[attr-defined]
    assert [(a.details["event"], a.details["episode_id"], a.details["reason"]) for a in cleared] == [
        ("cleared", second.details["episode_id"], "acknowledged")]
    assert cleared[0].details["gateway_id"] == "gw-identity"     # the cloud routes acks by it
    assert set(agent.sessions["d-vt"].engine.latched) == {first.alert_id, third.alert_id}
    assert agent.acknowledge(second.details["episode_id"]) is False     # a repeated ack changes nothing
    assert agent.sink.alerts[len(alerts) + 1:] == []  # type: ignore[attr-defined]


def test_replaying_the_same_scenario_gives_new_ids_and_the_cloud_keeps_both_runs(tmp_path: Path) -> None:
    from cloud.store import Store, upgrade_database

    scenario = demo_ward()
    _, one = run(scenario)
    _, two = run(scenario)                      # a fresh gateway, the same device clock values
    assert [(a.patient_id, a.alert_type, a.details["event"]) for a in one] == \
        [(a.patient_id, a.alert_type, a.details["event"]) for a in two]       # the same alarms …
    assert {a.onset_device_us for a in one} == {a.onset_device_us for a in two}  # … at the same device times
    assert not {a.alert_id for a in one} & {a.alert_id for a in two}          # … with new ids
    assert not {a.details["episode_id"] for a in one} & {a.details["episode_id"] for a in two}
    assert {a.patient_id for a in one if a.details["family"] == "vt"} == {"bed-02"}

    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)

    async def store_both() -> tuple[list[bool], int, int]:
        async with Store(url) as store:
            new = [await store.store_alert(a) for a in one + two]
            resent = sum([await store.store_alert(a) for a in two])   # an outbox resend stays a duplicate
            active = await store.active_episodes()
            return new, resent, len(active)

    new, resent, active = asyncio.run(store_both())
    assert all(new) and len(new) == len(one) + len(two)        # nothing of the second run was dropped
    assert resent == 0
    still_active = {a.details["episode_id"] for a in one if a.details["event"] != "cleared"} - \
        {a.details["episode_id"] for a in one if a.details["event"] == "cleared"}
    assert active == 2 * len(still_active)                       # both runs' open alarms show
