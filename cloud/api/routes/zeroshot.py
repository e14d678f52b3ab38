"""Zero-shot scores of labels on one stored window: ``POST /api/windows/{id}/zeroshot``.

The model (:class:`models.runtime.zeroshot.ZeroShotModel`, the shipped artifact) is opened on first use and
kept on the app's context (``ctx.extras["zeroshot_model"]``; a test or a deployment may put another there).
Knowledge-base labels need nothing more; free text needs the on-demand text encoder (503 naming the
command that builds it when it is absent). A window with gaps (lost data) is refused (409), as the model
worker refuses it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from cloud.api.deps import CurrentUser, get_ctx
from cloud.api.errors import ApiError
from cloud.api.models import ZeroShotOut, ZeroShotRequest
from cloud.api.openapi import error_responses
from cloud.api.window_access import visible_window

router = APIRouter(prefix="/api", tags=["windows"])
MODEL_KEY = "zeroshot_model"


def _model(ctx: Any) -> Any:
    model = ctx.extras.get(MODEL_KEY)
    if model is None:
        from models.runtime.zeroshot import ZeroShotModel

        try:
            model = ZeroShotModel.load(threads=1)
        except (FileNotFoundError, ValueError) as exc:
            raise ApiError(503, "unavailable", f"the zero-shot model is not available: {exc}") from None
        ctx.extras[MODEL_KEY] = model
    return model


@router.post("/windows/{window_id}/zeroshot", response_model=ZeroShotOut,
             responses=error_responses(401, 404, 409, 413, 422, 503))
async def zeroshot_window(window_id: str, body: ZeroShotRequest, request: Request, user: CurrentUser) -> dict[str, Any]:
    """Scores of ``labels`` on the window (softmax over them) and their cosine similarities."""
    from models.runtime.zeroshot import TextEncoderMissing

    ctx = get_ctx(request)
    labels = [t.strip() for t in body.labels]
    if any(not t or len(t) > 200 for t in labels):
        raise ApiError(422, "invalid_request", "each label must be 1-200 characters")
    meta, window = await visible_window(ctx, user, window_id)
    wid = meta.window_id
    if window.gaps:
        raise ApiError(409, "conflict", f"window {wid} has samples lost in gaps; the model does not read it")
    model = _model(ctx)
    try:
        r = await asyncio.to_thread(model.classify, window.millivolts()[None], float(window.fs_hz), window.leads,
                                    labels, body.prompts)
    except TextEncoderMissing as exc:
        raise ApiError(503, "unavailable", str(exc)) from None
    except ValueError as exc:
        raise ApiError(409, "conflict", f"window {wid} cannot be scored: {exc}") from None
    await ctx.store.audit(user.username, "zeroshot_window", f"window:{wid}", {"patient_id": window.patient_id})
    return {"window_id": wid, "model": model.version, "prompts": body.prompts, "labels": labels,
            "scores": [round(float(v), 6) for v in r.scores[0]],
            "similarities": [round(float(v), 6) for v in r.similarities[0]]}
