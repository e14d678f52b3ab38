"""FHIR export over HTTP: a stored window and an alarm episode come back as valid R4B resources (checked by
fhir.resources and by the official R4B JSON schema), audited, the same episode resource whichever of its
alerts is asked for."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from cloud.interop.fhir import reconstructed_observation_id
from cloud.store import upgrade_database
from tests.cloud.api_support import ADMIN, CLINICIAN, Api, assert_valid_fhir, make_api
from tests.cloud.conftest import T0_US, make_alert, make_window


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    async with make_api(url) as a:
        await a.store.add_patient("pat-1", "Ada")
        await a.store.add_device("dev-1", "pat-1")
        yield a


async def test_a_window_exports_as_an_observation_with_every_lead(api: Api) -> None:
    window = make_window(fs_hz=125, realistic=True)
    await api.store.store_window(window)
    async with api.as_user(CLINICIAN) as c:
        r = await c.get(f"/api/windows/{window.window_id}/fhir")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    bundle = assert_valid_fhir(r.json())
    observations = [e["resource"] for e in bundle["entry"]]
    for obs in observations:
        Observation.model_validate(obs)
    measured, rebuilt = observations
    assert (measured["id"], rebuilt["id"]) == (window.window_id, reconstructed_observation_id(window.window_id))
    assert len(measured["component"]) + len(rebuilt["component"]) == len(window.leads)
    assert rebuilt["method"]["text"].startswith("reconstructed from II, V1, V5 by ")
    row = {lead: i for i, lead in enumerate(window.leads)}
    for obs in observations:
        for comp in obs["component"]:
            sd = comp["valueSampledData"]
            counts = np.array([int(v) for v in sd["data"].split()])
            lead = next(name for name in row if f"Lead {name} (" in comp["code"]["text"])
            np.testing.assert_allclose(counts * float(sd["factor"]), window.millivolts()[row[lead]], atol=1e-9)
    entries = await api.store.audit_log(user=CLINICIAN[0])
    assert any(e.action == "export_fhir" and e.target == f"window:{window.window_id}" for e in entries)


async def test_an_alert_exports_as_a_bundle_with_its_window_and_acknowledgement(api: Api) -> None:
    window = make_window(fs_hz=125)
    alert = make_alert(window_id=window.window_id)
    await api.store.store_window(window)
    await api.store.store_alert(alert)
    async with api.as_user(CLINICIAN) as c:
        assert (await c.post(f"/api/alerts/{alert.alert_id}/ack", json={"note": ""})).status_code == 200
        r = await c.get(f"/api/alerts/{alert.alert_id}/fhir")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    bundle = assert_valid_fhir(r.json())
    Bundle.model_validate(bundle)
    types = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert types == ["DetectedIssue", "Observation", "Observation"]
    issue = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DetectedIssue")
    assert CLINICIAN[0] in r.text and issue["severity"] == "high"


async def test_unknown_ids_and_bad_ids_are_clear_errors(api: Api) -> None:
    async with api.as_user(ADMIN) as c:
        missing = await c.get("/api/alerts/00000000-0000-4000-8000-000000000000/fhir")
        bad = await c.get("/api/windows/not-a-uuid/fhir")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert bad.status_code in (400, 422) and "error" in bad.json()
    async with api.client() as anonymous:
        assert (await anonymous.get("/api/alerts/00000000-0000-4000-8000-000000000000/fhir")).status_code == 401


async def test_every_alert_of_an_episode_exports_the_same_latest_state(api: Api) -> None:
    window = make_window(fs_hz=125, seconds=2.0)
    raised = make_alert(priority="medium", window_id=window.window_id, alert_type="vt_run")
    escalated = make_alert(priority="high", event="escalated", episode_id=raised.alert_id)
    cleared = make_alert(priority="high", event="cleared", episode_id=raised.alert_id)
    cleared = dataclasses.replace(cleared, details={**cleared.details, "onset_s": 10.0, "at_s": 55.0})
    await api.store.store_window(window)
    for a in (raised, escalated, cleared):
        await api.store.store_alert(a)
    async with api.as_user(CLINICIAN) as c:
        answers = [(await c.get(f"/api/alerts/{a.alert_id}/fhir")).json() for a in (raised, escalated, cleared)]
    issues = [assert_valid_fhir(b)["entry"][0]["resource"] for b in answers]
    assert issues[0] == issues[1] == issues[2]
    issue = issues[0]
    assert issue["id"] == raised.alert_id and issue["severity"] == "high"
    assert issue["code"]["text"] == escalated.message
    assert issue["identifiedPeriod"]["start"].startswith("2025-") and issue["patient"]["type"] == "Patient"
    end = datetime.fromisoformat(issue["identifiedPeriod"]["end"].replace("Z", "+00:00"))
    assert round(end.timestamp() * 1e6) == T0_US + 45_000_000
    assert issue["text"]["status"] == "generated" and "cleared at" in issue["text"]["div"]


async def test_a_cleared_technical_alarm_exports_a_flag_with_its_end(api: Api) -> None:
    raised = make_alert(category="technical", alert_type="lead_off", priority="low", family="lead_off")
    cleared = make_alert(category="technical", alert_type="lead_off", priority="low", family="lead_off",
                         event="cleared", episode_id=raised.alert_id)  # says not when: the cloud's receipt does
    await api.store.store_alert(raised)
    await api.store.store_alert(cleared)
    async with api.as_user(CLINICIAN) as c:
        r = await c.get(f"/api/alerts/{raised.alert_id}/fhir")
    flag = assert_valid_fhir(r.json())["entry"][0]["resource"]
    assert flag["resourceType"] == "Flag" and flag["status"] == "inactive"
    assert flag["period"]["end"] >= flag["period"]["start"]
