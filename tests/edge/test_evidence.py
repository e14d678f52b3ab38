"""Evidence with every clinical alarm: the windows covering its deciding samples are named in the alert
(by id, known from the fixed window grid before inference has produced them) and are uplinked.

Simulated wearables and the agent in stream time (``ecgstream.edge_sim``), the shipped VAE, the
scenario's ground truth (rhythm changes at known stream times).
"""

from __future__ import annotations

import asyncio

import pytest

from ecgstream.edge_sim import run_scenario_into_agent
from edge.agent import AgentConfig, EdgeAgent, MemorySink
from edge.inference import InferencePipeline, select_backend
from firmware_sim.scenario import parse_scenario
from protocol.messages import Alert, AlertCategory
from protocol.window_payload import EcgWindow

WARD = """
name = "evidence"
duration_s = 70
seed = 21

[[patient]]
id = "p-vt"
device = "d-vt"
heart_rate = 72
rhythm = [ { at = 0, name = "sinus" }, { at = 25, name = "vt", heart_rate = 180 }, { at = 45, name = "sinus" } ]

[[patient]]
id = "p-asys"
device = "d-asys"
rhythm = [ { at = 0, name = "sinus" }, { at = 30, name = "asystole" }, { at = 42, name = "sinus" } ]
"""
ONSET_TRUTH_S = {"d-vt": 25.0, "d-asys": 30.0}


@pytest.fixture(scope="module")
def run() -> tuple[EdgeAgent, MemorySink]:
    sink = MemorySink()
    pipeline = InferencePipeline(select_backend("onnxruntime-cpu", max_batch=16))
    agent = EdgeAgent(AgentConfig(patients={"d-vt": "p-vt", "d-asys": "p-asys"}), sink, pipeline=pipeline)
    asyncio.run(run_scenario_into_agent(parse_scenario(WARD), agent))
    return agent, sink


def _raised(sink: MemorySink, device: str, alert_type: str) -> Alert:
    return next(a for a in sink.alerts if a.device_id == device and a.alert_type == alert_type
                and a.details["event"] == "raised")


def _covered(windows: list[EcgWindow], start_us: int, end_us: int) -> bool:
    """Whether the windows' union covers [start_us, end_us] with no hole (gaps in them excluded)."""
    spans = []
    for w in windows:
        step = 1e6 / w.fs_hz
        edges = [0, *[x for g in w.gaps for x in g], w.n_samples]
        spans += [(w.t0_us + a * step, w.t0_us + b * step) for a, b in zip(edges[::2], edges[1::2], strict=True) if b > a]
    t = float(start_us)
    for a, b in sorted(spans):
        if a > t + 1e4:        # within 10 ms (window boundaries fall between samples)
            break
        t = max(t, b)
    return t >= end_us


@pytest.mark.parametrize(("device", "alert_type"), [("d-vt", "vt"), ("d-asys", "asystole")])
def test_the_alert_names_uplinked_windows_covering_its_deciding_samples(
        run: tuple[EdgeAgent, MemorySink], device: str, alert_type: str) -> None:
    _, sink = run
    alert = _raised(sink, device, alert_type)
    ids = alert.details["evidence_window_ids"]
    assert alert.window_id in ids and len(ids) == len(set(ids)) >= 2
    uplinked = {w.window_id: w for w in sink.windows}
    assert set(ids) <= set(uplinked), "every named window is uplinked (late-bound: cut after the alert)"
    windows = [uplinked[i] for i in ids]
    assert all(w.patient_id == alert.patient_id for w in windows)
    onset_s, at_s = alert.details["onset_s"], alert.details["at_s"]
    assert abs(onset_s - ONSET_TRUTH_S[device]) <= 1.5 and onset_s < at_s
    # stream time → gateway clock through the alert's own onset
    to_us = lambda t_s: alert.onset_gateway_us + round((t_s - onset_s) * 1e6)  # noqa: E731
    # from the truth's onset (for asystole: the last beat before the pause, its onset) to the deciding sample
    assert _covered(windows, to_us(min(onset_s, ONSET_TRUTH_S[device])), to_us(at_s))
    assert alert.window_id is not None
    primary = uplinked[alert.window_id]
    assert primary.t0_us <= to_us(at_s) < primary.t0_us + primary.n_samples * 1e6 / primary.fs_hz


def test_the_asystole_strip_covers_the_whole_pause_not_just_its_first_seconds(run: tuple[EdgeAgent, MemorySink]) -> None:
    _, sink = run
    alert = _raised(sink, "d-asys", "asystole")
    onset_s, at_s = alert.details["onset_s"], alert.details["at_s"]
    assert at_s - onset_s >= 4.0         # the silence that decided it
    assert alert.details["evidence_span_s"] == [round(onset_s, 3), round(at_s, 3)]
    windows = [w for w in sink.windows if w.window_id in alert.details["evidence_window_ids"]]
    to_us = lambda t_s: alert.onset_gateway_us + round((t_s - onset_s) * 1e6)  # noqa: E731
    assert _covered(windows, to_us(onset_s - 1.0), to_us(at_s + 1.0))   # the pause plus 1 s either side


def test_every_raised_clinical_alert_names_its_evidence_and_cleared_ones_do_not(run: tuple[EdgeAgent, MemorySink]) -> None:
    _, sink = run
    uplinked = {w.window_id for w in sink.windows}
    clinical = [a for a in sink.alerts if a.category is AlertCategory.CLINICAL]
    assert clinical
    for a in clinical:
        if a.details["event"] == "cleared":
            assert "evidence_window_ids" not in a.details
        else:
            assert a.window_id is not None and set(a.details["evidence_window_ids"]) <= uplinked, a


def test_under_overload_the_evidence_windows_are_never_shed() -> None:
    """Async inference with a queue of one (the batcher sheds the oldest unprotected window when full):
    windows an alert named are submitted protected, so every one of them is still uplinked."""
    sink = MemorySink()
    pipeline = InferencePipeline(select_backend("onnxruntime-cpu", max_batch=16), max_queue=1, deadline_ms=500)
    agent = EdgeAgent(AgentConfig(patients={"d-vt": "p-vt", "d-asys": "p-asys"}), sink, pipeline=pipeline,
                      mode="async")

    async def main() -> None:
        await agent.start()
        await run_scenario_into_agent(parse_scenario(WARD), agent)
        await agent.close()

    asyncio.run(main())
    assert agent.counters.windows_dropped.get("overload", 0) > 0          # the overload did shed windows
    uplinked = {w.window_id for w in sink.windows}
    named = [a for a in sink.alerts if "evidence_window_ids" in a.details]
    assert {a.alert_type for a in named} >= {"vt", "asystole"}
    for a in named:
        assert set(a.details["evidence_window_ids"]) <= uplinked, (a.alert_type, a.details)
