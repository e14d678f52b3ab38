"""Changing passwords, and the admin's account commands, on SQLite and PostgreSQL.

A user changes their own password over HTTP (the current one is checked and counted like a sign-in;
every other session ends, this one stays); an admin sets one with ``ecgstream cloud users passwd``
(prompted or ``--password-stdin``; every session of the user ends), forgives failed sign-ins with
``users unlock`` and sets teams with ``users team``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.store import Store
from tests.cloud.api_support import ADMIN, CLINICIAN, Api, make_api

NEW = "a-brand-new-pass-1"


@pytest.fixture
async def api(migrated_url: str) -> AsyncIterator[Api]:
    async with make_api(migrated_url) as a:
        yield a


async def test_a_user_changes_their_own_password_and_other_sessions_end(api: Api) -> None:
    other = await api.token(CLINICIAN)  # e.g. a forgotten session on a ward PC
    current = await api.token(CLINICIAN)
    admin = await api.token(ADMIN)
    async with api.client(current) as c:
        r = await c.post("/api/auth/password", json={"old_password": CLINICIAN[1], "new_password": NEW})
        assert r.status_code == 200 and r.json() == {"sessions_ended": 1}
        assert (await c.get("/api/me")).status_code == 200  # this session stays
    async with api.client(other) as c:
        assert (await c.get("/api/me")).status_code == 401
    async with api.client(admin) as c:  # other users' sessions are untouched
        assert (await c.get("/api/me")).status_code == 200
    async with api.client() as c:
        old = await c.post("/api/auth/login", json={"username": CLINICIAN[0], "password": CLINICIAN[1]})
        assert old.status_code == 401
        assert (await c.post("/api/auth/login", json={"username": CLINICIAN[0], "password": NEW})).status_code == 200
    actions = [e.action for e in await api.store.audit_log(user=CLINICIAN[0])]
    assert "change_password" in actions


async def test_a_wrong_current_password_or_a_weak_new_one_is_refused(api: Api) -> None:
    token = await api.token(CLINICIAN)
    async with api.client(token) as c:
        r = await c.post("/api/auth/password", json={"old_password": "not-it-at-all", "new_password": NEW})
        assert r.status_code == 401 and r.json()["error"] == "bad_credentials"
        r = await c.post("/api/auth/password", json={"old_password": CLINICIAN[1], "new_password": "short"})
        assert r.status_code == 422 and "new_password" in r.json()["detail"]
        r = await c.post("/api/auth/password", json={"old_password": CLINICIAN[1], "new_password": " " * 12})
        assert r.status_code == 422
        r = await c.post("/api/auth/password", json={"old_password": CLINICIAN[1], "new_password": CLINICIAN[1]})
        assert r.status_code == 422
        # wrong current passwords count like failed sign-ins: a stolen session cannot guess it freely
        for _ in range(api.settings.accounts.login_max_failures - 1):
            r = await c.post("/api/auth/password", json={"old_password": "still-not-it", "new_password": NEW})
            assert r.status_code == 401
        r = await c.post("/api/auth/password", json={"old_password": CLINICIAN[1], "new_password": NEW})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert (await api.app.state.ctx.accounts.login(CLINICIAN[0], CLINICIAN[1], client="elsewhere")).user


async def test_password_change_needs_a_session(api: Api) -> None:
    async with api.client() as c:
        r = await c.post("/api/auth/password", json={"old_password": CLINICIAN[1], "new_password": NEW})
        assert r.status_code == 401


# -- the command line --------------------------------------------------------------------------


async def cli(tmp_path: Path, url: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECGSTREAM_CLOUD__")}
    env |= {"ECGSTREAM_CLOUD__DATABASE__URL": url, "ECGSTREAM_CLOUD__ACCOUNTS__ARGON2_MEMORY_KIB": "8",
            "ECGSTREAM_CLOUD__ACCOUNTS__ARGON2_TIME_COST": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ecgstream", "cloud", "users", *args, cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_passwd_unlock_and_team(api: Api, migrated_url: str, tmp_path: Path) -> None:
    session = await api.token(CLINICIAN)
    accounts = api.app.state.ctx.accounts
    for _ in range(api.settings.accounts.login_max_failures):
        with pytest.raises(Exception, match="wrong password"):
            await accounts.login(CLINICIAN[0], "guess-guess", client="10.6.6.6")
    code, out, err = await cli(tmp_path, migrated_url, "passwd", CLINICIAN[0], "--password-stdin", stdin=NEW + "\n")
    assert code == 0, err
    assert "1 session(s) signed out" in out
    async with api.client(session) as c:
        assert (await c.get("/api/me")).status_code == 401  # the sessions ended with the old password
    code, out, err = await cli(tmp_path, migrated_url, "unlock", CLINICIAN[0])
    assert code == 0 and f"{api.settings.accounts.login_max_failures} failed sign-in(s) forgotten" in out, err
    assert (await accounts.login(CLINICIAN[0], NEW, client="10.6.6.6")).user.username == CLINICIAN[0]
    code, out, err = await cli(tmp_path, migrated_url, "team", CLINICIAN[0], "icu")
    assert code == 0, err
    async with Store(migrated_url) as other:
        user = await other.get_user(CLINICIAN[0])
        assert user is not None and user.team == "icu"
        actions = [(e.user, e.action) for e in await other.audit_log(user="cli")]
    assert actions == [("cli", "set_password"), ("cli", "unlock_user"), ("cli", "set_team")]
    # refusals are one line, exit status 2
    for args, stdin, text in ((("passwd", "nobody", "--password-stdin"), NEW + "\n", "no user 'nobody'"),
                              (("passwd", CLINICIAN[0], "--password-stdin"), "short\n", "password must be"),
                              (("unlock", "nobody"), None, "no user 'nobody'"),
                              (("team", CLINICIAN[0], " bad"), None, "team must be")):
        code, _, err = await cli(tmp_path, migrated_url, *args, stdin=stdin)
        assert code == 2 and len(err.strip().splitlines()) == 1 and text in err, (args, err)
