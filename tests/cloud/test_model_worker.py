"""The model worker: configured ONNX models run on the windows behind stored alerts, results stored once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from scipy.signal import resample_poly

from cloud.model_worker import HostedModel, ModelConfigError, ModelSpec, ModelWorker, window_input
from cloud.store import Store
from protocol.leads import STANDARD_LEADS
from protocol.window_payload import EcgWindow
from tests.cloud.conftest import make_alert, make_window

CLASSES = ("AF", "VT", "NSR")
FS, SAMPLES = 125, 1250
WEIGHTS = np.random.default_rng(7).normal(0, 2.0, (12, len(CLASSES))).astype(np.float32)


def _write_model(path: Path, *, metadata: dict | None = None, leads: tuple[str, ...] = STANDARD_LEADS) -> Path:
    """A real (tiny) multi-label ONNX model: sigmoid(mean over time of each lead @ WEIGHTS)."""
    n = len(leads)
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["z"]),
         helper.make_node("Sigmoid", ["z"], ["probabilities"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", n, SAMPLES])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["B", len(CLASSES)])],
        [numpy_helper.from_array(WEIGHTS[:n], "w"), numpy_helper.from_array(np.array([2], dtype=np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    info = {"leads": list(leads), "fs_hz": FS, "samples": SAMPLES, "classes": list(CLASSES), "version": "tiny-1"}
    if metadata is not None:
        info = metadata
    helper.set_model_props(model, {"ecgstream": json.dumps(info)})
    onnx.save(model, path)
    return path


def _expected(window: EcgWindow) -> np.ndarray:
    x = window_input(window, STANDARD_LEADS, FS, SAMPLES).astype(np.float64)
    return 1.0 / (1.0 + np.exp(-(x.mean(axis=1) @ WEIGHTS.astype(np.float64))))


@pytest.fixture
def model(tmp_path: Path) -> HostedModel:
    return HostedModel.load(ModelSpec(name="classifier", path=_write_model(tmp_path / "tiny.onnx"), threshold=0.5))


async def test_results_of_an_alerts_window_are_stored_once_with_the_models_probabilities(
        store: Store, model: HostedModel) -> None:
    window = make_window(fs_hz=FS, realistic=True, seed=3)
    await store.store_window(window)
    alert = make_alert(window_id=window.window_id)
    await store.store_alert(alert)
    worker = ModelWorker(store, [model], poll_s=0.01)
    assert await worker.poll_once() == 1
    results = await store.results_for_alert(alert.alert_id)
    assert len(results) == 1 and results[0].model == "classifier" and results[0].version == "tiny-1"
    probs = results[0].outputs["probabilities"]
    np.testing.assert_allclose([probs[c] for c in CLASSES], _expected(window), atol=1e-3)
    assert results[0].outputs["positive"] == [c for c in results[0].outputs["top"] if probs[c] >= 0.5]
    # a restarted worker (cursor 0) and a second one store nothing new
    for again in (ModelWorker(store, [model]), worker):
        again.cursor = 0
        await again.poll_once()
    assert len(await store.results_for_window(window.window_id)) == 1
    assert worker.counters.results_stored == 1 and worker.counters.results_already_stored >= 1


async def test_an_alert_that_lands_before_its_window_waits_for_it(store: Store, model: HostedModel) -> None:
    window = make_window(fs_hz=500, seed=1)      # 500 Hz: resampled to the model's 125 Hz
    alert = make_alert(window_id=window.window_id)
    late = make_alert(window_id=EcgWindow.new_id())
    await store.store_alert(alert)
    await store.store_alert(late)
    await store.store_alert(make_alert())          # no window at all
    worker = ModelWorker(store, [model], window_wait_s=3600)
    assert await worker.poll_once() == 0
    await store.store_window(window)
    assert await worker.poll_once() == 1
    probs = (await store.results_for_alert(alert.alert_id))[0].outputs["probabilities"]
    np.testing.assert_allclose([probs[c] for c in CLASSES], _expected(window), atol=1e-3)
    worker.window_wait_s = 0.0
    await worker.poll_once()
    c = worker.counters
    assert (c.alerts_seen, c.alerts_without_window, c.windows_missing, c.windows_analysed) == (3, 1, 1, 1)


async def test_two_partitions_split_the_alerts_between_them(store: Store, model: HostedModel) -> None:
    windows = [make_window(fs_hz=FS, seed=i) for i in range(6)]
    for w in windows:
        await store.store_window(w)
        await store.store_alert(make_alert(window_id=w.window_id))
    workers = [ModelWorker(store, [model], partition=(i, 2)) for i in range(2)]
    done = [await w.poll_once() for w in workers]
    assert sum(done) == 6 and all(d > 0 for d in done)
    for w in windows:
        assert len(await store.results_for_window(w.window_id)) == 1


async def test_a_window_the_model_cannot_take_is_counted_and_the_others_are_analysed(
        store: Store, model: HostedModel) -> None:
    good = make_window(fs_hz=FS, seed=2)
    three = make_window(fs_hz=FS, seed=3)
    three = EcgWindow(three.window_id, three.patient_id, three.device_id, three.t0_us, FS, ("II", "V1", "V5"),
                      three.samples[[1, 6, 10]])
    short = make_window(fs_hz=FS, seconds=4.0, seed=4)
    for w in (good, three, short):
        await store.store_window(w)
        await store.store_alert(make_alert(window_id=w.window_id))
    worker = ModelWorker(store, [model])
    await worker.poll_once()
    assert worker.counters.rejected == {"classifier": 2}
    assert len(await store.results_for_window(good.window_id)) == 1
    assert await store.results_for_window(three.window_id) == []


def test_window_input_resamples_and_picks_leads_by_name() -> None:
    w = make_window(fs_hz=500, seed=5)
    x = window_input(w, ("V5", "I"), FS, SAMPLES)
    assert x.shape == (2, SAMPLES) and x.dtype == np.float32
    ref = resample_poly(w.millivolts()[STANDARD_LEADS.index("V5")], 1, 4)
    np.testing.assert_allclose(x[0], ref[:SAMPLES], atol=1e-5)


def test_bad_model_configuration_is_refused_with_the_reason(tmp_path: Path) -> None:
    good = _write_model(tmp_path / "ok.onnx")
    with pytest.raises(ModelConfigError, match="kind"):
        ModelSpec.from_mapping({"name": "m", "path": str(good), "kind": "segmentation"})
    with pytest.raises(ModelConfigError, match="unknown keys"):
        ModelSpec.from_mapping({"name": "m", "path": str(good), "treshold": 0.4})
    with pytest.raises(ModelConfigError, match="not found"):
        HostedModel.load(ModelSpec(name="m", path=tmp_path / "missing.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelConfigError, match="not a loadable"):
        HostedModel.load(ModelSpec(name="m", path=tmp_path / "junk.onnx"))
    bare = _write_model(tmp_path / "bare.onnx", metadata={"version": "x"})
    with pytest.raises(ModelConfigError, match="leads, fs_hz, samples"):
        HostedModel.load(ModelSpec(name="m", path=bare))
    spec = ModelSpec.from_mapping({"name": "m", "path": "ok.onnx", "leads": STANDARD_LEADS, "fs_hz": 125,
                                   "samples": SAMPLES}, base_dir=tmp_path)
    assert HostedModel.load(spec).leads == STANDARD_LEADS
