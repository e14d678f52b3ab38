"""The FastAPI application of the alert service: :func:`create_app`.

The app gets an open :class:`cloud.store.Store` from its caller (``cloud run`` makes one per process;
tests make one per test), so it needs no start-up hook and works under any ASGI server or httpx's
``ASGITransport``. Routes (``docs/api.md``): auth and users, ward, registry, alerts, windows, live feed,
audit, health and metrics; security headers and the cross-site guard (:mod:`cloud.api.security`);
``GET /`` serves the dashboard from :data:`cloud.dashboard.STATIC_DIR` when
that package is installed, a short placeholder page otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.accounts import Accounts, LoginRateLimiter, PasswordHasher
from cloud.api.context import ApiContext
from cloud.api.errors import ApiError, error_response, install_error_handlers
from cloud.api.metrics import ApiMetrics
from cloud.api.openapi import install_openapi
from cloud.api.routes import alerts, audit, auth, events, fhir, health, registry, ward, windows
from cloud.api.routes import strip as strip_route
from cloud.api.routes import timeline as timeline_route
from cloud.api.routes import zeroshot as zeroshot_route
from cloud.api.security import CsrfGuard, SecurityHeaders
from cloud.config import CloudSettings
from cloud.store import Store

PLACEHOLDER = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ecgstream</title></head>
<body><h1>ecgstream cloud</h1><p>The dashboard is not installed in this build. The HTTP API is under
<code>/api</code> (see docs/api.md); health at <a href="/healthz">/healthz</a>.</p></body></html>"""


API_DESCRIPTION = """The alert service of ecgstream (not a medical device): ward, registry, alerts and their
acknowledgement, ECG windows, FHIR R4B export, the live feed (Server-Sent Events), audit, health and
metrics. Times are integer µs since the Unix epoch. Every refusal is `{"error", "detail"}` JSON. Send
the session as the `ecgstream_session` cookie or as `Authorization: Bearer <token>` (from
`POST /api/auth/login`). The prose reference is docs/api.md."""


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (413 ``too_large``), by Content-Length or as they stream."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            state = getattr(scope.get("app"), "state", None)
            response = error_response(413, "too_large", f"request bodies are limited to {self.max_bytes} bytes")
            if state is not None and hasattr(state, "metrics"):
                state.metrics.rejected("too_large")
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise ApiError(413, "too_large", f"request bodies are limited to {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


def make_accounts(settings: CloudSettings, store: Store) -> Accounts:
    a = settings.accounts
    hasher = PasswordHasher(time_cost=a.argon2_time_cost, memory_kib=a.argon2_memory_kib,
                            parallelism=a.argon2_parallelism)
    limiter = LoginRateLimiter(store, max_failures=a.login_max_failures, window_s=a.login_window_s,
                               max_delay_s=a.login_max_delay_s, account_max_delay_s=a.login_account_max_delay_s)
    return Accounts(store, hasher=hasher, session_ttl_s=a.session_ttl_s, limiter=limiter)


def create_app(settings: CloudSettings, store: Store, *, accounts: Accounts | None = None,
               metrics: ApiMetrics | None = None, ingest: Any = None) -> FastAPI:
    """The alert service's ASGI app over an open ``store``."""
    # no Swagger page: it loads its assets from a CDN; the schema itself is at /api/openapi.json
    app = FastAPI(title="ecgstream cloud", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", description=API_DESCRIPTION)
    ctx = ApiContext(settings=settings, store=store, accounts=accounts or make_accounts(settings, store),
                     metrics=metrics or ApiMetrics(), ingest=ingest)
    app.state.ctx = ctx
    app.state.metrics = ctx.metrics
    ctx.metrics.add_source("store", store.counters.as_dict)
    if ingest is not None:
        ctx.metrics.add_source("ingest", ingest.counters.as_dict)
        ctx.metrics.add_source("receipts", ingest.receipts.counters.as_dict)
    install_error_handlers(app)
    install_openapi(app)
    for module in (auth, ward, registry, alerts, windows, fhir, events, audit, health, zeroshot_route,
                   timeline_route, strip_route):
        app.include_router(module.router)
    _mount_dashboard(app)
    app.add_middleware(CsrfGuard)
    app.add_middleware(BodyLimit, max_bytes=settings.http.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # outermost: every answer, refusals included, carries the headers
    return app


def _mount_dashboard(app: FastAPI) -> None:
    static_dir: Path | None
    try:
        from cloud.dashboard import STATIC_DIR as static_dir
    except ImportError:
        static_dir = None
    index = static_dir / "index.html" if static_dir is not None else None
    if static_dir is not None and index is not None and index.is_file():
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=static_dir), name="static")

        @app.get("/", include_in_schema=False)
        async def dashboard() -> FileResponse:
            return FileResponse(index, headers={"Cache-Control": "no-cache"})
        return

    @app.get("/", include_in_schema=False)
    async def placeholder() -> HTMLResponse:
        return HTMLResponse(PLACEHOLDER)
