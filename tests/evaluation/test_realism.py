"""``ecgstream sim realism`` per rhythm: the JSON has every group and figure, and on records written by
the simulator itself the "real" and the synthetic figures agree (the measurement is fair to both)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecgstream.cli import main
from evaluation.realism import FEATURES, RhythmRealism, compare_rhythms, groups_for_codes
from firmware_sim.export import write_wfdb_with_truth
from firmware_sim.synthesis import synthesize
from firmware_sim.synthesis.realism import SYNTH_NOISE
from protocol.leads import STANDARD_LEADS

FIXTURE = {"sinus": "426783006", "afib": "164889003", "rbbb": "59118001"}
"""Rhythm → SNOMED code of the synthetic-only fixture records."""
PER_RHYTHM = 16


@pytest.fixture(scope="module")
def synthetic_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """WFDB records written by the simulator's own writer, labelled like CinC 2021 (seeds unlike the report's)."""
    folder = tmp_path_factory.mktemp("synthetic_cinc")
    for r, (rhythm, code) in enumerate(FIXTURE.items()):
        for k in range(PER_RHYTHM):
            seed = 7_000_000 + 100 * r + k
            s = synthesize(rhythm, seconds=10.0, fs=500.0, seed=seed, noise=SYNTH_NOISE)
            write_wfdb_with_truth(folder / f"S{r}{k:03d}", s.signals, s.fs, STANDARD_LEADS, {"rhythm": rhythm},
                                  comments=["Age: 60", "Sex: Female", f"Dx: {code}"])
    return folder


@pytest.fixture(scope="module")
def report(synthetic_folder: Path) -> RhythmRealism:
    return compare_rhythms(synthetic_folder, n_synthetic=PER_RHYTHM, seed=3)


def test_records_fall_in_every_group_they_carry() -> None:
    assert groups_for_codes(["426783006"]) == ["sinus"]
    assert groups_for_codes(["164889003", "164909002"]) == ["afib", "lbbb"]
    assert groups_for_codes(["284470004", "426177001"]) == ["sinus_brady", "pac"]
    assert groups_for_codes(["284470004", "713427006", "426783006"]) == ["pac", "rbbb"]
    assert groups_for_codes(["10370003"]) == []


@pytest.mark.parametrize("rhythm", list(FIXTURE))
def test_simulator_records_measure_like_the_simulator(report: RhythmRealism, rhythm: str) -> None:
    """Same distribution on both sides: every key figure's "real" median lies within the synthetic IQR widened by half its width."""
    cmp = report.rhythms[rhythm]
    assert cmp.n_real == PER_RHYTHM and cmp.n_synthetic == PER_RHYTHM
    keys = ["hr_bpm", "rr_cv", "af_irregularity", "qrs_ms", "qtc_ms", "amp_mv_II", "amp_mv_V1", "f_mv_V1",
            "p_mv_II", "features.heart_rate_bpm", "features.qrs_ms", "features.p_amplitude_mv"]
    for key in keys:
        real, synth = cmp.real[key], cmp.synthetic[key]
        assert min(real.n, synth.n) >= 3 * PER_RHYTHM // 4, (rhythm, key, real, synth)
        iqr = synth.q75 - synth.q25
        lo, hi = synth.q25 - 0.5 * iqr, synth.q75 + 0.5 * iqr
        assert lo <= real.median <= hi, (rhythm, key, real, synth)


def test_measurements_tell_the_rhythms_apart(report: RhythmRealism) -> None:
    """The figures see what a reader sees: AF is irregular without P waves, RBBB is wide."""
    sinus, af, rbbb = (report.rhythms[k].real for k in ("sinus", "afib", "rbbb"))
    assert af["af_irregularity"].median > 3 * sinus["af_irregularity"].median
    assert af["p_mv_II"].median < 0.6 * sinus["p_mv_II"].median
    assert af["f_mv_V1"].median > sinus["f_mv_V1"].median
    assert rbbb["qrs_ms"].median > sinus["qrs_ms"].median + 25
    assert 300 <= sinus["qt_ms"].median <= 450 and 360 <= sinus["qtc_ms"].median <= 460


def test_cli_writes_groups_and_fields(synthetic_folder: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "realism.json"
    assert main(["sim", "realism", "--data", str(synthetic_folder), "--synthetic", "4", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "afib: real n=16, synthetic n=4" in printed and "Frobenius" in printed
    doc = json.loads(out.read_text())
    assert set(doc["rhythms"]) == set(FIXTURE)
    for group in doc["rhythms"].values():
        assert group["n_real"] == PER_RHYTHM
        for side in ("real", "synthetic"):
            assert set(group[side]) == set(FEATURES)
            assert {"median", "q25", "q75", "n"} <= set(group[side]["hr_bpm"])
    assert "simulator_version" in doc and "frobenius_distance" in doc["overall"]
