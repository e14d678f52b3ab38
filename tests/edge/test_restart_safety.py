"""Restart safety (issue 13): a gateway killed mid-episode goes on after its restart.

Each device session's open and latched alarm episodes and its window grid are kept with the outbox
(:mod:`edge.persistence`). After a kill -9 and a restart on the same outbox file:

- an episode whose condition is still present goes on under its old id: one ``raised`` in all;
- the window grid goes on with the same window ids: every slot is uplinked at most once, and the
  only slots missing are those of the gateway's down time;
- one whose condition ended while the gateway was down clears with the old id;
- state older than ``[uplink] restore_max_age_s`` is dropped, not restored.

The in-process tests run the simulator's scripted scenario in stream time into a rules-only agent
whose "kill" is abandoning it without a flush (what was not committed to the outbox is lost); the
slow test runs ``ecgstream edge run`` as a subprocess against a real Mosquitto and kills it with
SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from ecgstream.edge_sim import step_in_stream_time
from edge.agent import AgentConfig, EdgeAgent, OutboxSink
from edge.persistence import SessionPersistence
from edge.uplink.outbox import Kind, Outbox
from firmware_sim.scenario import Scenario, parse_scenario
from firmware_sim.transports.loopback import LoopbackHub
from firmware_sim.ward import build_ward
from protocol.messages import Alert, decode_message
from protocol.window_payload import decode_window

T0_S = 1_000_000.0
HOP_S = 5.0

VT_SCENARIO = """
name = "vt-through-a-restart"
duration_s = {duration}
seed = 5

[[patient]]
id = "p-vt"
device = "d-vt"
heart_rate = 70
rhythm = [ {{ at = 0, name = "sinus" }}, {{ at = 20, name = "vt", heart_rate = 180 }}, {{ at = {vt_end}, name = "sinus" }} ]
"""


def _scenario(duration: float, vt_end: float) -> Scenario:
    return parse_scenario(VT_SCENARIO.format(duration=duration, vt_end=vt_end))


def _agent(outbox: Outbox, scenario: Scenario, *, max_age_s: float = 600.0,
           clock: Callable[[], float] | None = None) -> tuple[EdgeAgent, SessionPersistence]:
    sink = OutboxSink(outbox, encode_workers=0)
    agent = EdgeAgent(AgentConfig(gateway_id="gw-restart",
                                  patients={p.device_id: p.patient_id for p in scenario.patients}), sink)
    persistence = SessionPersistence(outbox, max_age_s=max_age_s, clock=clock or time.time)
    sink.states = lambda: persistence.pending(agent.sessions.values())
    agent.restore_session = persistence.restore
    return agent, persistence


def run_with_kill(scenario: Scenario, path: Path, *, kill_s: float | None, down_s: float,
                  max_age_s: float = 600.0, clock: Callable[[], float] | None = None) -> list[SessionPersistence]:
    """Stream ``scenario`` into a gateway on outbox ``path``; at stream time ``kill_s`` the gateway dies
    (no flush, no close of its sessions); ``down_s`` later a new one starts on the same outbox."""
    hub = LoopbackHub()
    sub = hub.subscribe()
    beds = build_ward(scenario, lambda d, p: hub.transport(d, wire=p.wire), duration_s=scenario.duration_s)
    outboxes = [Outbox(path)]
    first, p1 = _agent(outboxes[0], scenario)
    live: dict[str, EdgeAgent | None] = {"agent": first}
    persistences = [p1]

    async def take(t_s: float) -> None:
        messages = sub.drain()
        if kill_s is not None and kill_s <= t_s < kill_s + down_s:
            if live["agent"] is first:          # kill -9: whatever was not committed is gone
                outboxes[0].close()
                live["agent"] = None
            return
        if live["agent"] is None:
            outboxes.append(Outbox(path))
            agent, p = _agent(outboxes[-1], scenario, max_age_s=max_age_s, clock=clock)
            live["agent"] = agent
            persistences.append(p)
        current = live["agent"]
        assert current is not None
        for m in messages:
            current.feed(m.device_id, m.data, str(m.kind), T0_S + t_s, transport="loopback")

    def tick(t_s: float) -> None:
        if live["agent"] is not None:
            live["agent"].tick(T0_S + t_s)

    asyncio.run(step_in_stream_time([b.device for b in beds], duration_s=scenario.duration_s, tick_s=0.5,
                                    take=take, tick=tick))
    last = live["agent"]
    assert last is not None
    last.flush()
    for o in outboxes:
        o.close()
    return persistences


def stored(path: Path) -> tuple[list[Alert], list[str]]:
    """The alerts and window ids the outbox file holds (nothing was sent: no uplink)."""
    with Outbox(path) as outbox:
        messages = outbox.peek(100_000)
    alerts = [decode_message(m.payload, Alert) for m in messages if m.kind is Kind.ALERT]
    windows = [decode_window(m.payload).window_id for m in messages if m.kind is Kind.WINDOW]
    return alerts, windows


def grid_key(path: Path, device_id: str = "d-vt", patient_id: str = "p-vt") -> uuid.UUID:
    """The stream key of the device's window grid, as saved with the outbox (not in the payloads)."""
    with Outbox(path) as outbox:
        row = outbox.load_state(device_id, patient_id)
    assert row is not None
    return uuid.UUID(json.loads(row[1])["grid"]["stream_key"])


