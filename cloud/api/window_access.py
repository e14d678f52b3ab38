"""One stored window as a signed-in user may see it: the routes that read a window's samples (view,
strip export, FHIR, zero-shot) share these answers — 404 for an unknown window or one of a patient the
user may not see (:func:`cloud.api.scope.require_patient`), 409 for stored bytes that no longer decode."""

from __future__ import annotations

from cloud.api.context import ApiContext
from cloud.api.errors import ApiError, not_found
from cloud.api.scope import require_patient
from cloud.api.views import canonical_uuid
from cloud.store import NotFound, UserRecord, WindowMeta
from protocol.errors import ProtocolError
from protocol.window_payload import EcgWindow


async def visible_window(ctx: ApiContext, user: UserRecord, window_id: str) -> tuple[WindowMeta, EcgWindow]:
    """The window ``window_id`` (any UUID spelling) and its metadata, or the ApiError to answer."""
    wid = canonical_uuid(window_id, "window_id")
    try:
        meta = await ctx.store.window_meta(wid)
    except NotFound:
        raise not_found(f"window {wid}") from None
    await require_patient(ctx, user, meta.patient_id, f"window {wid}")
    try:
        window = await ctx.store.load_window(wid)
    except NotFound:
        raise not_found(f"window {wid}") from None
    except ProtocolError as exc:  # stored bytes no longer decode: say so rather than 500
        raise ApiError(409, "conflict", f"window {wid} is stored but cannot be decoded: {exc}") from None
    return meta, window


__all__ = ["visible_window"]
