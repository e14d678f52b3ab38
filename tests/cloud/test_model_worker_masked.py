"""The model worker gives no model a window with gaps (lost frames the edge could not bridge, sent
masked): counted, never fed to a model trained on contiguous ECG; the window's alert is analysed
as soon as a whole window is named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cloud.model_worker import HostedModel, ModelSpec, ModelWorker
from cloud.store import Store
from tests.cloud.conftest import make_alert, make_window
from tests.cloud.test_model_worker import FS, _write_model


async def test_a_masked_window_is_counted_and_given_to_no_model(store: Store, tmp_path: Path) -> None:
    model = HostedModel.load(ModelSpec(name="classifier", path=_write_model(tmp_path / "tiny.onnx"), threshold=0.5))
    whole = make_window(fs_hz=FS, realistic=True, seed=3)
    base = make_window(fs_hz=FS, realistic=True, seed=4)
    samples = base.samples.copy()
    samples[:, 300:420] = 0
    masked = dataclasses.replace(base, samples=samples, gaps=((300, 420),))
    for w in (whole, masked):
        await store.store_window(w)
    lossy_alert = make_alert(window_id=masked.window_id)
    whole_alert = make_alert(window_id=whole.window_id, onset_us=whole.t0_us + 1)
    await store.store_alert(lossy_alert)
    await store.store_alert(whole_alert)
    assert (await store.load_window(masked.window_id)).gaps == ((300, 420),)
    worker = ModelWorker(store, [model], poll_s=0.01)
    assert await worker.poll_once() == 1
    assert worker.counters.windows_masked == 1 and worker.counters.windows_missing == 0
    assert await store.results_for_alert(lossy_alert.alert_id) == []
    assert len(await store.results_for_alert(whole_alert.alert_id)) == 1
    assert await worker.poll_once() == 0 and worker.counters.windows_masked == 1   # not retried
