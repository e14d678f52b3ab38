"""The ECG–text zero-shot model: its knowledge base, its prompts, the shipped runtime and its evaluation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from models.data.labels import CLASSES
from models.runtime.zeroshot import DEFAULT_ZEROSHOT, TEXT_EXPORT_COMMAND, TextEncoderMissing, ZeroShotModel
from models.zeroshot.knowledge_base import (
    KnowledgeBaseError,
    KnowledgeLabel,
    load_knowledge_base,
    read_knowledge_base,
)
from models.zeroshot.prompts import prompts_for, report_text
from protocol.leads import STANDARD_LEADS

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
EVAL_DATA = SHARED / "data" / "cinc2021"
TUNE = SHARED / "tune"


def test_every_label_has_a_snomed_code_and_criteria() -> None:
    kb = load_knowledge_base()
    for label in kb:
        assert label.snomed.isdigit(), label.key
        assert len(label.criteria) >= 2 and all(c.strip() for c in label.criteria), label.key
    # every classifier class but NOISE (a signal-quality state, no diagnostic code) is in it
    assert set(CLASSES) - set(kb.keys) == {"NOISE"}
    assert all(kb[c].classifier for c in CLASSES if c != "NOISE")


@pytest.mark.skipif(not EVAL_DATA.is_dir(), reason=f"{EVAL_DATA} not present")
def test_the_scored_cinc_classes_of_the_evaluation_records_are_covered() -> None:
    scored = {"164934002", "698252002", "713426002", "427393009", "426783006", "427084000", "284470004",
              "426177001", "427172004", "59931005", "111975006", "59118001"}
    present = {code.strip() for hea in EVAL_DATA.glob("*.hea") for line in hea.read_text().splitlines()
               if line.startswith("# Dx:") for code in line[5:].split(",")}
    kb = load_knowledge_base()
    assert scored & present
    assert all(kb.labels_for_codes([code]) for code in scored & present)


def test_a_label_without_criteria_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "kb.toml"
    bad.write_text('[[label]]\nkey = "X"\nname = "x rhythm"\nsnomed = "123"\ncriteria = ["only one"]\n')
    with pytest.raises(KnowledgeBaseError, match="at least two"):
        read_knowledge_base(bad)
    bad.write_text('[[label]]\nkey = "X"\nname = "x rhythm"\nsnomed = "SNOMED?"\ncriteria = ["a", "b"]\n')
    with pytest.raises(KnowledgeBaseError, match="digits"):
        read_knowledge_base(bad)


def test_knowledge_prompts_carry_the_criteria_and_plain_prompts_the_name() -> None:
    kb = load_knowledge_base()
    af = kb["AF"]
    knowledge, plain, free = prompts_for(["atrial fibrillation", "AFib", "my own label"], "knowledge"), \
        prompts_for(["AF"], "plain"), prompts_for(["my own label"], "plain")
    assert any("irregularly irregular" in p for p in knowledge[0])
    assert knowledge[0] == knowledge[1]                     # name or synonym: the same label
    assert knowledge[2] == ["my own label"] and free == [["my own label"]]
    assert plain == [[af.name]]
    with pytest.raises(ValueError):
        prompts_for(["AF"], "fancy")  # type: ignore[arg-type]


def test_a_prompt_rewriter_replaces_the_prompts_only_when_given() -> None:
    calls: list[str] = []

    def rewriter(label: KnowledgeLabel, prompts: Sequence[str]) -> list[str]:
        calls.append(label.key)
        return [f"an ECG with {label.name}"]

    assert prompts_for(["SB"], "knowledge", rewriter=rewriter) == [["an ECG with sinus bradycardia"]]
    assert calls == ["SB"]
    assert len(prompts_for(["SB"], "knowledge")[0]) > 1


def test_reports_vary_and_name_the_labels() -> None:
    rng = np.random.default_rng(0)
    kb = load_knowledge_base()
    reports = {report_text(("NSR", "PVC"), rng) for _ in range(20)}
    assert len(reports) > 5
    words = {kb[k].name for k in ("NSR", "PVC")} | set(kb["NSR"].synonyms) | set(kb["PVC"].synonyms) \
        | set(kb["PVC"].subtypes)
    assert all(sum(w.lower() in r.lower() for w in words) >= 2 for r in reports)


# -- the shipped model --------------------------------------------------------------------------------

def _window(rhythm: str, seed: int, fs: float = 250.0) -> np.ndarray:
    from firmware_sim.synthesis import random_patient, synthesize

    return synthesize(rhythm, seconds=10.0, fs=fs, seed=seed, patient=random_patient(seed)).signals.T[None]


@pytest.fixture(scope="module")
def model() -> ZeroShotModel:
    if not DEFAULT_ZEROSHOT.is_file():
        pytest.fail(f"{DEFAULT_ZEROSHOT} is not shipped (ecgstream models train zeroshot)")
    return ZeroShotModel.load(threads=1)


def test_scores_are_a_distribution_over_the_labels(model: ZeroShotModel) -> None:
    labels = ["atrial fibrillation", "sinus bradycardia", "LBBB", "ST elevation"]
    r = model.classify(_window("sinus", 1), 250.0, STANDARD_LEADS, labels, "plain")
    assert r.scores.shape == r.similarities.shape == (1, 4)
    assert r.scores.sum() == pytest.approx(1.0, abs=1e-5) and (r.scores >= 0).all()
    assert (np.abs(r.similarities) <= 1.0 + 1e-5).all()


@pytest.mark.parametrize(("rhythm", "expected"), [
    ("afib", "atrial fibrillation"), ("sinus_tachy", "sinus tachycardia"), ("sinus_brady", "sinus bradycardia"),
])
def test_an_obviously_matching_label_ranks_first(model: ZeroShotModel, rhythm: str, expected: str) -> None:
    labels = ["atrial fibrillation", "sinus tachycardia", "sinus bradycardia", "ventricular tachycardia"]
    wins = 0
    for seed in range(3):
        r = model.classify(_window(rhythm, 100 + seed), 250.0, STANDARD_LEADS, labels, "knowledge")
        wins += labels[int(np.argmax(r.scores[0]))] == expected
    assert wins >= 2, f"{expected} ranked first in {wins} of 3 {rhythm} windows"


def test_run_returns_the_stored_result_shape(model: ZeroShotModel) -> None:
    out = model.run(np.concatenate([_window("sinus", 2), _window("afib", 3)]), 250.0, STANDARD_LEADS)
    assert len(out) == 2
    for r in out:
        assert set(r) == {"prompt_set", "labels", "scores", "similarities", "top"}
        assert r["prompt_set"] == "knowledge" and r["labels"] == list(model.default_labels)
        assert len(r["scores"]) == len(r["similarities"]) == len(r["labels"])
        assert sum(r["scores"]) == pytest.approx(1.0, abs=1e-3)
        assert len(r["top"]) == 3 and r["top"][0] == r["labels"][int(np.argmax(r["scores"]))]
    json.dumps(out)


def test_free_text_without_the_text_encoder_names_the_command(tmp_path: Path) -> None:
    m = ZeroShotModel.load(text_onnx=tmp_path / "absent.onnx")
    with pytest.raises(TextEncoderMissing, match=TEXT_EXPORT_COMMAND):
        m.classify(_window("sinus", 4), 250.0, STANDARD_LEADS, ["a wandering pacemaker"])


def test_windows_without_the_twelve_leads_are_refused(model: ZeroShotModel) -> None:
    with pytest.raises(ValueError, match="12 standard leads"):
        model.classify(_window("sinus", 5)[:, :3], 250.0, STANDARD_LEADS[:3], ["AF"])


@pytest.mark.skipif(not TUNE.is_dir(), reason=f"{TUNE} not present")
def test_eval_json_has_the_documented_shape(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ecgstream.commands.models import models

    out = tmp_path / "eval.json"
    res = CliRunner().invoke(models, ["eval", "zeroshot", "--data", str(TUNE), "--json", str(out),
                                      "--max-records", "12"])
    assert res.exit_code == 0, res.output
    body = json.loads(out.read_text())
    assert body["records"] == 12
    for style in ("plain", "knowledge"):
        assert set(body[style]) == {"macro_auroc", "per_class"}
        assert body[style]["per_class"] and all(0.0 <= v <= 1.0 for v in body[style]["per_class"].values())
        assert body[style]["macro_auroc"] == pytest.approx(np.mean(list(body[style]["per_class"].values())), abs=1e-3)
