"""HL7 FHIR (R4B) export of stored windows and alarm episodes (:mod:`cloud.interop.fhir` builds them).

``GET /api/windows/{id}/fhir`` gives the window as a collection Bundle of an Observation of its
measured leads and a separate Observation of its reconstructed leads (``method`` names the model);
``GET /api/alerts/{id}/fhir`` a collection Bundle of the alert's *episode* in its latest state (a
DetectedIssue, or a Flag for a technical alarm, with its acknowledgement; the same resource whichever
of the episode's alerts is asked for) and the window it rests on. Both are ``application/fhir+json``
and audited like the views they export. ecgstream's code-system base comes from the settings'
``fhir.system_base`` when there is one (:meth:`cloud.interop.systems.FhirSystems.from_settings`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cloud.api.context import ApiContext
from cloud.api.deps import CurrentUser, get_ctx
from cloud.api.errors import ApiError, not_found
from cloud.api.openapi import FHIR_JSON, error_responses
from cloud.api.scope import require_patient
from cloud.api.views import canonical_uuid
from cloud.api.window_access import visible_window
from cloud.interop.fhir import (
    FhirExportError,
    alert_bundle,
    clear_time_us,
    reconstruction_model_of,
    window_bundle,
)
from cloud.interop.systems import FhirSystems
from cloud.store import NotFound, Store
from protocol.errors import ProtocolError
from protocol.window_payload import EcgWindow

router = APIRouter(prefix="/api", tags=["fhir"])

MODEL_SEARCH_US = 600_000_000
"""How far around a window the export looks for an alert on it that names the reconstruction model."""

_FHIR_BUNDLE = {
    "description": "A FHIR R4B collection Bundle (validated against the official R4B schema in the tests).",
    "content": {FHIR_JSON: {"schema": {"type": "object", "required": ["resourceType", "type", "entry"],
                                       "properties": {"resourceType": {"const": "Bundle"},
                                                      "type": {"const": "collection"},
                                                      "entry": {"type": "array", "items": {"type": "object"}}}}}},
}


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


def _systems(ctx: ApiContext) -> FhirSystems:
    return FhirSystems.from_settings(getattr(ctx.settings, "fhir", None))


async def _reconstruction_model(store: Store, window: EcgWindow) -> str | None:
    """The reconstruction model named by an alert that rests on ``window``, if one is stored."""
    if not window.reconstructed:
        return None
    end = window.t0_us + window.n_samples * 1_000_000 // window.fs_hz
    alerts = await store.alerts_for_patient(window.patient_id, since_us=max(0, window.t0_us - MODEL_SEARCH_US),
                                            until_us=end + MODEL_SEARCH_US, limit=1000)
    for a in alerts:
        same = a.alert.window_id is not None and a.alert.window_id.lower() == window.window_id.lower()
        if same and (model := reconstruction_model_of(dict(a.alert.model_versions))) is not None:
            return model
    return None


@router.get("/windows/{window_id}/fhir", response_class=FhirResponse,
            responses={200: _FHIR_BUNDLE, **error_responses(401, 404, 409, 422)})
async def window_fhir(window_id: str, request: Request, user: CurrentUser) -> FhirResponse:
    """The window as a FHIR Bundle: measured leads and reconstructed leads in separate Observations."""
    ctx = get_ctx(request)
    store = ctx.store
    _, window = await visible_window(ctx, user, window_id)
    wid = window.window_id
    try:
        body = window_bundle(window, reconstruction_model=await _reconstruction_model(store, window),
                             systems=_systems(ctx))
    except FhirExportError as exc:
        raise ApiError(422, "invalid_request", f"window {wid} cannot be exported as FHIR: {exc}") from None
    await store.audit(user.username, "export_fhir", f"window:{wid}", {"patient_id": window.patient_id})
    return FhirResponse(body)


@router.get("/alerts/{alert_id}/fhir", response_class=FhirResponse,
            responses={200: _FHIR_BUNDLE, **error_responses(401, 404, 422)})
async def alert_fhir(alert_id: str, request: Request, user: CurrentUser) -> FhirResponse:
    """The alert's alarm episode (latest state) and its window as a FHIR Bundle."""
    ctx = get_ctx(request)
    store = ctx.store
    aid = canonical_uuid(alert_id, "alert_id")
    try:
        stored = await store.get_alert(aid)
    except NotFound:
        raise not_found(f"alert {aid}") from None
    await require_patient(ctx, user, stored.alert.patient_id, f"alert {aid}")
    try:
        episode = await store.get_episode(stored.episode_id)
        messages = await store.alerts_of_episode(stored.episode_id)
    except NotFound:
        raise not_found(f"alert {aid}") from None
    messages = messages or [stored]
    cleared_us = None
    if episode.cleared:
        clears = [m for m in messages if m.event == "cleared"]
        times = [clear_time_us(m.alert) or m.received_us for m in clears]
        cleared_us = min(times) if times else None
        if cleared_us is not None:
            cleared_us = max(cleared_us, min(m.alert.onset_gateway_us for m in messages))
    window = None
    window_id = episode.window_id or stored.alert.window_id
    if window_id is not None:
        try:
            window = await store.load_window(window_id)
        except (NotFound, ProtocolError):
            window = None          # the bundle still carries the alarm; its evidence is simply absent
    kwargs: dict[str, Any] = {"episode_id": episode.episode_id, "acknowledged_by": episode.acknowledged_by,
                              "acknowledged_us": episode.acknowledged_us, "cleared": episode.cleared,
                              "cleared_us": cleared_us}
    try:
        body = alert_bundle([m.alert for m in messages], window, systems=_systems(ctx), **kwargs)
    except FhirExportError as exc:
        raise ApiError(422, "invalid_request", f"alert {aid} cannot be exported as FHIR: {exc}") from None
    await store.audit(user.username, "export_fhir", f"alert:{aid}", {"patient_id": stored.alert.patient_id})
    return FhirResponse(body)
