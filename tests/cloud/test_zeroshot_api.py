"""Zero-shot on the cloud: the route scores labels on a stored window, the model worker stores a zeroshot
result for an alert's window (the shipped ONNX model, a real store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from cloud.model_worker import ModelSpec, ModelWorker, load_hosted
from cloud.model_worker.adapters import default_model_specs
from cloud.store import Store, upgrade_database
from models.runtime.zeroshot import DEFAULT_ZEROSHOT, TEXT_EXPORT_COMMAND, ZeroShotModel
from protocol.window_payload import EcgWindow
from tests.cloud.api_support import ADMIN, Api, make_api
from tests.cloud.conftest import make_alert, make_window

pytestmark = pytest.mark.skipif(not DEFAULT_ZEROSHOT.is_file(), reason="zero-shot artifact not shipped")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    async with make_api(url) as a:
        await a.store.add_patient("pat-1", "pat-1")
        await a.store.add_device("dev-1", "pat-1", profile="ecgstream-250")
        yield a


async def _stored(api: Api, **kw: object) -> EcgWindow:
    window = make_window("pat-1", realistic=True, seed=4, **kw)  # type: ignore[arg-type]
    await api.store.store_window(window)
    return window


async def test_the_route_scores_knowledge_labels_on_a_stored_window(api: Api) -> None:
    window = await _stored(api)
    labels = ["normal sinus rhythm", "atrial fibrillation", "VT"]
    async with api.client(await api.token(ADMIN)) as c:
        r = await c.post(f"/api/windows/{window.window_id}/zeroshot", json={"labels": labels})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["labels"] == labels and body["prompts"] == "knowledge" and body["window_id"] == window.window_id
        assert sum(body["scores"]) == pytest.approx(1.0, abs=1e-4) and len(body["similarities"]) == 3
        plain = (await c.post(f"/api/windows/{window.window_id}/zeroshot",
                              json={"labels": labels, "prompts": "plain"})).json()
        assert plain["prompts"] == "plain" and plain["scores"] != body["scores"]
        assert (await c.post(f"/api/windows/{EcgWindow.new_id()}/zeroshot", json={"labels": labels})).status_code == 404
        assert (await c.post(f"/api/windows/{window.window_id}/zeroshot", json={"labels": []})).status_code == 422
    async with api.client() as anonymous:
        assert (await anonymous.post(f"/api/windows/{window.window_id}/zeroshot",
                                     json={"labels": labels})).status_code == 401


async def test_free_text_without_the_text_encoder_is_unavailable_and_says_how_to_build_it(api: Api,
                                                                                          tmp_path: Path) -> None:
    window = await _stored(api)
    api.app.state.ctx.extras["zeroshot_model"] = ZeroShotModel.load(text_onnx=tmp_path / "absent.onnx")
    async with api.client(await api.token(ADMIN)) as c:
        r = await c.post(f"/api/windows/{window.window_id}/zeroshot", json={"labels": ["a wandering pacemaker"]})
    assert r.status_code == 503 and TEXT_EXPORT_COMMAND in r.json()["detail"]


async def test_the_worker_stores_a_zeroshot_result_for_an_alerts_window(store: Store) -> None:
    window = make_window(realistic=True, seed=5)
    await store.store_window(window)
    alert = make_alert(window_id=window.window_id)
    await store.store_alert(alert)
    hosted = load_hosted(ModelSpec(name="zeroshot", path=DEFAULT_ZEROSHOT, kind="zeroshot"))
    worker = ModelWorker(store, [hosted], poll_s=0.01)
    assert await worker.poll_once() == 1
    results = await store.results_for_alert(alert.alert_id)
    assert [(r.model, r.version) for r in results] == [("zeroshot", hosted.version)]
    out = results[0].outputs
    assert out["prompt_set"] == "knowledge" and len(out["labels"]) == len(out["scores"]) == len(out["similarities"])
    assert sum(out["scores"]) == pytest.approx(1.0, abs=1e-3)
    assert out["top"][0] == out["labels"][int(np.argmax(out["scores"]))]
    worker.cursor = 0                                             # once per window and model version
    await worker.poll_once()
    assert len(await store.results_for_window(window.window_id)) == 1


def test_by_default_the_worker_hosts_the_classifier_and_the_shipped_heavy_models() -> None:
    names = {s.name: s.kind for s in default_model_specs()}
    assert names.get("zeroshot") == "zeroshot"
    assert ModelSpec.from_mapping({"name": "z", "path": str(DEFAULT_ZEROSHOT), "kind": "zeroshot"}).kind == "zeroshot"
