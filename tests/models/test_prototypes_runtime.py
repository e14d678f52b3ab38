"""The shipped prototype explanations: every prototype is a stored strip of a known record, and the runtime's
results follow the project's contract for stored ``prototypes`` results."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.synthesis import synthesize
from models.data.labels import CLASSES
from models.preprocessing import WINDOW_SAMPLES
from models.prototypes import N_TOKENS, segment_samples
from models.prototypes.faithfulness import delete
from models.runtime.prototypes import DEFAULT_PROTOTYPES, PrototypeModel, prototypes_adapter
from protocol.leads import STANDARD_LEADS
from tests.conftest import skip_or_fail

TUNE = Path(__file__).resolve().parents[3] / "shared" / "tune" / "cinc2021"
MATCH_FIELDS = {"prototype_id", "class", "similarity", "source", "record", "lead", "fs_hz", "strip_mv",
                "strip_segment_s", "window_segment_s"}


@pytest.fixture(scope="module")
def model() -> PrototypeModel:
    return PrototypeModel.load(providers=["cpu"])


@pytest.fixture(scope="module")
def tune() -> Path:
    if not TUNE.is_dir():
        skip_or_fail(f"the real tune records are not at {TUNE}")
    return TUNE


def _windows(rhythms: list[str], fs: float = 250.0, seconds: float = 10.0) -> np.ndarray:
    return np.stack([synthesize(r, seconds=seconds, fs=fs, seed=i).signals.T for i, r in enumerate(rhythms)]
                    ).astype(np.float32)


def test_every_prototype_is_projected_onto_a_stored_strip_of_a_known_record(model: PrototypeModel, tune: Path) -> None:
    assert len(model.prototypes) == len(CLASSES) * model.info["per_class"]
    assert {p["class"] for p in model.prototypes} == set(CLASSES)
    for p in model.prototypes:
        assert p["source"] in {"real", "synthetic"}
        if p["source"] == "real":
            assert (tune / f"{p['record']}.hea").is_file(), p["record"]
        else:
            assert re.fullmatch(r"synthetic:\d+:\d+:\w+", p["record"]), p["record"]
        assert p["lead"] == "II" and p["fs_hz"] == 125
        assert 0 < len(p["strip_mv"]) <= 10 * p["fs_hz"]
        a, b = p["strip_segment_s"]
        assert 0.0 <= a < b <= len(p["strip_mv"]) / p["fs_hz"]
        assert 0.0 <= p["push_similarity"] <= 1.0               # how close it was before the projection
    assert any(p["source"] == "real" for p in model.prototypes)


def test_a_real_prototype_strip_is_lead_ii_of_its_record_at_its_offset(model: PrototypeModel, tune: Path) -> None:
    from models.classifier.real_data import load_real_windows

    real = [p for p in model.prototypes if p["source"] == "real"]
    windows = load_real_windows(tune, reconstruct=None, edge_fraction=0.0, seed=0, hop_s=5.0)
    ids = np.asarray(windows.record_ids)
    for p in real:
        of_record = windows.x[ids == p["record"]]
        k = int(round(p["window_offset_s"] / 5.0))
        np.testing.assert_allclose(p["strip_mv"], of_record[k, STANDARD_LEADS.index("II")], atol=1e-3)


def test_a_window_gets_the_top_class_explained_by_up_to_three_matches_per_the_contract(model: PrototypeModel) -> None:
    x = _windows(["sinus", "afib"], seconds=12.0)                  # longer than 10 s: the centre 10 s is used
    results = model.run(x, 250.0, STANDARD_LEADS)
    assert len(results) == 2
    for r in results:
        assert set(r) == {"class", "matches"} and r["class"] in CLASSES
        assert 1 <= len(r["matches"]) <= 3
        sims = [m["similarity"] for m in r["matches"]]
        assert sims == sorted(sims, reverse=True)
        for m in r["matches"]:
            assert set(m) == MATCH_FIELDS
            assert m["class"] == r["class"] and 0.0 <= m["similarity"] <= 1.0
            a, b = m["window_segment_s"]
            assert 0.0 <= a < b <= 12.0 and b - a <= 1.1
            assert a >= 1.0 - 1e-6 and b <= 11.0 + 1e-6             # inside the centre 10 s the model saw
        json.dumps(r)                                             # storable as JSON


def test_a_given_class_is_explained_and_lead_order_does_not_matter(model: PrototypeModel) -> None:
    x = _windows(["sinus"])
    plain = model.run(x, 250.0, STANDARD_LEADS, class_="AF")[0]
    assert plain["class"] == "AF" and all(m["class"] == "AF" for m in plain["matches"])
    order = list(reversed(range(12)))
    shuffled = model.run(x[:, order], 250.0, [STANDARD_LEADS[i] for i in order], class_="AF")[0]
    assert [m["prototype_id"] for m in shuffled["matches"]] == [m["prototype_id"] for m in plain["matches"]]


def test_windows_it_cannot_read_are_refused_with_the_reason(model: PrototypeModel) -> None:
    x = _windows(["sinus"])
    with pytest.raises(ValueError, match="missing"):
        model.run(x[:, :3], 250.0, ["II", "V1", "V5"])
    with pytest.raises(ValueError, match="10 s"):
        model.run(x[:, :, :1000], 250.0, STANDARD_LEADS)
    with pytest.raises(ValueError, match="unknown class"):
        model.run(x, 250.0, STANDARD_LEADS, class_="XYZ")


def test_the_cloud_adapter_opens_the_shipped_artifact() -> None:
    class Spec:
        path = DEFAULT_PROTOTYPES

    adapter = prototypes_adapter(Spec())
    assert adapter.version.startswith("prototypes@")


@given(st.integers(0, N_TOKENS - 16))
def test_the_matched_segment_lies_inside_the_window(position: int) -> None:
    a, b = segment_samples(position, 16)
    assert 0 <= a < b <= WINDOW_SAMPLES and b - a <= 16 * 8


@given(st.integers(0, WINDOW_SAMPLES - 1), st.integers(1, 200))
def test_deleting_a_segment_zeroes_it_on_every_lead_and_nothing_else(start: int, length: int) -> None:
    x = np.ones((1, 12, WINDOW_SAMPLES), dtype=np.float32)
    stop = min(WINDOW_SAMPLES, start + length)
    out = delete(x, np.array([[start, stop]]))
    assert (out[:, :, start:stop] == 0).all()
    assert out.sum() == 12 * (WINDOW_SAMPLES - (stop - start))


def test_the_cloud_worker_hosts_it_as_kind_prototypes(model: PrototypeModel) -> None:
    from cloud.model_worker.adapters import ADAPTERS, default_specs, load_hosted
    from cloud.model_worker.hosted import ModelSpec

    assert "prototypes" in ADAPTERS
    assert any(s.kind == "prototypes" and s.path == DEFAULT_PROTOTYPES for s in default_specs())
    hosted = load_hosted(ModelSpec(name="prototypes", path=DEFAULT_PROTOTYPES, kind="prototypes"))
    assert hosted.version == model.version
    x = _windows(["sinus"], fs=125.0)                                  # 12 leads at 125 Hz as the worker hands them
    (first,) = hosted.run_inputs(x)  # type: ignore[union-attr]
    assert first["class"] in CLASSES and 1 <= len(first["matches"]) <= 3
