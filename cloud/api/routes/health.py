"""``/healthz`` (database reachable?) and ``/metrics`` (Prometheus text); neither needs a session."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from cloud.api.deps import get_ctx
from cloud.api.metrics import CONTENT_TYPE
from cloud.api.models import Health

router = APIRouter(tags=["operations"])

_METRICS = {
    "description": f"Prometheus text exposition format 0.0.4 ({CONTENT_TYPE}); passes `promtool check metrics`.",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


class MetricsResponse(Response):
    media_type = "text/plain"  # what the OpenAPI document names; the answer carries CONTENT_TYPE


@router.get("/healthz", response_model=Health,
            responses={503: {"model": Health, "description": "The database does not answer."}})
async def healthz(request: Request) -> JSONResponse:
    ctx = get_ctx(request)
    body: dict[str, object] = {"ok": True, "database": "ok"}
    try:
        async with ctx.store.session() as s:
            await asyncio.wait_for(s.execute(text("SELECT 1")), 5.0)
    except Exception as exc:  # noqa: BLE001 - any driver error means "not healthy"
        body = {"ok": False, "database": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    if ctx.ingest is not None:
        body["ingest"] = "subscribed" if ctx.ingest.subscribed.is_set() else "not connected"
    return JSONResponse(body, status_code=200 if body["ok"] else 503)


@router.get("/metrics", response_class=MetricsResponse, responses={200: _METRICS})
async def metrics(request: Request) -> MetricsResponse:
    return MetricsResponse(get_ctx(request).metrics.render(), media_type=CONTENT_TYPE)
