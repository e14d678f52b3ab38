"""Pipeline with the shipped VAE (no mocks): uplink windows that round-trip, measured leads intact,
a pluggable second stage, and the whole path from simulated frames to 12-lead windows."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from edge.inference import InferencePipeline, StageBatch, Window, WindowConfig, Windower, select_backend
from edge.inference.pipeline import BackendStage
from edge.stream import GapReason, StreamOutput, StreamState
from firmware_sim.packetizer import Packetizer, quantize_blocks
from firmware_sim.profiles import get_profile
from firmware_sim.synthesis import synthesize
from models.preprocessing import prepare_window
from protocol.leads import STANDARD_LEADS
from protocol.window_payload import decode_window, encode_window

T0 = 1.7e9
RECONSTRUCTED = ("I", "III", "aVR", "aVL", "aVF", "V2", "V3", "V4", "V6")


@pytest.fixture(scope="module")
def backend():  # type: ignore[no-untyped-def]
    return select_backend("auto", max_batch=16, threads=1)


def stream_windows(patient: str, seconds: float, seed: int, drop_s: tuple[float, float] | None = None,
                   rhythm: str = "sinus") -> tuple[list[Window], Windower, StreamOutput, np.ndarray]:
    """Synthesis → packetiser → frames (optionally losing [a, b) s) → StreamState → Windower."""
    prof = get_profile("ecgstream-250")
    syn = synthesize(rhythm, seconds=seconds, fs=prof.fs_hz, seed=seed)
    x = np.stack([syn.lead(lead) for lead in prof.leads], axis=1)
    pk = Packetizer(prof)
    batch = quantize_blocks(prof, pk.frame_blocks(x)[:1])
    spf = batch.frame(0).n_samples
    state = StreamState()
    windower = Windower(patient, f"dev-{patient}", prof.fs_hz)
    windows: list[Window] = []
    everything = StreamOutput()
    for i in range(len(batch)):
        t = (i + 1) * spf / prof.fs_hz
        if drop_s and drop_s[0] <= t < drop_s[1]:
            continue
        out = state.push(batch.frame(i), T0 + t + 0.02)
        everything.extend(out)
        windows += windower.push(out)
    out = state.flush()
    everything.extend(out)
    windows += windower.push(out)
    windower.close()
    return windows, windower, everything, x


async def test_windows_from_many_patients_become_uplink_windows(backend) -> None:  # type: ignore[no-untyped-def]
    per_patient = {f"p{i}": stream_windows(f"p{i}", 23.0, seed=i)[0] for i in range(6)}
    assert all(len(w) == 3 for w in per_patient.values())  # 23 s: slots 0..2 at a 5 s hop
    async with InferencePipeline(backend, deadline_ms=20) as pipe:
        results = await asyncio.wait_for(
            asyncio.gather(*(pipe.process(w) for ws in per_patient.values() for w in ws)), 120)
    flat = [w for ws in per_patient.values() for w in ws]
    assert [r.window_id for r in results] == [w.window_id for w in flat]
    assert pipe.batcher.stats.completed == 18 and max(pipe.batcher.stats.batch_sizes) > 1
    for r, w in zip(results, flat, strict=True):
        ecg = r.ecg_window
        assert (ecg.window_id, ecg.patient_id, ecg.device_id) == (w.window_id, w.patient_id, w.device_id)
        assert ecg.leads == STANDARD_LEADS and ecg.reconstructed == RECONSTRUCTED and ecg.fs_hz == 125
        assert ecg.t0_us == round(w.t_gateway_s * 1e6) and ecg.lsb_nv == 1000
        back = decode_window(encode_window(ecg))
        assert back == ecg
        x = w.model_input()
        for k, lead in enumerate(("II", "V1", "V5")):
            row = STANDARD_LEADS.index(lead)
            np.testing.assert_array_equal(r.leads12[row], x[k])  # the model passes measured leads through
            assert np.abs(back.millivolts()[row] - x[k]).max() <= 0.5e-3 + 1e-7  # ≤ half an LSB of 1 µV
        unc = back.uncertainty_mv()
        assert unc is not None and unc.shape == (9, 1250) and (unc >= 0).all() and unc.mean() > 0.005
        assert (r.uncertainty[[STANDARD_LEADS.index(lead) for lead in ("II", "V1", "V5")]] == 0).all()
        # Einthoven holds in what ships (within quantisation): III = II - I
        mv = back.millivolts()
        assert np.abs(mv[2] - (mv[1] - mv[0])).max() <= 2e-3
        assert r.model_versions["reconstruction"].startswith("reconstruction_vae@")
        assert r.model_versions["backend"] == backend.name and r.clipped_samples == 0
        assert r.batch_size >= 1 and r.queue_wait_s >= 0 and r.inference_s > 0


async def test_second_stage_plugs_in(backend) -> None:  # type: ignore[no-untyped-def]
    class PeakV2:
        name, version = "v2peak", "test-1"

        def __call__(self, batch: StageBatch) -> list[dict[str, float]]:
            v2 = batch.lead_names.index("V2")
            return [{"v2_peak_mv": float(np.abs(batch.leads12[i, v2]).max())} for i in range(len(batch.windows))]

    windows = stream_windows("s1", 17.0, seed=3)[0]
    async with InferencePipeline(backend, second_stage=PeakV2(), deadline_ms=5) as pipe:
        results = [await pipe.process(w) for w in windows]
    for r in results:
        assert r.second_stage == {"v2_peak_mv": pytest.approx(np.abs(r.leads12[7]).max())}
        assert r.model_versions["v2peak"] == "test-1"
    # a backend as the second stage: here the same VAE fed back its own II, V1, V5 (a stand-in classifier)
    stage = BackendStage(backend, name="again", leads=("II", "V1", "V5"))
    out = InferencePipeline(backend, second_stage=stage).run_batch(windows)
    for r in out:
        assert r.second_stage is not None
        np.testing.assert_allclose(r.second_stage["leads12"], r.leads12, atol=1e-5)


def test_windows_the_model_cannot_take_are_refused_at_submit(backend) -> None:  # type: ignore[no-untyped-def]
    pipe = InferencePipeline(backend)
    (w,) = stream_windows("r1", 13.0, seed=1)[0]
    polar = Window(**{**w.__dict__, "leads": ("I",), "context_mv": w.context_mv[:, :1]})
    with pytest.raises(ValueError, match="lacks leads"):
        pipe.check(polar)
    short = Windower("r2", "d", 250.0, WindowConfig(window_s=8.0)).push(stream_windows("r3", 12.0, seed=1)[2])
    assert short and all(s.n_samples == 1000 for s in short)
    with pytest.raises(ValueError, match="1000 samples"):
        pipe.check(short[0])
    bad = Window(**{**w.__dict__, "context_mv": np.full_like(w.context_mv, np.nan)})
    with pytest.raises(ValueError, match="NaN"):
        pipe.check(bad)


async def test_end_to_end_frames_to_12_leads_with_a_disconnect(backend) -> None:  # type: ignore[no-untyped-def]
    """45 s of simulated AF, frames lost for [15, 21) s: windows over the gap are dropped and counted."""
    windows, windower, out, truth = stream_windows("e2e", 45.0, seed=7, drop_s=(15.0, 21.0), rhythm="afib")
    gaps = [g for g in out.gaps if not g.interpolated]
    assert len(gaps) == 1 and gaps[0].reason is GapReason.DISCONNECT
    c = windower.counters
    assert c.emitted == len(windows) >= 3 and c.dropped.get("disconnect", 0) == 4
    gap_a, gap_b = gaps[0].start / 250, gaps[0].stop / 250
    for w in windows:  # no window (with its margins) touches the gap
        assert w.t_stream_s + 11.0 <= gap_a + 1e-9 or w.t_stream_s - 1.0 >= gap_b - 1e-9
    async with InferencePipeline(backend, deadline_ms=10) as pipe:
        results = await asyncio.gather(*(pipe.process(w) for w in windows))
    for w, r in zip(windows, results, strict=True):
        assert r.window is w and decode_window(encode_window(r.ecg_window)) == r.ecg_window
        # what the model saw = training preprocessing of the same 12 s of the original 250 Hz signal
        a = round((w.t_stream_s - 1.0) * 250)
        ref = prepare_window(truth[a : a + 3000], 250.0)
        assert np.abs(w.model_input() - ref).max() < 0.01  # < 10 µV: quantisation, streaming resampler at the ends
        assert np.isfinite(r.leads12).all() and np.abs(r.leads12).max() < 10


def test_the_default_pipeline_classifies_what_the_wearable_streams() -> None:
    """The shipped classifier runs after the VAE and its classes reach each window's result."""
    from edge.config import EdgeConfig
    from edge.inference.classifier_stage import ClassifierStage
    from edge.runtime import open_pipeline

    pipeline = open_pipeline(EdgeConfig())
    assert pipeline is not None and isinstance(pipeline.second_stage, ClassifierStage)
    assert pipeline.model_versions["classifier"].startswith("classifier@")
    probs = {}
    for rhythm, seed in (("sinus", 1), ("afib", 2), ("vt", 3)):
        windows = stream_windows(rhythm, 23.0, seed=seed, rhythm=rhythm)[0]
        results = pipeline.run_batch(windows[-1:])
        second = results[0].second_stage
        assert second is not None
        probs[rhythm] = second["probabilities"]
    assert set(probs["sinus"]) >= {"NSR", "AF", "VT"}
    assert probs["afib"]["AF"] > max(probs["sinus"]["AF"], probs["vt"]["AF"])
    assert probs["vt"]["VT"] > max(probs["sinus"]["VT"], probs["afib"]["VT"])


