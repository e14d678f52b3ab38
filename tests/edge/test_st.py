"""ST measurement (``edge.signal.st``) on synthetic 12-lead windows, and the ST-change alarm through the agent.

Windows are what the models see: :func:`models.preprocessing.prepare_window` (125 Hz, 0.5–40 Hz, mV) of
the simulator's 12 leads, with the synthesised R peaks mapped to the window's grid (in the agent they
come from the session's QRS detector on lead II).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ecgstream.edge_sim import run_scenario_into_agent
from edge.agent import AgentConfig, EdgeAgent, MemorySink
from edge.inference import InferencePipeline, select_backend
from edge.signal.st import StResult, default_reconstructed, measure_st
from firmware_sim.scenario import parse_scenario
from firmware_sim.synthesis import synthesize
from models.preprocessing import MODEL_FS, WINDOW_SAMPLES, prepare_window
from protocol.leads import STANDARD_LEADS
from protocol.messages import AlertCategory, Priority

FS = 250.0
SEEDS = (0, 1, 2)


def _window(rhythm: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """12 s synthesised at 250 Hz → the centre 10 s window (12, 1250) and its R peaks on that grid."""
    syn = synthesize(rhythm, seconds=12, fs=FS, seed=seed)
    x = prepare_window(syn.signals, FS)
    start = (round(12 * MODEL_FS) - WINDOW_SAMPLES) // 2
    beats = np.rint(syn.beats * MODEL_FS / FS).astype(int) - start
    return x, beats[(beats >= 0) & (beats < WINDOW_SAMPLES)]


def _st(rhythm: str, seed: int) -> StResult:
    x, beats = _window(rhythm, seed)
    result = measure_st(x, MODEL_FS, beats)
    assert result.measured, result.reason
    assert result.j_measured and 30.0 <= (result.j_ms or 0) <= 70.0, result
    return result


def _dev(result: StResult, lead: str) -> float:
    return result.st[lead].deviation_mv


@pytest.mark.parametrize("seed", SEEDS)
def test_stemi_territories_have_st_shift_of_the_right_sign_in_the_right_leads(seed: int) -> None:
    anterior = _st("stemi_anterior", seed)
    assert min(_dev(anterior, lead) for lead in ("V2", "V3", "V4")) >= 0.1, anterior.st
    inferior = _st("stemi_inferior", seed)
    assert min(_dev(inferior, lead) for lead in ("II", "III", "aVF")) >= 0.1, inferior.st
    assert _dev(inferior, "aVL") <= -0.1, inferior.st                                  # reciprocal
    lateral = _st("stemi_lateral", seed)
    assert min(_dev(lateral, lead) for lead in ("I", "aVL", "V5", "V6")) >= 0.1, lateral.st
    assert _dev(lateral, "III") < -0.05, lateral.st                                    # reciprocal
    depression = _st("st_depression", seed)
    assert max(_dev(depression, lead) for lead in ("II", "aVF", "V4")) <= -0.1 + 0.02, depression.st
    assert _dev(depression, "aVR") >= 0.05, depression.st


@pytest.mark.parametrize("seed", SEEDS)
def test_sinus_has_no_st_deviation(seed: int) -> None:
    sinus = _st("sinus", seed)
    devs = np.abs([m.deviation_mv for m in sinus.st.values()])
    # The simulator's T wave starts right after the QRS (no isoelectric ST segment), so J + 60 ms
    # catches a little of its upstroke in V3–V5: a few hundredths of a mV, never the 0.1 mV of a rule.
    assert np.median(devs) < 0.05 and devs.max() < 0.1, sinus.st
    assert all(abs(_dev(sinus, lead)) < 0.05 for lead in ("I", "II", "III", "aVR", "aVL", "aVF", "V1")), sinus.st


def test_reconstructed_leads_carry_their_mean_uncertainty_over_the_st_window() -> None:
    x, beats = _window("stemi_anterior", 0)
    recon = default_reconstructed(STANDARD_LEADS)
    assert set(recon) == set(STANDARD_LEADS) - {"II", "V1", "V5"}
    unc = np.zeros_like(x)
    for i, lead in enumerate(STANDARD_LEADS):
        if lead in recon:
            unc[i] = 0.01 * (i + 1)
    result = measure_st(x, MODEL_FS, beats, uncertainty=unc, reconstructed=recon)
    for i, lead in enumerate(STANDARD_LEADS):
        m = result.st[lead]
        assert m.reconstructed == (lead in recon)
        assert m.uncertainty_mv == pytest.approx(0.01 * (i + 1) if lead in recon else 0.0)
    # the fiducials come from the measured leads only: garbage in a reconstructed lead moves no J point
    noisy = x.copy()
    noisy[STANDARD_LEADS.index("V3")] += np.random.default_rng(0).normal(0, 0.3, x.shape[1])
    again = measure_st(noisy, MODEL_FS, beats, uncertainty=unc, reconstructed=recon)
    assert again.j_ms == result.j_ms and again.baseline_ms == result.baseline_ms


def test_no_measurement_without_three_normal_narrow_beats() -> None:
    x, beats = _window("sinus", 0)
    few = measure_st(x, MODEL_FS, beats[:2])
    assert not few.measured and "needed" in few.reason
    for rhythm in ("vt", "lbbb"):
        wx, wbeats = _window(rhythm, 0)
        wide = measure_st(wx, MODEL_FS, wbeats)
        assert not wide.measured and "wide" in wide.reason, (rhythm, wide)
    # bigeminy: the PVCs are left out, the sinus beats measured
    x, beats = _window("pvc_bigeminy", 0)
    big = measure_st(x, MODEL_FS, beats)
    assert big.measured and 3 <= big.beats_used < big.beats_given
    assert max(abs(m.deviation_mv) for m in big.st.values()) < 0.05
    # the wearable's leads alone (rules-only) give the same figures as within the 12 leads
    idx = [STANDARD_LEADS.index(lead) for lead in ("II", "V1", "V5")]
    full = measure_st(x, MODEL_FS, beats, reconstructed=default_reconstructed(STANDARD_LEADS))
    sub = measure_st(x[idx], MODEL_FS, beats, lead_names=("II", "V1", "V5"))
    assert {k: round(v.deviation_mv, 6) for k, v in sub.st.items()} == {
        k: round(full.st[k].deviation_mv, 6) for k in ("II", "V1", "V5")}


STEMI_WARD = """
name = "agent-st"
duration_s = 120
seed = 7

