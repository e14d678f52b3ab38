"""The classifier at its operating point: sensitivity, specificity and F1 at per-class thresholds, the
thresholds' source (artifact, file, default 0.5), per-record scores and INT8 vs FP32 in
``ecgstream models eval classifier``.

Real records (``../shared/data/cinc2021``) are only *run* here, to check the report's fields and
that it adds up; no figure measured on them is asserted or tuned.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from models.classifier.evaluate import DEFAULT_THRESHOLD, read_thresholds_file, resolve_thresholds
from models.classifier.metrics import format_report, multilabel_report
from models.data.labels import CLASSES

K = ("A", "B", "C")


def test_hand_counted_operating_point() -> None:
    y = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 1]])
    p = np.array([[0.9, 0.1, 0.0], [0.6, 0.6, 0.0], [0.2, 0.0, 0.0], [0.7, 0.0, 0.0], [0.1, 0.0, 0.0],
                  [0.0, 0.0, 0.0], [0.0, 0.0, 0.5], [0.0, 0.0, 0.49]])
    rep = multilabel_report(y, p, classes=K, thresholds={"A": 0.5, "B": 0.5, "C": 0.5})
    a, b, c = (rep["per_class"][k] for k in K)
    # A: called 0.9, 0.6 (positive) and 0.7 (negative); 0.2 missed
    assert (a["tp"], a["fp"], a["fn"], a["tn"]) == (2, 1, 1, 4)
    assert a["sensitivity"] == pytest.approx(2 / 3, abs=1e-4) and a["specificity"] == pytest.approx(4 / 5)
    assert a["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1), abs=1e-4)
    # B: no positive record: a specificity (one false call), but no sensitivity or F1, and not in macro F1
    assert b["status"] == "absent" and (b["fp"], b["tn"]) == (1, 7)
    assert b["sensitivity"] is None and b["f1"] is None and b["specificity"] == pytest.approx(7 / 8)
    # C: a probability equal to the threshold is a call (as ClassifierModel.labels does)
    assert (c["tp"], c["fn"], c["fp"]) == (1, 1, 0) and c["f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert rep["macro_f1"] == pytest.approx((a["f1"] + c["f1"]) / 2, abs=1e-4)
    assert a["threshold"] == 0.5


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 30), data=st.data())
def test_operating_point_agrees_with_sklearn(n: int, data: st.DataObject) -> None:
    from sklearn.metrics import confusion_matrix, f1_score, recall_score

    y = data.draw(arrays(np.int8, (n, len(K)), elements=st.integers(0, 1)))
    p = data.draw(arrays(np.float64, (n, len(K)), elements=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 1.0])))
    t = data.draw(st.lists(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]), min_size=len(K), max_size=len(K)))
    rep = multilabel_report(y, p, classes=K, thresholds=dict(zip(K, t, strict=True)), bootstrap=5)
    f1s = []
    for j, k in enumerate(K):
        e = rep["per_class"][k]
        called = (p[:, j] >= t[j]).astype(int)
        tn, fp, fn, tp = confusion_matrix(y[:, j], called, labels=[0, 1]).ravel()
        assert (e["tp"], e["fp"], e["fn"], e["tn"]) == (tp, fp, fn, tn)
        if y[:, j].any():
            assert e["sensitivity"] == pytest.approx(recall_score(y[:, j], called), abs=1e-4)
            assert e["f1"] == pytest.approx(f1_score(y[:, j], called), abs=1e-4)
        else:
            assert e["sensitivity"] is None and e["f1"] is None
        if not y[:, j].all():
            assert e["specificity"] == pytest.approx(tn / (tn + fp), abs=1e-4)
        else:
            assert e["specificity"] is None
        if e["status"] == "present":
            f1s.append(f1_score(y[:, j], called))
    if f1s:
        assert rep["macro_f1"] == pytest.approx(np.mean(f1s), abs=2e-4)
        lo, hi = rep.get("macro_f1_ci95", (0.0, 1.0))
        assert 0.0 <= lo <= hi <= 1.0
    else:
        assert rep["macro_f1"] is None


def test_without_thresholds_the_report_is_as_before() -> None:
    y = np.eye(len(K))[[0, 1, 2, 0]]
    rep = multilabel_report(y, y * 0.8, classes=K)
    assert "macro_f1" not in rep and "threshold" not in rep["per_class"]["A"]
    assert "sens" not in format_report({"x": rep}, K)


def test_printed_table_shows_threshold_sensitivity_specificity_and_f1_next_to_auroc() -> None:
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]])
    p = np.array([[0.9, 0.0, 0.2], [0.3, 0.0, 0.1], [0.1, 0.0, 0.8], [0.2, 0.9, 0.0]])
    rep = multilabel_report(y, p, classes=K, thresholds={"A": 0.25, "B": 0.5, "C": 0.5})
    table = format_report({"edge": rep}, K)
    head = table.splitlines()[1].split()
    assert head[-4:] == ["thr", "sens", "spec", "F1"] and "AUROC" in head
    row_a = table.splitlines()[2].split()
    assert row_a[0] == "A" and row_a[2:] == ["0.25", "1.00", "2/2", "1.00", "1.00"]
    row_b = table.splitlines()[3].split()
    assert row_b == ["B", "absent", "0.50", "-", "0.75", "-"]
    macro = table.splitlines()[-1].split()
    assert macro[0] == "macro" and float(macro[-1]) == pytest.approx(rep["macro_f1"], abs=0.01)


def test_thresholds_come_from_a_file_then_the_artifact_then_0_5() -> None:
    t, source = resolve_thresholds(None)
    assert source == "default 0.5" and set(t) == set(CLASSES) and set(t.values()) == {DEFAULT_THRESHOLD}
    shipped = dict.fromkeys(CLASSES, 0.3)
    t, source = resolve_thresholds(shipped)
    assert source == "artifact" and t["AF"] == 0.3
    t, source = resolve_thresholds(shipped, {"AF": 0.2})
    assert t["AF"] == 0.2 and t["NSR"] == 0.3 and source.startswith("file; artifact for NSR, SB")
    t, source = resolve_thresholds({"AF": 0.1})
    assert t["AF"] == 0.1 and t["NSR"] == 0.5 and source.startswith("artifact; default 0.5 for NSR")


def test_a_thresholds_file_is_checked(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"thresholds": {"AF": 0.2, "NSR": 0.6}}))
    assert read_thresholds_file(f) == {"AF": 0.2, "NSR": 0.6}
    for bad, match in (({"AFIB": 0.2}, "unknown classes AFIB"), ({"AF": 1.5}, r"\[0, 1\]"),
                       ({"AF": "high"}, "numbers"), ([], "expected")):
        f.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=match):
            read_thresholds_file(f)
    f.write_text("{not json")
    with pytest.raises(ValueError, match="thresholds file"):
        read_thresholds_file(f)


# ---- the command on real records (the shipped artifacts; nothing asserted about their accuracy) ----

RECORDS = ("E07500", "E07501", "E07502", "E07503", "E07504", "E07505")


@pytest.fixture()
def few_records(data: Path, tmp_path: Path) -> Path:
    subset = tmp_path / "real"
    subset.mkdir()
    for rid in RECORDS:
        for ext in (".hea", ".mat"):
            (subset / f"{rid}{ext}").symlink_to(data / "cinc2021" / f"{rid}{ext}")
    return subset


def _run(args: list[str]) -> tuple[int, str]:
    from click.testing import CliRunner

    from ecgstream.commands.models import models

    res = CliRunner().invoke(models, ["eval", "classifier", *args])
    return res.exit_code, res.output


@pytest.mark.shared_data
def test_eval_reports_the_operating_point_per_record_scores_and_int8(few_records: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "r.json"
    tfile = tmp_path / "t.json"
    tfile.write_text(json.dumps({"NSR": 0.7, "SB": 0.05}))
    code, text = _run(["--data", str(few_records), "--json", str(out), "--bootstrap", "20",
                       "--thresholds", str(tfile), "--compare-int8"])
    assert code == 0, text
    rep = json.loads(out.read_text())
    # the thresholds and where they came from: the file's, then the artifact's for the classes it leaves out
    from models.runtime.classifier import ClassifierModel

    shipped = dict(ClassifierModel.load(providers=["cpu"]).info.get("thresholds") or {})
    assert rep["thresholds"]["NSR"] == 0.7 and rep["thresholds"]["SB"] == 0.05
    assert rep["thresholds"]["STACH"] == pytest.approx(shipped.get("STACH", 0.5), abs=1e-4)
    assert rep["thresholds_source"].startswith("file; ")
    assert ("artifact for STACH" if shipped else "default 0.5 for STACH") in rep["thresholds_source"]
    # per_record: one entry per record read, in order, with labels and both inputs' probabilities
    ids = [r["id"] for r in rep["per_record"]]
    assert ids == list(RECORDS) and rep["records"] == len(ids)
    for r in rep["per_record"]:
        assert set(r["labels"]) <= set(CLASSES) and set(r["true12"]) == set(r["edge"]) == set(CLASSES)
        assert set(r["int8"]["edge"]) == set(CLASSES)
    assert {c: sum(c in r["labels"] for r in rep["per_record"]) for c in CLASSES} == rep["label_counts"]
    # the operating point adds up from per_record alone (anyone can recheck it from the JSON)
    for view in ("true12", "edge"):
        f1s = []
        for c in CLASSES:
            e = rep[view]["per_class"][c]
            called = np.array([r[view][c] >= rep["thresholds"][c] for r in rep["per_record"]])
            truth = np.array([c in r["labels"] for r in rep["per_record"]])
            assert e["threshold"] == pytest.approx(rep["thresholds"][c], abs=1e-4)
            assert (e["tp"], e["fp"], e["fn"], e["tn"]) == (int((called & truth).sum()), int((called & ~truth).sum()),
                                                            int((~called & truth).sum()), int((~called & ~truth).sum()))
            if e["status"] == "present":
                f1s.append(e["f1"])
                assert 0.0 <= e["sensitivity"] <= 1.0 and 0.0 <= e["specificity"] <= 1.0
        assert rep[view]["macro_f1"] == pytest.approx(np.mean(f1s), abs=1e-3)
    # INT8 on the same records, at the same thresholds, and its change from FP32
    q = rep["int8"]
    assert q["model"].endswith("classifier_mamba_int8.onnx") and q["model_version"].startswith("classifier_mamba_int8")
    for view in ("true12", "edge"):
        assert q[view]["per_class"]["NSR"]["threshold"] == 0.7
        assert q["change"][view]["macro_auroc"] == pytest.approx(q[view]["macro_auroc"] - rep[view]["macro_auroc"],
                                                                 abs=2e-4)
        assert 0.0 <= q["change"][view]["max_abs_prob"] <= 1.0
    # the printed table: threshold, sensitivity, specificity, F1 beside AUROC, and INT8's change
    assert "thresholds (file; " in text
    assert text.splitlines()[2].split()[-4:] == ["thr", "sens", "spec", "F1"]
    nsr = next(line for line in text.splitlines() if line.startswith("NSR "))
    assert "0.70" in nsr
    assert "INT8" in text and "macro_f1" in text


@pytest.mark.shared_data
def test_eval_uses_the_thresholds_the_artifact_ships(few_records: Path, tmp_path: Path) -> None:
    """An artifact whose ``ecgstream`` metadata carries ``thresholds`` is scored at them."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from models.runtime.classifier import DEFAULT_CLASSIFIER

    proto = onnx.load(str(DEFAULT_CLASSIFIER))
    entry = next(p for p in proto.metadata_props if p.key == "ecgstream")
    shipped = {c: 0.25 for c in CLASSES} | {"NSR": 0.9}
    entry.value = json.dumps(json.loads(entry.value) | {"thresholds": shipped})
    model = tmp_path / "with_thresholds.onnx"
    onnx.save(proto, str(model))
    out = tmp_path / "r.json"
    code, text = _run(["--data", str(few_records), "--json", str(out), "--bootstrap", "0", "--model", str(model)])
    assert code == 0, text
    rep = json.loads(out.read_text())
    assert rep["thresholds_source"] == "artifact" and rep["thresholds"] == shipped
    assert rep["edge"]["per_class"]["NSR"]["threshold"] == 0.9 and "(artifact)" in text.splitlines()[0]
    assert "int8" not in rep


def test_eval_refuses_a_bad_thresholds_file_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(json.dumps({"AFIB": 0.3}))
    code, text = _run(["--data", str(tmp_path), "--json", str(tmp_path / "r.json"), "--thresholds",
                       str(tmp_path / "t.json")])
    assert code != 0 and "unknown classes AFIB" in text and not (tmp_path / "r.json").exists()


def test_compare_int8_needs_the_int8_artifact_beside_the_model(tmp_path: Path) -> None:
    from models.runtime.classifier import DEFAULT_CLASSIFIER

    model = tmp_path / "my_classifier.onnx"
    model.write_bytes(DEFAULT_CLASSIFIER.read_bytes())
    code, text = _run(["--data", str(tmp_path), "--json", str(tmp_path / "r.json"), "--model", str(model),
                       "--compare-int8"])
    assert code != 0 and "my_classifier_int8.onnx not found (pass --int8-model)" in text
