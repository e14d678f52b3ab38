"""``GET /api/ward``: one row per patient with device state, active alarms and the latest alert."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from cloud.api.deps import CurrentUser, get_ctx
from cloud.api.models import WardOut
from cloud.api.openapi import error_responses
from cloud.api.scope import visible_patients
from cloud.api.views import ward_rows

router = APIRouter(prefix="/api", tags=["ward"])


@router.get("/ward", response_model=WardOut, responses=error_responses(401))
async def ward(request: Request, user: CurrentUser) -> dict[str, Any]:
    """Every patient, or with care-team scoping a clinician's own patients."""
    ctx = get_ctx(request)
    visible = await visible_patients(ctx, user)
    return {"patients": await ward_rows(ctx.store, offline_after_s=ctx.settings.ward.offline_after_s,
                                        patient_ids=None if visible is None else sorted(visible))}
