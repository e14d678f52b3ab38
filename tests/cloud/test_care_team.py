"""Care-team scoping on SQLite and PostgreSQL: with ``[accounts] care_team_scoping`` a clinician sees
only the patients assigned to them or to their ward/team, on every route that returns patient data;
another patient's alert or window answers 404 as if it did not exist; admins see everyone; off by
default (everyone sees everyone)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cloud.config import AccountsConfig
from tests.cloud.api_support import ADMIN, CLINICIAN, WAIT_S, Api, SseReader, fast_settings, make_api, serve
from tests.cloud.conftest import T0_US, make_alert, make_window

NURSE = ("nurse.kim", "nurse-pass-123")


def scoped_settings(on: bool = True) -> Any:
    settings = fast_settings()
    return dataclasses.replace(settings, accounts=dataclasses.replace(settings.accounts, care_team_scoping=on))


async def populate(api: Api) -> dict[str, Any]:
    """pat-1 on the ICU, pat-2 on cardiology, pat-3 on no team but assigned to dr.osei (ICU);
    nurse.kim is on cardiology. One alert and one window per patient."""
    s = api.store
    accounts = api.app.state.ctx.accounts
    await accounts.create_user(*NURSE, "clinician")
    await accounts.set_team(CLINICIAN[0], "icu")
    await accounts.set_team(NURSE[0], "cardio")
    made: dict[str, Any] = {}
    for i, (pid, team) in enumerate((("pat-1", "icu"), ("pat-2", "cardio"), ("pat-3", None)), start=1):
        await s.add_patient(pid, pid.upper())
        await s.add_device(f"dev-{i}", pid)
        if team is not None:
            await s.set_patient_team(pid, team, by="admin")
        window = make_window(pid, device_id=f"dev-{i}", seed=i, t0_us=T0_US + i * 10_000_000)
        await s.store_window(window)
        alert = make_alert(pid, device_id=f"dev-{i}", window_id=window.window_id, onset_us=T0_US + i * 1_000_000)
        await s.store_alert(alert)
        made[pid] = (alert, window)
    await s.assign_patient("pat-3", CLINICIAN[0], by="admin")
    return made


@pytest.fixture
async def scoped(migrated_url: str) -> AsyncIterator[tuple[Api, dict[str, Any]]]:
    async with make_api(migrated_url, scoped_settings()) as api:
        yield api, await populate(api)


async def seen_by(c: httpx.AsyncClient) -> dict[str, set[str]]:
    """The patients each list route shows ``c``'s user."""
    ward = (await c.get("/api/ward")).json()["patients"]
    alerts = (await c.get("/api/alerts")).json()["alerts"]
    windows = (await c.get("/api/windows")).json()["windows"]
    patients = (await c.get("/api/patients")).json()["patients"]
    devices = (await c.get("/api/devices")).json()["devices"]
    return {"ward": {r["patient_id"] for r in ward}, "alerts": {a["patient_id"] for a in alerts},
            "windows": {w["patient_id"] for w in windows}, "patients": {p["patient_id"] for p in patients},
            "devices": {d["patient_id"] for d in devices}}


async def test_a_scoped_clinician_lists_only_their_patients(scoped: tuple[Api, dict[str, Any]]) -> None:
    api, _ = scoped
    async with api.as_user(CLINICIAN) as c:
        seen = await seen_by(c)
        assert seen == dict.fromkeys(seen, {"pat-1", "pat-3"})
        assert (await c.get("/api/alerts", params={"patient_id": "pat-2"})).json()["alerts"] == []
        assert (await c.get("/api/windows", params={"patient_id": "pat-2"})).json()["windows"] == []
    async with api.as_user(NURSE) as c:
        assert all(v == {"pat-2"} for v in (await seen_by(c)).values())
    async with api.as_user(ADMIN) as c:  # admins see everyone
        assert all(v == {"pat-1", "pat-2", "pat-3"} for v in (await seen_by(c)).values())
    await api.app.state.ctx.accounts.create_user("locum", "locum-pass-123", "clinician")
    async with api.as_user(("locum", "locum-pass-123")) as c:  # no team, nobody assigned: sees nobody
        assert all(v == set() for v in (await seen_by(c)).values())


