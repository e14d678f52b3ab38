"""The WESAD loader on a small fixture written in the data set's own layout (S*/S*.pkl, latin1 pickle)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from firmware_sim.synthesis import synthesize
from models.data.wesad import WESAD_FS, WesadError, load_subject, subject_files, wesad_windows

# seconds of each label in the fixture's order: 0 transient, 1 baseline, 2 stress, 3 amusement, 4 meditation
TIMELINE = ((0, 5.0), (1, 25.0), (0, 3.0), (2, 22.0), (3, 12.0), (4, 11.0), (1, 6.0))


def write_subject(root: Path, number: int, *, seed: int = 0) -> Path:
    """One subject as WESAD ships it: ``S<n>/S<n>.pkl`` with chest ECG (n, 1) mV and labels at 700 Hz."""
    seconds = sum(s for _, s in TIMELINE)
    ecg = synthesize("sinus", seconds=seconds, fs=WESAD_FS, seed=seed).lead("II")
    labels = np.concatenate([np.full(int(round(s * WESAD_FS)), lab, dtype=np.int32) for lab, s in TIMELINE])
    n = min(ecg.size, labels.size)
    chest = {name: np.zeros((n, 1)) for name in ("EMG", "EDA", "Temp", "Resp")}
    chest["ECG"] = ecg[:n, None]
    chest["ACC"] = np.zeros((n, 3))
    data = {"signal": {"chest": chest, "wrist": {"BVP": np.zeros((64, 1))}}, "label": labels[:n],
            "subject": f"S{number}"}
    folder = root / f"S{number}"
    folder.mkdir(parents=True)
    path = folder / f"S{number}.pkl"
    with path.open("wb") as f:
        pickle.dump(data, f, protocol=2)
    (folder / f"S{number}_readme.txt").write_text("fixture\n")
    return path


@pytest.fixture()
def wesad_dir(tmp_path: Path) -> Path:
    for i, number in enumerate((2, 10, 3)):
        write_subject(tmp_path, number, seed=i)
    return tmp_path


def test_subjects_are_found_in_number_order(wesad_dir: Path) -> None:
    assert [p.name for p in subject_files(wesad_dir)] == ["S2.pkl", "S3.pkl", "S10.pkl"]


def test_a_subject_file_reads_ecg_and_labels_at_700_hz(wesad_dir: Path) -> None:
    s = load_subject(wesad_dir / "S2" / "S2.pkl")
    assert s.subject == "S2"
    assert s.ecg_mv.shape == s.labels.shape and s.ecg_mv.ndim == 1
    assert set(np.unique(s.labels)) == {0, 1, 2, 3, 4}


def test_windows_carry_their_class_and_subject_and_ignore_other_labels(wesad_dir: Path) -> None:
    data = wesad_windows(wesad_dir)
    assert data.windows.shape[1:] == (1250,) and data.windows.dtype == np.float32
    per_subject = {s: int(np.sum(np.asarray(data.subjects) == s)) for s in ("S2", "S3", "S10")}
    # 25 s baseline → 2 windows, 22 s stress → 2, 12 s amusement → 1; the 6 s baseline stretch and
    # the transient and meditation labels give none
    assert per_subject == {"S2": 5, "S3": 5, "S10": 5}
    first = np.asarray(data.subjects) == "S2"
    assert data.labels[first].tolist() == [0, 0, 1, 1, 2]
    assert np.isfinite(data.windows).all() and np.ptp(data.windows, axis=1).min() > 0.3   # QRS survive filtering


def test_not_wesad_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WesadError, match="no WESAD subject"):
        wesad_windows(tmp_path)
    (tmp_path / "S4").mkdir()
    with (tmp_path / "S4" / "S4.pkl").open("wb") as f:
        pickle.dump({"label": np.zeros(3)}, f)
    with pytest.raises(WesadError, match="signal/chest/ECG"):
        load_subject(tmp_path / "S4" / "S4.pkl")
    (tmp_path / "S5").mkdir()
    (tmp_path / "S5" / "S5.pkl").write_bytes(b"not a pickle")
    with pytest.raises(WesadError, match="cannot read"):
        load_subject(tmp_path / "S5" / "S5.pkl")


def test_train_stress_works_on_a_wesad_folder(wesad_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ecgstream.commands.models import models
    from models.runtime.stress import StressModel

    out = tmp_path / "out"
    res = CliRunner().invoke(models, ["train", "stress", "--config", "models/configs/stress_tiny.toml",
                                      "--data", str(wesad_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    model = StressModel.load(out / "stress_transformer.onnx")
    assert model.trained_on == "wesad" and "wesad" in model.note
    assert model.info["subjects"] == 3


def test_eval_stress_on_a_folder_that_is_not_wesad_is_one_error_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ecgstream.commands.models import models

    res = CliRunner().invoke(models, ["eval", "stress", "--data", str(tmp_path), "--json", str(tmp_path / "o.json")])
    assert res.exit_code != 0 and "no WESAD subject" in res.output


@pytest.mark.slow
def test_eval_stress_on_a_wesad_folder_reports_loso_and_the_synthetic_model_on_real_layout(
        wesad_dir: Path, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from ecgstream.commands.models import models

    out = tmp_path / "wesad.json"
    res = CliRunner().invoke(models, ["eval", "stress", "--config", "models/configs/stress_tiny.toml",
                                      "--data", str(wesad_dir), "--json", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["source"] == "wesad" and report["subjects"] == 3 and report["windows"] == 15
    assert set(report["loso"]["per_subject"]) == {"S2", "S3", "S10"}
    assert report["artifact"]["trained_on"] == "synthetic"
