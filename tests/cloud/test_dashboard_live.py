"""The ward as a monitor in the browser: live tiles, communication loss, alarm colours, sound state, phone width.

The real ``ecgstream cloud run`` (its live relay on a real Mosquitto) and the Debian Chromium. A task
stands in for the edge gateway and publishes what its uplink does every second (a live chunk of lead
II/V1/V5 at 125 Hz on the patient's live topic, and the gateway status with the patient's vitals, QoS
0). The page shows the bed as a tile whose trace advances and whose numbers are the vitals'; when the
gateway goes quiet the tile says "communication lost" and the page says so too; a medium technical
alarm colours the tile yellow and sounds (as far as the page can tell: its audio state), pausing audio
shows the time left, a cleared alarm leaves the active list and the counts follow; when the cloud
stops, a banner says nothing is live. Screenshots go to ``tests/artifacts/dashboard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from protocol.live_payload import LiveChunk, encode_live_chunk, quantize_uv
from protocol.messages import Alert, AlertCategory, GatewayStatus, PatientVitals, Priority, encode_message
from protocol.topics import alert_topic, gateway_status_topic, live_topic
from tests.cloud.dashboard_support import artifacts_dir
from tests.cloud.test_dashboard_e2e import (  # noqa: F401
    ADMIN,
    CLINICIAN,
    Service,
    _admin_setup,
    _log_in,
    chromium,
    service,
)
from tests.conftest import MqttBroker

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto]


def _ecg(t: np.ndarray) -> np.ndarray:
    """A crude 72 bpm ECG (mV): a narrow R wave each 0.833 s on a flat line."""
    phase = (t % (60 / 72)) / (60 / 72)
    return 1.2 * np.exp(-(((phase - 0.3) / 0.012) ** 2)) - 0.15 * np.exp(-(((phase - 0.34) / 0.02) ** 2))


class FakeGateway:
    """Publishes a live chunk and the vitals every second, as the edge's uplink does, until told to stop
    (``vitals_on = False`` keeps the chunks but drops the status: a gateway whose status stops).
    ``rhythm``: the simulator's rhythm at ``heart_rate_bpm`` on II, V1 and V5 (looped) instead of the
    default synthetic sinus beat at 72 bpm."""

    def __init__(self, broker: MqttBroker, gateway_id: str, patient_id: str, device_id: str, *,
                 rhythm: str | None = None, heart_rate_bpm: float = 72.0) -> None:
        self.broker, self.gateway_id, self.patient_id, self.device_id = broker, gateway_id, patient_id, device_id
        self.on = True
        self.seq = 0
        self.heart_rate_bpm = heart_rate_bpm
        self.signal_mv: np.ndarray | None = None
        if rhythm is not None:
            from firmware_sim.synthesis import synthesize
            from protocol.leads import STANDARD_LEADS

            synth = synthesize(rhythm, seconds=30.0, fs=125.0, seed=3, heart_rate=heart_rate_bpm)
            self.signal_mv = synth.signals.T[[STANDARD_LEADS.index(lead) for lead in ("II", "V1", "V5")]]

    def _chunk_mv(self, t: np.ndarray) -> np.ndarray:
        if self.signal_mv is None:
            return np.stack([_ecg(t), -0.4 * _ecg(t), 0.8 * _ecg(t)])
        n = self.signal_mv.shape[1]
        return self.signal_mv[:, (self.seq * 125 + np.arange(125)) % n]

    async def run(self) -> None:
        async with aiomqtt.Client(self.broker.host, self.broker.port, identifier=self.gateway_id) as client:
            start = time.time()
            while True:
                if self.on:
                    t0 = start + self.seq
                    t = t0 + np.arange(125) / 125.0
                    mv = self._chunk_mv(t)
                    chunk = LiveChunk(self.patient_id, self.device_id, self.seq, int(t0 * 1e6), 125.0,
                                      ("II", "V1", "V5"), quantize_uv(mv), gap_before=self.seq == 0)
                    await client.publish(live_topic(self.patient_id), encode_live_chunk(chunk), qos=0)
                    vitals = PatientVitals(self.patient_id, self.device_id, heart_rate_bpm=self.heart_rate_bpm,
                                           sqi=0.95, analysis_lead="II", battery_pct=81, connected=True,
                                           last_data_age_s=0.2)
                    status = GatewayStatus(self.gateway_id, int(time.time() * 1e6), streams=1, minor_version=1,
                                           patients=(vitals,))
                    await client.publish(gateway_status_topic(self.gateway_id), encode_message(status), qos=0)
                self.seq += 1
                await asyncio.sleep(max(0.0, start + self.seq - time.time()))


async def _publish_alert(broker: MqttBroker, client_id: str, alert: Alert) -> None:
    async with aiomqtt.Client(broker.host, broker.port, identifier=client_id,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.publish(alert_topic(alert.patient_id), encode_message(alert), qos=1)


def _rgb(css: str) -> tuple[int, ...]:
    inside = css[css.index("(") + 1: css.index(")")]
    return tuple(int(float(v)) for v in inside.replace("/", ",").split(",")[:3])


async def test_live_tiles_communication_loss_alarm_sound_state_and_phone_layout(
        chromium: Path, service: Service, mqtt_broker: MqttBroker, unique_id: str) -> None:  # noqa: F811
    from playwright.async_api import async_playwright, expect

    patient_id, device_id = f"pat-{unique_id}", f"dev-{unique_id}"
    await _admin_setup(service, patient_id, device_id)
    out = artifacts_dir()
    edge = FakeGateway(mqtt_broker, f"{unique_id}-gw", patient_id, device_id)
    publishing = asyncio.create_task(edge.run())
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(chromium), headless=True)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(service.base_url + "/")
                await _log_in(page, *CLINICIAN)
                tile = page.locator(f"[data-testid=ward-row][data-patient-id='{patient_id}']")
                await expect(tile).to_have_attribute("data-conn", "live", timeout=20_000)
                await expect(tile.get_by_test_id("ward-hr")).to_have_text("72 bpm")
                await expect(tile.get_by_test_id("ward-battery")).to_have_text("81 %")
                await expect(tile.get_by_test_id("tile-sqi")).to_contain_text("good")
                await expect(tile.get_by_test_id("tile-comm")).to_be_hidden()

                # the trace advances: samples drawn, and the play head moves on
                canvas = tile.get_by_test_id("tile-ecg")
                await expect(canvas).to_have_attribute("data-lead", "II")
                await page.wait_for_function(
                    "c => Number(c.dataset.samples || 0) > 100", arg=await canvas.element_handle(), timeout=15_000)
                head1 = int(await canvas.get_attribute("data-head") or 0)
                await page.wait_for_function(
                    "([c, h]) => Number(c.dataset.head || 0) > h + 1500",
                    arg=[await canvas.element_handle(), head1], timeout=15_000)
                await page.get_by_test_id("lead-select").select_option("V1")
                await expect(canvas).to_have_attribute("data-lead", "V1")
                await expect(tile.get_by_test_id("tile-lead")).to_have_text("V1")
                await page.get_by_test_id("lead-select").select_option("II")
                await page.screenshot(path=str(out / "live_ward.png"))

                # a medium technical alarm: the tile turns yellow (not cyan) and the page sounds medium
                await page.mouse.click(5, 300)            # a gesture: the browser now lets the page sound
                raised = Alert(
                    alert_id=Alert.new_id(), patient_id=patient_id, device_id=device_id, alert_type="lead_off",
                    category=AlertCategory.TECHNICAL, priority=Priority.MEDIUM, onset_gateway_us=int(time.time() * 1e6),
                    message="Electrode V1 off", details={"event": "raised", "family": "lead_off"})
                raised = Alert(**{**raised.__dict__, "details": {**raised.details, "episode_id": raised.alert_id}})
                await _publish_alert(mqtt_broker, f"{unique_id}-edge", raised)
                await expect(tile).to_have_attribute("data-alarm-priority", "medium", timeout=15_000)
                r, g, b = _rgb(await tile.evaluate("e => getComputedStyle(e).borderLeftColor"))
                assert r > 150 and g > 120 and b < 90, "a medium-priority alarm's tile is yellow"
                await expect(page.get_by_test_id("technical-count")).to_have_text("1")
                audio = page.get_by_test_id("audio-state")
                await expect(audio).to_have_attribute("data-state", "medium")
                await page.get_by_test_id("audio-pause").click()
                await expect(audio).to_have_attribute("data-state", "paused")
                await expect(audio).to_contain_text("AUDIO PAUSED 1:5")
                await page.get_by_test_id("audio-pause").click()          # resume
                await expect(audio).to_have_attribute("data-state", "medium")
                await page.screenshot(path=str(out / "live_ward_alarm.png"))

                # cleared: it leaves the active list for the history, the count follows, the tile is plain
                cleared = Alert(
                    alert_id=Alert.new_id(), patient_id=patient_id, device_id=device_id, alert_type="lead_off",
                    category=AlertCategory.TECHNICAL, priority=Priority.MEDIUM, onset_gateway_us=raised.onset_gateway_us,
                    message="Electrode V1 back", details={"event": "cleared", "family": "lead_off",
                                                          "episode_id": raised.alert_id})
                await _publish_alert(mqtt_broker, f"{unique_id}-edge", cleared)
                await expect(page.get_by_test_id("technical-count")).to_have_text("0", timeout=15_000)
                await expect(page.locator("[data-testid=technical-alerts] [data-testid=alert-item]")).to_have_count(0)
                await expect(page.get_by_test_id("technical-history-count")).to_have_text("1")
                await expect(tile).to_have_attribute("data-alarm-priority", "none")
                await expect(audio).to_have_attribute("data-state", "silent")

                # the gateway goes quiet: communication lost on the tile, stale values greyed, then the page
                edge.on = False
                await expect(tile).to_have_attribute("data-conn", "comm-lost", timeout=15_000)
                await expect(tile.get_by_test_id("tile-comm")).to_contain_text("COMMUNICATION LOST")
                await expect(tile.get_by_test_id("ward-hr")).to_have_class("vital-value stale")
                await expect(tile.get_by_test_id("tile-hr-note")).to_contain_text("old")
                banner = page.get_by_test_id("feed-banner")
                await expect(banner).to_have_attribute("data-kind", "edge", timeout=15_000)
                await page.screenshot(path=str(out / "live_ward_comm_lost.png"))
                edge.on = True
                await expect(tile).to_have_attribute("data-conn", "live", timeout=15_000)
                await expect(banner).to_be_hidden()

                # the phone: one column, nothing wider than the screen
                await page.set_viewport_size({"width": 390, "height": 844})
                await expect(tile).to_be_visible()
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, f"the page is {width} px wide at 390 px"
                await page.screenshot(path=str(out / "live_ward_phone.png"), full_page=True)
                # the cleared alarm from the history opens its detail, still within the screen
                await page.get_by_test_id("technical-history-box").locator("summary").click()
                await page.locator(f"[data-testid=technical-history] [data-alert-id='{cleared.alert_id}'] "
                                   "[data-testid=alert-open]").click()
                detail = page.get_by_test_id("alert-detail")
                await expect(detail).to_be_visible()
                await expect(detail.get_by_test_id("detail-title")).to_contain_text("Ada Testpatient")
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, f"the page with the detail open is {width} px wide at 390 px"
                await page.screenshot(path=str(out / "live_ward_phone_detail.png"), full_page=True)
                await detail.get_by_test_id("detail-close").click()
                await page.set_viewport_size({"width": 1280, "height": 900})

                # the cloud stops: the page banner says nothing is live
                await service.stop()
                await expect(banner).to_be_visible(timeout=15_000)
                await expect(banner).to_have_attribute("data-kind", "feed")
                await expect(banner).to_contain_text("NOT live")
                await expect(tile).to_have_attribute("data-conn", "stale")
                await page.screenshot(path=str(out / "live_ward_feed_lost.png"))
                assert not errors, f"JavaScript errors on the page: {errors}"
            finally:
                await browser.close()
    finally:
        publishing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publishing


async def test_an_empty_ward_says_what_to_do_next_and_an_admin_has_the_admin_link(
        chromium: Path, service: Service) -> None:  # noqa: F811
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            await page.goto(service.base_url + "/")
            await _log_in(page, *ADMIN)
            hint = page.get_by_test_id("ward-empty")
            await expect(hint).to_be_visible()
            await expect(hint).to_have_text(
                "No patients yet — add one with ecgstream cloud patients add PATIENT --name NAME, open Admin, "
                "or run the cloud with --auto-register.", use_inner_text=True)
            await expect(page.get_by_test_id("admin-link")).to_be_visible()
            await expect(page.get_by_test_id("ward-empty-admin")).to_have_attribute("href", "/static/admin.html")
            await page.screenshot(path=str(artifacts_dir() / "live_ward_empty.png"), full_page=True)
        finally:
            await browser.close()