async def test_patient_calibration_applies_to_its_patient_only_and_is_named_in_the_versions(  # type: ignore[no-untyped-def]
        backend, tmp_path) -> None:
    from models.reconstruction.patient_calibration import PatientCalibration

    windows = {p: stream_windows(p, 13.0, seed=i)[0][0] for i, p in enumerate(("p0", "p1", "p2"))}
    generic = InferencePipeline(backend).run_batch(list(windows.values()))
    seen: list[np.ndarray] = []

    class Spy:
        name, version = "spy", "1"

        def __call__(self, batch: StageBatch) -> list[dict]:
            seen.append(batch.leads12.copy())
            return [{} for _ in batch.windows]

    pipe = InferencePipeline(backend, calibration_dir=tmp_path, second_stage=Spy())
    model_version = str(pipe.reconstruction.info["config_hash"])
    w = np.array([[0.1, 0.0, 0.2], [0.0, 0.3, 0.0], [0.0, 0.0, 0.1], [0.2, 0.0, 0.0], [0.0, -0.1, 0.0]])
    cal = PatientCalibration(patient_id="p0", weights=w, bias=np.zeros(5), band_scale=np.full(5, 2.0),
                             calibration_s=10.0, model_version=model_version)
    cal.save(tmp_path / "p0.json")
    PatientCalibration(**{**cal.__dict__, "patient_id": "p2", "model_version": "another"}).save(tmp_path / "p2.json")
    results = pipe.run_batch(list(windows.values()))
    g0, c0 = generic[0], results[0]
    x = windows["p0"].model_input()
    lead_i = STANDARD_LEADS.index("I")
    np.testing.assert_allclose(c0.leads12[lead_i], g0.leads12[lead_i] + w[0] @ x, atol=1e-5)
    np.testing.assert_allclose(c0.uncertainty[lead_i], 2 * g0.uncertainty[lead_i], rtol=1e-5)
    assert c0.model_versions["reconstruction_calibration"] == cal.version
    np.testing.assert_allclose(seen[0][0], c0.leads12)                     # the classifier sees calibrated leads
    for k in (1, 2):                                                       # no file / another model: generic
        np.testing.assert_array_equal(results[k].leads12, generic[k].leads12)
        assert "reconstruction_calibration" not in results[k].model_versions
    assert pipe.calibrations is not None
    assert pipe.stats.calibrated == 1 and "another" in pipe.calibrations.problems["p2"]


