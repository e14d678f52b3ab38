"""An alert's ECG evidence over HTTP: the alert detail returns the windows the edge named as covering
the alarm's deciding samples (a scripted VT and asystole through the real edge agent, in stream time),
those already stored, in time order; a window that arrives later shows up then."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.store import upgrade_database
from ecgstream.edge_sim import run_scenario_into_agent
from edge.agent import AgentConfig, EdgeAgent, MemorySink
from firmware_sim.scenario import parse_scenario
from protocol.messages import Alert
from tests.cloud.api_support import CLINICIAN, Api, make_api
from tests.cloud.conftest import make_window

WARD = """
name = "api-evidence"
duration_s = 60
seed = 4

[[patient]]
id = "pat-1"
device = "dev-1"
rhythm = [ { at = 0, name = "sinus" }, { at = 25, name = "vt", heart_rate = 180 }, { at = 40, name = "sinus" } ]

[[patient]]
id = "pat-2"
device = "dev-2"
rhythm = [ { at = 0, name = "sinus" }, { at = 28, name = "asystole" }, { at = 40, name = "sinus" } ]
"""


@pytest.fixture(scope="module")
def edge_run() -> MemorySink:
    sink = MemorySink()
    agent = EdgeAgent(AgentConfig(patients={"dev-1": "pat-1", "dev-2": "pat-2"}), sink)   # rules only: measured leads
    asyncio.run(run_scenario_into_agent(parse_scenario(WARD), agent))
    return sink


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    async with make_api(url) as a:
        for pid, dev in (("pat-1", "dev-1"), ("pat-2", "dev-2")):
            await a.store.add_patient(pid, pid)
            await a.store.add_device(dev, pid, profile="ecgstream-250")
        yield a


def _raised(sink: MemorySink, alert_type: str) -> Alert:
    return next(a for a in sink.alerts if a.alert_type == alert_type and a.details.get("event") in ("raised", "escalated"))


@pytest.mark.parametrize("alert_type", ["extreme_tachycardia", "asystole"])   # what the rules alone call them
async def test_the_alert_detail_returns_its_evidence_windows(api: Api, edge_run: MemorySink, alert_type: str) -> None:
    alert = _raised(edge_run, alert_type)
    named = alert.details["evidence_window_ids"]
    windows = {w.window_id: w for w in edge_run.windows}
    assert len(named) >= 2 and set(named) <= set(windows)
    late = named[-1]
    for w in edge_run.windows:
        if w.window_id != late:
            await api.store.store_window(w)
    await api.store.store_alert(alert)
    async with api.as_user(CLINICIAN) as c:
        body = (await c.get(f"/api/alerts/{alert.alert_id}")).json()
        assert body["evidence_window_ids"] == named and body["window_id"] in named
        shown = [m["window_id"] for m in body["evidence_windows"]]
        assert shown == [i for i in sorted(named[:-1], key=lambda i: windows[i].t0_us)]   # the late one: not yet
        assert all(m["patient_id"] == alert.patient_id for m in body["evidence_windows"])
        await api.store.store_window(windows[late])                  # arrives after the alert
        body = (await c.get(f"/api/alerts/{alert.alert_id}")).json()
        assert [m["window_id"] for m in body["evidence_windows"]] == sorted(named, key=lambda i: windows[i].t0_us)
        first = body["evidence_windows"][0]
        strip = (await c.get(f"/api/windows/{first['window_id']}")).json()
        assert strip["leads"] == ["II", "V1", "V5"] and strip["n_samples"] == 1250
        listed = (await c.get("/api/alerts", params={"patient_id": alert.patient_id})).json()["alerts"]
        assert listed[0]["details"]["evidence_window_ids"] == named


async def test_an_alert_cannot_show_another_patients_window(api: Api, edge_run: MemorySink) -> None:
    alert = _raised(edge_run, "extreme_tachycardia")
    other = make_window("pat-2", device_id="dev-2")
    await api.store.store_window(other)
    forged = Alert(**{**alert.__dict__, "alert_id": Alert.new_id(),
                      "details": {**alert.details, "evidence_window_ids": [other.window_id]}, "window_id": None})
    await api.store.store_alert(forged)
    async with api.as_user(CLINICIAN) as c:
        body = (await c.get(f"/api/alerts/{forged.alert_id}")).json()
    assert body["evidence_window_ids"] == [other.window_id] and body["evidence_windows"] == []


async def test_a_window_with_gaps_comes_back_with_its_gaps(api: Api) -> None:
    """Lost frames the edge could not bridge travel as gap ranges; the strip API returns them so the
    dashboard draws them as gaps, not as a flat line."""
    from dataclasses import replace

    window = make_window("pat-1", device_id="dev-1")
    gapped = replace(window, samples=window.samples.copy(), gaps=((100, 180), (2000, 2100)))
    gapped.samples[:, 100:180] = 0
    gapped.samples[:, 2000:2100] = 0
    await api.store.store_window(gapped)
    async with api.as_user(CLINICIAN) as c:
        body = (await c.get(f"/api/windows/{gapped.window_id}")).json()
    assert body["gaps"] == [[100, 180], [2000, 2100]]
