"""The telemedicine dashboard end to end: the real ``ecgstream cloud run`` service, a real Mosquitto and
the Debian Chromium (headless, driven by playwright).

A clinician logs in through the page; an alert and its 12-lead window are published over MQTT the way
the edge does; the alert appears in the live list without a reload, coloured by its priority (a
technical alarm goes to its own panel); its strip opens with the reconstructed leads labelled as such
(a screenshot is kept as a test artefact); Acknowledge shows who acknowledged, and the API has stored
the acknowledgement with that user. A second test stops and restarts the service under the open page:
the connection indicator goes from live to reconnecting and back, and an alert sent meanwhile arrives.

Needs chromium and a broker: skips with the reason when either is absent, fails under ``CI=true``.
Screenshots go to ``$ECGSTREAM_TEST_ARTIFACTS/dashboard`` (default ``tests/artifacts/dashboard``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from protocol.messages import Alert, AlertCategory, Priority, encode_message
from protocol.topics import alert_topic, window_topic
from protocol.window_payload import encode_window
from tests.cloud.dashboard_support import artifacts_dir, edge_window, require_chromium
from tests.conftest import MqttBroker, free_port

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto]

ADMIN = ("e2e.admin", "admin password 123")
CLINICIAN = ("dr.e2e", "clinician password 123")
START_TIMEOUT_S = 60.0


class Service:
    """``ecgstream cloud run`` as a subprocess (the way an operator runs it) that a test may stop and start
    again on the same port and database."""

    def __init__(self, workdir: Path, broker: MqttBroker, group: str) -> None:
        self.workdir = workdir
        self.database_url = f"sqlite:///{workdir / 'cloud.db'}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "cloud.log"
        self.config = workdir / "cloud.toml"
        self.config.write_text(
            f'[database]\nurl = "{self.database_url}"\n\n'
            f'[broker]\nhost = "{broker.host}"\nport = {broker.port}\ngroup = "{group}"\n'
            f'client_id = "{group}-cloud"\n\n'
            f'[http]\nhost = "127.0.0.1"\nport = {self.port}\n\n'
            # no escalation while the test looks at an alert: its waiting times are far beyond the test
            "[escalation]\nhigh_s = 3600\nmedium_s = 3600\nlow_s = 3600\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def _command(self, *args: str) -> list[str]:
        cli = Path(sys.executable).with_name("ecgstream")
        return [*([str(cli)] if cli.exists() else [sys.executable, "-m", "ecgstream"]), "cloud", *args,
                "--config", str(self.config)]

    def _env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("ECGSTREAM_CLOUD__")}

    async def seed_admin(self) -> None:
        """Create the first admin with the operator's command (``ecgstream cloud users add``)."""
        done = await asyncio.to_thread(
            subprocess.run, self._command("users", "add", ADMIN[0], "--role", "admin", "--password-stdin"),
            input=f"{ADMIN[1]}\n".encode(), cwd=self.workdir, env=self._env(), capture_output=True, timeout=120)
        assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")

    async def start(self) -> None:
        """Start and wait until /healthz says the database answers and the ingest worker is subscribed."""
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(self._command("run"), cwd=self.workdir, env=self._env(), stdout=out,
                                          stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        health: Any = None
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as client:
            while True:
                if self._proc.poll() is not None:
                    pytest.fail(f"cloud run exited with {self._proc.returncode}:\n{self.log_tail()}")
                try:
                    health = (await client.get("/healthz")).json()
                    if health.get("ok") and health.get("ingest") == "subscribed":
                        return
                except (httpx.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"cloud run not ready in {START_TIMEOUT_S} s (last /healthz: {health}):\n"
                                f"{self.log_tail()}")
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """Stop as an operator would (SIGINT); killed if it does not stop within 15 s."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)
            pytest.fail(f"cloud run did not stop on SIGINT within 15 s:\n{self.log_tail()}")


@pytest.fixture
async def service(tmp_path: Path, mqtt_broker: MqttBroker, unique_id: str) -> AsyncIterator[Service]:
    """``ecgstream cloud run`` on a temp SQLite database, the test broker (its own share group) and a free
    port, with one admin account."""
    svc = Service(tmp_path, mqtt_broker, unique_id)
    await svc.seed_admin()
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


@pytest.fixture
def chromium() -> Path:
    """The Debian Chromium (skips, or fails under CI=true, without it); requested before the service."""
    return require_chromium()


async def _admin_setup(svc: Service, patient_id: str, device_id: str) -> None:
    """Through the admin API: a clinician, a patient wearing a device."""
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=10) as client:
        r = await client.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        r = await client.post("/api/users", json={"username": CLINICIAN[0], "password": CLINICIAN[1],
                                                  "role": "clinician"}, headers=auth)
        assert r.status_code == 201, r.text
        r = await client.post("/api/patients", json={"patient_id": patient_id, "display_name": "Ada Testpatient"},
                              headers=auth)
        assert r.status_code == 201, r.text
        r = await client.post("/api/devices", json={"device_id": device_id, "patient_id": patient_id,
                                                    "profile": "wearable-3lead"}, headers=auth)
        assert r.status_code == 201, r.text


async def _publish(broker: MqttBroker, client_id: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish as the edge's uplink does: MQTT 5, QoS 1, in order."""
    import aiomqtt

    async with aiomqtt.Client(broker.host, broker.port, identifier=client_id,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


async def _api_alert(svc: Service, alert_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=10) as client:
        r = await client.post("/api/auth/login", json={"username": CLINICIAN[0], "password": CLINICIAN[1]})
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        r = await client.get(f"/api/alerts/{alert_id}", headers=auth)
        assert r.status_code == 200, r.text
        return r.json()


async def _log_in(page: Any, username: str, password: str) -> None:
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()


def _vt_alert(patient_id: str, device_id: str, onset_us: int, window_id: str | None = None) -> Alert:
    """A high-priority VT alert as the edge's alarm engine raises it (its own id is the episode id)."""
    alert_id = Alert.new_id()
    return Alert(
        alert_id=alert_id, patient_id=patient_id, device_id=device_id, alert_type="vt",
        category=AlertCategory.CLINICAL, priority=Priority.HIGH, onset_gateway_us=onset_us,
        onset_device_us=6_000_000, window_id=window_id, message="Ventricular tachycardia",
        model_versions={"classifier": "mamba-test", "reconstruction": "vae-test"},
        reconstructed_leads={"V2": 0.06, "V3": 0.05},
        details={"event": "raised", "episode_id": alert_id, "family": "vt", "heart_rate_bpm": 182.0,
                 "onset_s": 6.0, "at_s": 10.0},
    )


def _rgb(css: str) -> tuple[int, ...]:
    inside = css[css.index("(") + 1: css.index(")")]
    return tuple(int(float(v)) for v in inside.replace("/", ",").split(",")[:3])


async def test_login_live_alert_strip_and_acknowledge(chromium: Path, service: Service, mqtt_broker: MqttBroker,
                                                      unique_id: str) -> None:
    from playwright.async_api import async_playwright, expect

    patient_id, device_id = f"pat-{unique_id}", f"dev-{unique_id}"
    await _admin_setup(service, patient_id, device_id)
    out = artifacts_dir()

    now_us = int(time.time() * 1e6)
    window = edge_window(patient_id, device_id, t0_us=now_us - 10_000_000, rhythm="vt", seed=11)
    alert = _vt_alert(patient_id, device_id, now_us - 4_000_000, window.window_id)
    technical = Alert(
        alert_id=Alert.new_id(), patient_id=patient_id, device_id=device_id, alert_type="lead_off",
        category=AlertCategory.TECHNICAL, priority=Priority.MEDIUM, onset_gateway_us=now_us - 1_000_000,
        message="Electrode V1 off", details={"event": "raised", "family": "lead_off", "electrodes": ["V1"]},
    )

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1500, "height": 1300})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(service.base_url + "/")

            # log in (a wrong password first: the page says so and stays on the form)
            await _log_in(page, CLINICIAN[0], "not the password")
            await expect(page.get_by_test_id("login-error")).to_contain_text("Wrong user name or password")
            await _log_in(page, *CLINICIAN)
            await expect(page.get_by_test_id("whoami")).to_contain_text(CLINICIAN[0])
            await expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "live")
            ward_row = page.locator(f"[data-testid=ward-row][data-patient-id='{patient_id}']")
            await expect(ward_row).to_contain_text("Ada Testpatient")
            items = page.locator(f"[data-testid=alert-item][data-patient-id='{patient_id}']")
            await expect(items).to_have_count(0)

            # the edge publishes a technical alarm, then the window and the clinical alert resting on it
            await _publish(mqtt_broker, f"{unique_id}-edge", [
                (alert_topic(patient_id), encode_message(technical)),
                (window_topic(patient_id), encode_window(window)),
                (alert_topic(patient_id), encode_message(alert)),
            ])

            # live, without reload: the clinical alert in the clinical list, in red; the technical one apart
            clinical = page.locator(f"[data-testid=clinical-alerts] [data-alert-id='{alert.alert_id}']")
            await expect(clinical).to_be_visible(timeout=15_000)
            await expect(clinical).to_have_attribute("data-priority", "high")
            await expect(clinical).to_contain_text("Ada Testpatient")
            r, g, b = _rgb(await clinical.evaluate("e => getComputedStyle(e).borderLeftColor"))
            assert r > 150 and g < 90 and b < 90, "a high-priority alert is shown in red"
            tech = page.locator(f"[data-testid=technical-alerts] [data-alert-id='{technical.alert_id}']")
            await expect(tech).to_be_visible(timeout=15_000)
            await expect(tech).to_have_attribute("data-priority", "medium")
            r, g, b = _rgb(await tech.evaluate("e => getComputedStyle(e).borderLeftColor"))
            assert r > 150 and g > 120 and b < 90, "a medium-priority alarm is shown in yellow"
            await expect(page.locator(f"[data-testid=clinical-alerts] [data-alert-id='{technical.alert_id}']")) \
                .to_have_count(0)
            await expect(ward_row).to_have_attribute("data-state", "alarm")
            await expect(ward_row.get_by_test_id("ward-hr")).to_have_text("182 bpm")
            await expect(ward_row.get_by_test_id("ward-last-alert")).to_be_visible()

            # open the strip: 3×4 + rhythm strip, reconstructed leads labelled and drawn apart
            await clinical.get_by_test_id("alert-open").click()
            detail = page.get_by_test_id("alert-detail")
            await expect(detail).to_be_visible()
            await expect(detail.get_by_test_id("detail-title")).to_contain_text("Ada Testpatient")
            strip = detail.get_by_test_id("ecg-strip")
            await expect(strip).to_be_visible(timeout=15_000)
            await expect(strip).to_have_attribute("data-window-id", window.window_id)
            assert await strip.locator("[data-testid=strip-lead]").count() == 12
            assert await strip.get_by_test_id("strip-rhythm").get_attribute("data-lead") == "II"
            for lead in window.leads:
                label = strip.locator(f"[data-testid=strip-lead][data-lead='{lead}'] [data-testid=strip-lead-label]")
                if lead in window.reconstructed:
                    await expect(label).to_have_text(f"{lead} (reconstructed)")
                    assert await strip.locator(f"[data-testid=strip-lead][data-lead='{lead}'] path.band").count() == 1
                else:
                    await expect(label).to_have_text(lead)
            await expect(detail.get_by_test_id("strip-caption")).to_contain_text("reconstructed (not measured)")
            await expect(detail).to_contain_text("generic (not calibrated to this patient")
            await strip.screenshot(path=str(out / "e2e_strip.png"))
            await page.screenshot(path=str(out / "e2e_dashboard.png"), full_page=True)

            # acknowledge: the page says who; the API has it stored with the user
            await expect(detail.get_by_test_id("ack-state")).to_have_text("Not acknowledged")
            await detail.get_by_role("button", name="Acknowledge").click()
            await expect(detail.get_by_test_id("ack-state")).to_contain_text(f"Acknowledged by {CLINICIAN[0]}")
            await expect(clinical).to_have_attribute("data-acknowledged", "true")
            await expect(clinical.get_by_test_id("alert-status")).to_contain_text(f"acknowledged by {CLINICIAN[0]}")
            await page.screenshot(path=str(out / "e2e_acknowledged.png"), full_page=True)

            # log out: back to the form, the feed closed, and the session is gone for a reload too
            await page.get_by_role("button", name="Log out").click()
            await expect(page.get_by_test_id("login-form")).to_be_visible()
            await expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "offline")
            await page.reload()
            await expect(page.get_by_test_id("login-form")).to_be_visible()
            await expect(page.get_by_test_id("ward-table")).to_be_hidden()
            assert not errors, f"JavaScript errors on the page: {errors}"
        finally:
            await browser.close()

    stored = await _api_alert(service, alert.alert_id)
    assert stored["acknowledged"] is True
    assert stored["acknowledged_by"] == CLINICIAN[0]
    assert stored["acknowledged_us"] is not None



