"""ECG windows: list (metadata) and one window's samples in mV with the reconstruction's uncertainty."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from cloud.api.deps import CurrentUser, get_ctx
from cloud.api.errors import ApiError
from cloud.api.models import WindowList, WindowOut
from cloud.api.openapi import error_responses
from cloud.api.schemas import ID_PATTERN
from cloud.api.scope import scoped_query, visible_patients
from cloud.api.views import result_json, window_json, window_meta_json
from cloud.api.window_access import visible_window
from cloud.store import WindowMeta

router = APIRouter(prefix="/api", tags=["windows"])

_US = Query(ge=0, le=(1 << 63) - 1)


@router.get("/windows", response_model=WindowList, responses=error_responses(401, 422))
async def list_windows(
    request: Request,
    user: CurrentUser,
    patient_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    from_us: Annotated[int | None, _US] = None,
    to_us: Annotated[int | None, _US] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Newest first, ``from_us <= t0_us < to_us``."""
    if from_us is not None and to_us is not None and to_us < from_us:
        raise ApiError(422, "invalid_request", "to_us must not be before from_us")
    ctx = get_ctx(request)

    async def query(pid: str | None) -> list[WindowMeta]:
        return await ctx.store.list_windows(patient_id=pid, t0_from=from_us, t0_to=to_us, limit=limit)

    windows = await scoped_query(await visible_patients(ctx, user), patient_id, query,
                                 key=lambda w: (w.t0_us, w.received_us), newest_first=True, limit=limit)
    return {"windows": [window_meta_json(w) for w in windows]}


@router.get("/windows/{window_id}", response_model=WindowOut,
            responses=error_responses(401, 404, 409, 422))
async def get_window(window_id: str, request: Request, user: CurrentUser) -> dict[str, Any]:
    ctx = get_ctx(request)
    store = ctx.store
    meta, window = await visible_window(ctx, user, window_id)
    wid = meta.window_id
    await store.audit(user.username, "view_window", f"window:{wid}", {"patient_id": window.patient_id})
    body = window_json(window, meta)
    body["results"] = [result_json(r) for r in await store.results_for_window(wid)]
    return body
