"""Bad input to every write route: a 4xx JSON error with a counted reason, and nothing else changes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cloud.store import upgrade_database
from cloud.store.schema import Base
from tests.cloud.api_support import ADMIN, CLINICIAN, Api, make_api
from tests.cloud.conftest import make_alert

ALERT = make_alert("pat-1")
UNKNOWN = str(uuid.uuid4())

# (who, method, path, body: dict | str (raw) | None, status, error)
CASES: list[tuple[str | None, str, str, Any, int, str]] = [
    (None, "POST", "/api/auth/login", {}, 422, "invalid_request"),
    (None, "POST", "/api/auth/login", {"username": "admin"}, 422, "invalid_request"),
    (None, "POST", "/api/auth/login", "{not json", 422, "invalid_request"),
    (None, "POST", "/api/auth/login", {"username": 5, "password": "x" * 10}, 422, "invalid_request"),
    (None, "POST", "/api/auth/login", {"username": "a", "password": "p" * 5000}, 422, "invalid_request"),
    (None, "POST", "/api/auth/login", {"username": "a", "password": "b", "admin": True}, 422, "invalid_request"),
    (None, "POST", "/api/auth/login", {"username": "a", "password": "b" * 70_000}, 413, "too_large"),
    (None, "POST", "/api/auth/logout", None, 401, "unauthenticated"),
    ("admin", "POST", "/api/users", {"username": "a b", "password": "long-enough", "role": "clinician"}, 422,
     "invalid_request"),
    ("admin", "POST", "/api/users", {"username": "ok", "password": "short", "role": "clinician"}, 422,
     "invalid_request"),
    ("admin", "POST", "/api/users", {"username": "ok", "password": "long-enough", "role": "root"}, 422,
     "invalid_request"),
    ("admin", "POST", "/api/users", {"username": "ok", "password": "long-enough"}, 422, "invalid_request"),
    ("admin", "POST", "/api/users", {"username": CLINICIAN[0], "password": "long-enough", "role": "admin"}, 409,
     "conflict"),
    ("admin", "POST", "/api/users", ["admin"], 422, "invalid_request"),
    ("clinician", "POST", "/api/users", {"username": "ok", "password": "long-enough", "role": "admin"}, 403,
     "forbidden"),
    ("admin", "DELETE", "/api/users/nobody", None, 404, "not_found"),
    ("admin", "DELETE", f"/api/users/{ADMIN[0]}", None, 409, "conflict"),
    ("clinician", "DELETE", f"/api/users/{ADMIN[0]}", None, 403, "forbidden"),
    ("admin", "POST", "/api/patients", {"patient_id": "a/b"}, 422, "invalid_request"),
    ("admin", "POST", "/api/patients", {"patient_id": "p" * 65}, 422, "invalid_request"),
    ("admin", "POST", "/api/patients", {"patient_id": "pat-9", "display_name": "x" * 201}, 422, "invalid_request"),
    ("admin", "POST", "/api/patients", {"patient_id": "pat-1", "display_name": "again"}, 409, "conflict"),
    ("clinician", "POST", "/api/patients", {"patient_id": "pat-9"}, 403, "forbidden"),
    ("admin", "POST", "/api/devices", {"device_id": "dev-9", "patient_id": "pat-404"}, 404, "not_found"),
    ("admin", "POST", "/api/devices", {"device_id": "dev 9"}, 422, "invalid_request"),
    ("admin", "POST", "/api/devices", {"device_id": "dev-1"}, 409, "conflict"),
    ("admin", "POST", "/api/devices", {"device_id": "dev-9", "profile": 7}, 422, "invalid_request"),
    ("clinician", "POST", "/api/devices", {"device_id": "dev-9"}, 403, "forbidden"),
    ("admin", "PUT", "/api/devices/dev-404/patient", {"patient_id": "pat-1"}, 404, "not_found"),
    ("admin", "PUT", "/api/devices/dev-1/patient", {"patient_id": "pat-404"}, 404, "not_found"),
    ("admin", "PUT", "/api/devices/dev-1/patient", {}, 422, "invalid_request"),
    ("clinician", "PUT", "/api/devices/dev-1/patient", {"patient_id": None}, 403, "forbidden"),
    ("clinician", "POST", "/api/patients/pat-404/assign", {"username": CLINICIAN[0]}, 404, "not_found"),
    ("clinician", "POST", "/api/patients/pat-1/assign", {"username": "nobody"}, 404, "not_found"),
    ("clinician", "POST", "/api/patients/pat-1/assign", {"username": "!!"}, 422, "invalid_request"),
    ("clinician", "POST", "/api/patients/pat-1/assign", [], 422, "invalid_request"),
    ("clinician", "POST", "/api/alerts/not-a-uuid/ack", {}, 422, "invalid_request"),
    ("clinician", "POST", f"/api/alerts/{UNKNOWN}/ack", {}, 404, "not_found"),
    ("clinician", "POST", f"/api/alerts/{ALERT.alert_id}/ack", {"note": "x" * 2001}, 422, "invalid_request"),
    ("clinician", "POST", f"/api/alerts/{ALERT.alert_id}/ack", {"note": 3}, 422, "invalid_request"),
    (None, "POST", f"/api/alerts/{ALERT.alert_id}/ack", {}, 401, "unauthenticated"),
    ("clinician", "POST", "/api/alerts", {}, 405, "method_not_allowed"),
    ("clinician", "POST", "/api/nowhere", {}, 404, "not_found"),
]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    async with make_api(url) as a:
        await a.store.add_patient("pat-1", "Ada")
        await a.store.add_device("dev-1", "pat-1")
        await a.store.store_alert(ALERT)
        yield a


async def snapshot(api: Api) -> dict[str, list[tuple]]:
    """Every row of every table."""
    out = {}
    async with api.store.session() as s:
        for name, table in sorted(Base.metadata.tables.items()):
            rows = (await s.execute(select(table))).all()
            out[name] = sorted((tuple(r) for r in rows), key=repr)
    return out


@pytest.mark.parametrize("who,method,path,body,status,error", CASES,
                         ids=[f"{c[1]} {c[2][:40]} {c[4]} {i}" for i, c in enumerate(CASES)])
async def test_bad_input_is_refused_counted_and_changes_nothing(api: Api, who: str | None, method: str, path: str,
                                                                body: Any, status: int, error: str) -> None:
    token = await api.token({"admin": ADMIN, "clinician": CLINICIAN}[who]) if who else None
    before = await snapshot(api)
    counted = api.rejections.get(error, 0)
    async with api.client(token) as c:
        if isinstance(body, str):
            r = await c.request(method, path, content=body, headers={"Content-Type": "application/json"})
        elif body is None:
            r = await c.request(method, path)
        else:
            r = await c.request(method, path, json=body)
    assert r.status_code == status, r.text
    payload = r.json()
    assert payload["error"] == error and isinstance(payload["detail"], str) and payload["detail"]
    assert api.rejections[error] == counted + 1
    assert await snapshot(api) == before
    async with api.client(await api.token(CLINICIAN)) as c:  # the service still works
        assert (await c.get("/api/ward")).status_code == 200
