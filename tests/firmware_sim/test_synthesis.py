"""Behaviour of the 12-lead ECG synthesiser that a user of the simulator notices.

Rates and RR irregularity are measured with neurokit2's R-peak detector; intervals and ST levels on
the median beat, with the QRS found from the spatial velocity of the eight independent leads.
"""

from __future__ import annotations

import neurokit2 as nk
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.synthesis import (
    NoiseSpec,
    RhythmSegment,
    StreamSynthesizer,
    Synthesis,
    SynthesisError,
    UnknownRhythmError,
    random_patient,
    rhythm_names,
    synthesize,
    synthesize_timeline,
)
from protocol.leads import STANDARD_LEADS

INDEPENDENT = [STANDARD_LEADS.index(n) for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]


# --- measurement helpers -------------------------------------------------------------------------

def nk_rr_s(s: Synthesis, lead: str = "II") -> np.ndarray:
    """RR intervals (s) from neurokit2's R-peak detector."""
    _, info = nk.ecg_peaks(s.lead(lead), sampling_rate=int(s.fs))
    return np.diff(info["ECG_R_Peaks"]) / s.fs


def median_beat(s: Synthesis, pre_s: float = 0.5, post_s: float = 0.7,
                labels: tuple[str, ...] | None = None) -> tuple[np.ndarray, int]:
    """Median beat (samples, 12) around the ground-truth fiducials, and the fiducial's index in it."""
    a, b = int(pre_s * s.fs), int(post_s * s.fs)
    rows = [s.signals[r - a:r + b] for r, lab in zip(s.beats, s.beat_labels, strict=True)
            if r - a >= 0 and r + b <= len(s.signals) and (labels is None or lab in labels)]
    return np.median(np.stack(rows), axis=0), a


def qrs_bounds(avg: np.ndarray, r: int, fs: float) -> tuple[int, int]:
    """QRS onset/offset: where the spatial velocity falls below 10 % of its peak for > 12 ms."""
    vel = np.linalg.norm(np.diff(avg[:, INDEPENDENT], axis=0), axis=1) * fs
    lo, hi = r - int(0.12 * fs), r + int(0.12 * fs)
    peak = lo + int(np.argmax(vel[lo:hi]))
    thr, gap = 0.1 * vel[peak], max(1, int(0.012 * fs))
    on = off = peak
    while on - 1 > lo and (vel[max(on - gap, 0):on] > thr).any():
        on -= 1
    while off + 1 < hi and (vel[off + 1:off + 1 + gap] > thr).any():
        off += 1
    return on, off + 1


def qrs_width_s(s: Synthesis, labels: tuple[str, ...] | None = None) -> float:
    avg, r = median_beat(s, labels=labels)
    on, off = qrs_bounds(avg, r, s.fs)
    return (off - on) / s.fs


def pr_and_qtc_s(s: Synthesis) -> tuple[float, float]:
    """PR (P onset → QRS onset) and Fridericia QTc from the spatial magnitude of the median beat."""
    fs = s.fs
    avg, r = median_beat(s, pre_s=0.6, post_s=0.9)
    on, off = qrs_bounds(avg, r, fs)
    mag = np.linalg.norm(avg[:, INDEPENDENT] - avg[on - int(0.02 * fs), INDEPENDENT], axis=1)
    p0 = on - int(0.35 * fs)
    p_peak = p0 + int(np.argmax(mag[p0:on - int(0.02 * fs)]))
    p_on = p_peak
    while mag[p_on] > 0.15 * mag[p_peak]:
        p_on -= 1
    t0 = off + int(0.05 * fs)
    t_peak = t0 + int(np.argmax(mag[t0:]))
    t_end = t_peak
    while t_end < len(mag) - 1 and mag[t_end] > 0.1 * mag[t_peak]:
        t_end += 1
    rr = float(np.mean(np.diff(s.beats))) / fs
    return (on - p_on) / fs, (t_end - on) / fs / rr ** (1 / 3)