async def test_connection_state_follows_the_service_and_nothing_is_lost_while_it_is_down(
        chromium: Path, service: Service, mqtt_broker: MqttBroker, unique_id: str) -> None:
    """The indicator says "reconnecting" while the service is down and "live" once it is back; an alert the
    edge sent meanwhile (held by the broker for the ingest's persistent session) then appears by itself."""
    from playwright.async_api import async_playwright, expect

    patient_id, device_id = f"pat-{unique_id}", f"dev-{unique_id}"
    await _admin_setup(service, patient_id, device_id)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            page = await browser.new_page()
            await page.goto(service.base_url + "/")
            await _log_in(page, *CLINICIAN)
            connection = page.get_by_test_id("connection-state")
            await expect(connection).to_have_attribute("data-state", "live")

            await service.stop()
            await expect(connection).to_have_attribute("data-state", "reconnecting", timeout=15_000)
            alert = _vt_alert(patient_id, device_id, int(time.time() * 1e6))
            await _publish(mqtt_broker, f"{unique_id}-edge", [(alert_topic(patient_id), encode_message(alert))])
            await service.start()

            await expect(connection).to_have_attribute("data-state", "live", timeout=20_000)
            item = page.locator(f"[data-testid=clinical-alerts] [data-alert-id='{alert.alert_id}']")
            await expect(item).to_be_visible(timeout=20_000)
            await expect(page.get_by_test_id("whoami")).to_contain_text(CLINICIAN[0])  # still logged in
        finally:
            await browser.close()
