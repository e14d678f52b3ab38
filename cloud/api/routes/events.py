"""``GET /api/events``: the live feed as Server-Sent Events (see :mod:`cloud.api.feed`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from cloud.api.deps import CurrentUser, get_ctx
from cloud.api.errors import ApiError
from cloud.api.feed import event_stream, open_feed
from cloud.api.openapi import EVENT_STREAM, error_responses

router = APIRouter(prefix="/api", tags=["live feed"])

_STREAM = {
    "description": "Server-Sent Events: `alert` (id: the alert's seq; data: an Alert), `ack`, `escalation` "
                   "and `status` (a ward row) events, and `: keep-alive` comments (see docs/api.md).",
    "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
}


class EventStreamResponse(StreamingResponse):
    media_type = EVENT_STREAM


@router.get("/events", response_class=EventStreamResponse, responses={200: _STREAM, **error_responses(401, 422)})
async def events(
    request: Request,
    user: CurrentUser,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
    after_seq: Annotated[int | None, Query(ge=0, le=(1 << 62))] = None,
) -> EventStreamResponse:
    """``Last-Event-ID`` (or ``after_seq``): start with the alerts stored after that seq; without
    either, only what is stored from now on."""
    start = after_seq
    if last_event_id is not None and last_event_id.strip():
        try:
            start = int(last_event_id)
        except ValueError:
            raise ApiError(422, "invalid_request", "Last-Event-ID must be an alert seq (an integer)") from None
        if start < 0:
            raise ApiError(422, "invalid_request", "Last-Event-ID must not be negative")
    ctx = get_ctx(request)
    conn = await open_feed(ctx, start, user)
    return EventStreamResponse(event_stream(conn, ctx.stopping), media_type=EVENT_STREAM,
                               headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
