"""The live feed (Server-Sent Events) under a real uvicorn: alerts from this and other processes, acks,
ward rows, and resuming with Last-Event-ID."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cloud.store import Store, upgrade_database
from protocol.messages import DeviceStatus
from tests.cloud.api_support import CLINICIAN, WAIT_S, Api, SseReader, make_api, serve
from tests.cloud.conftest import make_alert


@pytest.fixture
def url(tmp_path: Path) -> str:
    u = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(u)
    return u


@pytest.fixture
async def api(url: str) -> AsyncIterator[Api]:
    async with make_api(url) as a:
        await a.store.add_patient("pat-1", "Ada")
        await a.store.add_device("dev-1", "pat-1")
        yield a


async def test_feed_delivers_alerts_acks_and_status_and_resumes(api: Api, url: str) -> None:
    before = make_alert("pat-1")
    await api.store.store_alert(before)  # stored before the client connects: not sent
    token = await api.token(CLINICIAN)
    async with serve(api.app) as base, httpx.AsyncClient(base_url=base, timeout=WAIT_S,
                                                         headers={"Authorization": f"Bearer {token}"}) as c:
        async with c.stream("GET", "/api/events") as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            feed = SseReader(r)
            # stored by another process (its own Store on the same database): found by polling
            async with Store(url) as other:
                first = make_alert("pat-1")
                await other.store_alert(first)
            event, ident, data = await feed.until(lambda e, i, d: e == "alert")
            assert data["alert_id"] == first.alert_id and ident == str(data["seq"])
            first_seq = data["seq"]
            _, _, row = await feed.until(lambda e, i, d: e == "status")
            assert row["patient_id"] == "pat-1" and row["state"] == "alarm"
            # stored through this process's store: wakes the feed
            second = make_alert("pat-1")
            await api.store.store_alert(second)
            _, ident, data = await feed.until(lambda e, i, d: e == "alert")
            assert data["alert_id"] == second.alert_id and ident is not None and int(ident) > first_seq
            # an acknowledgement over the API
            assert (await c.post(f"/api/alerts/{second.alert_id}/ack", json={"note": "seen"})).status_code == 200
            _, ident, ack = await feed.until(lambda e, i, d: e == "ack")
            assert ident is None
            assert (ack["episode_id"], ack["alert_id"], ack["user"]) == (second.alert_id, second.alert_id,
                                                                         CLINICIAN[0])
            # a device status change gives the patient's ward row
            await api.store.upsert_device_status(DeviceStatus("dev-1", 5_000, battery_pct=9, lead_off=("RA",)))
            _, _, row = await feed.until(lambda e, i, d: e == "status" and d["battery_pct"] == 9)
            assert row["lead_off"] == ["RA"]
        # reconnect as a browser would, with the last alert id it saw: the missed alert comes first
        async with c.stream("GET", "/api/events", headers={"Last-Event-ID": str(first_seq)}) as r:
            event, ident, data = await SseReader(r).next()
            assert (event, data["alert_id"]) == ("alert", second.alert_id)
            assert data["acknowledged_by"] == CLINICIAN[0]
    assert before.alert_id not in {first.alert_id, second.alert_id}


async def test_feed_needs_a_session_and_a_numeric_last_event_id(api: Api) -> None:
    token = await api.token(CLINICIAN)
    async with api.client() as c:
        assert (await c.get("/api/events")).status_code == 401
    async with api.client(token) as c:
        r = await c.get("/api/events", headers={"Last-Event-ID": "abc"})
        assert r.status_code == 422 and r.json()["error"] == "invalid_request"


async def test_an_alert_committed_late_still_reaches_the_feed(migrated_url: str) -> None:
    """PostgreSQL hands out seq at insert and shows the row at commit: seq N+1 can be visible before N."""
    if migrated_url.startswith("sqlite"):
        pytest.skip("SQLite serialises writers, so rows always become visible in seq order")
    from sqlalchemy.dialects.postgresql import insert

    from cloud.api.feed import open_feed
    from cloud.store.schema import AlertRow

    async with make_api(migrated_url, users=False) as api, Store(migrated_url) as other:
        conn = await open_feed(api.app.state.ctx, None)
        slow = make_alert("pat-1")
        async with other.session() as s, s.begin():  # a writer that takes its seq now and commits later
            row = {c: getattr(slow, c) for c in ("alert_id", "patient_id", "device_id", "alert_type", "message",
                                                  "onset_gateway_us", "onset_device_us", "window_id",
                                                  "model_versions", "reconstructed_leads", "details",
                                                  "schema_version")}
            await s.execute(insert(AlertRow).values(**row, episode_id=slow.alert_id, event="raised",
                                                    category="clinical", priority="high", received_us=1))
            fast = make_alert("pat-1")
            await api.store.store_alert(fast)  # a later seq, committed first
            seen = [c for c in await conn.poll() if c.startswith("id:")]
            assert len(seen) == 1 and fast.alert_id in seen[0]
        seen = [c for c in await conn.poll() if c.startswith("id:")]
        assert len(seen) == 1 and slow.alert_id in seen[0]  # delivered once it committed
        assert [c for c in await conn.poll() if c.startswith("id:")] == []  # and only once