[[patient]]
id = "p-stemi"
device = "d-stemi"
heart_rate = 70
rhythm = [ { at = 0, name = "sinus" }, { at = 60, name = "stemi_anterior" } ]

[[patient]]
id = "p-sinus"
device = "d-sinus"
heart_rate = 70
rhythm = [ { at = 0, name = "sinus" } ]
"""


def test_anterior_stemi_raises_st_change_resting_on_reconstructed_leads() -> None:
    sink = MemorySink(keep_windows=False)
    agent = EdgeAgent(AgentConfig(), sink, pipeline=InferencePipeline(select_backend("onnxruntime-cpu", max_batch=16)))
    asyncio.run(run_scenario_into_agent(parse_scenario(STEMI_WARD), agent))
    st = [a for a in sink.alerts if a.alert_type == "st_change"]
    assert [(a.device_id, a.details["event"]) for a in st] == [("d-stemi", "raised")], st
    alert = st[0]
    assert alert.priority is Priority.MEDIUM and alert.category is AlertCategory.CLINICAL
    assert alert.patient_id == "d-stemi"        # no device→patient map given: the device is the patient
    # ST elevation ≥ 0.2 mV in V2–V4 (reconstructed) and V1 (measured), changed from the patient's baseline
    # (learned on the first minute of sinus rhythm) by ≥ 0.1 mV; 30 s persistence, within 60 s of onset
    assert min(alert.details["st_mv"][lead] for lead in ("V2", "V3", "V4")) >= 0.2, alert.details
    assert min(alert.details["st_change_mv"][lead] for lead in ("V2", "V3", "V4")) >= 0.1, alert.details
    assert 60.0 + 30.0 <= alert.details["at_s"] <= 60.0 + 60.0, alert.details
    # the reconstructed leads it rests on, with their 90 % band half-width (mV): near edge still ≥ 0.2
    recon = dict(alert.reconstructed_leads)
    assert {"V2", "V3", "V4"} <= set(recon), recon
    assert all(0.0 < u < 0.3 for u in recon.values()), recon
    assert "V1" not in recon and "V5" not in recon                                      # measured leads
    assert alert.window_id and alert.model_versions["reconstruction"].startswith("reconstruction_vae@")
    # clean sinus: no clinical alarm at all, and its ST stays under the rule's thresholds
    assert [a for a in sink.alerts if a.device_id == "d-sinus" and a.category is AlertCategory.CLINICAL] == []
    sinus = agent.sessions["d-sinus"]
    assert sinus.counters.st_measured >= sinus.counters.st_windows - 1 > 10
    assert sinus.last_st is not None and max(abs(m.deviation_mv) for m in sinus.last_st.st.values()) < 0.1


def test_rules_only_measures_the_worn_leads_but_cannot_localise_st_change() -> None:
    """Without the reconstruction only II, V1, V5 are measured: V1 and V5 are not contiguous, so the
    ST rule has no two neighbouring leads and correctly raises nothing."""
    sink = MemorySink(keep_windows=False)
    agent = EdgeAgent(AgentConfig(), sink)
    asyncio.run(run_scenario_into_agent(parse_scenario(STEMI_WARD), agent))
    stemi = agent.sessions["d-stemi"]
    assert stemi.last_st is not None and set(stemi.last_st.st) == {"II", "V1", "V5"}
    assert stemi.last_st.st["V1"].deviation_mv >= 0.1 and not stemi.last_st.st["V1"].reconstructed
    assert [a for a in sink.alerts if a.alert_type == "st_change"] == []
