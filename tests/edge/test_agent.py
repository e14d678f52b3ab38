"""The edge agent end to end: simulated wearables (loopback bytes) → agent → alerts and windows.

Everything runs in stream time (``ecgstream.edge_sim``: devices stepped as fast as possible, each
message fed with its stream-time arrival), so alarm delays are seconds of signal, not wall clock.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from ecgstream.edge_sim import GATEWAY_T0_S, run_scenario_into_agent
from edge.agent import AgentConfig, EdgeAgent, MemorySink, OutboxSink
from edge.inference import InferencePipeline, select_backend
from edge.uplink.outbox import Kind, Outbox
from firmware_sim.scenario import parse_scenario
from protocol.messages import Alert, AlertCategory, Priority, decode_message
from protocol.window_payload import decode_window

CLINICAL_WARD = """
name = "agent-clinical"
duration_s = 75
seed = 11

[[patient]]
id = "p-vt"
device = "d-vt"
heart_rate = 70
rhythm = [ { at = 0, name = "sinus" }, { at = 25, name = "vt", heart_rate = 180 }, { at = 45, name = "sinus" } ]

[[patient]]
id = "p-asys"
device = "d-asys"
rhythm = [ { at = 0, name = "sinus" }, { at = 25, name = "asystole" }, { at = 35, name = "sinus" } ]

[[patient]]
id = "p-af"
device = "d-af"
rhythm = [ { at = 0, name = "sinus" }, { at = 15, name = "afib" } ]
"""

FAULTY_SINUS = """
name = "agent-faults"
duration_s = 90
seed = 5

[[patient]]
id = "p-loss"
device = "d-loss"
rhythm = [ { at = 0, name = "sinus" } ]
[patient.faults]
loss = 0.02
burst_loss = 0.002
duplicate = 0.02
reorder = 0.02
jitter_ms = 40
drift_ppm = 120

[[patient]]
id = "p-drift"
device = "d-drift"
heart_rate = 95
rhythm = [ { at = 0, name = "sinus" } ]
[patient.faults]
drift_ppm = -250
jitter_ms = 80
duplicate = 0.05

