"""The store methods the alert service adds, on SQLite and PostgreSQL: alert queries, latest per patient,
windows, assignment, model results, feed cursors; and the API itself over each backend."""

from __future__ import annotations

import asyncio

from cloud.api.feed import SeqCursor
from cloud.store import Store
from tests.cloud.api_support import CLINICIAN, make_api
from tests.cloud.conftest import T0_US, make_alert, make_window


async def test_query_alerts_filters_and_orders(store: Store) -> None:
    vt = make_alert("pat-1")
    lead = make_alert("pat-1", alert_type="lead_off", category="technical", priority="low", family="lead_off")
    af = make_alert("pat-2", alert_type="af", priority="medium", family="af")
    for a in (vt, lead, af):
        await store.store_alert(a)
    await store.store_alert(make_alert("pat-2", event="cleared", episode_id=af.alert_id, alert_type="af",
                                       priority="medium", family="af"))
    ids = lambda alerts: [a.alert.alert_id for a in alerts]  # noqa: E731
    newest = await store.query_alerts()
    assert ids(newest)[1:] == [af.alert_id, lead.alert_id, vt.alert_id]
    assert ids(await store.query_alerts(patient_id="pat-1", category="technical")) == [lead.alert_id]
    assert ids(await store.query_alerts(active=True)) == [lead.alert_id, vt.alert_id]
    assert ids(await store.query_alerts(after_seq=newest[-1].seq, limit=2)) == [lead.alert_id, af.alert_id]
    latest = await store.latest_alerts(["pat-1", "pat-2", "pat-3"], depth=2)
    # latest onset first (make_alert's onsets are equal here, so the later stored); the clear came last
    assert {p: ids(a) for p, a in latest.items()} == {"pat-1": [lead.alert_id, vt.alert_id],
                                                      "pat-2": [newest[0].alert.alert_id, af.alert_id]}
    assert ids(await store.alerts_by_seq([newest[-1].seq, 10**9])) == [vt.alert_id]
    assert await store.last_alert_seq() == newest[0].seq


async def test_windows_listing_and_latest(store: Store) -> None:
    w1, w2 = make_window("pat-1"), make_window("pat-1", t0_us=T0_US + 10_000_000)
    w3 = make_window("pat-2", device_id="dev-2")
    for w in (w1, w2, w3):
        await store.store_window(w)
    assert [w.window_id for w in await store.list_windows(patient_id="pat-1")] == [w2.window_id, w1.window_id]
    assert [w.window_id for w in await store.list_windows(t0_from=T0_US + 1)] == [w2.window_id]
    assert (await store.window_meta(w3.window_id)).patient_id == "pat-2"
    assert set(await store.last_window_received(["pat-1", "pat-2", "pat-3"])) == {"pat-1", "pat-2"}


async def test_assignment_and_audit_cursor(store: Store) -> None:
    await store.add_patient("pat-1", "Ada")
    start = await store.last_audit_id()
    patient = await store.assign_patient("pat-1", "dr.osei", by="nurse.kim")
    assert (patient.assigned_to, patient.display_name) == ("dr.osei", "Ada")
    await store.audit("dr.osei", "view_alert", "alert:x")
    entries = await store.audit_after(start, actions=("assign",))
    assert [(e.user, e.action, e.target, e.details) for e in entries] == [
        ("nurse.kim", "assign", "patient:pat-1", {"assigned_to": "dr.osei"})]
    assert [e.action for e in await store.audit_by_ids([entries[0].id, entries[0].id + 1])] == ["assign",
                                                                                                  "view_alert"]


async def test_model_results_are_deduplicated_and_found_by_alert_or_window(store: Store) -> None:
    w = make_window("pat-1")
    alert = make_alert("pat-1", window_id=w.window_id)
    await store.store_alert(alert)
    assert await store.store_model_result(w.window_id, "stress", "1.0", {"score": 0.3}, patient_id="pat-1")
    assert not await store.store_model_result(w.window_id, "stress", "1.0", {"score": 0.9}, patient_id="pat-1")
    assert await store.store_model_result(w.window_id, "merl", "0.1", {"label": "VT"}, patient_id="pat-1",
                                          alert_id=alert.alert_id)
    by_window = await store.results_for_window(w.window_id)
    assert [(r.model, r.outputs) for r in by_window] == [("stress", {"score": 0.3}), ("merl", {"label": "VT"})]
    assert await store.results_for_alert(alert.alert_id) == by_window  # its own, and its window's
    assert await store.results_for_alert(make_alert("pat-1").alert_id) == []


async def test_listeners_hear_this_stores_changes(store: Store) -> None:
    heard: list[str] = []
    store.add_listener(heard.append)
    alert = make_alert("pat-1")
    await store.store_alert(alert)
    await store.store_alert(alert)  # a duplicate changes nothing
    await store.acknowledge(alert.alert_id, "dr.osei")
    store.remove_listener(heard.append)
    await store.store_alert(make_alert("pat-1"))
    assert heard == ["alert", "ack"]


def test_seq_cursor_redelivers_a_late_commit_once() -> None:
    now = [0.0]
    c = SeqCursor(10, clock=lambda: now[0], grace_s=10)
    assert c.take(11) and c.take(14)  # 12 and 13 skipped: maybe not committed yet
    assert c.pending() == [12, 13]
    assert c.take(13) and not c.take(13) and not c.take(14)
    now[0] = 11.0
    assert c.pending() == []  # 12 never came (a rolled-back insert): given up after the grace period
    assert not c.take(12)


async def test_the_api_on_each_backend(migrated_url: str) -> None:
    async with make_api(migrated_url) as api:
        await api.store.add_patient("pat-1", "Ada")
        alert = make_alert("pat-1")
        await api.store.store_alert(alert)
        async with api.as_user(CLINICIAN) as c:
            ward, listed, ack = await asyncio.gather(
                c.get("/api/ward"), c.get("/api/alerts", params={"active": "true"}),
                c.post(f"/api/alerts/{alert.alert_id}/ack", json={"note": "ok"}))
            assert ward.json()["patients"][0]["state"] == "alarm"
            assert [a["alert_id"] for a in listed.json()["alerts"]] == [alert.alert_id]
            assert ack.status_code == 200
            assert (await c.get(f"/api/alerts/{alert.alert_id}")).json()["acknowledged_by"] == CLINICIAN[0]
