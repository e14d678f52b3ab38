"""The OpenAPI document is the HTTP contract: valid OpenAPI, every route typed, errors, media types and
security declared, and real answers (422 included) match what it declares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from cloud.store import upgrade_database
from tests.cloud.api_support import ADMIN, CLINICIAN, Api, assert_matches_openapi, make_api
from tests.cloud.conftest import make_alert, make_window

ERROR_REF = "#/components/schemas/ErrorBody"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    async with make_api(url) as a:
        await a.store.add_patient("pat-1", "Ada")
        await a.store.add_device("dev-1", "pat-1")
        yield a


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


async def test_the_served_document_is_valid_openapi(api: Api) -> None:
    async with api.client() as c:
        r = await c.get("/api/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    validate(doc)  # openapi-spec-validator: the document itself is well-formed OpenAPI 3.1
    assert doc == api.app.openapi()


def test_every_route_declares_its_answer_errors_and_security(api: Api) -> None:
    doc = api.app.openapi()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["sessionCookie"] == {"type": "apiKey", "in": "cookie", "name": "ecgstream_session",
                                        "description": schemes["sessionCookie"]["description"]}
    assert schemes["bearerToken"]["type"] == "http" and schemes["bearerToken"]["scheme"] == "bearer"
    assert set(doc["components"]["schemas"]["ErrorBody"]["required"]) == {"error", "detail"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # never sent, so never declared
    for method, path, op in operations(doc):
        what = f"{method} {path}"
        ok = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        assert ok, what
        for code, response in ok.items():
            if code == "204":
                assert not response.get("content"), what
                continue
            (media, body), = response["content"].items()
            assert body["schema"], f"{what}: {code} has no schema"
            if media == "application/json":
                assert "$ref" in body["schema"], f"{what}: {code} is not a named model"
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")) and path != "/healthz":
                assert response["content"] == {"application/json": {"schema": {"$ref": ERROR_REF}}}, (what, code)
        public = path in ("/healthz", "/metrics", "/api/auth/login")
        assert ("security" in op) != public, what
        if not public:
            assert op["security"] == [{"sessionCookie": []}, {"bearerToken": []}], what
            assert "401" in op["responses"], what
        if any(p["in"] in ("path", "query", "header") for p in op.get("parameters", ())) or "requestBody" in op:
            assert "422" in op["responses"], what
        if "requestBody" in op:
            assert "413" in op["responses"], what
    media = {(m, p): next(iter(op["responses"]["200"]["content"]))
             for m, p, op in operations(doc) if "200" in op["responses"]}
    assert media["GET", "/api/windows/{window_id}/fhir"] == "application/fhir+json"
    assert media["GET", "/api/alerts/{alert_id}/fhir"] == "application/fhir+json"
    assert media["GET", "/api/events"] == "text/event-stream"
    assert media["GET", "/metrics"] == "text/plain"
    assert "429" in doc["paths"]["/api/auth/login"]["post"]["responses"]
    admin_only = [("GET", "/api/users"), ("POST", "/api/users"), ("GET", "/api/audit"), ("POST", "/api/patients")]
    assert all("403" in doc["paths"][p][m.lower()]["responses"] for m, p in admin_only)


async def test_the_real_422_and_other_refusals_match_the_declared_error_body(api: Api) -> None:
    async with api.as_user(ADMIN) as c:
        refusals = [
            await c.get("/api/alerts", params={"limit": 0}),
            await c.get("/api/windows/not-a-uuid"),
            await c.post("/api/users", json={"username": "x y"}),
            await c.get("/api/alerts/00000000-0000-4000-8000-000000000000"),
            await c.post("/api/patients", json={"patient_id": "pat-1"}),
        ]
    async with api.client() as anonymous:
        refusals.append(await anonymous.get("/api/ward"))
    async with api.as_user(CLINICIAN) as c:
        refusals.append(await c.get("/api/audit"))
    assert [r.status_code for r in refusals] == [422, 422, 422, 404, 409, 401, 403]
    for r in refusals:
        body = assert_matches_openapi(api.app, r)
        assert set(body) == {"error", "detail"}


async def test_main_routes_answer_what_they_declare(api: Api) -> None:
    window = make_window(fs_hz=125, seconds=2.0)
    alert = make_alert(window_id=window.window_id)
    await api.store.store_window(window)
    await api.store.store_alert(alert)
    async with api.as_user(ADMIN) as c:
        for path in ("/api/me", "/api/ward", "/api/patients", "/api/devices", "/api/users", "/api/alerts",
                     f"/api/alerts/{alert.alert_id}", "/api/windows", f"/api/windows/{window.window_id}",
                     "/api/audit", f"/api/alerts/{alert.alert_id}/fhir", f"/api/windows/{window.window_id}/fhir",
                     "/healthz", "/metrics"):
            r = await c.get(path)
            assert r.status_code == 200, (path, r.text)
            assert_matches_openapi(api.app, r)
        ack = await c.post(f"/api/alerts/{alert.alert_id}/ack", json={"note": "seen"})
        assert assert_matches_openapi(api.app, ack)["acknowledged_by"] == ADMIN[0]


def test_the_contract_check_catches_drift(api: Api) -> None:
    request = httpx.Request("GET", "http://cloud.test/api/me")
    good = httpx.Response(200, json={"username": "a", "role": "admin"}, request=request)
    assert assert_matches_openapi(api.app, good) == {"username": "a", "role": "admin"}
    for bad in (httpx.Response(200, json={"username": "a", "role": "root"}, request=request),
                httpx.Response(200, json={"username": "a", "role": "admin", "extra": 1}, request=request),
                httpx.Response(418, json={"error": "x", "detail": "y"}, request=request),
                httpx.Response(401, json={"detail": "FastAPI's own shape"}, request=request),
                httpx.Response(200, text="a", headers={"content-type": "text/html"}, request=request)):
        with pytest.raises(AssertionError):
            assert_matches_openapi(api.app, bad)


async def test_every_answer_an_api_client_gets_is_checked() -> None:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel

    class Thing(BaseModel):
        a: int

    app = FastAPI()

    @app.get("/thing", response_model=Thing)
    async def thing() -> JSONResponse:
        return JSONResponse({"a": "not an int"})  # a JSONResponse skips FastAPI's own response check

    async with Api(app, store=None, settings=None).client() as c:  # type: ignore[arg-type]
        with pytest.raises(AssertionError, match="does not match its declared schema"):
            await c.get("/thing")
    async with Api(app, store=None, settings=None).client(check_contract=False) as c:  # type: ignore[arg-type]
        assert (await c.get("/thing")).json() == {"a": "not an int"}
