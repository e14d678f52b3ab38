"""The dashboard's admin page (``/static/admin.html``) in headless Chromium against the real API (uvicorn,
SQLite): an admin signs in through the page, registers a patient and the device they wear, renames
the patient, sees a refusal in the API's words, removes both, and adds a clinician; a clinician gets
"Admins only". Every change is checked in the store (and its audit log), not only on screen. A
screenshot goes to ``$ECGSTREAM_TEST_ARTIFACTS/dashboard`` (default ``tests/artifacts/dashboard``).

Needs the Debian Chromium and playwright: skips with the reason without them (fails under ``CI=true``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloud.store import upgrade_database
from tests.cloud.api_support import ADMIN, CLINICIAN, make_api, serve
from tests.cloud.dashboard_support import artifacts_dir, require_chromium

pytestmark = pytest.mark.slow


async def _sign_in(page: Any, base: str, user: tuple[str, str]) -> None:
    await page.goto(f"{base}/static/admin.html")
    await page.get_by_test_id("login-username").fill(user[0])
    await page.get_by_test_id("login-password").fill(user[1])
    await page.get_by_test_id("login-submit").click()


async def test_an_admin_registers_renames_and_removes_a_patient_and_device_through_the_page(tmp_path: Path) -> None:
    chromium = require_chromium()
    from playwright.async_api import async_playwright, expect

    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    async with make_api(url) as api, serve(api.app) as base, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # the browser logs each refused request (401 before sign-in, the 409s above): not a page error
            page.on("console", lambda msg: errors.append(msg.text)
                    if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
            page.on("dialog", lambda dialog: dialog.accept("Ana M. Lima") if dialog.type == "prompt"
                    else dialog.accept())
            await _sign_in(page, base, ADMIN)
            await expect(page.get_by_test_id("whoami")).to_have_text(f"{ADMIN[0]} (admin)")
            await expect(page.get_by_test_id("patients")).to_contain_text("No patients yet")

            await page.get_by_test_id("patient-id").fill("bed-03")
            await page.get_by_test_id("patient-name").fill("Ana Lima")
            await page.get_by_test_id("patient-team").fill("Ward 3")
            await page.get_by_test_id("patient-add").click()
            row = page.locator("tr[data-patient='bed-03']")
            await expect(row).to_contain_text("Ana Lima")
            await expect(row).to_contain_text("Ward 3")
            patient = await api.store.get_patient("bed-03")
            assert patient is not None and (patient.display_name, patient.team) == ("Ana Lima", "Ward 3")

            await page.get_by_test_id("patient-id").fill("bed-03")          # again: the API's 409, in its words
            await page.get_by_test_id("patient-name").fill("Someone")
            await page.get_by_test_id("patient-add").click()
            await expect(page.get_by_test_id("message")).to_contain_text("'bed-03' is already registered")
            await expect(page.get_by_test_id("message")).to_have_attribute("data-kind", "error")

            await page.get_by_test_id("device-id").fill("es-0003")
            await page.get_by_test_id("device-patient").select_option("bed-03")
            await page.get_by_test_id("device-add").click()
            await expect(page.locator("tr[data-device='es-0003']")).to_contain_text("bed-03")
            await expect(row).to_contain_text("es-0003")
            device = await api.store.get_device("es-0003")
            assert device is not None and device.patient_id == "bed-03"

            await row.get_by_test_id("patient-rename").click()             # the prompt answers "Ana M. Lima"
            await expect(row).to_contain_text("Ana M. Lima")
            await page.screenshot(path=str(artifacts_dir() / "admin-page.png"), full_page=True)
            await page.set_viewport_size({"width": 390, "height": 844})     # a phone: tables scroll, the page not
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390
            await page.screenshot(path=str(artifacts_dir() / "admin-page-phone.png"), full_page=True)
            await page.set_viewport_size({"width": 1200, "height": 900})

            await row.get_by_test_id("patient-remove").click()             # still wears es-0003: refused
            await expect(page.get_by_test_id("message")).to_contain_text("still wears device(s) es-0003")
            await page.locator("tr[data-device='es-0003']").get_by_test_id("device-remove").click()
            await expect(page.locator("tr[data-device='es-0003']")).to_have_count(0)
            await row.get_by_test_id("patient-remove").click()
            await expect(row).to_have_count(0)
            assert await api.store.list_patients() == [] and await api.store.list_devices() == []

            await page.get_by_test_id("user-name").fill("nurse.kim")
            await page.get_by_test_id("user-password").fill("a long password 1")
            await page.get_by_test_id("user-add").click()
            await expect(page.locator("tr[data-user='nurse.kim']")).to_contain_text("clinician")

            actions = [(e.user, e.action, e.target) for e in await api.store.audit_log()
                       if e.action not in ("login", "view")]
            assert actions == [
                (ADMIN[0], "create_patient", "patient:bed-03"), (ADMIN[0], "set_team", "patient:bed-03"),
                (ADMIN[0], "create_device", "device:es-0003"),
                (ADMIN[0], "rename_patient", "patient:bed-03"), (ADMIN[0], "remove_device", "device:es-0003"),
                (ADMIN[0], "remove_patient", "patient:bed-03"), (ADMIN[0], "create_user", "user:nurse.kim")]

            await page.get_by_test_id("logout").click()
            await _sign_in(page, base, CLINICIAN)
            await expect(page.get_by_text("Admins only")).to_be_visible()
            await expect(page.get_by_test_id("patients")).to_be_hidden()
            assert errors == [], errors
        finally:
            await browser.close()
