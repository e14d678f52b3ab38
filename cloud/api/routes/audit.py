"""The audit log (admins): who signed in, viewed, acknowledged, assigned, escalated what, and when."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from cloud.api.deps import AdminUser, get_ctx
from cloud.api.models import AuditLog
from cloud.api.openapi import error_responses

router = APIRouter(prefix="/api", tags=["audit"])


@router.get("/audit", response_model=AuditLog, responses=error_responses(401, 403, 422))
async def audit_log(
    request: Request,
    _: AdminUser,
    user: Annotated[str | None, Query(max_length=128)] = None,
    target: Annotated[str | None, Query(max_length=200)] = None,
    since_us: Annotated[int | None, Query(ge=0, le=(1 << 63) - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> dict[str, Any]:
    """Oldest first."""
    entries = await get_ctx(request).store.audit_log(user=user, target=target, since_us=since_us, limit=limit)
    return {"entries": [{"id": e.id, "user": e.user, "action": e.action, "target": e.target, "details": e.details,
                         "at_us": e.at_us} for e in entries]}