def p_wave_bump_mv(s: Synthesis) -> float:
    """Largest deviation (mV, 8-lead norm) of the median beat from a straight line over the 200 ms
    before the QRS: a P wave shows as a bump, fibrillation averages out."""
    avg, r = median_beat(s)
    on, _ = qrs_bounds(avg, r, s.fs)
    seg = avg[on - int(0.22 * s.fs):on - int(0.02 * s.fs)][:, INDEPENDENT]
    line = seg[0] + (seg[-1] - seg[0]) * np.linspace(0.0, 1.0, len(seg))[:, None]
    return float(np.linalg.norm(seg - line, axis=1).max())


def st_level_mv(s: Synthesis) -> dict[str, float]:
    """ST level at J + 60 ms against the PR segment, per lead (mV), on the median beat."""
    avg, r = median_beat(s)
    on, off = qrs_bounds(avg, r, s.fs)
    base = avg[on - int(0.03 * s.fs):on - int(0.01 * s.fs)].mean(axis=0)
    return dict(zip(STANDARD_LEADS, avg[off + int(0.06 * s.fs)] - base, strict=True))


def assert_lead_relations(x: np.ndarray) -> None:
    lead = {n: x[:, i] for i, n in enumerate(STANDARD_LEADS)}
    np.testing.assert_allclose(lead["III"], lead["II"] - lead["I"], atol=1e-12)
    np.testing.assert_allclose(lead["aVR"], -(lead["I"] + lead["II"]) / 2, atol=1e-12)
    np.testing.assert_allclose(lead["aVL"], lead["I"] - lead["II"] / 2, atol=1e-12)
    np.testing.assert_allclose(lead["aVF"], lead["II"] - lead["I"] / 2, atol=1e-12)


# --- rate and rhythm ------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [50.0, 75.0, 110.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_sinus_rate_within_one_bpm_by_neurokit(rate: float, seed: int) -> None:
    s = synthesize("sinus", seconds=60, seed=seed, heart_rate=rate)
    measured = 60.0 / nk_rr_s(s).mean()
    assert abs(measured - rate) <= 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_brady_and_tachy_defaults_are_slow_and_fast(seed: int) -> None:
    assert 60.0 / nk_rr_s(synthesize("sinus_brady", seconds=30, seed=seed)).mean() < 60.0
    assert 60.0 / nk_rr_s(synthesize("sinus_tachy", seconds=30, seed=seed)).mean() > 100.0


def test_sinus_has_respiratory_hrv_but_is_regular() -> None:
    rr = nk_rr_s(synthesize("sinus", seconds=120, seed=3, heart_rate=70))
    cv = rr.std() / rr.mean()
    assert 0.005 < cv < 0.08


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_af_is_irregular_and_has_no_p_wave(seed: int) -> None:
    af = synthesize("afib", seconds=90, seed=seed, heart_rate=60)
    rr = nk_rr_s(af)
    assert rr.std() / rr.mean() > 0.1
    sinus = synthesize("sinus", seconds=90, seed=seed, heart_rate=60)
    assert p_wave_bump_mv(sinus) > 0.1
    assert p_wave_bump_mv(af) < min(0.08, 0.5 * p_wave_bump_mv(sinus))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bundle_branch_blocks_and_vt_are_wide_sinus_is_narrow(seed: int) -> None:
    assert qrs_width_s(synthesize("sinus", seconds=20, seed=seed)) < 0.12
    assert qrs_width_s(synthesize("svt", seconds=20, seed=seed)) < 0.12
    assert qrs_width_s(synthesize("lbbb", seconds=20, seed=seed)) > 0.12
    assert qrs_width_s(synthesize("rbbb", seconds=20, seed=seed)) > 0.12
    assert qrs_width_s(synthesize("vt", seconds=20, seed=seed, heart_rate=160)) > 0.12
    assert qrs_width_s(synthesize("pvc_bigeminy", seconds=30, seed=seed), labels=("V",)) > 0.12


