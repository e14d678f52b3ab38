"""Every patient's ECG reaches the cloud: a device with other leads (the demo ward's Polar H10, lead I
only, 130 Hz) is analysed on the lead it has (heart rate, beats, rhythm alarms) and sends windows of
that lead, marked as measured; a device losing 2 % of its frames sends as many windows as a clean
one, the lost stretches masked.

The demo ward (``firmware_sim/scenarios/demo_ward.toml``) through the agent in stream time, its
scripted events as ground truth.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

import firmware_sim
from ecgstream.edge_sim import run_scenario_into_agent
from edge.agent import AgentConfig, EdgeAgent, MemorySink
from edge.inference import InferencePipeline, select_backend
from edge.inference.windowing import Windower
from edge.stream.records import Gap
from firmware_sim.scenario import Scenario, load_scenario, parse_scenario
from protocol.messages import AlertCategory
from protocol.window_payload import decode_window, encode_window

DEMO_WARD = Path(firmware_sim.__file__).parent / "scenarios" / "demo_ward.toml"


def _ward(*beds: str) -> Scenario:
    ward = load_scenario(DEMO_WARD)
    return dataclasses.replace(ward, patients=tuple(p for p in ward.patients if p.patient_id in beds))


def _run(scenario: Scenario, pipeline: InferencePipeline | None = None) -> tuple[EdgeAgent, MemorySink]:
    sink = MemorySink()
    agent = EdgeAgent(AgentConfig(patients={p.device_id: p.patient_id for p in scenario.patients}), sink, pipeline=pipeline)
    asyncio.run(run_scenario_into_agent(scenario, agent))
    return agent, sink


@pytest.fixture(scope="module")
def polar_run() -> tuple[EdgeAgent, MemorySink]:
    """bed-08 (Polar H10: lead I at 130 Hz; sinus, SVT from 90 s), with the shipped VAE loaded."""
    return _run(_ward("bed-08"), InferencePipeline(select_backend("onnxruntime-cpu", max_batch=16)))


def test_the_polar_patient_has_a_heart_rate_from_lead_i(polar_run: tuple[EdgeAgent, MemorySink]) -> None:
    agent, _ = polar_run
    session = agent.sessions["polar-0008"]
    assert session.analysis_lead == "I" and session.counters.analysis_skipped_samples == 0
    (stream,) = agent.status().streams
    assert stream.heart_rate_bpm is not None and stream.heart_rate_bpm > 100   # SVT at the end of the run


def test_the_polar_patients_scripted_svt_raises_svt(polar_run: tuple[EdgeAgent, MemorySink]) -> None:
    _, sink = polar_run
    clinical = [a for a in sink.alerts if a.category is AlertCategory.CLINICAL and a.details["event"] == "raised"]
    assert [a.alert_type for a in clinical] == ["svt"], [(a.alert_type, a.details) for a in clinical]
    (tachy,) = clinical
    assert 90.0 <= tachy.details["onset_s"] <= 95.0 and tachy.details["at_s"] <= 110.0, tachy.details
    uplinked = {w.window_id for w in sink.windows}
    assert set(tachy.details["evidence_window_ids"]) <= uplinked


def test_the_polar_patient_uplinks_windows_of_the_lead_it_has(polar_run: tuple[EdgeAgent, MemorySink]) -> None:
    agent, sink = polar_run
    windows = [w for w in sink.windows if w.device_id == "polar-0008"]
    assert len(windows) >= 20          # 120 s at a 5 s hop: slots 0..21
    for w in windows:
        assert w.leads == ("I",) and w.reconstructed == () and w.uncertainty is None and w.fs_hz == 125
        assert decode_window(encode_window(w)) == w
    assert agent.counters.windows_dropped == {}


LOSSY_WARD = """
name = "lossy"
duration_s = 120
seed = 13

[[patient]]
id = "p-clean"
device = "d-clean"
rhythm = [ { at = 0, name = "sinus" } ]

[[patient]]
id = "p-lossy"
device = "d-lossy"
rhythm = [ { at = 0, name = "sinus" } ]
[patient.faults]
loss = 0.02
burst_loss = 0.01
jitter_ms = 30
drift_ppm = 80
"""


def test_frame_loss_and_bursts_still_uplink_as_many_windows_as_a_clean_device_with_the_losses_masked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """2 % frame loss, loss bursts, 30 ms jitter, 80 ppm drift (the demo's bed-06, with bursts) against a
    clean device: the same number of windows within one; each window masks exactly the samples lost in it."""
    gaps: list[Gap] = []
    push_gap = Windower.push_gap

    def recording(self: Windower, gap: Gap) -> None:    # what the stream state reported, kept for the check
        if self.device_id == "d-lossy" and not gap.interpolated:
            gaps.append(gap)
        push_gap(self, gap)

    monkeypatch.setattr(Windower, "push_gap", recording)
    agent, sink = _run(parse_scenario(LOSSY_WARD))
    by = {p: [w for w in sink.windows if w.patient_id == p] for p in ("p-clean", "p-lossy")}
    assert len(by["p-clean"]) >= 20
    assert abs(len(by["p-lossy"]) - len(by["p-clean"])) <= 1, {k: len(v) for k, v in by.items()}
    lossy = agent.sessions["d-lossy"]
    windower, fs = lossy.windower, lossy.stream.fs
    assert windower is not None and fs is not None and len(gaps) >= 3
    masked = [w for w in by["p-lossy"] if w.gaps]
    assert masked and windower.counters.with_gaps == len(masked) == agent.counters.windows_masked
    slot_of = {windower.window_id_for(k): k for k in range(100)}
    for w in by["p-lossy"]:
        assert decode_window(encode_window(w)).gaps == w.gaps
        assert not w.samples[:, w.gap_mask()].any()      # no line drawn through a loss
        start = 1.0 + 5.0 * slot_of[w.window_id]         # content of slot k: [1 + 5k, 11 + 5k) s of stream
        want = [(max(g.start / fs, start), min(g.stop / fs, start + 10.0)) for g in gaps]
        want = [((a - start) * 125, (b - start) * 125) for a, b in want if b > a]
        assert len(w.gaps) == len(want), (w.gaps, want)
        for (a, b), (wa, wb) in zip(w.gaps, want, strict=True):
            assert abs(a - wa) <= 1.0 and abs(b - wb) <= 1.0, (w.gaps, want)
