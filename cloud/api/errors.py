"""Errors of the HTTP API: every refusal is JSON ``{"error": code, "detail": sentence}`` and is counted.

Routes raise :class:`ApiError`; the handlers here turn it, FastAPI's request validation errors and
Starlette's own 404/405 into that shape, and count each refusal by its code in
``ecgstream_cloud_api_rejected_total{reason=…}`` (nothing is refused silently). Anything unexpected is
logged with its traceback and answered 500 ``{"error": "internal"}`` without details.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_request", 429: "rate_limited",
}


class ApiError(StarletteHTTPException):
    """A refusal with a machine-readable ``error`` code and a human ``detail``."""

    def __init__(self, status_code: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=headers)
        self.error = error


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def error_response(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def _count(request: Request, reason: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.rejected(reason)


def _validation_detail(exc: RequestValidationError) -> str:
    errors: list[dict[str, Any]] = list(exc.errors())
    if not errors:
        return "the request is not valid"
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body",)) or "body"
    msg = str(first.get("msg", "invalid"))
    if first.get("type") == "json_invalid":
        return "the body is not valid JSON"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc}: {msg}{more}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        _count(request, exc.error)
        return error_response(exc.status_code, exc.error, str(exc.detail),
                              dict(exc.headers) if exc.headers is not None else None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        _count(request, "invalid_request")
        return error_response(422, "invalid_request", _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        _count(request, code)
        detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        _count(request, "internal")
        return error_response(500, "internal", "internal error (logged)")
