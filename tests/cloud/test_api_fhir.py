"""FHIR export over HTTP: a stored window and an alert come back as valid R4B resources, audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from cloud.store import upgrade_database
from tests.cloud.api_support import ADMIN, CLINICIAN, Api, make_api
from tests.cloud.conftest import make_alert, make_window


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
    obs = Observation.model_validate(r.json())
    assert len(obs.component) == len(window.leads)
    first = obs.component[0].valueSampledData
    counts = np.array([int(v) for v in first.data.split()])
    np.testing.assert_allclose(counts * float(first.factor), window.millivolts()[0], atol=1e-9)
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
    assert r.status_code == 200
    bundle = Bundle.model_validate(r.json())
    types = sorted(e.resource.get_resource_type() for e in bundle.entry)
    assert types == ["DetectedIssue", "Observation"]
    issue = next(e.resource for e in bundle.entry if e.resource.get_resource_type() == "DetectedIssue")
    assert CLINICIAN[0] in r.text and issue.severity == "high"


async def test_unknown_ids_and_bad_ids_are_clear_errors(api: Api) -> None:
    async with api.as_user(ADMIN) as c:
        missing = await c.get("/api/alerts/00000000-0000-4000-8000-000000000000/fhir")
        bad = await c.get("/api/windows/not-a-uuid/fhir")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert bad.status_code in (400, 422) and "error" in bad.json()
    async with api.client() as anonymous:
        assert (await anonymous.get("/api/alerts/00000000-0000-4000-8000-000000000000/fhir")).status_code == 401