def test_a_short_loss_is_shipped_masked_and_not_classified(backend) -> None:  # type: ignore[no-untyped-def]
    """Frames lost for [15, 16.5) s: the windows over it ship with the lost range masked (0 counts) and
    get no second-stage output; the others are classified as usual."""
    class Flat:
        name, version = "flat", "test-1"

        def __call__(self, batch: StageBatch) -> list[dict[str, float]]:
            return [{"p": 0.5} for _ in batch.windows]

    windows, windower, out, _ = stream_windows("m1", 32.0, seed=4, drop_s=(15.0, 16.5))
    gaps = [g for g in out.gaps if not g.interpolated]
    assert len(gaps) == 1 and windower.counters.dropped_total == windower.counters.dropped.get("stream_end", 0)
    ga, gb = gaps[0].start / 250, gaps[0].stop / 250
    over = [w.slot for w in windows if w.t_stream_s < gb and w.t_stream_s + 10 > ga]
    assert [w.slot for w in windows if w.gaps] == over and len(over) >= 2 and windower.counters.with_gaps == len(over)
    assert [w.slot for w in windows] == [0, 1, 2, 3]   # nothing dropped for the loss
    pipe = InferencePipeline(backend, second_stage=Flat())
    results = pipe.run_batch(windows)
    assert pipe.stats.masked == len(over)
    for r in results:
        ecg = decode_window(encode_window(r.ecg_window))
        assert ecg.gaps == r.window.gaps
        if r.window.gaps:
            assert r.second_stage is None and not ecg.samples[:, ecg.gap_mask()].any()
            lost = (max(0.0, ga - r.window.t_stream_s), min(10.0, gb - r.window.t_stream_s))   # within the window
            (a, b), = ecg.gaps
            assert abs(a / 125 - lost[0]) <= 0.01 and abs(b / 125 - lost[1]) <= 0.01
        else:
            assert r.second_stage == {"p": 0.5}
