"""What the OpenAPI document (``GET /api/openapi.json``) declares beyond the routes' own types.

The error body every refusal has (:class:`ErrorBody`, ``{"error", "detail"}``, also for 422: FastAPI's
default ``HTTPValidationError`` is never sent, so it is not declared), the refusals each route can
answer (:func:`error_responses`), the real media types (FHIR, Server-Sent Events, Prometheus text),
and the two ways to send the session (:data:`SESSION_COOKIE_SCHEME`, :data:`BEARER_SCHEME`: the
``ecgstream_session`` cookie or ``Authorization: Bearer``; either works on every ``/api`` route
but sign-in).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.security import APIKeyCookie, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

FHIR_JSON = "application/fhir+json"
EVENT_STREAM = "text/event-stream"

SESSION_COOKIE = "ecgstream_session"

SESSION_COOKIE_SCHEME = APIKeyCookie(
    name=SESSION_COOKIE, scheme_name="sessionCookie", auto_error=False,
    description="The session token, set HttpOnly by POST /api/auth/login (browsers send it by themselves).")
BEARER_SCHEME = HTTPBearer(
    scheme_name="bearerToken", auto_error=False,
    description="The token answered by POST /api/auth/login, as Authorization: Bearer <token>.")


class ErrorBody(BaseModel):
    """Every refusal: a machine-readable code and a sentence for people."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"error": "not_found", "detail": "alert 0b6c… not found"}]})

    error: str = Field(description="unauthenticated, bad_credentials, forbidden, not_found, method_not_allowed, "
                                   "conflict, too_large, unsupported_media_type, invalid_request, rate_limited, "
                                   "internal")
    detail: str = Field(description="What was wrong, in one sentence (for 422, the field that was not valid).")


_WHY = {
    400: "The request is malformed.",
    401: "No session cookie or bearer token, an unknown or expired one (`unauthenticated`), or a wrong user "
         "name or password at sign-in (`bad_credentials`).",
    403: "The route needs the admin role, or a state-changing request came from another origin (a cookie-signed "
         "request without Origin, or an Origin/Referer that is not this service) (`forbidden`).",
    404: "No such alert, window, patient, device, user or route (`not_found`).",
    409: "The id or user name exists already, or the change conflicts with the stored state (`conflict`).",
    413: "The request body is over the service's limit (`too_large`).",
    422: "A body, path or query parameter that is not valid (`invalid_request`); the detail names the field.",
    429: "Too many failed sign-ins (`rate_limited`); the Retry-After header says when to try again.",
    503: "The database does not answer.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of the refusals ``codes``, each with the :class:`ErrorBody` schema."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _WHY[code]}
        if code == 429:
            entry["headers"] = {"Retry-After": {"description": "Seconds until a sign-in may succeed again.",
                                                "schema": {"type": "integer"}}}
        if code == 401:
            entry["headers"] = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
        out[code] = entry
    return out


SIGNED_IN = (401, 413, 422)
"""Refusals any signed-in route can answer (a body or parameter refused, a body over the limit)."""


def install_openapi(app: FastAPI) -> None:
    """Generate the document once, with every refusal as ``application/json`` (FastAPI would give a
    route's error answers the route's own media type, e.g. ``application/fhir+json``) and without
    FastAPI's ``HTTPValidationError`` schemas once no route refers to them; every state-changing
    operation declares 403 (:class:`cloud.api.security.CsrfGuard` may refuse it)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for code, response in operation.get("responses", {}).items():
                        content = response.get("content")
                        if str(code).isdigit() and int(code) >= 400 and content:
                            response["content"] = {"application/json": next(iter(content.values()))}
            for operations in schema.get("paths", {}).values():
                for method, operation in operations.items():
                    if method.upper() not in ("GET", "HEAD", "OPTIONS"):  # the cross-site guard may refuse it
                        responses = operation.setdefault("responses", {})
                        responses.setdefault("403", {
                            "description": _WHY[403],
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
            schemas = schema.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape, never sent
                if unused in schemas and f"#/components/schemas/{unused}" not in json.dumps(
                        {k: v for k, v in schema.items() if k != "components"} | {"schemas": {
                            k: v for k, v in schemas.items() if k != unused}}):
                    del schemas[unused]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
