"""Sign-in, sessions (bearer token and cookie), sign-out, roles and login rate limiting over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
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


def client_from(api: Api, address: str, token: str | None = None) -> httpx.AsyncClient:
    """A client of the app whose requests come from ``address`` (contract-checked like :meth:`Api.client`)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app, client=(address, 50000)),
                             base_url="http://cloud.test", headers=headers,
                             event_hooks={"response": [api._check_contract]})


def fake_clock(api: Api) -> list[int]:
    now = [api.store.clock()]
    api.store.clock = lambda: now[0]
    return now


async def login(c: httpx.AsyncClient, user: str, password: str) -> httpx.Response:
    return await c.post("/api/auth/login", json={"username": user, "password": password})


async def test_login_delays_grow_for_one_account_from_one_address(api: Api) -> None:
    now = fake_clock(api)
    free = api.settings.accounts.login_max_failures
    waits = []
    async with client_from(api, "203.0.113.9") as c:
        for _ in range(free):
            assert (await login(c, CLINICIAN[0], "guess-guess")).status_code == 401
        for _ in range(5):
            r = await login(c, CLINICIAN[0], "guess-guess")
            assert r.status_code == 429 and r.json()["error"] == "rate_limited"
            waits.append(int(r.headers["Retry-After"]))
            now[0] += waits[-1] * 1_000_000
            assert (await login(c, CLINICIAN[0], "guess-guess")).status_code == 401
    assert waits == [1, 2, 4, 8, 16]  # 2^k s after the k-th failure beyond the free ones
    assert api.rejections["rate_limited"] == 5


async def test_an_attackers_failures_do_not_lock_the_owner_out(api: Api) -> None:
    """Before: five wrong passwords from anywhere locked the admin out for 300 s."""
    now = fake_clock(api)
    failures = 0
    async with client_from(api, "203.0.113.9") as attacker:
        while failures < 20:  # the attacker keeps guessing, waiting out every delay
            r = await login(attacker, ADMIN[0], "not-the-password")
            if r.status_code == 429:
                now[0] += int(r.headers["Retry-After"]) * 1_000_000
            else:
                assert r.status_code == 401
                failures += 1
        assert (await login(attacker, ADMIN[0], ADMIN[1])).status_code == 429  # still slowed down there
    bound = api.settings.accounts.login_account_max_delay_s
    async with client_from(api, "198.51.100.7") as owner:
        r = await login(owner, ADMIN[0], ADMIN[1])
        if r.status_code == 429:  # at most a short wait, however many failures the attacker piled up
            assert int(r.headers["Retry-After"]) <= bound
            now[0] += int(r.headers["Retry-After"]) * 1_000_000
            r = await login(owner, ADMIN[0], ADMIN[1])
        assert r.status_code == 200


async def test_failures_from_one_address_do_not_lock_out_other_users_there(api: Api) -> None:
    """Before: five failures from one address (over any names) locked everyone there out."""
    fake_clock(api)
    free = api.settings.accounts.login_max_failures
    async with client_from(api, "192.0.2.44") as c:
        for i in range(free):
            assert (await login(c, f"user{i}", "x" * 8)).status_code == 401
        assert (await login(c, ADMIN[0], ADMIN[1])).status_code == 200
        for i in range(free, 2 * free):
            assert (await login(c, f"user{i}", "x" * 8)).status_code == 401
        # an address failing across many accounts is slowed, not locked
        r = await login(c, f"user{2 * free}", "x" * 8)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) == 1
    async with client_from(api, "192.0.2.45") as other:  # another address is not affected
        assert (await login(other, CLINICIAN[0], CLINICIAN[1])).status_code == 200


async def test_failures_age_out(api: Api) -> None:
    now = fake_clock(api)
    async with client_from(api, "192.0.2.44") as c:
        failures = 0
        while failures < api.settings.accounts.login_max_failures + 3:
            r = await login(c, ADMIN[0], "x" * 8)
            if r.status_code == 429:
                now[0] += int(r.headers["Retry-After"]) * 1_000_000
            failures += r.status_code == 401
        assert (await login(c, ADMIN[0], ADMIN[1])).status_code == 429
        now[0] += int(api.settings.accounts.login_window_s * 1e6) + 1  # the failures age out
        assert (await login(c, ADMIN[0], ADMIN[1])).status_code == 200


async def test_an_admin_can_unlock_a_user(api: Api) -> None:
    fake_clock(api)
    async with client_from(api, "203.0.113.9") as c:
        for _ in range(api.settings.accounts.login_max_failures):
            assert (await login(c, CLINICIAN[0], "guess-guess")).status_code == 401
        assert (await login(c, CLINICIAN[0], CLINICIAN[1])).status_code == 429
    async with api.as_user(CLINICIAN) as c:  # (the bearer client's address is another one)
        r = await c.post(f"/api/users/{CLINICIAN[0]}/unlock")
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
    async with api.as_user(ADMIN) as c:
        r = await c.post(f"/api/users/{CLINICIAN[0]}/unlock")
        assert r.status_code == 200
        assert r.json() == {"username": CLINICIAN[0], "forgotten_failures": api.settings.accounts.login_max_failures}
        assert (await c.post("/api/users/nobody/unlock")).status_code == 404
    async with client_from(api, "203.0.113.9") as c:
        assert (await login(c, CLINICIAN[0], CLINICIAN[1])).status_code == 200
    entries = await api.store.audit_log(user=ADMIN[0])
    assert ("unlock_user", f"user:{CLINICIAN[0]}") in [(e.action, e.target) for e in entries]


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
