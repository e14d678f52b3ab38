"""Device lifecycle at the edge: restarts and reconnections re-anchor a stream; unknown devices are bounded.

A device that reboots starts its sequence numbers and its clock from 0 again. The gateway, which has
seen it before, must take the new run as a new anchor (clock, order, gaps) and date everything after
it right; the simulator (a fresh :class:`~firmware_sim.device.VirtualDevice` for the same device id,
fed in stream time at a later gateway time) gives the truth.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from ecgstream.edge_sim import GATEWAY_T0_S, run_ward_into_agent
from edge.agent import AgentConfig, EdgeAgent, MemorySink
from edge.inference.windowing import Window
from edge.ingest.session import DeviceSession
from edge.stream import StreamState
from firmware_sim.scenario import parse_scenario
from firmware_sim.transports.loopback import LoopbackHub
from firmware_sim.ward import build_ward
from protocol.ble_frame import EcgFrame
from protocol.messages import Alert

FIRST_RUN = """
name = "before-reboot"
duration_s = 60
seed = 3
[[patient]]
id = "p1"
device = "d1"
heart_rate = 70
rhythm = [ { at = 0, name = "sinus" } ]
events = [ { at = 40, until = 50, kind = "disconnect" } ]
"""

AFTER_REBOOT = """
name = "after-reboot"
duration_s = 80
seed = 11
[[patient]]
id = "p1"
device = "d1"
heart_rate = 70
rhythm = [ { at = 0, name = "sinus" }, { at = 25, name = "vt", heart_rate = 180 }, { at = 40, name = "sinus" } ]
events = [ { at = 55, until = 65, kind = "disconnect" } ]
"""

OFF_S = 30.0
"""Gateway seconds the device is away between its two runs (the gateway ticks on meanwhile)."""


class _Recorder(MemorySink):
    """Keeps every alert, and every window with the gateway time at which it was cut."""

    def __init__(self, agent_time: list[float]) -> None:
        super().__init__()
        self.cut: list[tuple[Window, float]] = []
        self._now = agent_time

    def record(self, session: DeviceSession, window: Window) -> None:
        self.cut.append((window, self._now[0]))


async def _run(text: str, agent: EdgeAgent, t0_s: float, duration_s: float, *, flush: bool) -> None:
    hub = LoopbackHub()
    sub = hub.subscribe()
    beds = build_ward(parse_scenario(text), lambda d, p: hub.transport(d, wire=p.wire), duration_s=duration_s)
    await run_ward_into_agent(beds, agent, sub, duration_s=duration_s, t0_s=t0_s, flush=flush)


_STATUS_T_DEVICE: list[int] = []
"""t_device_us of the status the gateway reports for the device at the end of each run."""


def _reboot_run() -> tuple[EdgeAgent, list[Alert], list[tuple[Window, float]], float]:
    """The device runs 60 s, is away 30 s (gateway ticking), reboots (seq and clock from 0) and runs 80 s."""
    now = [0.0]
    sink = _Recorder(now)
    agent = EdgeAgent(AgentConfig(), sink)
    submit = agent._submit

    def submit_and_record(session: DeviceSession, window: Window) -> None:
        sink.record(session, window)
        submit(session, window)

    agent._submit = submit_and_record  # type: ignore[method-assign]
    feed = agent.feed

    def feed_and_note(device_id: str, data: bytes, kind: str, arrival_s: float | None = None, **kw: str) -> None:
        now[0] = agent.clock() if arrival_s is None else arrival_s
        feed(device_id, data, kind, arrival_s, **kw)

    agent.feed = feed_and_note  # type: ignore[method-assign]
    asyncio.run(_run(FIRST_RUN, agent, GATEWAY_T0_S, 60.0, flush=False))
    _STATUS_T_DEVICE[:] = [agent.device_statuses(GATEWAY_T0_S + 60.0)[0].t_device_us]
    t2 = GATEWAY_T0_S + 60.0 + OFF_S
    t = GATEWAY_T0_S + 60.5
    while t < t2:
        agent.tick(t)
        t += 0.5
    asyncio.run(_run(AFTER_REBOOT, agent, t2, 80.0, flush=True))
    _STATUS_T_DEVICE.append(agent.device_statuses(t2 + 80.0)[0].t_device_us)
    return agent, sink.alerts, sink.cut, t2


def _raised(alerts: list[Alert], alert_type: str) -> list[Alert]:
    return [a for a in alerts if a.alert_type == alert_type and a.details["event"] == "raised"]


def test_a_rebooted_device_is_re_anchored_and_its_alerts_are_dated_right() -> None:
    agent, alerts, cut, t2 = _reboot_run()
    session = agent.sessions["d1"]
    assert session.stream.counters.device_resets == 1
    assert session.stream.counters.late == 0                       # the new run is not taken for old frames
    # the VT of the second run: raised, and dated by the new run's clock (device time 0 = gateway t2)
    vt = _raised(alerts, "vt")
    assert len(vt) == 1, [(a.alert_type, a.details["event"]) for a in alerts]
    onset_device_s = (vt[0].onset_device_us or 0) / 1e6
    assert 24.5 <= onset_device_s <= 32.0, onset_device_s          # VT scripted at 25 s of the new run
    assert abs(vt[0].onset_gateway_us / 1e6 - (t2 + onset_device_s)) <= 0.5
    # windows: each is dated so that it ends when its data came in, as for the fresh device before the reboot
    lag = [(at - (w.t_gateway_s + w.n_samples / w.fs), at > t2) for w, at in cut]
    before = [d for d, after in lag if not after]
    after = [d for d, after in lag if after]
    assert before and after
    assert abs(float(np.median(after)) - float(np.median(before))) <= 0.5, (np.median(before), np.median(after))
    assert max(abs(d - float(np.median(before))) for d in after) <= 0.5
    # the status the gateway reports for it is newer after the reboot (the cloud keeps the newest)
    before_us, after_us = _STATUS_T_DEVICE
    assert after_us > before_us


def test_disconnects_are_raised_and_resolve_when_data_flows_again() -> None:
    _, alerts, _, t2 = _reboot_run()
    events = [(a.alert_type, a.details["event"], a.onset_gateway_us / 1e6 - t2, a.details["at_s"])
              for a in alerts if a.alert_type == "device_disconnected"]
    raised = [e for e in events if e[1] == "raised"]
    cleared = [e for e in events if e[1] == "cleared"]
    # three disconnections: at 40 s of the first run, between the runs (device away), at 55 s of the second
    assert len(raised) == 3 and len(cleared) == 3, events
    # the one between the runs clears as soon as the rebooted device's data flows (stream time: first run
    # 60 s + 30 s away), not a minute later
    stream_restart_s = 60.0 + OFF_S
    assert stream_restart_s <= cleared[1][3] <= stream_restart_s + 2.0, events
    # the scripted disconnect of the second run is raised at its time (by the new clock), then resolves
    assert 53.0 <= raised[2][2] <= 56.0, events
    assert stream_restart_s + 65.0 <= cleared[2][3] <= stream_restart_s + 68.0, events
    # nothing technical is left active once the data is back
    assert not [a for a in _raised(alerts, "device_disconnected") if a.details["at_s"] > cleared[2][3]]


def _frame(seq: int, t0_us: int, n: int = 36) -> EcgFrame:
    x = np.sin(np.arange(n) / 5.0)[:, None].repeat(3, axis=1) * 1.0
    counts = np.rint(x * 1e6 / 2500).astype(np.int16)
    return EcgFrame(seq, t0_us, 250, ("II", "V1", "V5"), counts, lsb_nv=2500)


def test_sequence_numbers_jumping_far_ahead_are_a_restart_not_hours_of_gap() -> None:
    state = StreamState()
    dt = 36 / 250
    for i in range(50):
        state.push(_frame(i, round(i * dt * 1e6)), 100.0 + (i + 1) * dt)
    # the device comes back 3 s later numbering from 1,000,000 (and its clock from 0)
    arrival = 100.0 + 51 * dt + 3.0
    out = state.push(_frame(1_000_000, 0), arrival)
    out2 = state.push(_frame(1_000_001, round(dt * 1e6)), arrival + dt)
    assert state.counters.device_resets == 1
    gaps = [g for o in (out, out2) for g in o.gaps]
    assert len(gaps) == 1 and abs(gaps[0].length / 250 - 3.0) < 0.2, gaps
    assert abs(state.clock.to_gateway(dt * 1e6) - (arrival)) < 0.2


def test_a_polar_clock_jumping_far_ahead_is_a_restart_not_hours_of_gap() -> None:
    from protocol.polar_pmd import POLAR_ECG_FS_HZ, PolarEcgFrame

    n = 73
    dt = n / POLAR_ECG_FS_HZ
    samples = np.zeros(n, dtype=np.int32)
    state = StreamState()
    for i in range(50):
        state.push(PolarEcgFrame(round((i + 1) * dt * 1e9), samples), 100.0 + (i + 1) * dt)
    arrival = 100.0 + 51 * dt + 3.0             # back 3 s later with its clock a day ahead (set by a phone)
    out = state.push(PolarEcgFrame(round((86_400 + dt) * 1e9), samples), arrival)
    assert state.counters.device_resets == 1
    assert len(out.gaps) == 1 and abs(out.gaps[0].length / POLAR_ECG_FS_HZ - 3.0) < 0.2, out.gaps


def _one_frame(seq: int = 0) -> bytes:
    from protocol.ble_frame import encode_frame

    return encode_frame(_frame(seq, seq * 144_000))


def test_a_flood_of_fake_device_ids_is_capped_rate_limited_and_counted() -> None:
    agent = EdgeAgent(AgentConfig(max_sessions=100, new_devices_per_s=10.0), MemorySink())
    for i in range(20_000):                                   # 20,000 one-byte messages in 20 s, each a new id
        agent.feed(f"fake-{i}", b"\x00", "samples", GATEWAY_T0_S + i / 1000.0, transport="mqtt")
    assert len(agent.sessions) <= 100
    refused = agent.counters.rejected
    assert refused.get("new_device_rate", 0) + refused.get("too_many_devices", 0) + len(agent.sessions) == 20_000
    assert refused.get("decode", 0) == len(agent.sessions)    # the few admitted sent garbage: counted too
    # the cap holds however slowly they come
    slow = EdgeAgent(AgentConfig(max_sessions=100, new_devices_per_s=10.0), MemorySink())
    for i in range(2_000):
        slow.feed(f"fake-{i}", b"\x00", "samples", GATEWAY_T0_S + i, transport="mqtt")
    assert len(slow.sessions) == 100 and slow.counters.rejected["too_many_devices"] == 1_900


def test_only_known_devices_get_a_session_and_the_known_one_streams_through_a_flood() -> None:
    from edge.config import parse_config

    config = parse_config('[ingest]\nonly_known_devices = true\n[ingest.patients]\n"es-0001" = "bed-01"\n')
    agent = EdgeAgent(AgentConfig.from_edge_config(config), MemorySink())
    dt = 36 / 250
    for i in range(200):
        for j in range(20):
            agent.feed(f"fake-{i}-{j}", _one_frame(i), "frame", GATEWAY_T0_S + i * dt)
        agent.feed("es-0001", _one_frame(i), "frame", GATEWAY_T0_S + (i + 1) * dt)
    assert set(agent.sessions) == {"es-0001"}
    assert agent.sessions["es-0001"].patient_id == "bed-01"
    assert agent.sessions["es-0001"].stream.counters.frames == 200
    assert agent.counters.rejected == {"unknown_device": 4_000}


def test_devices_on_any_transport_map_to_their_patient_from_the_config() -> None:
    from edge.config import parse_config

    config = parse_config('[ingest.patients]\n"es-0001" = "bed-01"\n')
    sink = MemorySink()
    agent = EdgeAgent(AgentConfig.from_edge_config(config), sink)
    for i in range(200):
        agent.feed("es-0001", _one_frame(i), "frame", GATEWAY_T0_S + (i + 1) * 36 / 250, transport="mqtt")
        agent.feed("es-0002", _one_frame(i), "frame", GATEWAY_T0_S + (i + 1) * 36 / 250, transport="mqtt")
    agent.flush()
    assert agent.sessions["es-0001"].patient_id == "bed-01"
    assert agent.sessions["es-0002"].patient_id == "es-0002"           # unmapped: its own patient
    assert {(w.device_id, w.patient_id) for w in sink.windows} == {("es-0001", "bed-01"), ("es-0002", "es-0002")}


def test_the_status_reported_for_a_rebooted_device_is_newer_than_before_the_reboot() -> None:
    agent = EdgeAgent(AgentConfig(), MemorySink())
    dt = 36 / 250
    for i in range(100):                                        # 14 s of device time
        agent.feed("es-1", _one_frame(i), "frame", GATEWAY_T0_S + (i + 1) * dt)
    before = agent.device_statuses(GATEWAY_T0_S + 100 * dt)[0].t_device_us
    back = GATEWAY_T0_S + 100 * dt + 5.0                        # rebooted: seq and clock from 0
    for i in range(10):
        agent.feed("es-1", _one_frame(i), "frame", back + (i + 1) * dt)
        agent.tick(back + (i + 1) * dt)
    after = agent.device_statuses(back + 10 * dt)[0]
    assert agent.sessions["es-1"].stream.counters.device_resets == 1
    assert after.t_device_us > before and after.connected


def test_an_allow_list_file_admits_its_devices_and_refuses_the_rest(tmp_path: Path) -> None:
    from edge.config import parse_config

    (tmp_path / "allowed.txt").write_text("# ward 3\nes-0007\nes-0008  # spare\n")
    config = parse_config(f'[ingest]\nallowed_devices_file = "{tmp_path / "allowed.txt"}"\n')
    agent = EdgeAgent(AgentConfig.from_edge_config(config), MemorySink())
    for device in ("es-0007", "es-0008", "es-0009"):
        agent.feed(device, _one_frame(0), "frame", GATEWAY_T0_S)
    assert set(agent.sessions) == {"es-0007", "es-0008"}
    assert agent.counters.rejected == {"unknown_device": 1}