[[patient]]
id = "p-polar"
device = "polar-1"
profile = "polar-h10"
rhythm = [ { at = 0, name = "sinus" } ]
[patient.faults]
loss = 0.02
jitter_ms = 20
"""


def _first(alerts: list[Alert], device: str, alert_type: str) -> Alert | None:
    return next((a for a in alerts if a.device_id == device and a.alert_type == alert_type
                 and a.details["event"] != "cleared"), None)


def _clinical(alerts: list[Alert], device: str) -> list[tuple[str, str]]:
    return [(a.alert_type, a.details["event"]) for a in alerts
            if a.device_id == device and a.category is AlertCategory.CLINICAL]


@pytest.fixture(scope="module")
def clinical_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[EdgeAgent, Outbox, MemorySink]:
    """The clinical ward through the agent with the shipped VAE, into an outbox (and a copy in memory)."""
    outbox = Outbox(tmp_path_factory.mktemp("agent") / "outbox.sqlite")
    memory = MemorySink()

    class Both(OutboxSink):
        def put_alert(self, alert: Alert) -> None:
            memory.put_alert(alert)
            super().put_alert(alert)

    pipeline = InferencePipeline(select_backend("onnxruntime-cpu", max_batch=16))
    agent = EdgeAgent(AgentConfig(patients={"d-vt": "p-vt", "d-asys": "p-asys", "d-af": "p-af"}), Both(outbox),
                      pipeline=pipeline)
    asyncio.run(run_scenario_into_agent(parse_scenario(CLINICAL_WARD), agent))
    return agent, outbox, memory


def test_vt_asystole_af_raise_the_right_alerts_in_stream_time(clinical_run: tuple[EdgeAgent, Outbox, MemorySink]) -> None:
    _, _, sink = clinical_run
    alerts = sink.alerts
    vt = _first(alerts, "d-vt", "vt")
    assert vt is not None and vt.priority is Priority.HIGH
    assert 25.0 < vt.details["at_s"] <= 32.0, vt.details           # ≤ 7 s after onset (stream time)
    assert 24.0 <= vt.details["onset_s"] <= vt.details["at_s"]
    asys = _first(alerts, "d-asys", "asystole")
    assert asys is not None and asys.priority is Priority.HIGH
    assert 25.0 < asys.details["at_s"] <= 31.0, asys.details
    af = _first(alerts, "d-af", "af")
    assert af is not None and af.priority is Priority.MEDIUM
    assert 15.0 < af.details["at_s"] <= 70.0, af.details
    # nothing else clinical on these patients
    assert {t for t, _ in _clinical(alerts, "d-vt")} <= {"vt"}
    assert {t for t, _ in _clinical(alerts, "d-asys")} <= {"pause", "asystole"}
    assert {t for t, _ in _clinical(alerts, "d-af")} == {"af"}
    for a in (vt, asys, af):
        assert a.patient_id == a.device_id.replace("d-", "p-")
        assert a.model_versions["alarm_rules"] and a.onset_gateway_us >= int(GATEWAY_T0_S * 1e6)
        assert a.window_id is None or a.model_versions.get("reconstruction", "").startswith("reconstruction_vae@")


def test_alerts_and_windows_land_in_the_outbox(clinical_run: tuple[EdgeAgent, Outbox, MemorySink]) -> None:
    agent, outbox, sink = clinical_run
    stored = outbox.peek(100_000)
    alerts = [decode_message(m.payload, Alert) for m in stored if m.kind is Kind.ALERT]
    assert [a.alert_id for a in alerts] == [a.alert_id for a in sink.alerts]      # every alert, in order
    windows = [decode_window(m.payload) for m in stored if m.kind is Kind.WINDOW]
    assert len(windows) == agent.counters.windows_done > 0
    assert agent.counters.windows_done == agent.counters.windows_submitted
    w = windows[0]
    assert len(w.leads) == 12 and set(w.reconstructed) == set(w.leads) - {"II", "V1", "V5"}
    assert {x.patient_id for x in windows} == {"p-vt", "p-asys", "p-af"}
    assert outbox.depth()[Kind.ALERT] == len(alerts)


def _run(text: str, *, tamper=None, pipeline: InferencePipeline | None = None) -> tuple[EdgeAgent, MemorySink]:
    sink = MemorySink()
    agent = EdgeAgent(AgentConfig(), sink, pipeline=pipeline)
    asyncio.run(run_scenario_into_agent(parse_scenario(text), agent, tamper=tamper))
    return agent, sink


def test_loss_reordering_duplicates_drift_raise_no_clinical_alarm_and_are_counted() -> None:
    agent, sink = _run(FAULTY_SINUS)
    clinical = [a for a in sink.alerts if a.category is AlertCategory.CLINICAL]
    assert clinical == [], [(a.device_id, a.alert_type, a.details) for a in clinical]
    loss = agent.sessions["d-loss"]
    c = loss.stream.counters
    assert c.duplicates > 0 and c.gaps > 0 and c.samples_lost > 0
    assert loss.counters.internal_errors == 0 and loss.counters.decode_errors == 0
    drift = agent.sessions["d-drift"]
    assert drift.stream.counters.duplicates > 0
    assert abs(drift.stream.clock.drift_ppm - (-250)) < 60, drift.stream.clock.drift_ppm
    assert 85 < drift.heart_rate_bpm < 105
    polar = agent.sessions["polar-1"]
    # lead I of the Polar H10 is analysed (heart rate, beats) and windowed as measured, not for the VAE
    assert polar.counters.analysis_skipped_samples == 0 and polar.counters.windows_unsupported == 1
    assert 55 < polar.heart_rate_bpm < 80
    assert agent.status().streams  # snapshot builds with every stream


GARBAGE_WARD = """
name = "agent-garbage"
duration_s = 40
seed = 3

[[patient]]
id = "p-ok"
device = "d-ok"
rhythm = [ { at = 0, name = "sinus" }, { at = 20, name = "vt", heart_rate = 170 } ]