async def test_another_teams_alert_or_window_is_404_as_if_it_did_not_exist(
        scoped: tuple[Api, dict[str, Any]]) -> None:
    api, made = scoped
    alert, window = made["pat-2"]
    mine, my_window = made["pat-1"]
    async with api.as_user(CLINICIAN) as c:
        for path in (f"/api/alerts/{alert.alert_id}", f"/api/alerts/{alert.alert_id}/fhir",
                     f"/api/windows/{window.window_id}", f"/api/windows/{window.window_id}/fhir"):
            r = await c.get(path)
            assert r.status_code == 404, path
            missing = await c.get(path.replace(path.split("/")[3], str(uuid.uuid4())))
            assert r.json()["error"] == missing.json()["error"] == "not_found"
            assert r.json()["detail"].endswith("not found") and missing.json()["detail"].endswith("not found")
        r = await c.post(f"/api/alerts/{alert.alert_id}/ack", json={"note": "not mine"})
        assert r.status_code == 404
        assert (await c.post("/api/patients/pat-2/assign", json={"username": CLINICIAN[0]})).status_code == 404
        # their own patients' are there
        for path in (f"/api/alerts/{mine.alert_id}", f"/api/windows/{my_window.window_id}",
                     f"/api/alerts/{mine.alert_id}/fhir", f"/api/windows/{my_window.window_id}/fhir"):
            assert (await c.get(path)).status_code == 200, path
    episode = await api.store.get_episode((await api.store.get_alert(alert.alert_id)).episode_id)
    assert episode.acknowledged_by is None  # the refused acknowledgement changed nothing
    patient = await api.store.get_patient("pat-2")
    assert patient is not None and patient.assigned_to is None
    async with api.as_user(NURSE) as c:  # the patient's own team reaches it
        assert (await c.post(f"/api/alerts/{alert.alert_id}/ack", json={})).status_code == 200


async def test_moving_a_patient_or_a_user_between_teams(scoped: tuple[Api, dict[str, Any]]) -> None:
    api, made = scoped
    alert, _ = made["pat-2"]
    async with api.as_user(CLINICIAN) as c:
        r = await c.put("/api/patients/pat-2/team", json={"team": "icu"})
        assert r.status_code == 403  # only admins move patients and users between teams
        assert (await c.put(f"/api/users/{CLINICIAN[0]}/team", json={"team": "cardio"})).status_code == 403
    async with api.as_user(ADMIN) as c:
        r = await c.put("/api/patients/pat-2/team", json={"team": "icu"})
        assert r.status_code == 200 and r.json()["team"] == "icu"
        assert (await c.put("/api/patients/nobody/team", json={"team": "icu"})).status_code == 404
        assert (await c.put("/api/patients/pat-2/team", json={"team": " bad"})).status_code == 422
    async with api.as_user(CLINICIAN) as c:
        assert (await c.get(f"/api/alerts/{alert.alert_id}")).status_code == 200
    async with api.as_user(ADMIN) as c:
        r = await c.put(f"/api/users/{CLINICIAN[0]}/team", json={"team": None})
        assert r.status_code == 200 and r.json()["team"] is None
        users = {u["username"]: u["team"] for u in (await c.get("/api/users")).json()["users"]}
        assert users == {ADMIN[0]: None, CLINICIAN[0]: None, NURSE[0]: "cardio"}
        assert (await c.put("/api/users/nobody/team", json={"team": "icu"})).status_code == 404
    async with api.as_user(CLINICIAN) as c:  # no team now: only the patient assigned to them
        assert all(v == {"pat-3"} for v in (await seen_by(c)).values())
    actions = [(e.action, e.target) for e in await api.store.audit_log(user=ADMIN[0])]
    assert ("set_team", "patient:pat-2") in actions and ("set_team", f"user:{CLINICIAN[0]}") in actions


async def test_the_live_feed_carries_only_the_users_patients(scoped: tuple[Api, dict[str, Any]]) -> None:
    api, _ = scoped
    token = await api.token(CLINICIAN)
    async with (serve(api.app) as base,
                httpx.AsyncClient(base_url=base, timeout=WAIT_S, headers={"Authorization": f"Bearer {token}"}) as c,
                c.stream("GET", "/api/events") as r):
        assert r.status_code == 200
        feed = SseReader(r)
        theirs = make_alert("pat-2", device_id="dev-2")
        await api.store.store_alert(theirs)
        ours = make_alert("pat-1", device_id="dev-1")
        await api.store.store_alert(ours)
        _, _, data = await feed.until(lambda e, i, d: e == "alert")
        assert data["alert_id"] == ours.alert_id  # pat-2's alert, stored first, never came
        _, _, row = await feed.until(lambda e, i, d: e == "status")
        assert row["patient_id"] == "pat-1"


async def test_scoping_is_off_by_default(migrated_url: str) -> None:
    assert AccountsConfig().care_team_scoping is False
    async with make_api(migrated_url, scoped_settings(on=False)) as api:
        made = await populate(api)
        async with api.as_user(CLINICIAN) as c:
            assert all(v == {"pat-1", "pat-2", "pat-3"} for v in (await seen_by(c)).values())
            assert (await c.get(f"/api/alerts/{made['pat-2'][0].alert_id}")).status_code == 200
