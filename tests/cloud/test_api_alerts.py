"""Ward overview, alert lists and filters, acknowledge, assign and windows over HTTP, on a real SQLite store."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from cloud.store import upgrade_database
from protocol.leads import STANDARD_LEADS
from protocol.messages import DeviceStatus
from tests.cloud.api_support import ADMIN, CLINICIAN, Api, make_api
from tests.cloud.conftest import T0_US, make_alert, make_window


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    async with make_api(url) as a:
        for pid, name, dev in (("pat-1", "Ada", "dev-1"), ("pat-2", "Ben", "dev-2"), ("pat-3", "Cy", "dev-3")):
            await a.store.add_patient(pid, name)
            await a.store.add_device(dev, pid, profile="ecgstream-500")
        yield a


async def test_ward_reflects_alerts_and_device_status(api: Api) -> None:
    s = api.store
    vt = make_alert("pat-1", device_id="dev-1")
    await s.store_alert(vt)
    await s.store_alert(make_alert("pat-2", device_id="dev-2", alert_type="lead_off", category="technical",
                                   priority="low", family="lead_off"))
    await s.upsert_device_status(DeviceStatus("dev-1", 1_000, battery_pct=81, connected=True))
    await s.upsert_device_status(DeviceStatus("dev-2", 1_000, battery_pct=12, connected=True, lead_off=("V1",)))
    await s.upsert_device_status(DeviceStatus("dev-3", 1_000, battery_pct=55, connected=True))
    async with api.as_user(CLINICIAN) as c:
        rows = {r["patient_id"]: r for r in (await c.get("/api/ward")).json()["patients"]}
    assert list(rows) == ["pat-1", "pat-2", "pat-3"]
    one, two, three = rows["pat-1"], rows["pat-2"], rows["pat-3"]
    assert (one["state"], one["active_clinical"], one["active_technical"]) == ("alarm", 1, 0)
    assert one["display_name"] == "Ada" and one["device_id"] == "dev-1" and one["battery_pct"] == 81
    assert one["last_alert"]["alert_id"] == vt.alert_id and one["heart_rate_bpm"] == 182.0
    assert (two["state"], two["active_technical"], two["lead_off"]) == ("technical", 1, ["V1"])
    assert (three["state"], three["last_alert"], three["heart_rate_bpm"]) == ("ok", None, None)
    assert three["connected"] is True and three["last_seen_us"] is not None
    # a clear ends the alarm; a disconnected device is offline
    await s.store_alert(make_alert("pat-1", device_id="dev-1", event="cleared", episode_id=vt.alert_id))
    await s.upsert_device_status(DeviceStatus("dev-3", 2_000, connected=False))
    async with api.as_user(CLINICIAN) as c:
        rows = {r["patient_id"]: r for r in (await c.get("/api/ward")).json()["patients"]}
    assert rows["pat-1"]["state"] == "ok" and rows["pat-1"]["active_clinical"] == 0
    assert rows["pat-3"]["state"] == "offline" and rows["pat-3"]["connected"] is False


async def test_ward_heart_rate_is_the_latest_known_one(api: Api) -> None:
    vt = make_alert("pat-1", onset_us=T0_US)
    later = make_alert("pat-1", onset_us=T0_US + 5_000_000, alert_type="lead_off", category="technical",
                       priority="medium", family="lead_off")
    later = dataclasses.replace(later, details={k: v for k, v in later.details.items() if k != "rate_bpm"})
    await api.store.store_alert(later)
    await api.store.store_alert(vt)  # stored last, but its onset is older
    async with api.as_user(CLINICIAN) as c:
        row = {r["patient_id"]: r for r in (await c.get("/api/ward")).json()["patients"]}["pat-1"]
    assert row["last_alert"]["alert_id"] == later.alert_id  # the newest onset
    assert (row["heart_rate_bpm"], row["heart_rate_us"]) == (182.0, T0_US)  # from the newest alert with one


async def test_alert_list_filters(api: Api) -> None:
    s = api.store
    vt = make_alert("pat-1", onset_us=T0_US)
    af = make_alert("pat-2", alert_type="af", priority="medium", family="af", device_id="dev-2", onset_us=T0_US + 1)
    lead = make_alert("pat-1", alert_type="lead_off", category="technical", priority="low", family="lead_off",
                      onset_us=T0_US + 2)
    for a in (vt, af, lead):
        await s.store_alert(a)
    await s.store_alert(make_alert("pat-2", event="cleared", episode_id=af.alert_id, alert_type="af",
                                   priority="medium", family="af", device_id="dev-2"))

    async def ids(c, **params) -> list[str]:
        r = await c.get("/api/alerts", params=params)
        assert r.status_code == 200, r.text
        return [a["alert_id"] for a in r.json()["alerts"]]

    async with api.as_user(CLINICIAN) as c:
        everything = await ids(c)
        assert len(everything) == 4 and everything[1:] == [lead.alert_id, af.alert_id, vt.alert_id]  # newest first
        assert await ids(c, patient_id="pat-1") == [lead.alert_id, vt.alert_id]
        assert await ids(c, category="technical") == [lead.alert_id]
        assert await ids(c, category="clinical", active="true") == [vt.alert_id]
        assert set(await ids(c, active="false")) == {af.alert_id, everything[0]}  # the AF episode was cleared
        assert await ids(c, limit=2) == everything[:2]
        first = (await c.get("/api/alerts", params={"limit": 1000})).json()["alerts"][-1]["seq"]
        assert await ids(c, after_seq=first) == list(reversed(everything[:-1]))  # a cursor: ascending
        one = (await c.get(f"/api/alerts/{vt.alert_id}")).json()
    assert one["category"] == "clinical" and one["priority"] == "high" and one["event"] == "raised"
    assert one["reconstructed_leads"] == {"V2": 0.05, "aVF": 0.02} and one["acknowledged"] is False
    assert one["escalation_level"] == 0 and one["results"] == []
    views = await s.audit_log(user=CLINICIAN[0], target=f"alert:{vt.alert_id}")
    assert [e.action for e in views] == ["view_alert"]


async def test_acknowledge_is_audited_idempotent_and_shown_on_the_episode(api: Api) -> None:
    s = api.store
    raised = make_alert("pat-1")
    escalated = make_alert("pat-1", event="escalated", episode_id=raised.alert_id)
    await s.store_alert(raised)
    await s.store_alert(escalated)
    async with api.as_user(CLINICIAN) as c:
        r = await c.post(f"/api/alerts/{escalated.alert_id}/ack", json={"note": "called the ward"})
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["episode_id"] == raised.alert_id and first["user"] == CLINICIAN[0]
        assert first["note"] == "called the ward"
        again = await c.post(f"/api/alerts/{raised.alert_id}/ack")  # no body, other message, same episode
        assert again.status_code == 200
        assert again.json()["acknowledged_by"] == CLINICIAN[0]
        assert again.json()["acknowledged_us"] == first["at_us"]  # the episode keeps the first ack
        for a in (await c.get("/api/alerts")).json()["alerts"]:
            assert a["acknowledged"] is True and a["acknowledged_by"] == CLINICIAN[0]
    episode = await s.get_episode(raised.alert_id)
    assert episode.acknowledged_by == CLINICIAN[0] and episode.active  # only the edge's clear ends it
    acks = await s.audit_log(target=f"episode:{raised.alert_id}")
    assert [(e.user, e.action) for e in acks] == [(CLINICIAN[0], "acknowledge")] * 2
    assert acks[0].details == {"note": "called the ward", "alert_id": escalated.alert_id}


async def test_assign_patient(api: Api) -> None:
    async with api.as_user(CLINICIAN) as c:
        r = await c.post("/api/patients/pat-2/assign", json={"username": CLINICIAN[0]})
        assert r.status_code == 200 and r.json()["assigned_to"] == CLINICIAN[0]
        rows = {r["patient_id"]: r for r in (await c.get("/api/ward")).json()["patients"]}
        assert rows["pat-2"]["assigned_to"] == CLINICIAN[0] and rows["pat-1"]["assigned_to"] is None
        r = await c.post("/api/patients/pat-2/assign", json={"username": ADMIN[0]})  # to someone else
        assert r.json()["assigned_to"] == ADMIN[0]
        r = await c.post("/api/patients/pat-2/assign", json={"username": None})
        assert r.json()["assigned_to"] is None
        patients = {p["patient_id"]: p for p in (await c.get("/api/patients")).json()["patients"]}
        assert patients["pat-2"]["assigned_to"] is None
    log = await api.store.audit_log(target="patient:pat-2")
    assert [(e.user, e.action, e.details["assigned_to"]) for e in log] == [
        (CLINICIAN[0], "assign", CLINICIAN[0]), (CLINICIAN[0], "assign", ADMIN[0]), (CLINICIAN[0], "assign", None)]


async def test_registry_writes_by_admin(api: Api) -> None:
    async with api.as_user(ADMIN) as c:
        r = await c.post("/api/patients", json={"patient_id": "pat-9", "display_name": "Dee"})
        assert r.status_code == 201 and r.json()["display_name"] == "Dee"
        r = await c.post("/api/devices", json={"device_id": "dev-9", "patient_id": "pat-9", "profile": "polar-h10"})
        assert r.status_code == 201 and r.json()["patient_id"] == "pat-9"
        r = await c.put("/api/devices/dev-9/patient", json={"patient_id": "pat-1"})
        assert r.status_code == 200 and r.json()["patient_id"] == "pat-1"
        r = await c.put("/api/devices/dev-9/patient", json={"patient_id": None})
        assert r.json()["patient_id"] is None
        devices = {d["device_id"]: d for d in (await c.get("/api/devices")).json()["devices"]}
    assert devices["dev-9"]["profile"] == "polar-h10" and devices["dev-9"]["patient_id"] is None
    stored = await api.store.get_device("dev-9")
    assert stored is not None and stored.patient_id is None
    async with api.as_user(CLINICIAN) as c:  # clinicians read the registry but do not write it
        assert (await c.post("/api/patients", json={"patient_id": "pat-10"})).status_code == 403
        assert (await c.post("/api/devices", json={"device_id": "dev-10"})).status_code == 403
        assert (await c.put("/api/devices/dev-9/patient", json={"patient_id": "pat-1"})).status_code == 403
        assert len((await c.get("/api/patients")).json()["patients"]) == 4
    assert await api.store.get_patient("pat-10") is None


async def test_window_json_has_12_leads_and_uncertainty_of_reconstructed_leads(api: Api) -> None:
    w = make_window("pat-1", realistic=True)
    await api.store.store_window(w)
    await api.store.store_window(make_window("pat-1", t0_us=T0_US + 10_000_000, seed=1))
    await api.store.store_window(make_window("pat-2", device_id="dev-2", seed=2))
    async with api.as_user(CLINICIAN) as c:
        listed = (await c.get("/api/windows", params={"patient_id": "pat-1"})).json()["windows"]
        assert [x["t0_us"] for x in listed] == [T0_US + 10_000_000, T0_US]  # newest first
        assert (await c.get("/api/windows", params={"patient_id": "pat-1", "to_us": T0_US + 1})).json()[
            "windows"][0]["window_id"] == w.window_id
        r = await c.get(f"/api/windows/{w.window_id}")
    assert r.status_code == 200
    body = r.json()
    assert body["leads"] == list(STANDARD_LEADS)
    assert set(body["reconstructed"]) == set(STANDARD_LEADS) - {"II", "V1", "V5"}
    samples = np.array(body["samples_mv"])
    assert samples.shape == (12, w.n_samples)
    np.testing.assert_allclose(samples, w.millivolts(), atol=1e-6)
    assert set(body["uncertainty_mv"]) == set(body["reconstructed"])
    for i, lead in enumerate(w.reconstructed):
        np.testing.assert_allclose(body["uncertainty_mv"][lead], w.uncertainty_mv()[i], atol=1e-6)
    assert [e.action for e in await api.store.audit_log(target=f"window:{w.window_id}")] == ["view_window"]


async def test_alert_json_carries_model_results(api: Api) -> None:
    w = make_window("pat-1")
    alert = make_alert("pat-1", window_id=w.window_id)
    await api.store.store_window(w)
    await api.store.store_alert(alert)
    await api.store.store_model_result(w.window_id, "merl", "0.1", {"label": "VT", "score": 0.9}, patient_id="pat-1",
                                       alert_id=alert.alert_id)
    async with api.as_user(CLINICIAN) as c:
        results = (await c.get(f"/api/alerts/{alert.alert_id}")).json()["results"]
        window_results = (await c.get(f"/api/windows/{w.window_id}")).json()["results"]
    assert [(r["model"], r["version"], r["label"]) for r in results] == [("merl", "0.1", "VT")]
    assert window_results == results


async def test_health_and_metrics(api: Api) -> None:
    async with api.client() as c:
        assert (await c.get("/healthz")).json() == {"ok": True, "database": "ok"}
        await c.get("/api/me")  # refused: counted
        text = (await c.get("/metrics")).text
    assert 'ecgstream_cloud_api_rejected_total{reason="unauthenticated"} 1.0' in text
    assert "ecgstream_cloud_store_alerts_stored" in text


async def test_dashboard_is_served_at_root(api: Api) -> None:
    async with api.client() as c:
        r = await c.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
