"""Strips for review: the 12-lead strip around any moment of a patient's recording
(``GET /api/patients/{id}/strip?at=``: the stored windows covering ``at ± 5 s``), and one window's
strip as a PNG or PDF at the standard scale, 25 mm/s and 10 mm/mV (:mod:`cloud.api.strip_render`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from cloud.api.deps import CurrentUser, get_ctx
from cloud.api.models import StripOut
from cloud.api.openapi import error_responses
from cloud.api.scope import require_patient
from cloud.api.strip_render import StripFormat, render_strip
from cloud.api.views import result_json, window_json
from cloud.api.window_access import visible_window
from cloud.store import NotFound
from protocol.errors import ProtocolError

router = APIRouter(prefix="/api", tags=["review"])

AROUND_US = 5_000_000
"""A strip covers ``at`` ± this."""
LONGEST_WINDOW_US = 60_000_000
"""Windows are looked for from ``at - AROUND_US - LONGEST_WINDOW_US`` (none is longer)."""
MAX_WINDOWS = 16
MEDIA = {"png": "image/png", "pdf": "application/pdf"}


@router.get("/patients/{patient_id}/strip", response_model=StripOut, responses=error_responses(401, 404, 422))
async def strip_around(patient_id: str, request: Request, user: CurrentUser,
                       at: Annotated[int, Query(ge=0, le=(1 << 62), description="The moment (µs).")]
                       ) -> dict[str, Any]:
    """The patient's stored windows that cover any of ``at - 5 s``..``at + 5 s``, in time order, with samples."""
    ctx = get_ctx(request)
    store = ctx.store
    await require_patient(ctx, user, patient_id, f"patient {patient_id}")
    start, end = max(0, at - AROUND_US), at + AROUND_US
    metas = await store.windows_for_patient(patient_id, max(0, start - LONGEST_WINDOW_US), end)
    covering = [m for m in metas if m.t0_us + m.n_samples * 1_000_000 // max(1, m.fs_hz) > start][:MAX_WINDOWS]
    windows = []
    for meta in covering:
        try:
            body = window_json(await store.load_window(meta.window_id), meta)
        except (NotFound, ProtocolError):
            continue                                  # one undecodable window does not hide the others
        body["results"] = [result_json(r) for r in await store.results_for_window(meta.window_id)]
        windows.append(body)
    await store.audit(user.username, "view_strip", f"patient:{patient_id}", {"at_us": at})
    return {"patient_id": patient_id, "at_us": at, "from_us": start, "to_us": end, "windows": windows}


async def _export(window_id: str, request: Request, user: CurrentUser, fmt: StripFormat) -> Response:
    ctx = get_ctx(request)
    store = ctx.store
    meta, window = await visible_window(ctx, user, window_id)
    wid = meta.window_id
    patient = await store.get_patient(meta.patient_id)
    title = f"{patient.display_name} ({meta.patient_id})" if patient and patient.display_name else meta.patient_id
    data = await asyncio.to_thread(render_strip, window, fmt, title=title)
    await store.audit(user.username, "export_strip", f"window:{wid}", {"patient_id": meta.patient_id, "format": fmt})
    return Response(content=data, media_type=MEDIA[fmt], headers={
        "Content-Disposition": f'inline; filename="strip-{meta.patient_id}-{wid[:8]}.{fmt}"'})


class PngResponse(Response):
    media_type = "image/png"


class PdfResponse(Response):
    media_type = "application/pdf"


def _export_responses(media: str) -> dict[int | str, dict[str, Any]]:
    return {**error_responses(401, 404, 409, 422), 200: {
        "content": {media: {"schema": {"type": "string", "format": "binary"}}},
        "description": "The strip at 25 mm/s and 10 mm/mV on a millimetre grid."}}


@router.get("/windows/{window_id}/strip.png", response_class=PngResponse, responses=_export_responses("image/png"))
async def strip_png(window_id: str, request: Request, user: CurrentUser) -> Response:
    """The window's strip as a PNG (200 dpi, stated in the file) at 25 mm/s and 10 mm/mV on a mm grid."""
    return await _export(window_id, request, user, "png")


@router.get("/windows/{window_id}/strip.pdf", response_class=PdfResponse,
            responses=_export_responses("application/pdf"))
async def strip_pdf(window_id: str, request: Request, user: CurrentUser) -> Response:
    """The window's strip as a PDF page sized so that, printed at 100 %, a second is 25 mm and a mV 10 mm."""
    return await _export(window_id, request, user, "pdf")
