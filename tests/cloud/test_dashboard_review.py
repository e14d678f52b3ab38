"""The dashboard's review tools in headless Chromium against the real alert service (uvicorn over a real
SQLite store): alert history search that opens the plain-words detail, the patient timeline (heart-rate
trend, alarm markers, device events, the stress estimate marked as one, the ECG at a clicked moment),
acknowledging with a note, and the phone layout (no horizontal overflow at 390 px). Each saves a
screenshot under the test artefacts. With ``ECGSTREAM_SCREENSHOTS=1`` one more test writes the README's
``docs/images/ward.png`` and ``docs/images/alert-strip.png``.

Needs the Debian Chromium and playwright: skips with the reason when absent, fails under ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cloud.store import DeliveryCandidate, NewDelivery, upgrade_database
from protocol.messages import Alert, AlertCategory, GatewayStatus, PatientVitals, Priority
from tests.cloud.api_support import CLINICIAN, Api, make_api, serve
from tests.cloud.dashboard_support import REPO, artifacts_dir, edge_window, require_chromium

pytestmark = pytest.mark.slow

T0_US = 1_760_000_000_000_000        # 2025-10-09 08:53:20 UTC: not today, so the page shows dates
MIN = 60_000_000
S = 1_000_000


def _alert(patient_id: str, device_id: str, alert_type: str, priority: str, onset_us: int, *,
           category: str = "clinical", event: str = "raised", episode_id: str | None = None,
           window_id: str | None = None, details: dict[str, Any] | None = None, message: str = "") -> Alert:
    alert_id = Alert.new_id()
    return Alert(alert_id=alert_id, patient_id=patient_id,
                 device_id=device_id, alert_type=alert_type, category=AlertCategory(category),
                 priority=Priority(priority), onset_gateway_us=onset_us, onset_device_us=onset_us - T0_US + 5 * S,
                 window_id=window_id, message=message or f"{alert_type} {event}",
                 model_versions={"alarm_rules": "1", "classifier": "mamba-0.3", "reconstruction": "vae-1"},
                 reconstructed_leads={"V2": 0.04, "aVF": 0.12} if category == "clinical" else {},
                 details={"event": event, "family": alert_type, "episode_id": episode_id or alert_id,
                          "onset_s": 0.0, "at_s": 0.0 if event == "raised" else 90.0, **(details or {})})


async def _seed(api: Api) -> dict[str, Any]:
    s = api.store
    await s.add_patient("pat-1", "Ada Lovelace")
    await s.add_device("dev-1", "pat-1", profile="ecgstream-500")
    await s.add_patient("pat-2", "Ben Okafor")
    await s.add_device("dev-2", "pat-2", profile="ecgstream-500")
    # an hour of vitals, one status every 10 s: the heart rate climbs into VT at 30 min and settles
    for k in range(360):
        t = T0_US + k * 10 * S
        hr = 72.0 + 8.0 * ((k % 7) / 7) + (95.0 if 180 <= k < 190 else 0.0)
        await s.vitals.record(GatewayStatus("gw-1", t, streams=2, minor_version=1, patients=(
            PatientVitals("pat-1", "dev-1", heart_rate_bpm=hr, sqi=0.95, battery_pct=80),
            PatientVitals("pat-2", "dev-2", heart_rate_bpm=64.0, sqi=0.9, battery_pct=55))))
    vt_window = edge_window("pat-1", "dev-1", t0_us=T0_US + 30 * MIN, rhythm="vt")
    await s.store_window(vt_window)
    vt = _alert("pat-1", "dev-1", "vt", "high", T0_US + 30 * MIN + 2 * S, window_id=vt_window.window_id,
                details={"rate_bpm": 165.0}, message="Ventricular tachycardia, 165 bpm")
    await s.store_alert(vt)
    await s.store_model_result(vt_window.window_id, "classifier", "mamba-0.3", {
        "probabilities": {"vt": 0.94, "sinus": 0.03, "af": 0.02}, "positive": ["vt"], "top": ["vt", "sinus", "af"],
        "thresholds": {"vt": 0.5}}, patient_id="pat-1", alert_id=vt.alert_id)
    await s.store_model_result(vt_window.window_id, "zeroshot", "clip-1", {
        "prompt_set": "knowledge", "labels": ["ventricular tachycardia", "sinus rhythm", "atrial fibrillation"],
        "scores": [0.81, 0.11, 0.08], "similarities": [0.42, 0.18, 0.15],
        "top": ["ventricular tachycardia", "sinus rhythm", "atrial fibrillation"]}, patient_id="pat-1")
    # escalation told the on-call phone (the escalation service's own store calls)
    candidate = DeliveryCandidate(episode_id=vt.alert_id, alert_id=vt.alert_id, patient_id="pat-1", priority="high",
                                  level=0, planned=frozenset())
    await s.deliveries.enqueue([NewDelivery(candidate, "on-call-phone", "push", "https://push.example/ward-3")])
    (claimed,) = await s.deliveries.claim_due(["on-call-phone"], lease_us=30 * S)
    await s.deliveries.delivered(claimed)
    af = _alert("pat-1", "dev-1", "af", "medium", T0_US + 45 * MIN, message="Atrial fibrillation suspected")
    await s.store_alert(af)
    lead = _alert("pat-1", "dev-1", "lead_off", "low", T0_US + 15 * MIN, category="technical",
                  message="Electrode V1 off")
    await s.store_alert(lead)
    await s.store_alert(_alert("pat-1", "dev-1", "lead_off", "low", T0_US + 15 * MIN, category="technical",
                               event="cleared", episode_id=lead.alert_id, message="Electrode V1 back"))
    await s.store_alert(_alert("pat-2", "dev-2", "brady", "low", T0_US + 20 * MIN, message="Bradycardia 44 bpm"))
    for i, (estimate, p) in enumerate((("baseline", 0.8), ("stress", 0.7), ("stress", 0.6), ("baseline", 0.75))):
        w = edge_window("pat-1", "dev-1", t0_us=T0_US + (10 + 12 * i) * MIN, rhythm="sinus", seed=10 + i)
        await s.store_window(w)
        rest = (1 - p) / 2
        probs = {"baseline": rest, "stress": rest, "amusement": rest} | {estimate: p}
        await s.store_model_result(w.window_id, "stress", "stress-1", {
            "estimate": estimate, "probabilities": probs, "hrv": {"hr_bpm": 75.0, "rmssd_ms": 30.0, "sdnn_ms": 40.0,
                                                                   "pnn50": 0.1, "lf_hf": 1.5, "resp_rate_bpm": 14.0},
            "note": "estimate from a model trained on synthetic data"}, patient_id="pat-1")
    return {"vt": vt, "af": af, "lead": lead, "vt_window": vt_window}


@pytest.fixture
def chromium() -> Path:
    return require_chromium()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[Api, str, dict[str, Any]]]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    async with make_api(url) as api:
        seeded = await _seed(api)
        async with serve(api.app) as base:
            yield api, base, seeded


async def _browser_page(pw: Any, chromium: Path, width: int = 1400, height: int = 1100) -> tuple[Any, Any]:
    browser = await pw.chromium.launch(executable_path=str(chromium), headless=True)
    context = await browser.new_context(viewport={"width": width, "height": height}, timezone_id="UTC",
                                        locale="en-GB")
    return browser, await context.new_page()


async def _log_in(page: Any, base: str) -> None:
    from playwright.async_api import expect

    await page.goto(base + "/")
    await page.get_by_label("User name").fill(CLINICIAN[0])
    await page.get_by_label("Password").fill(CLINICIAN[1])
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_test_id("whoami")).to_contain_text(CLINICIAN[0])


def _local(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


async def test_history_search_opens_the_plain_words_detail(chromium: Path, site: Any) -> None:
    from playwright.async_api import async_playwright, expect

    api, base, seeded = site
    out = artifacts_dir()
    async with async_playwright() as pw:
        browser, page = await _browser_page(pw, chromium)
        try:
            await _log_in(page, base)
            await page.get_by_test_id("tab-history").click()
            await expect(page.get_by_test_id("history-view")).to_be_visible()
            await page.get_by_test_id("history-search").click()
            items = page.get_by_test_id("history-item")
            await expect(items).to_have_count(5)
            await page.get_by_test_id("history-patient").select_option("pat-1")
            await page.get_by_test_id("history-priority").select_option("high")
            await page.get_by_test_id("history-search").click()
            await expect(items).to_have_count(1)
            await expect(items.first).to_have_attribute("data-alert-id", seeded["vt"].alert_id)
            await expect(items.first).to_contain_text("09/10/2025")          # not today: the date shows
            await page.get_by_test_id("history-priority").select_option("")
            await page.get_by_test_id("history-text").fill("electrode")
            await page.get_by_test_id("history-search").click()
            await expect(items).to_have_count(2)
            await page.get_by_test_id("history-text").fill("")
            await page.get_by_test_id("history-search").click()
            await expect(items).to_have_count(4)
            await page.screenshot(path=str(out / "review_history.png"), full_page=True)
            await items.filter(has_text="VT").first.get_by_role("button").click()
            detail = page.get_by_test_id("alert-detail")
            await expect(detail).to_be_visible()
            summary = detail.get_by_test_id("detail-summary")
            await expect(summary).to_contain_text("high priority alarm for Ada Lovelace")
            await expect(summary).to_contain_text("probability at 94 %")
            await expect(summary).to_contain_text("V2 (±0.04 mV, sure)")
            await expect(summary).to_contain_text("aVF (±0.12 mV, fairly sure)")
            models = detail.get_by_test_id("detail-models")
            await expect(models).to_contain_text("ventricular tachycardia 81 %")
            await expect(detail.get_by_test_id("detail-deliveries")).to_contain_text(
                "on-call-phone (push) → https://push.example/ward-3: delivered")
            raw = detail.get_by_test_id("detail-raw-json")
            await expect(raw).to_be_hidden()                                 # raw output behind the toggle
            await detail.get_by_text("Raw model output").click()
            await expect(raw).to_contain_text('"probabilities"')
            await expect(detail.get_by_test_id("ecg-strip")).to_be_visible(timeout=15_000)
            await expect(detail.get_by_test_id("strip-png")).to_have_attribute(
                "href", f"/api/windows/{seeded['vt_window'].window_id}/strip.png")
            await detail.screenshot(path=str(out / "review_detail.png"))
            # printed, only the strip shows, at true paper scale: its width in CSS mm is the paper's mm
            await page.emulate_media(media="print")
            strip = detail.get_by_test_id("ecg-strip")
            width_mm = float(await strip.get_attribute("data-width-mm") or 0)
            box = await strip.bounding_box()
            assert box is not None and width_mm > 250
            assert box["width"] == pytest.approx(width_mm * 96 / 25.4, rel=0.01)     # CSS: 96 px per inch
            await expect(page.get_by_test_id("history-view")).to_be_hidden()
            await expect(detail.get_by_test_id("detail-summary")).to_be_hidden()
            await page.emulate_media(media="screen")
        finally:
            await browser.close()


async def test_timeline_trend_markers_estimate_and_strip(chromium: Path, site: Any) -> None:
    from playwright.async_api import async_playwright, expect

    api, base, seeded = site
    out = artifacts_dir()
    async with async_playwright() as pw:
        browser, page = await _browser_page(pw, chromium)
        try:
            await _log_in(page, base)
            await page.get_by_test_id("tab-timeline").click()
            await page.get_by_test_id("timeline-patient").select_option("pat-1")
            await page.get_by_test_id("timeline-span").select_option("1")
            await page.get_by_test_id("timeline-to").fill(_local(T0_US + 60 * MIN))
            await page.get_by_test_id("timeline-show").click()
            chart = page.get_by_test_id("timeline-svg")
            await expect(chart).to_be_visible()
            await expect(page.get_by_test_id("hr-line")).to_have_attribute("data-points", "61")  # 60 min from 08:53:20: 61 minute rows
            await expect(page.get_by_test_id("alarm-marker")).to_have_count(2)
            await expect(page.get_by_test_id("estimate-dot")).to_have_count(4)
            await expect(page.get_by_test_id("device-event-marker")).to_have_count(2)
            await expect(page.get_by_test_id("timeline-estimates")).to_contain_text("synthetic data")
            await expect(page.get_by_test_id("timeline-view")).to_contain_text("estimate")
            await expect(page.get_by_test_id("timeline-events")).to_contain_text("lead off cleared")
            # click the chart at the VT: the 12-lead ECG around that moment
            box = await chart.bounding_box()
            assert box is not None
            x = box["x"] + box["width"] * (40 + (30.1 / 60) * 950) / 1000
            await page.mouse.click(x, box["y"] + box["height"] * 0.9)
            strip = page.get_by_test_id("timeline-strip").get_by_test_id("ecg-strip")
            await expect(strip).to_be_visible(timeout=15_000)
            await expect(strip).to_have_attribute("data-window-id", seeded["vt_window"].window_id)
            await page.screenshot(path=str(out / "review_timeline.png"), full_page=True)
            await page.get_by_test_id("timeline-alarm").filter(has_text="VT").get_by_role("button").click()
            await expect(page.get_by_test_id("detail-summary")).to_contain_text("Ada Lovelace")
        finally:
            await browser.close()


async def test_acknowledge_with_a_note(chromium: Path, site: Any) -> None:
    from playwright.async_api import async_playwright, expect

    api, base, seeded = site
    af: Alert = seeded["af"]
    async with async_playwright() as pw:
        browser, page = await _browser_page(pw, chromium)
        try:
            await _log_in(page, base)
            await page.get_by_test_id("tab-history").click()
            await page.get_by_test_id("history-type").fill("af")
            await page.get_by_test_id("history-search").click()
            await page.get_by_test_id("history-item").first.get_by_role("button").click()
            detail = page.get_by_test_id("alert-detail")
            await expect(detail.get_by_test_id("ack-state")).to_have_text("Not acknowledged")
            await expect(detail.get_by_label("Note for the record")).to_be_visible()
            await detail.get_by_test_id("ack-note").fill("Seen at bedside; rate controlled, cardiology told.")
            await detail.get_by_test_id("ack-button").click()
            await expect(detail.get_by_test_id("ack-state")).to_contain_text(f"Acknowledged by {CLINICIAN[0]}")
            await expect(detail.get_by_test_id("ack-state")).to_contain_text("cardiology told")
            await expect(detail.get_by_test_id("ack-note-item")).to_have_count(1)
            # another look later (a fresh page) still shows who acknowledged and the note
            await page.reload()
            await page.get_by_test_id("tab-history").click()
            await page.get_by_test_id("history-type").fill("af")
            await page.get_by_test_id("history-search").click()
            await page.get_by_test_id("history-item").first.get_by_role("button").click()
            await expect(detail.get_by_test_id("ack-note-item")).to_contain_text(f"{CLINICIAN[0]} at ")
            await expect(detail.get_by_test_id("ack-note-item")).to_contain_text("cardiology told")
            await detail.screenshot(path=str(artifacts_dir() / "review_ack_note.png"))
        finally:
            await browser.close()
    acks = await api.store.acknowledgements(af.alert_id)
    assert [(a.user, a.note) for a in acks] == [(CLINICIAN[0], "Seen at bedside; rate controlled, cardiology told.")]


async def _no_overflow(page: Any) -> None:
    widths = await page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px viewport"


async def test_phone_layout_has_no_horizontal_overflow(chromium: Path, site: Any) -> None:
    from playwright.async_api import async_playwright, expect

    api, base, seeded = site
    out = artifacts_dir()
    async with async_playwright() as pw:
        browser, page = await _browser_page(pw, chromium, width=390, height=844)
        try:
            await _log_in(page, base)
            await expect(page.get_by_test_id("ward-table")).to_contain_text("Ada Lovelace")
            await _no_overflow(page)
            await page.screenshot(path=str(out / "review_phone_ward.png"), full_page=True)
            await page.get_by_test_id("tab-history").click()
            await page.get_by_test_id("history-search").click()
            await expect(page.get_by_test_id("history-item")).to_have_count(5)
            await _no_overflow(page)
            await page.screenshot(path=str(out / "review_phone_history.png"), full_page=True)
            await page.get_by_test_id("history-item").filter(has_text="VT").get_by_role("button").click()
            await expect(page.get_by_test_id("ecg-strip")).to_be_visible(timeout=15_000)
            await page.get_by_text("Raw model output").click()
            await _no_overflow(page)
            await page.screenshot(path=str(out / "review_phone_detail.png"), full_page=True)
            await page.get_by_test_id("tab-timeline").click()
            await page.get_by_test_id("timeline-patient").select_option("pat-1")
            await page.get_by_test_id("timeline-to").fill(_local(T0_US + 60 * MIN))
            await page.get_by_test_id("timeline-show").click()
            await expect(page.get_by_test_id("timeline-svg")).to_be_visible()
            await _no_overflow(page)
            await page.screenshot(path=str(out / "review_phone_timeline.png"), full_page=True)
        finally:
            await browser.close()


@pytest.mark.mosquitto
@pytest.mark.skipif(os.environ.get("ECGSTREAM_SCREENSHOTS") != "1",
                    reason="writes the README screenshots only with ECGSTREAM_SCREENSHOTS=1")
async def test_readme_screenshots(chromium: Path, mqtt_broker: Any, unique_id: str, tmp_path: Path) -> None:
    """The real ``ecgstream cloud run`` with live tiles fed over MQTT as the edge does, a VT alarm with its
    12-lead window: ``docs/images/ward.png`` and ``docs/images/alert-strip.png``."""
    import asyncio
    import contextlib

    from playwright.async_api import async_playwright, expect

    from cloud.store import Store
    from tests.cloud.test_dashboard_e2e import CLINICIAN as E2E_CLINICIAN
    from tests.cloud.test_dashboard_e2e import Service, _admin_setup
    from tests.cloud.test_dashboard_live import FakeGateway

    service = Service(tmp_path, mqtt_broker, unique_id)
    await service.seed_admin()
    await service.start()
    images = REPO / "docs" / "images"
    images.mkdir(parents=True, exist_ok=True)
    beds = [("bed-1", "dev-a1"), ("bed-2", "dev-b2"), ("bed-3", "dev-c3")]
    gateways: list[asyncio.Task[None]] = []
    try:
        await _admin_setup(service, *beds[0])
        now_us = int(datetime.now(tz=UTC).timestamp() * 1e6)
        async with Store(service.database_url) as store:
            for (pid, dev), name in zip(beds[1:], ("Ben Okafor", "Chen Wei"), strict=True):
                await store.add_patient(pid, name)
                await store.add_device(dev, pid, profile="wearable-3lead")
            window = edge_window(beds[0][0], beds[0][1], t0_us=now_us - 12 * S, rhythm="vt")  # the simulator's VT: 165 bpm
            await store.store_window(window)
            vt = _alert(beds[0][0], beds[0][1], "vt", "high", now_us - 8 * S, window_id=window.window_id,
                        details={"rate_bpm": 165.0}, message="Ventricular tachycardia, 165 bpm")
            await store.store_alert(vt)      # the service's model worker adds the real models' results
        # each bed's live tile shows what its patient is in: bed 1 the VT it alarms for, the others sinus
        for (pid, dev), (rhythm, rate) in zip(beds, [("vt", 165.0), ("sinus", 68.0), ("sinus", 84.0)], strict=True):
            gateways.append(asyncio.create_task(FakeGateway(mqtt_broker, f"{unique_id}-{pid}", pid, dev,
                                                            rhythm=rhythm, heart_rate_bpm=rate).run()))
        async with async_playwright() as pw:
            browser, page = await _browser_page(pw, chromium, width=1400, height=900)
            try:
                await page.goto(service.base_url + "/")
                await page.get_by_label("User name").fill(E2E_CLINICIAN[0])
                await page.get_by_label("Password").fill(E2E_CLINICIAN[1])
                await page.get_by_role("button", name="Log in").click()
                for pid, _ in beds:
                    tile = page.locator(f"[data-testid=ward-row][data-patient-id='{pid}']")
                    await expect(tile).to_have_attribute("data-conn", "live", timeout=20_000)
                    await page.wait_for_function("c => Number(c.dataset.samples || 0) > 600",
                                                 arg=await tile.get_by_test_id("tile-ecg").element_handle(),
                                                 timeout=20_000)
                clinical = page.get_by_test_id("clinical-alerts").locator(f"[data-alert-id='{vt.alert_id}']")
                await expect(clinical).to_be_visible(timeout=15_000)
                await page.screenshot(path=str(images / "ward.png"))
                await clinical.get_by_test_id("alert-open").click()
                detail = page.get_by_test_id("alert-detail")
                await expect(detail.get_by_test_id("ecg-strip")).to_be_visible(timeout=15_000)
                await detail.screenshot(path=str(images / "alert-strip.png"))
            finally:
                await browser.close()
    finally:
        for task in gateways:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await service.stop()