def test_bundle_branch_block_morphology_in_v1_and_v6() -> None:
    def lead_ms(s: Synthesis, lead: str) -> callable:
        """Median-beat lead ``lead`` against its level 100 ms before the fiducial, indexed in ms."""
        avg, r = median_beat(s)
        x = avg[:, STANDARD_LEADS.index(lead)] - avg[r - int(0.1 * s.fs), STANDARD_LEADS.index(lead)]
        return lambda a_ms, b_ms: x[r + int(a_ms * s.fs / 1000):r + int(b_ms * s.fs / 1000)]

    for seed in (0, 4):
        v1 = lead_ms(synthesize("rbbb", seconds=20, seed=seed), "V1")
        r, s_wave, r_prime = v1(-50, -15).max(), v1(-10, 20).min(), v1(30, 80).max()
        assert r > 0.05 and s_wave < -0.2 and r_prime > max(r, 0.2)            # rsR'
        lbbb = synthesize("lbbb", seconds=20, seed=seed)
        v1, v6 = lead_ms(lbbb, "V1"), lead_ms(lbbb, "V6")
        assert v1(-80, 80).min() < -0.5 and v1(-80, 80).max() < 0.2 * -v1(-80, 80).min()  # deep QS in V1
        assert v6(-80, 80).max() > 0.5 and v6(-80, -30).min() > -0.05           # broad R, no septal q


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pr_and_qtc(seed: int) -> None:
    pr, qtc = pr_and_qtc_s(synthesize("sinus", seconds=30, seed=seed, heart_rate=60))
    assert 0.1 < pr < 0.2 and 0.34 < qtc < 0.46
    pr, _ = pr_and_qtc_s(synthesize("av_block_1", seconds=30, seed=seed, heart_rate=60))
    assert pr > 0.2
    _, qtc = pr_and_qtc_s(synthesize("long_qt", seconds=30, seed=seed, heart_rate=60))
    assert qtc > 0.48


def test_wenckebach_prolongs_pr_then_drops_a_beat() -> None:
    s = synthesize("wenckebach", seconds=40, seed=2, heart_rate=75, params={"ratio": 4})
    rr = np.diff(s.beats) / s.fs
    assert len(s.beats) == pytest.approx(40 * 75 / 60 * 3 / 4, abs=2)  # 4:3 conduction
    assert rr.max() > 1.5 * np.median(rr)                               # the dropped beat's pause


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_st_elevation_in_the_territory_with_reciprocal_depression(seed: int) -> None:
    ant = st_level_mv(synthesize("stemi_anterior", seconds=20, seed=seed))
    assert all(ant[n] > 0.1 for n in ("V1", "V2", "V3", "V4")) and min(ant["III"], ant["aVF"]) < -0.05
    inf = st_level_mv(synthesize("stemi_inferior", seconds=20, seed=seed))
    assert all(inf[n] > 0.1 for n in ("II", "III", "aVF")) and inf["aVL"] < -0.1
    lat = st_level_mv(synthesize("stemi_lateral", seconds=20, seed=seed))
    assert all(lat[n] > 0.1 for n in ("I", "aVL", "V5", "V6")) and lat["III"] < -0.05
    dep = st_level_mv(synthesize("st_depression", seconds=20, seed=seed))
    assert dep["V5"] < -0.05 and dep["II"] < -0.05 and dep["aVR"] > 0.03
    sinus = st_level_mv(synthesize("sinus", seconds=20, seed=seed))
    assert max(abs(v) for v in sinus.values()) < 0.08


def test_t_inversion_flips_the_t_wave() -> None:
    def t_peak(s: Synthesis) -> float:
        avg, r = median_beat(s)
        v5 = avg[:, STANDARD_LEADS.index("V5")] - avg[r - 60, STANDARD_LEADS.index("V5")]
        seg = v5[r + 80:r + 200]
        return float(seg[np.argmax(np.abs(seg))])
    assert t_peak(synthesize("sinus", seconds=20, seed=1, heart_rate=60)) > 0.1
    assert t_peak(synthesize("t_inversion", seconds=20, seed=1, heart_rate=60)) < -0.1


