"""The Prometheus contract: the cloud's and the edge's ``/metrics`` pass ``promtool check metrics``.

``promtool`` (Debian package ``prometheus``) is the outside tool Prometheus users lint exporters
with: counters must be counters named ``*_total``, every family needs a help text, names follow the
conventions. Each test scrapes a real server over HTTP (the cloud app under uvicorn over a real
store with real workers' counters; the edge agent's exporter) and feeds the body to promtool.
Without promtool the tests skip with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import httpx

from cloud.escalation.escalator import EscalationCounters
from cloud.ingest.worker import IngestWorker
from cloud.model_worker.worker import ModelWorkerCounters
from cloud.store import upgrade_database
from edge.observability.exporter import Exporter
from edge.observability.metrics import EdgeMetrics
from protocol.topics import alert_topic
from tests.cloud.api_support import CLINICIAN, make_api, serve
from tests.cloud.conftest import make_alert
from tests.conftest import skip_or_fail


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        skip_or_fail("promtool is not installed (Debian: apt-get install -y prometheus)")
    assert found is not None
    return found


def check_metrics(text: str) -> None:
    """Run ``promtool check metrics`` on ``text``; fail with its findings unless it exits 0."""
    done = subprocess.run([promtool(), "check", "metrics"], input=text.encode(), capture_output=True, timeout=60,
                          check=False)
    findings = (done.stdout + done.stderr).decode(errors="replace").strip()
    assert done.returncode == 0, f"promtool check metrics exited {done.returncode}:\n{findings}"
    assert findings == "", findings


def families(text: str) -> dict[str, str]:
    """``{family name: type}`` from the ``# TYPE`` lines (text format 0.0.4 names counters ``*_total``)."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


async def test_the_cloud_metrics_pass_promtool_with_real_counters(tmp_path: Path) -> None:
    tool = promtool()
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    async with make_api(url) as api:
        worker = IngestWorker(api.store, client_id="promtool-test", enforce_registry=False)
        api.app.state.ctx.metrics.add_source("ingest", worker.counters.as_dict)
        api.app.state.ctx.metrics.add_source("escalation", EscalationCounters().as_dict)
        api.app.state.ctx.metrics.add_source("models", ModelWorkerCounters(rejected={"stress": 2}).as_dict)
        await api.store.store_alert(make_alert())
        await worker.handle_batch([(alert_topic("pat-1"), b"not a message")])
        async with serve(api.app) as base, httpx.AsyncClient(base_url=base, timeout=30) as c:
            assert (await c.get("/api/me")).status_code == 401            # a refusal, counted
            await c.post("/api/auth/login", json={"username": CLINICIAN[0], "password": "wrong"})
            r = await c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert tool
    check_metrics(r.text)
    kinds = families(r.text)
    for name in ("ecgstream_cloud_api_rejected", "ecgstream_cloud_logins", "ecgstream_cloud_store_alerts_stored",
                 "ecgstream_cloud_ingest_received", "ecgstream_cloud_ingest_rejected",
                 "ecgstream_cloud_escalation_escalations", "ecgstream_cloud_models_rejected"):
        assert kinds.get(f"{name}_total") == "counter", (name, kinds)
    assert kinds["ecgstream_cloud_feed_clients"] == "gauge"
    assert not [n for n, t in kinds.items() if t == "gauge" and n.endswith("_total")]
    assert re.search(r"^ecgstream_cloud_store_alerts_stored_total 1\.0$", r.text, re.M)
    assert re.search(r'^ecgstream_cloud_api_rejected_total\{reason="unauthenticated"\} 1\.0$', r.text, re.M)
    assert re.search(r"^ecgstream_cloud_ingest_received_total 1\.0$", r.text, re.M)
    assert re.search(r'^ecgstream_cloud_models_rejected_total\{model="stress"\} 2\.0$', r.text, re.M)
    helps = dict(re.findall(r"^# HELP (\S+) (.+)$", r.text, re.M))
    assert all(len(h.split()) >= 3 for h in helps.values()), helps  # a sentence, not the key's name


def test_the_edge_exporter_metrics_pass_promtool() -> None:
    promtool()
    metrics = EdgeMetrics("gw-1", version="0.1")
    metrics.frames_received.labels("ble").inc(10)
    metrics.windows_processed.inc(2)
    metrics.inference_latency.labels("reconstruction").observe(0.004)
    exporter = Exporter(metrics, 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        exporter.close()
    check_metrics(text)
    assert "counter" in families(text).values()
