"""HL7 FHIR (R4B) export of stored alerts and windows (:mod:`cloud.interop.fhir` builds the resources).

``GET /api/windows/{id}/fhir`` gives the window as an Observation (one SampledData component per
lead, reconstructed leads marked, with their uncertainty); ``GET /api/alerts/{id}/fhir`` a collection
Bundle of the alert (DetectedIssue, or Flag for a technical alarm, with its acknowledgement) and the
window it rests on. Both are audited like the views they export.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cloud.api.deps import CurrentUser, get_ctx
from cloud.api.errors import ApiError, not_found
from cloud.api.views import canonical_uuid
from cloud.interop.fhir import FhirExportError, alert_bundle, window_observation
from cloud.store import NotFound
from protocol.errors import ProtocolError

router = APIRouter(prefix="/api")

FHIR_JSON = "application/fhir+json"


def _fhir(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, media_type=FHIR_JSON)


@router.get("/windows/{window_id}/fhir")
async def window_fhir(window_id: str, request: Request, user: CurrentUser) -> JSONResponse:
    store = get_ctx(request).store
    wid = canonical_uuid(window_id, "window_id")
    try:
        window = await store.load_window(wid)
    except NotFound:
        raise not_found(f"window {wid}") from None
    except ProtocolError as exc:
        raise ApiError(409, "conflict", f"window {wid} is stored but cannot be decoded: {exc}") from None
    try:
        body = window_observation(window)
    except FhirExportError as exc:
        raise ApiError(422, "invalid_request", f"window {wid} cannot be exported as FHIR: {exc}") from None
    await store.audit(user.username, "export_fhir", f"window:{wid}", {"patient_id": window.patient_id})
    return _fhir(body)


@router.get("/alerts/{alert_id}/fhir")
async def alert_fhir(alert_id: str, request: Request, user: CurrentUser) -> JSONResponse:
    store = get_ctx(request).store
    aid = canonical_uuid(alert_id, "alert_id")
    try:
        stored = await store.get_alert(aid)
        episode = await store.get_episode(stored.episode_id)
    except NotFound:
        raise not_found(f"alert {aid}") from None
    window = None
    if stored.alert.window_id is not None:
        try:
            window = await store.load_window(stored.alert.window_id)
        except (NotFound, ProtocolError):
            window = None          # the bundle still carries the alert; its evidence is simply absent
    try:
        body = alert_bundle(stored.alert, window, episode_id=episode.episode_id,
                            acknowledged_by=episode.acknowledged_by, acknowledged_us=episode.acknowledged_us,
                            cleared=episode.cleared)
    except FhirExportError as exc:
        raise ApiError(422, "invalid_request", f"alert {aid} cannot be exported as FHIR: {exc}") from None
    await store.audit(user.username, "export_fhir", f"alert:{aid}", {"patient_id": stored.alert.patient_id})
    return _fhir(body)