def slots_of(window_ids: list[str], key: uuid.UUID, n_max: int = 1000) -> list[int]:
    """Grid slots of ``window_ids``: every one must be ``uuid5(key, slot)`` (one grid across the restart)."""
    grid = {str(uuid.uuid5(key, str(k))): k for k in range(n_max)}
    foreign = [w for w in window_ids if w not in grid]
    assert not foreign, f"{len(foreign)} windows are not on the saved grid (a new stream key after the restart?)"
    return [grid[w] for w in window_ids]


def vt_raises(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.details["family"] == "vt" and a.details["event"] == "raised"]


def test_kill_mid_episode_continues_the_episode_and_the_window_grid(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    kill_s, down_s = 60.0, 6.0
    persistences = run_with_kill(_scenario(150, 120), path, kill_s=kill_s, down_s=down_s)
    assert persistences[1].restored == 1
    alerts, windows = stored(path)
    vt = [a for a in alerts if a.details["family"] == "vt"]
    assert len(vt_raises(alerts)) == 1, [(a.details["event"], a.details["onset_s"]) for a in vt]
    episode = vt_raises(alerts)[0].details["episode_id"]
    assert {a.details["episode_id"] for a in vt} == {episode}          # one episode id across the restart
    assert vt_raises(alerts)[0].details["onset_s"] < kill_s
    # the grid: one id per slot, no slot twice, gaps only where the gateway was down
    slots = slots_of(windows, grid_key(path))
    assert len(slots) == len(set(slots)), "a window slot was uplinked twice"
    missing = sorted(set(range(min(slots), max(slots) + 1)) - set(slots))
    # slot k's context is [k·hop, k·hop + 12 s): only slots touching the down time (plus the windows
    # cut but not yet committed at the kill, within one tick) may be missing
    assert missing, "the down time must cost some slots"
    for k in missing:
        assert k * HOP_S < kill_s + down_s + 2.0 and k * HOP_S + 12.0 > kill_s - 1.0, (k, missing)
    assert max(slots) * HOP_S + 12.0 > 140.0                             # windows went on to the end


def test_an_episode_that_ended_while_down_clears_with_its_old_id(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    # VT from 20 s to 58 s; killed at 55 s, back at 65 s in sinus: the episode must clear (old id)
    run_with_kill(_scenario(110, 58), path, kill_s=55.0, down_s=10.0)
    alerts, _ = stored(path)
    vt = [a for a in alerts if a.details["family"] == "vt"]
    assert len(vt_raises(alerts)) == 1, [(a.details["event"], a.details["onset_s"]) for a in vt]
    episode = vt_raises(alerts)[0].details["episode_id"]
    ends = [a for a in vt if a.details["event"] == "cleared"]
    # VT is high priority and latches: it stays shown (latched) until staff acknowledge it, or it
    # clears; either way nothing is raised again and any message carries the old episode id
    assert {a.details["episode_id"] for a in vt} == {episode}
    assert all(a.alert_id != episode for a in ends)


def test_state_older_than_the_bound_is_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "outbox.sqlite"
    caplog.set_level(logging.WARNING, logger="edge.persistence")
    an_hour_on = lambda: time.time() + 3600.0   # noqa: E731 - the restarted gateway's wall clock
    persistences = run_with_kill(_scenario(120, 110), path, kill_s=60.0, down_s=6.0, clock=an_hour_on)
    assert persistences[1].restored == 0 and persistences[1].stale == 1
    assert "session_state_stale" in caplog.text
    alerts, _ = stored(path)
    # not restored: the fresh session sees the ongoing VT as a new episode
    assert len(vt_raises(alerts)) == 2
