"""Review over HTTP on SQLite and PostgreSQL: alert history search and paging, the patient timeline
(heart rate per minute from the gateways' status vitals, alarms, device events, stress estimates), the
strip around a moment, and strip export as PNG and PDF at 25 mm/s."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from cloud.api.strip_render import PNG_DPI, page_size_mm
from cloud.ingest.worker import IngestWorker
from protocol.messages import GatewayStatus, PatientVitals, encode_message
from protocol.topics import gateway_status_topic
from tests.cloud.api_support import ADMIN, CLINICIAN, Api, make_api
from tests.cloud.conftest import T0_US, make_alert, make_window

MIN = 60_000_000
S = 1_000_000


@pytest.fixture
async def api(migrated_url: str) -> AsyncIterator[Api]:
    async with make_api(migrated_url) as a:
        for pid, name, dev in (("pat-1", "Ada", "dev-1"), ("pat-2", "Ben", "dev-2")):
            await a.store.add_patient(pid, name)
            await a.store.add_device(dev, pid, profile="ecgstream-500")
        yield a


async def test_history_search_filters_and_pages(api: Api) -> None:
    s = api.store
    vt = make_alert("pat-1", onset_us=T0_US)
    af = make_alert("pat-1", alert_type="af", family="af", priority="medium", onset_us=T0_US + MIN)
    lead = make_alert("pat-2", device_id="dev-2", alert_type="lead_off", category="technical", priority="low",
                      family="lead_off", onset_us=T0_US + 2 * MIN)
    for a in (vt, af, lead):
        await s.store_alert(a)
    async with api.as_user(CLINICIAN) as c:
        async def ids(**params: object) -> list[str]:
            r = await c.get("/api/alerts", params=params)
            assert r.status_code == 200, r.text
            return [a["alert_id"] for a in r.json()["alerts"]]

        assert await ids() == [lead.alert_id, af.alert_id, vt.alert_id]
        assert await ids(patient_id="pat-1") == [af.alert_id, vt.alert_id]
        assert await ids(alert_type="af") == [af.alert_id]
        assert await ids(priority="high") == [vt.alert_id]
        assert await ids(category="technical") == [lead.alert_id]
        assert await ids(text="LEAD_") == [lead.alert_id]          # case-insensitive, _ is literal
        assert await ids(text="100%") == []
        assert await ids(from_us=T0_US + MIN, to_us=T0_US + 2 * MIN) == [af.alert_id]
        assert await ids(acknowledged="false") == [lead.alert_id, af.alert_id, vt.alert_id]
        r = await c.post(f"/api/alerts/{af.alert_id}/ack", json={"note": "rate controlled, cardiology told"})
        assert r.status_code == 200 and r.json()["note"] == "rate controlled, cardiology told"
        assert await ids(acknowledged="true") == [af.alert_id]
        detail = (await c.get(f"/api/alerts/{af.alert_id}")).json()
        assert [(k["user"], k["note"]) for k in detail["acknowledgements"]] == [
            (CLINICIAN[0], "rate controlled, cardiology told")]
        assert await ids(acknowledged="false", patient_id="pat-1") == [vt.alert_id]
        # paging: a full page names the next one
        first = (await c.get("/api/alerts", params={"limit": 2})).json()
        assert [a["alert_id"] for a in first["alerts"]] == [lead.alert_id, af.alert_id]
        rest = (await c.get("/api/alerts", params={"limit": 2, "before_seq": first["next_before_seq"]})).json()
        assert [a["alert_id"] for a in rest["alerts"]] == [vt.alert_id] and rest["next_before_seq"] is None
        bad = await c.get("/api/alerts", params={"from_us": T0_US + MIN, "to_us": T0_US})
        assert bad.status_code == 422


async def test_status_vitals_become_a_per_minute_heart_rate_trend(api: Api) -> None:
    worker = IngestWorker(api.store, client_id="review-test")
    topic = gateway_status_topic("gw-1")

    def status(t_us: int, hr: float | None, sqi: float | None = 0.9) -> bytes:
        return encode_message(GatewayStatus("gw-1", t_us, streams=2, minor_version=1, patients=(
            PatientVitals("pat-1", "dev-1", heart_rate_bpm=hr, sqi=sqi, battery_pct=80),
            PatientVitals("pat-2", "dev-2", heart_rate_bpm=None, sqi=None, connected=False))))

    minute0 = T0_US - T0_US % MIN
    for i, hr in enumerate((60.0, 70.0, 80.0)):
        assert await worker.handle(topic, status(minute0 + i * S, hr)) == "stored"
    assert await worker.handle(topic, status(minute0 + 2 * S, 80.0)) == "stale"   # a resend folds in nothing
    assert await worker.handle(topic, status(minute0 + MIN + 5 * S, 120.0, sqi=None)) == "stored"
    assert await worker.handle(topic, status(minute0 + MIN + 6 * S, None)) == "stored"
    async with api.as_user(CLINICIAN) as c:
        r = await c.get("/api/patients/pat-1/timeline", params={"from": minute0, "to": minute0 + 10 * MIN})
        assert r.status_code == 200, r.text
        trend = r.json()["heart_rate"]
        other = (await c.get("/api/patients/pat-2/timeline",
                             params={"from": minute0, "to": minute0 + 10 * MIN})).json()["heart_rate"]
    assert [(m["minute_us"], m["reports"], m["mean_bpm"], m["min_bpm"], m["max_bpm"]) for m in trend] == [
        (minute0, 3, 70.0, 60.0, 80.0), (minute0 + MIN, 2, 120.0, 120.0, 120.0)]
    assert trend[0]["sqi_mean"] == pytest.approx(0.9) and trend[0]["battery_pct"] == 80
    assert [(m["reports"], m["mean_bpm"]) for m in other] == [(3, None), (2, None)]


async def test_timeline_shows_alarms_device_events_and_stress_estimates(api: Api) -> None:
    s = api.store
    vt = make_alert("pat-1", onset_us=T0_US + MIN)
    clear = make_alert("pat-1", event="cleared", episode_id=vt.alert_id, onset_us=T0_US + MIN)
    lead = make_alert("pat-1", alert_type="lead_off", category="technical", priority="low", family="lead_off",
                      onset_us=T0_US + 2 * MIN)
    other = make_alert("pat-2", device_id="dev-2", onset_us=T0_US + MIN)
    for a in (vt, clear, lead, other):
        await s.store_alert(a)
    window = make_window("pat-1", t0_us=T0_US + 3 * MIN)
    await s.store_window(window)
    await s.store_model_result(window.window_id, "stress", "stress-1", {
        "estimate": "stress", "probabilities": {"baseline": 0.2, "stress": 0.7, "amusement": 0.1},
        "hrv": {"hr_bpm": 90.0}, "note": "estimate from a model trained on synthetic data"}, patient_id="pat-1")
    async with api.as_user(CLINICIAN) as c:
        body = (await c.get("/api/patients/pat-1/timeline", params={"from": T0_US, "to": T0_US + 10 * MIN})).json()
        missing = await c.get("/api/patients/nobody/timeline")
        backwards = await c.get("/api/patients/pat-1/timeline", params={"from": T0_US, "to": T0_US - 1})
    (alarm,) = body["alarms"]
    assert alarm["episode_id"] == vt.alert_id and alarm["alert_type"] == "vt" and alarm["active"] is False
    assert alarm["onset_us"] == T0_US + MIN and alarm["cleared_us"] is not None
    assert [(e["alert_type"], e["event"]) for e in body["device_events"]] == [("lead_off", "raised")]
    (est,) = body["estimates"]
    assert est["estimate"] == "stress" and est["t_us"] == T0_US + 3 * MIN and "synthetic" in est["note"]
    assert missing.status_code == 404 and backwards.status_code == 422
    # an alarm raised before the span and still on shows in it
    af = make_alert("pat-1", alert_type="af", family="af", priority="medium", onset_us=T0_US - 3 * S)
    await s.store_alert(af)
    async with api.as_user(CLINICIAN) as c:
        body = (await c.get("/api/patients/pat-1/timeline", params={"from": T0_US, "to": T0_US + 10 * MIN})).json()
    assert [(a["alert_type"], a["active"]) for a in body["alarms"]] == [("af", True), ("vt", False)]
    # registry actions on the patient's devices are device events too (from the audit log, cloud clock)
    async with api.as_user(ADMIN) as admin:
        r = await admin.post("/api/devices", json={"device_id": "dev-9", "patient_id": "pat-1", "profile": "x"})
        assert r.status_code == 201, r.text
    now = s.clock()
    async with api.as_user(CLINICIAN) as c:
        recent = (await c.get("/api/patients/pat-1/timeline", params={"from": now - MIN, "to": now + MIN})).json()
    (reg,) = recent["device_events"]
    assert (reg["source"], reg["device_id"], reg["event"]) == ("registry", "dev-9", "create_device")
    assert "registered" in reg["message"] and reg["alert_id"] is None


async def test_strip_around_a_moment_has_the_covering_windows(api: Api) -> None:
    s = api.store
    w1 = make_window("pat-1", t0_us=T0_US, seed=1)
    w2 = make_window("pat-1", t0_us=T0_US + 10 * S, seed=2)
    w3 = make_window("pat-1", t0_us=T0_US + 30 * S, seed=3)
    for w in (w1, w2, w3):
        await s.store_window(w)
    async with api.as_user(CLINICIAN) as c:
        around = (await c.get("/api/patients/pat-1/strip", params={"at": T0_US + 12 * S})).json()
        late = (await c.get("/api/patients/pat-1/strip", params={"at": T0_US + 26 * S})).json()
        none = (await c.get("/api/patients/pat-2/strip", params={"at": T0_US})).json()
    assert [w["window_id"] for w in around["windows"]] == [w1.window_id, w2.window_id]
    assert len(around["windows"][0]["samples_mv"]) == 12 and around["from_us"] == T0_US + 7 * S
    assert [w["window_id"] for w in late["windows"]] == [w3.window_id]
    assert none["windows"] == []


def _pdf_page_mm(pdf: bytes) -> tuple[float, float]:
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert box is not None
    return float(box[1]) * 25.4 / 72, float(box[2]) * 25.4 / 72


async def test_strip_export_png_and_pdf_at_25_mm_per_second(api: Api) -> None:
    w = make_window("pat-1", seconds=10.0)
    await api.store.store_window(w)
    async with api.as_user(CLINICIAN) as c:
        png = await c.get(f"/api/windows/{w.window_id}/strip.png")
        pdf = await c.get(f"/api/windows/{w.window_id}/strip.pdf")
        gone = await c.get("/api/windows/00000000-0000-4000-8000-000000000000/strip.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content[:5] == b"%PDF-"
    width_mm, height_mm = page_size_mm(10.0, 12)
    image = Image.open(io.BytesIO(png.content))
    dpi = image.info["dpi"][0]
    assert dpi == pytest.approx(PNG_DPI, abs=0.5)
    assert image.size[0] / dpi * 25.4 == pytest.approx(width_mm, abs=1.0)    # 10 s at 25 mm/s plus margins
    assert image.size[1] / dpi * 25.4 == pytest.approx(height_mm, abs=1.0)
    assert _pdf_page_mm(pdf.content) == pytest.approx((width_mm, height_mm), abs=0.5)
    assert gone.status_code == 404
    short = make_window("pat-1", seconds=4.0, t0_us=T0_US + 60 * S)
    await api.store.store_window(short)
    async with api.as_user(CLINICIAN) as c:
        pdf4 = await c.get(f"/api/windows/{short.window_id}/strip.pdf")
    # the page grows by 25 mm per second of strip
    assert _pdf_page_mm(pdf.content)[0] - _pdf_page_mm(pdf4.content)[0] == pytest.approx(6 * 25.0, abs=0.5)
