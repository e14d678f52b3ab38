"""``GET /api/events``: the live feed as Server-Sent Events (see :mod:`cloud.api.feed`), with the live
ward's ECG and vitals from the process's relay (:mod:`cloud.api.live`; ``?live=0`` leaves them out)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from cloud.api.deps import CurrentUser, get_ctx
from cloud.api.errors import ApiError
from cloud.api.feed import event_stream, open_feed
from cloud.api.live import live_relay
from cloud.api.openapi import EVENT_STREAM, error_responses

router = APIRouter(prefix="/api", tags=["live feed"])

_STREAM = {
    "description": "Server-Sent Events: `alert` (id: the alert's seq; data: an Alert), `ack`, `escalation`, "
                   "`status` (a ward row), `live` (about a second of a patient's ECG, whole µV per lead) and "
                   "`vitals` (a patient's heart rate, signal quality, battery, connection and data age) "
                   "events, and `: keep-alive` comments (see docs/api.md).",
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
    live: Annotated[bool, Query(description="carry the live ward's ECG and vitals")] = True,
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
    relay = live_relay(ctx.extras, ctx.settings) if live else None
    return EventStreamResponse(event_stream(conn, ctx.stopping, relay), media_type=EVENT_STREAM,
                               headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
