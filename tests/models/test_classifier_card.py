"""The classifier's model card: it leads with the real-record figures at the operating point, and its
data section says honestly what the model learned from (synthetic only, or synthetic and real)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.classifier.card import main, render
from models.classifier.evaluate import resolve_thresholds
from models.classifier.metrics import multilabel_report
from models.data.labels import CLASSES
from models.runtime.onnx_model import ARTIFACTS

SHIPPED_METRICS = json.loads((ARTIFACTS / "classifier_mamba_metrics.json").read_text())
METRICS = {**SHIPPED_METRICS, "thresholds": None, "calibration_cv": None,
           "training_data": "SYNTHETIC windows from the ecgstream simulator",
           "config": {**SHIPPED_METRICS["config"],
                      "data": {**SHIPPED_METRICS["config"]["data"], "calibration_dir": None, "real_dir": None}}}
"""The shipped model's metrics as a synthetic-only model's (no real record used): what the card says then."""
REAL = {"synthetic": True, "thresholds": "per class on out-of-fold predictions (max F1)",
        "real": [{"name": "CinC 2021 tune set", "path": "../shared/tune", "records": 53,
                  "use": "fine-tuning and per-class thresholds", "validation": "5-fold record-level cross-validation"}]}


def _report(source: str = "default 0.5", shipped: dict[str, float] | None = None) -> dict:  # type: ignore[type-arg]
    """A report shaped as ``ecgstream models eval classifier --compare-int8`` writes it, on made-up scores."""
    rng = np.random.default_rng(3)
    y = np.zeros((20, len(CLASSES)))
    y[:8, 0] = 1
    y[8:14, 3] = 1
    y[14:, 2] = 1
    p = np.clip(y * 0.6 + rng.random(y.shape) * 0.5, 0, 1)
    t, src = resolve_thresholds(shipped)
    rep = {"data": "../shared/data/cinc2021", "records": 20, "windows": 25, "skipped_records": 1,
           "bootstrap": {"resamples": 50}, "thresholds": t, "thresholds_source": src,
           "label_counts": {c: int(y[:, j].sum()) for j, c in enumerate(CLASSES)}}
    for view in ("true12", "edge"):
        rep[view] = multilabel_report(y, p, bootstrap=50, thresholds=t)
    q = {view: multilabel_report(y, p * 0.9, thresholds=t) for view in ("true12", "edge")}
    rep["int8"] = {**q, "change": {v: {"max_abs_prob": 0.05, "calls_changed": 2} for v in q}}
    assert src == source
    return rep


def test_card_leads_with_real_records_at_the_operating_point() -> None:
    rep = _report()
    card = render("mamba", METRICS, rep, None)
    lead, held_out, what = (card.index(h) for h in ("## Real records at the operating point",
                                                    "## Held-out synthetic", "## What it is"))
    assert lead < what < held_out
    section = card[lead:what]
    assert "20 real 12-lead records" in section and "`../shared/data/cinc2021`" in section
    assert "0.5 for every class: this artifact ships no thresholds" in section
    af = next(line for line in section.splitlines() if line.startswith("| AF |"))
    e = rep["edge"]["per_class"]["AF"]
    assert f"{e['sensitivity']:.2f} ({e['tp']}/6)" in af and f"{e['f1']:.2f}" in af and "0.50" in af
    assert f"macro F1 **{rep['edge']['macro_f1']:.2f}**" in section
    assert f"macro AUROC **{rep['edge']['macro_auroc']:.3f}**" in section
    int8_row = next(line for line in section.splitlines() if line.startswith("| edge |"))
    d = rep["int8"]["edge"]["macro_f1"] - rep["edge"]["macro_f1"]
    assert f"{d:+.4f}" in int8_row and int8_row.rstrip(" |").endswith("2")
    # the synthetic-only model says so, here and in its limits
    assert "trained on SYNTHETIC ECG;" in card and "No real record was used for training" in card
    assert "ships no per-class thresholds" in card


def test_card_describes_real_training_data_and_shipped_thresholds() -> None:
    rep = _report("artifact", dict.fromkeys(CLASSES, 0.3))
    card = render("mamba", METRICS | {"device": "NVIDIA H100 (cuda)"}, rep, None, training_data=REAL)
    assert "trained on SYNTHETIC ECG and 53 real records" in card
    assert "## Training data (synthetic and real)" in card and "No real record was used" not in card
    assert "**CinC 2021 tune set** (`../shared/tune`), 53 records, used for fine-tuning" in card
    assert "5-fold record-level cross-validation" in card and "min on NVIDIA H100 (cuda)" in card
    assert "per-class thresholds shipped in the artifact's `ecgstream` metadata" in card
    assert "Per-class thresholds ship in the artifact's metadata (per class on out-of-fold" in card
    assert "Trained only on simulated ECG" not in card


def test_card_of_an_old_report_says_to_rerun_it() -> None:
    old = json.loads((ARTIFACTS / "classifier_mamba_eval_cinc2021.json").read_text())
    old.pop("thresholds", None)
    for view in ("true12", "edge"):
        old[view].pop("macro_f1", None)
    card = render("mamba", METRICS, old, None)
    assert "has no operating-point figures" in card and "--compare-int8" in card


def test_card_command_takes_a_training_data_file(tmp_path: Path) -> None:
    for name in ("classifier_mamba_metrics.json", "classifier_mamba_speed.json", "classifier_resnet_metrics.json"):
        shutil.copy(ARTIFACTS / name, tmp_path / name)
    (tmp_path / "classifier_mamba_eval_cinc2021.json").write_text(json.dumps(_report()))
    (tmp_path / "td.json").write_text(json.dumps(REAL))
    assert main(["--arch", "mamba", "--dir", str(tmp_path), "--no-speed", "--training-data",
                 str(tmp_path / "td.json")]) == 0
    card = (tmp_path / "classifier_mamba.md").read_text()
    assert card.index("## Real records at the operating point") < card.index("## Held-out synthetic")
    assert "53 real records" in card and "SYNTHETIC" in card and "not a medical device" in card.lower()


@pytest.mark.parametrize(("text", "claim"), [
    ("SYNTHETIC windows from the ecgstream simulator", True),
    ("SYNTHETIC windows, fine-tuned on 53 real CinC records", False),
])
def test_a_plain_description_is_only_read_as_synthetic_when_it_says_nothing_of_real_data(text: str,
                                                                                       claim: bool) -> None:
    card = render("mamba", METRICS, None, None, training_data=text)
    assert ("No real record was used" in card) is claim
    assert "SYNTHETIC" in card


def test_card_gives_the_baseline_macro_f1_on_the_same_records() -> None:
    other = json.loads((ARTIFACTS / "classifier_resnet_metrics.json").read_text())
    base = _report()
    card = render("mamba", METRICS, _report(), None, other, None, base)
    assert (f"macro F1 at its thresholds (default 0.5) true 12 {base['true12']['macro_f1']:.2f}, "
            f"edge {base['edge']['macro_f1']:.2f}") in card


def test_card_reads_real_training_and_calibration_from_the_metrics_a_training_run_writes() -> None:
    """What ``ecgstream models train classifier --data … --calibrate …`` records is enough for an honest card."""
    import copy

    m = copy.deepcopy(METRICS)
    m["training_data"] = "300000 SYNTHETIC windows; real records from ../shared/tune (x4 per epoch); ..."
    m["config"]["data"] |= {"real_dir": "../shared/tune", "real_repeat": 4, "real_only": False,
                            "calibration_dir": "../shared/tune", "calibration_folds": 5}
    m["config"]["augment"] = {"enabled": True, "axis_deg": 20.0, "lowpass_hz": [25.0, 40.0],
                              "low_rate_probability": 0.3}
    m["config"]["inputs"] = {"rhythm_features": True}
    m["thresholds"] = dict.fromkeys(CLASSES, 0.4)
    m["calibration_cv"] = {"k": 5, "records": 53, "macro_f1": 0.61, "classes_thresholded": ["NSR", "AF", "STACH"]}
    card = render("mamba", m, _report("artifact", m["thresholds"]), None)
    assert "trained on SYNTHETIC ECG and real records (see *Training data*)" in card
    assert "No real record was used" not in card and "Trained only on simulated ECG" not in card
    assert "**real training records** (`../shared/tune`), used for training, mixed with the synthetic windows " \
           "(each real window ×4 per epoch)" in card
    assert "**real calibration records** (`../shared/tune`), 53 records, used for logit calibration and per-class " \
           "thresholds, 5-fold record-level cross-validation; out-of-fold macro F1 0.61" in card
    assert "Thresholds: chosen per class on `../shared/tune` by 5-fold record-level cross-validation for NSR, AF, " \
           "STACH; 0.5 for the rest." in card
    assert "domain-randomised (amplitude" in card and "A second input `features`" in card
    assert "--data ../shared/tune --calibrate ../shared/tune --out" in card
