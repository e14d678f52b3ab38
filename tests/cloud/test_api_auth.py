"""Sign-in, sessions (bearer token and cookie), sign-out, roles and login rate limiting over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.store import upgrade_database
from tests.cloud.api_support import ADMIN, CLINICIAN, Api, make_api


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    async with make_api(url) as a:
        yield a


async def test_login_returns_token_and_sets_a_strict_httponly_cookie(api: Api) -> None:
    async with api.client() as c:
        r = await c.post("/api/auth/login", json={"username": CLINICIAN[0], "password": CLINICIAN[1]})
        assert r.status_code == 200
        body = r.json()
        assert body["user"] == {"username": CLINICIAN[0], "role": "clinician"}
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"ecgstream_session={body['token']}")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        # the cookie alone authenticates (the client kept it)
        me = await c.get("/api/me")
        assert me.status_code == 200 and me.json() == {"username": CLINICIAN[0], "role": "clinician"}
    async with api.client(body["token"]) as c:  # the token alone authenticates
        assert (await c.get("/api/me")).json()["username"] == CLINICIAN[0]
    entries = await api.store.audit_log(user=CLINICIAN[0])
    assert [e.action for e in entries] == ["login"]


@pytest.mark.parametrize("username,password", [(CLINICIAN[0], "wrong-password"), ("nobody", CLINICIAN[1])])
async def test_bad_credentials_are_401_and_indistinguishable(api: Api, username: str, password: str) -> None:
    async with api.client() as c:
        r = await c.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 401
        assert r.json() == {"error": "bad_credentials", "detail": "unknown user name or wrong password"}
        assert "set-cookie" not in r.headers
        assert (await c.get("/api/me")).status_code == 401
    assert api.rejections["bad_credentials"] == 1


async def test_requests_without_a_valid_session_are_401(api: Api) -> None:
    async with api.client() as c:
        for path in ("/api/me", "/api/ward", "/api/alerts", "/api/patients", "/api/windows", "/api/users"):
            r = await c.get(path)
            assert r.status_code == 401, path
            assert r.json()["error"] == "unauthenticated"
        assert (await c.get("/api/me", headers={"Authorization": "Bearer not-a-token"})).status_code == 401
        assert (await c.get("/api/me", headers={"Authorization": "Basic YTpi"})).status_code == 401
    async with api.client(cookies={"ecgstream_session": "forged"}) as c:
        assert (await c.get("/api/me")).status_code == 401
    assert api.rejections["unauthenticated"] == 9


async def test_logout_revokes_the_session(api: Api) -> None:
    token = await api.token(CLINICIAN)
    other = await api.token(CLINICIAN)
    async with api.client(token) as c:
        r = await c.post("/api/auth/logout")
        assert r.status_code == 204
        assert "ecgstream_session=" in r.headers.get("set-cookie", "")  # the cookie is cleared
        assert (await c.get("/api/me")).status_code == 401
    async with api.client(other) as c:  # another session of the same user is untouched
        assert (await c.get("/api/me")).status_code == 200


async def test_an_expired_session_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    async with make_api(url) as api:
        now = [api.store.clock()]
        api.store.clock = lambda: now[0]
        token = await api.token(CLINICIAN)
        async with api.client(token) as c:
            assert (await c.get("/api/me")).status_code == 200
            now[0] += int(api.settings.accounts.session_ttl_s * 1e6) + 1
            r = await c.get("/api/me")
            assert r.status_code == 401 and "expired" in r.json()["detail"]


async def test_login_is_rate_limited_per_user_with_retry_after(api: Api) -> None:
    async with api.client() as c:
        for _ in range(api.settings.accounts.login_max_failures):
            r = await c.post("/api/auth/login", json={"username": CLINICIAN[0], "password": "guess-guess"})
            assert r.status_code == 401
        # even the right password is refused now, with a Retry-After within the window
        r = await c.post("/api/auth/login", json={"username": CLINICIAN[0], "password": CLINICIAN[1]})
        assert r.status_code == 429
        assert r.json()["error"] == "rate_limited"
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= api.settings.accounts.login_window_s
    assert api.rejections["rate_limited"] == 1


async def test_rate_limit_ages_out_and_is_per_client_address_too(api: Api) -> None:
    now = [api.store.clock()]
    api.store.clock = lambda: now[0]
    limit = api.settings.accounts.login_max_failures
    async with api.client() as c:
        for i in range(limit):  # one address guessing different accounts
            assert (await c.post("/api/auth/login", json={"username": f"user{i}", "password": "x" * 8})
                    ).status_code == 401
        r = await c.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 429
        now[0] += int(api.settings.accounts.login_window_s * 1e6) + 1  # the failures age out
        r = await c.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200


async def test_clinician_cannot_manage_users_but_admin_can(api: Api) -> None:
    new = {"username": "nurse.kim", "password": "nurse-pass-1", "role": "clinician"}
    async with api.as_user(CLINICIAN) as c:
        r = await c.post("/api/users", json=new)
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        assert (await c.get("/api/users")).status_code == 403
        assert (await c.delete(f"/api/users/{ADMIN[0]}")).status_code == 403
        assert (await c.get("/api/audit")).status_code == 403
    assert await api.store.get_user("nurse.kim") is None
    async with api.as_user(ADMIN) as c:
        r = await c.post("/api/users", json=new)
        assert r.status_code == 201 and r.json()["role"] == "clinician"
        assert "password" not in r.text and "hash" not in r.text
        assert (await c.post("/api/users", json=new)).status_code == 409
        names = [u["username"] for u in (await c.get("/api/users")).json()["users"]]
        assert names == sorted([ADMIN[0], CLINICIAN[0], "nurse.kim"])
    nurse = await api.token(("nurse.kim", "nurse-pass-1"))
    async with api.as_user(ADMIN) as c:
        assert (await c.delete("/api/users/nurse.kim")).status_code == 204
        assert (await c.delete("/api/users/nurse.kim")).status_code == 404
        assert (await c.delete(f"/api/users/{ADMIN[0]}")).status_code == 409  # not yourself
    async with api.client(nurse) as c:  # a deleted user's sessions end with them
        assert (await c.get("/api/me")).status_code == 401
    actions = [(e.user, e.action, e.target) for e in await api.store.audit_log(user=ADMIN[0])]
    assert ("admin", "create_user", "user:nurse.kim") in actions and ("admin", "delete_user", "user:nurse.kim") in actions