def test_asystole_and_vf_have_no_qrs() -> None:
    flat = synthesize("asystole", seconds=10, seed=0)
    assert len(flat.beats) == 0 and np.ptp(flat.signals) == 0.0
    vf = synthesize("vf", seconds=10, seed=0)
    assert len(vf.beats) == 0
    spectrum = np.abs(np.fft.rfft(vf.lead("II")))
    freqs = np.fft.rfftfreq(len(vf.signals), 1 / vf.fs)
    assert 4.0 <= freqs[np.argmax(spectrum)] <= 8.0


def test_pvcs_are_premature_with_compensatory_pause() -> None:
    s = synthesize("pvc", seconds=120, seed=5, heart_rate=70)
    labels = np.array(s.beat_labels)
    assert 5 <= (labels == "V").sum() <= 30
    rr = np.diff(s.beats) / s.fs
    normal_rr = np.median(rr[(labels[:-1] == "N") & (labels[1:] == "N")])
    for i in np.flatnonzero(labels[1:-1] == "V") + 1:
        if labels[i - 1] == "N" and labels[i + 1] == "N":
            assert rr[i - 1] < 0.75 * normal_rr                               # premature
            assert rr[i - 1] + rr[i] == pytest.approx(2 * normal_rr, rel=0.1)  # fully compensatory


def test_bigeminy_and_trigeminy_patterns() -> None:
    assert "".join(synthesize("pvc_bigeminy", seconds=20, seed=0).beat_labels)[1:9] in ("VNVNVNVN", "NVNVNVNV")
    assert "NNV" * 2 in "".join(synthesize("pvc_trigeminy", seconds=20, seed=0).beat_labels)


def test_flutter_waves_near_300_per_minute() -> None:
    s = synthesize("aflutter", seconds=30, seed=0, params={"flutter_rate": 300, "block": 4})
    rr = np.diff(s.beats) / s.fs
    np.testing.assert_allclose(rr, 4 * 0.2, atol=0.005)       # 4:1 block of a 200 ms flutter cycle


# --- lead relations, noise, lead-off ---------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(rhythm=st.sampled_from(sorted(rhythm_names())), seed=st.integers(0, 10_000),
       baseline=st.floats(0, 1), emg=st.floats(0, 0.3), motion=st.floats(0, 2), mains=st.floats(0, 0.5))
def test_einthoven_and_goldberger_hold_with_noise(rhythm: str, seed: int, baseline: float, emg: float,
                                                   motion: float, mains: float) -> None:
    noise = NoiseSpec(baseline_mv=baseline, emg_mv=emg, motion_mv=motion, powerline_mv=mains, powerline_hz=60)
    s = synthesize(rhythm, seconds=4, seed=seed, noise=noise)
    assert_lead_relations(s.signals)


def test_noise_kinds_have_their_spectra() -> None:
    clean = synthesize("sinus", seconds=30, seed=1)

    def noise_psd(spec: NoiseSpec) -> tuple[np.ndarray, np.ndarray]:
        x = synthesize("sinus", seconds=30, seed=1, noise=spec).lead("II") - clean.lead("II")
        return np.fft.rfftfreq(len(x), 1 / clean.fs), np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2

    f, p = noise_psd(NoiseSpec(baseline_mv=0.3))
    assert p[f < 0.5].sum() > 0.99 * p.sum()
    f, p = noise_psd(NoiseSpec(powerline_mv=0.1, powerline_hz=60))
    assert f[np.argmax(p)] == pytest.approx(60.0, abs=0.1)
    f, p = noise_psd(NoiseSpec(emg_mv=0.1))
    assert p[f > 40].sum() > 0.7 * p.sum()                             # broadband
    rms = np.sqrt(np.mean((synthesize("sinus", seconds=30, seed=1, noise=NoiseSpec(emg_mv=0.1)).lead("II")
                           - clean.lead("II")) ** 2))
    assert rms == pytest.approx(0.1, rel=0.3)