[[patient]]
id = "p-bad"
device = "d-bad"
rhythm = [ { at = 0, name = "sinus" } ]
"""


def test_garbage_from_one_device_does_not_disturb_the_others() -> None:
    rng = np.random.default_rng(0)
    injected = {"n": 0}

    def tamper(device_id: str, data: bytes, kind: str, t_s: float) -> list[tuple[str, bytes, str]]:
        if device_id != "d-bad":
            return [(device_id, data, kind)]
        injected["n"] += 3
        junk = bytes(rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8))
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0xFF
        return [(device_id, junk, "frame"), (device_id, bytes(flipped), kind), (device_id, b"\x00" * 8, "samples"),
                ("bad id/with slash", data, kind), (device_id, data, kind)]

    clean_agent, clean = _run(GARBAGE_WARD)
    dirty_agent, dirty = _run(GARBAGE_WARD, tamper=tamper)

    def view(sink: MemorySink, device: str) -> list[tuple[str, str, float]]:
        # (alert ids are random per episode, so two runs never share them: compare what was raised, when)
        return [(a.alert_type, a.details["event"], a.details["onset_s"]) for a in sink.alerts
                if a.device_id == device]

    assert view(dirty, "d-ok") == view(clean, "d-ok") and any(t == "vt" for t, _, _ in view(clean, "d-ok"))
    ok_windows = [(w.t0_us, w.samples.tobytes()) for w in clean.windows if w.device_id == "d-ok"]
    assert ok_windows and ok_windows == [(w.t0_us, w.samples.tobytes()) for w in dirty.windows if w.device_id == "d-ok"]
    bad = dirty_agent.sessions["d-bad"]
    assert bad.counters.decode_errors >= injected["n"] * 2 // 3 - 5
    assert dirty_agent.counters.rejected["invalid_device"] > 0
    assert bad.counters.internal_errors == 0
    assert [a for a in dirty.alerts if a.device_id == "d-bad" and a.category is AlertCategory.CLINICAL] == []


def test_a_session_failing_at_the_end_of_a_replay_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in one device's session (injected: its flush raises) is counted and logged; the other
    patients' held samples are still analysed and their windows delivered."""
    clean_agent, clean = _run(GARBAGE_WARD)
    from edge.ingest.session import DeviceSession

    real_flush = DeviceSession.flush

    def flush(self: DeviceSession):  # type: ignore[no-untyped-def]
        if self.device_id == "d-bad":
            raise RuntimeError("injected failure")
        return real_flush(self)

    monkeypatch.setattr(DeviceSession, "flush", flush)
    agent, sink = _run(GARBAGE_WARD)
    assert agent.sessions["d-bad"].counters.internal_errors == 1
    assert [(w.t0_us, w.samples.tobytes()) for w in sink.windows if w.device_id == "d-ok"] == \
        [(w.t0_us, w.samples.tobytes()) for w in clean.windows if w.device_id == "d-ok"]


def test_format_change_starts_a_new_stream_and_is_counted() -> None:
    from firmware_sim.packetizer import Packetizer
    from firmware_sim.profiles import get_profile
    from firmware_sim.synthesis import synthesize
    from protocol.ble_frame import encode_frame

    agent = EdgeAgent(AgentConfig(), MemorySink())
    t = GATEWAY_T0_S
    for name in ("ecgstream-250", "ecgstream-500"):
        profile = get_profile(name)
        syn = synthesize("sinus", seconds=12, fs=profile.fs_hz, seed=1)
        x = np.column_stack([syn.lead(lead) for lead in profile.leads])
        for batch in Packetizer(profile).packetize(x):
            for frame in (batch.frame(i) for i in range(len(batch))):
                t += frame.n_samples / profile.fs_hz
                agent.feed("d-1", encode_frame(frame), "frame", t)
        agent.tick(t)
    s = agent.sessions["d-1"]
    assert s.counters.format_restarts == 1 and s.stream.fs == 500
    assert math.isclose(s.stream_now_s, 24.0, abs_tol=0.5)
    assert [a for a in agent.sink.alerts if a.category is AlertCategory.CLINICAL] == []  # type: ignore[attr-defined]


def test_device_statuses_report_battery_connection_and_always_move_forward() -> None:
    agent, _ = _run(FAULTY_SINUS)
    now = max(s.last_arrival_s or 0.0 for s in agent.sessions.values())
    first = {d.device_id: d for d in agent.device_statuses(now)}
    assert set(first) == {"d-loss", "d-drift", "polar-1"}
    shown = {s.device_id: s for s in agent.status(now).streams}          # what `ecgstream edge status` shows
    assert all(first[k].connected == shown[k].connected for k in first)
    assert all(first[k].battery_pct == round(shown[k].battery_pct or -1) for k in first)
    later = {d.device_id: d for d in agent.device_statuses(now + 3600.0)}   # an hour of silence
    assert not any(d.connected for d in later.values())
    assert all(later[k].t_device_us > first[k].t_device_us for k in first)  # newer: the cloud keeps it


def test_outbox_sink_writes_windows_encoded_in_threads_in_order_and_counts_bad_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from protocol.window_payload import EcgWindow, decode_window

    rng = np.random.default_rng(0)
    windows = [EcgWindow(f"00000000-0000-4000-8000-{i:012d}", f"p{i % 3}", f"d{i % 3}", 1_700_000_000_000_000 + i,
                         125, ("II", "V1", "V5"), rng.integers(-2000, 2000, size=(3, 1250)).astype(np.int16))
               for i in range(12)]
    bad = EcgWindow("not-a-uuid", "p0", "d0", 0, 125, ("II", "V1", "V5"), np.zeros((3, 1250), dtype=np.int16))
    outbox = Outbox(tmp_path / "outbox.sqlite")
    sink = OutboxSink(outbox, encode_workers=2)
    for w in windows[:6] + [bad] + windows[6:]:
        sink.put_window(w)
    sink.flush()
    stored = outbox.peek(100)
    assert [decode_window(m.payload) for m in stored] == windows
    assert all(m.kind is Kind.WINDOW for m in stored) and sink.encode_errors == 1
    sink.close()
    outbox.close()
