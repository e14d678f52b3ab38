"""Cross-site request forgery and the browser-facing hardening of the alert service, over HTTP.

A cookie-signed state change from another origin (or with no origin at all) is refused 403 with the
error body and changes nothing; the same request from the service's own origin, or with a bearer
token, goes through. Every answer carries a strict Content-Security-Policy and the other security
headers; HSTS only over HTTPS; the session cookie is Secure by default off loopback or over HTTPS.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from cloud.api.security import CONTENT_SECURITY_POLICY
from cloud.config import HttpConfig
from cloud.store import upgrade_database
from tests.cloud.api_support import ADMIN, CLINICIAN, Api, fast_settings, make_api
from tests.cloud.conftest import make_alert

ORIGIN = "http://cloud.test"
EVIL = "https://evil.example"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    async with make_api(url) as a:
        await a.store.add_patient("pat-1", "Ada")
        yield a


def client_at(api: Api, base_url: str) -> httpx.AsyncClient:
    """A contract-checked client of the app at another base URL (``https://…``: the request is HTTPS)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url=base_url,
                             event_hooks={"response": [api._check_contract]})


@contextlib.asynccontextmanager
async def cookie_client(api: Api, user: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """A client that signed in and now holds only the session cookie (no Authorization header)."""
    async with api.client() as c:
        r = await c.post("/api/auth/login", json={"username": user[0], "password": user[1]})
        assert r.status_code == 200 and "ecgstream_session" in c.cookies
        yield c


async def test_a_cookie_only_ack_from_another_origin_is_refused(api: Api) -> None:
    alert = make_alert("pat-1")
    await api.store.store_alert(alert)
    path = f"/api/alerts/{alert.alert_id}/ack"
    async with cookie_client(api, CLINICIAN) as c:
        for headers in ({"Origin": EVIL}, {"Referer": f"{EVIL}/page"}, {"Origin": "null"}, {}):
            r = await c.post(path, json={"note": "forged"}, headers=headers)
            assert r.status_code == 403, headers
            assert r.json()["error"] == "forbidden" and set(r.json()) == {"error", "detail"}
        episode_id = (await api.store.get_alert(alert.alert_id)).episode_id
        assert await api.store.acknowledgements(episode_id) == []  # nothing was acknowledged
        # the dashboard's own requests (same origin) go through
        r = await c.post(path, json={"note": "seen"}, headers={"Origin": ORIGIN})
        assert r.status_code == 200 and r.json()["user"] == CLINICIAN[0]
        r = await c.post(path, json={"note": "again"}, headers={"Referer": f"{ORIGIN}/"})
        assert r.status_code == 200
    assert api.rejections["forbidden"] == 4


async def test_bearer_requests_are_not_held_to_the_origin(api: Api) -> None:
    alert = make_alert("pat-1")
    await api.store.store_alert(alert)
    async with api.as_user(CLINICIAN) as c:  # a script with a token: no browser sends this by itself
        r = await c.post(f"/api/alerts/{alert.alert_id}/ack", json={}, headers={"Origin": EVIL})
        assert r.status_code == 200


async def test_cross_site_sign_in_and_sign_out_are_refused(api: Api) -> None:
    async with api.client() as c:
        r = await c.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]},
                         headers={"Origin": EVIL})
        assert r.status_code == 403 and "set-cookie" not in r.headers
    async with cookie_client(api, CLINICIAN) as c:
        assert (await c.post("/api/auth/logout", headers={"Origin": EVIL})).status_code == 403
        assert (await c.get("/api/me")).status_code == 200  # still signed in
        assert (await c.post("/api/auth/logout", headers={"Origin": ORIGIN})).status_code == 204


async def test_security_headers_on_the_dashboard_api_and_refusals(api: Api) -> None:
    async with api.client() as c:
        for path in ("/", "/api/me", "/api/openapi.json", "/healthz", "/no-such-page"):
            r = await c.get(path)
            assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            assert "'unsafe-inline'" not in r.headers["content-security-policy"]
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["referrer-policy"] == "no-referrer"
            assert "strict-transport-security" not in r.headers  # plain HTTP: no HSTS
    async with client_at(api, "https://cloud.test") as c:
        r = await c.get("/api/me")
        assert r.headers["strict-transport-security"].startswith("max-age=")


def test_the_dashboard_has_no_inline_script_or_style() -> None:
    """The strict CSP (no 'unsafe-inline') fits only while the dashboard keeps scripts and styles in files."""
    from cloud.dashboard import STATIC_DIR

    index = (STATIC_DIR / "index.html").read_text()
    assert "<style" not in index and " style=" not in index
    for tag in index.split("<script")[1:]:
        assert "src=" in tag.split(">", 1)[0]  # every script is loaded from a file
        assert tag.split(">", 1)[1].lstrip().startswith("</script>")


@pytest.mark.parametrize("host,cookie_secure,base_url,secure", [
    ("127.0.0.1", "auto", "http://cloud.test", False),
    ("0.0.0.0", "auto", "http://cloud.test", True),   # served to other hosts: Secure by default
    ("10.1.2.3", "auto", "http://cloud.test", True),
    ("127.0.0.1", "auto", "https://cloud.test", True),  # over HTTPS
    ("0.0.0.0", False, "http://cloud.test", False),    # explicitly off
    ("127.0.0.1", True, "http://cloud.test", True),
])
async def test_the_session_cookie_is_secure_unless_on_loopback(tmp_path: Path, host: str, cookie_secure: object,
                                                               base_url: str, secure: bool) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    settings = fast_settings()
    settings = replace(settings, http=HttpConfig(host=host, cookie_secure=cookie_secure))  # type: ignore[arg-type]
    async with make_api(url, settings) as api, client_at(api, base_url) as c:
        r = await c.post("/api/auth/login", json={"username": CLINICIAN[0], "password": CLINICIAN[1]})
        assert r.status_code == 200
        assert ("; secure" in r.headers["set-cookie"].lower()) is secure


def test_cookie_secure_defaults_to_auto() -> None:
    assert HttpConfig().cookie_secure == "auto"
    assert HttpConfig(host="0.0.0.0").secure_cookie() and not HttpConfig().secure_cookie()