def test_lead_off_flattens_the_leads_reading_that_electrode() -> None:
    s = synthesize("sinus", seconds=5, seed=0, noise=NoiseSpec(emg_mv=0.05, lead_off=("LA",)))
    flat = {n for i, n in enumerate(STANDARD_LEADS) if np.ptp(s.signals[:, i]) == 0.0}
    assert flat == set(STANDARD_LEADS) - {"II"}
    s = synthesize("sinus", seconds=5, seed=0, noise=NoiseSpec(lead_off=("V3",)))
    flat = {n for i, n in enumerate(STANDARD_LEADS) if np.ptp(s.signals[:, i]) == 0.0}
    assert flat == {"V3"}
    assert any(e.kind == "lead_off" and e.label == "V3" for e in s.events)


def test_bad_noise_spec_is_a_clear_error() -> None:
    with pytest.raises(SynthesisError, match="lead_off"):
        NoiseSpec(lead_off=("LX",))
    with pytest.raises(SynthesisError, match="50 or 60"):
        NoiseSpec(powerline_hz=55)


# --- catalogue, determinism, patients ---------------------------------------------------------------

@pytest.mark.parametrize("fs", [250.0, 500.0])
def test_every_rhythm_synthesises(fs: float) -> None:
    for name, description in rhythm_names().items():
        assert description
        s = synthesize(name, seconds=8, fs=fs, seed=3)
        assert s.signals.shape == (int(8 * fs), 12) and np.isfinite(s.signals).all()
        assert s.events[0].kind == "rhythm" and s.events[0].label == name
        assert ((s.beats >= 0) & (s.beats < len(s.signals))).all()
        if name not in ("asystole", "vf"):
            assert len(s.beats) >= 5, name


def test_unknown_rhythm_names_the_valid_ones() -> None:
    with pytest.raises(UnknownRhythmError) as err:
        synthesize("torsades_du_jour", seconds=5)
    assert "sinus" in str(err.value) and "afib" in str(err.value) and "torsades_du_jour" in str(err.value)


def test_unknown_parameter_is_a_clear_error() -> None:
    with pytest.raises(SynthesisError, match="accepts"):
        synthesize("vf", seconds=5, heart_rate=80)


def test_same_seed_same_output_other_seed_other_patient() -> None:
    noise = NoiseSpec(baseline_mv=0.1, emg_mv=0.02, motion_mv=0.5)
    a = synthesize("pvc", seconds=10, seed=7, noise=noise)
    b = synthesize("pvc", seconds=10, seed=7, noise=noise)
    np.testing.assert_array_equal(a.signals, b.signals)
    assert a.to_dict() == b.to_dict()
    assert random_patient(7) == random_patient(7) != random_patient(8)
    c = synthesize("pvc", seconds=10, seed=8, noise=noise)
    assert not np.allclose(a.signals, c.signals)


def test_patients_differ_in_axis_amplitude_and_rate() -> None:
    patients = [random_patient(i) for i in range(40)]
    assert np.std([p.frontal_rotation_deg for p in patients]) > 10
    assert np.std([np.log(p.amplitude_scale) for p in patients]) > 0.1
    assert np.std([p.heart_rate_bpm for p in patients]) > 5
    amps = [np.ptp(synthesize("sinus", seconds=5, seed=i).lead("II")) for i in range(10)]
    assert max(amps) > 1.5 * min(amps)


# --- timelines, streaming, ground truth -------------------------------------------------------------

