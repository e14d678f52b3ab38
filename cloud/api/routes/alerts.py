"""Alerts: list with filters, one alert (audited as viewed), acknowledge (audited, idempotent, sent back to the edge).

One alert's detail adds its ECG evidence: ``evidence_window_ids``, the windows the edge named as
covering the alarm's deciding samples (``details.evidence_window_ids`` and ``window_id``; named when
the alarm was raised, so some may not have arrived yet), and ``evidence_windows``, the metadata of
those already stored, in time order (only the alert's own patient's windows); and ``deliveries``, the
episode's escalation deliveries to webhooks, e-mail and push (:mod:`cloud.escalation.delivery`).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from cloud.api.deps import CurrentUser, get_ctx
from cloud.api.errors import ApiError, not_found
from cloud.api.models import AckOut, AlertList, AlertOut
from cloud.api.openapi import error_responses
from cloud.api.schemas import ID_PATTERN, AckBody
from cloud.api.scope import require_patient, scoped_query, visible_patients
from cloud.api.views import ack_json, alerts_json, canonical_uuid, window_meta_json
from cloud.store import Delivery, NotFound, Store, StoredAlert

router = APIRouter(prefix="/api", tags=["alerts"])


_US = Query(ge=0, le=(1 << 62))


@router.get("/alerts", response_model=AlertList, responses=error_responses(401, 422))
async def list_alerts(
    request: Request,
    user: CurrentUser,
    patient_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    category: Literal["clinical", "technical"] | None = None,
    active: bool | None = None,
    after_seq: Annotated[int | None, Query(ge=0, le=(1 << 62))] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    alert_type: Annotated[str | None, Query(pattern=ID_PATTERN, description="One alert type, e.g. af.")] = None,
    priority: Literal["high", "medium", "low"] | None = None,
    acknowledged: Annotated[bool | None, Query(description="Only acknowledged (true) or unacknowledged (false) "
                                                           "episodes.")] = None,
    text: Annotated[str | None, Query(max_length=200, description="Words in the message or type "
                                                                   "(case-insensitive).")] = None,
    from_us: Annotated[int | None, _US, Query(description="Onset at or after (µs).")] = None,
    to_us: Annotated[int | None, _US, Query(description="Onset before (µs).")] = None,
    before_seq: Annotated[int | None, Query(ge=1, le=(1 << 62), description="The next page: alerts stored "
                                                                             "before this seq (next_before_seq).")
                          ] = None,
) -> dict[str, Any]:
    """Alert history search. Newest first, ``limit`` a page (``next_before_seq`` asks for the next);
    with ``after_seq``, the alerts stored after it in storage order (a cursor)."""
    if from_us is not None and to_us is not None and to_us < from_us:
        raise ApiError(422, "invalid_request", "to_us must not be before from_us")
    ctx = get_ctx(request)
    store = ctx.store
    words = text.strip() if text else None

    async def query(pid: str | None) -> list[StoredAlert]:
        return await store.query_alerts(patient_id=pid, category=category, active=active, after_seq=after_seq,
                                        limit=limit, alert_type=alert_type, priority=priority,
                                        acknowledged=acknowledged, text=words or None, since_us=from_us,
                                        until_us=to_us, before_seq=None if after_seq is not None else before_seq)

    alerts = await scoped_query(await visible_patients(ctx, user), patient_id, query, key=lambda a: a.seq,
                                newest_first=after_seq is None, limit=limit)
    more = after_seq is None and len(alerts) == limit
    return {"alerts": await alerts_json(store, alerts), "next_before_seq": alerts[-1].seq if more else None}


@router.get("/alerts/{alert_id}", response_model=AlertOut, responses=error_responses(401, 404, 422))
async def get_alert(alert_id: str, request: Request, user: CurrentUser) -> dict[str, Any]:
    ctx = get_ctx(request)
    store = ctx.store
    aid = canonical_uuid(alert_id, "alert_id")
    try:
        alert = await store.get_alert(aid)
    except NotFound:
        raise not_found(f"alert {aid}") from None
    await require_patient(ctx, user, alert.alert.patient_id, f"alert {aid}")
    await store.audit(user.username, "view_alert", f"alert:{aid}", {"patient_id": alert.alert.patient_id})
    acks = [{"user": a.user, "at_us": a.at_us, "note": a.note} for a in await store.acknowledgements(alert.episode_id)]
    return {**(await alerts_json(store, [alert]))[0], **await _evidence(store, alert), "acknowledgements": acks,
            "deliveries": [_delivery_json(d) for d in await store.deliveries.for_episode(alert.episode_id)]}


def _delivery_json(d: Delivery) -> dict[str, Any]:
    """One escalation delivery as the alert's detail shows it."""
    return {"channel": d.channel, "kind": d.kind, "target": d.target, "level": d.level, "priority": d.priority,
            "status": d.status, "attempts": d.attempts, "last_error": d.last_error, "created_us": d.created_us,
            "delivered_us": d.delivered_us}


MAX_EVIDENCE = 32
"""Most evidence windows one alert's detail looks up."""


async def _evidence(store: Store, alert: StoredAlert) -> dict[str, Any]:
    """The alert's evidence window ids (as named by the edge) and the stored ones' metadata."""
    named = alert.alert.details.get("evidence_window_ids")
    raw = [*(named if isinstance(named, list) else []), alert.alert.window_id]
    ids: list[str] = []
    for value in raw:
        try:
            wid = str(uuid.UUID(value)) if isinstance(value, str) else None
        except ValueError:
            wid = None
        if wid is not None and wid not in ids:
            ids.append(wid)
    metas = []
    for wid in ids[:MAX_EVIDENCE]:
        try:
            meta = await store.window_meta(wid)
        except NotFound:
            continue                              # named before it was cut: not arrived (yet)
        if meta.patient_id == alert.alert.patient_id:
            metas.append(meta)
    metas.sort(key=lambda m: (m.t0_us, m.window_id))
    return {"evidence_window_ids": ids, "evidence_windows": [window_meta_json(m) for m in metas]}


@router.post("/alerts/{alert_id}/ack", response_model=AckOut,
             responses=error_responses(401, 404, 413, 422))
async def acknowledge(alert_id: str, request: Request, user: CurrentUser,
                      body: AckBody | None = None) -> dict[str, Any]:
    """Acknowledge the alert's episode. Every acknowledgement is kept and audited; the episode shows the first.
    The acknowledgement is also sent to the edge gateway that raised the episode, which releases its latch."""
    ctx = get_ctx(request)
    store = ctx.store
    aid = canonical_uuid(alert_id, "alert_id")
    try:
        alert = await store.get_alert(aid)
    except NotFound:
        raise not_found(f"alert {aid}") from None
    await require_patient(ctx, user, alert.alert.patient_id, f"alert {aid}")
    try:
        ack = await store.acknowledge(alert.episode_id, user.username, note=body.note if body else "", alert_id=aid)
    except NotFound:
        raise not_found(f"alert {aid}") from None
    downlink = ctx.extras.get("downlink")        # a cloud.downlink.AckPublisher, when this process runs one
    if downlink is not None:
        await downlink.acknowledged(store, alert, ack)     # to the gateway that raised it: it unlatches there
    episode = await store.get_episode(alert.episode_id)
    return {**ack_json(ack, aid), "acknowledged_by": episode.acknowledged_by,
            "acknowledged_us": episode.acknowledged_us}