def test_timeline_ground_truth_and_smooth_boundaries() -> None:
    segments = [RhythmSegment(0.0, "sinus", {"heart_rate": 70}), RhythmSegment(10.0, "vt", {"heart_rate": 180}),
                RhythmSegment(20.0, "asystole"), RhythmSegment(24.0, "sinus", {"heart_rate": 70})]
    s = synthesize_timeline(segments, seconds=30, seed=4)
    rhythms = [(e.onset_s, e.offset_s, e.label) for e in s.events if e.kind == "rhythm"]
    assert rhythms == [(0.0, 10.0, "sinus"), (10.0, 20.0, "vt"), (20.0, 24.0, "asystole"), (24.0, 30.0, "sinus")]
    t = s.beats / s.fs
    labels = np.array(s.beat_labels)
    assert set(labels[(t > 10.5) & (t < 19.5)]) == {"V"}
    assert set(labels[(t < 9.5) | (t > 25)]) == {"N"}
    assert not ((t > 20.5) & (t < 23.9)).any()                      # asystole: no QRS
    vt_rr = np.diff(t[(t > 10.5) & (t < 19.5)])
    assert np.median(vt_rr) == pytest.approx(60 / 180, rel=0.02)
    d = np.abs(np.diff(s.signals, axis=0))
    for b in (5000, 10000, 12000):                                   # no step at a segment boundary
        assert (d[b - 1] <= 2 * np.maximum(d[b - 2], d[b]) + 0.005).all()
    assert s.rhythm_at(15.0) == "vt"


def test_stream_chunks_equal_one_shot_synthesis() -> None:
    segments = [RhythmSegment(0.0, "sinus"), RhythmSegment(7.3, "afib"), RhythmSegment(15.0, "pause")]
    noise = NoiseSpec(baseline_mv=0.2, emg_mv=0.05, motion_mv=1.0, powerline_mv=0.05, motion_rate_per_min=20)
    whole = synthesize_timeline(segments, seconds=30, seed=11, noise=noise)
    stream = StreamSynthesizer(segments, seconds=30, seed=11, noise=noise)
    chunks = []
    rng = np.random.default_rng(0)
    while stream.remaining:
        chunks.append(stream.read(int(rng.integers(1, 3000))))
    np.testing.assert_array_equal(np.concatenate([c.signals for c in chunks]), whole.signals)
    np.testing.assert_array_equal(np.concatenate([c.beats for c in chunks]), whole.beats)
    assert sum((c.beat_labels for c in chunks), ()) == whole.beat_labels
    assert [c.start_sample for c in chunks] == list(np.cumsum([0] + [len(c.signals) for c in chunks[:-1]]))
    assert any(e.kind == "episode" and e.label == "pause" for e in whole.events)


def test_pause_rhythm_reports_its_pauses() -> None:
    s = synthesize("pause", seconds=30, seed=1, heart_rate=70, params={"pause_s": 3.0, "every_s": 10.0})
    pauses = [e for e in s.events if e.kind == "episode" and e.label == "pause"]
    rr = np.diff(s.beats) / s.fs
    assert len(pauses) == 3 and (rr > 2.5).sum() == 3
    for e in pauses:
        assert e.offset_s - e.onset_s == pytest.approx(3.0, abs=0.01)


def test_ground_truth_is_json_ready() -> None:
    import json

    s = synthesize("pvc_bigeminy", seconds=5, seed=0, noise=NoiseSpec(emg_mv=0.02, lead_off=("V2",)))
    d = json.loads(json.dumps(s.to_dict()))
    assert d["fs"] == 500.0 and d["lead_names"] == list(STANDARD_LEADS)
    assert [b["label"] for b in d["beats"]] == list(s.beat_labels)
    assert {e["kind"] for e in d["events"]} == {"rhythm", "noise", "lead_off"}


def test_bad_timelines_are_clear_errors() -> None:
    with pytest.raises(SynthesisError, match="first segment"):
        synthesize_timeline([RhythmSegment(1.0, "sinus")], seconds=5)
    with pytest.raises(SynthesisError, match="increase"):
        synthesize_timeline([RhythmSegment(0.0, "sinus"), RhythmSegment(0.0, "afib")], seconds=5)
    with pytest.raises(SynthesisError, match="seconds"):
        synthesize("sinus", seconds=0)
    with pytest.raises(SynthesisError, match="heart_rate"):
        synthesize("sinus", seconds=5, heart_rate=900)
