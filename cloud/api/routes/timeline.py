"""A patient's timeline: heart-rate trend per minute, alarm episodes, device events and model
estimates over a span of time (``GET /api/patients/{id}/timeline?from=&to=``, µs; default the last
6 hours). The heart rate comes from the gateways' status vitals (:mod:`cloud.store.repositories.vitals`),
alarms and device events from the stored alert messages (clinical and technical) and the audit log's
registry actions on the patient's devices, the estimates
from the stress model's stored results (an estimate from a model trained on synthetic data).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from cloud.api.deps import CurrentUser, get_ctx
from cloud.api.errors import ApiError, not_found
from cloud.api.models import TimelineOut
from cloud.api.openapi import error_responses
from cloud.api.scope import require_patient
from cloud.store import AuditRecord, EpisodeState, ModelResult, Store, StoredAlert

router = APIRouter(prefix="/api", tags=["review"])

DEFAULT_SPAN_US = 6 * 3600 * 1_000_000
MAX_SPAN_US = 7 * 24 * 3600 * 1_000_000
MAX_ALERTS = 5000
ESTIMATE_MODELS = ("stress",)
_US = Query(ge=0, le=(1 << 62))


def event_us(alert: StoredAlert) -> int:
    """When the message's event happened on the gateway clock: the onset plus how long after it the
    edge sent it (``details.at_s - details.onset_s``), else the onset."""
    details = alert.alert.details
    at, onset = details.get("at_s"), details.get("onset_s")
    if isinstance(at, int | float) and isinstance(onset, int | float) and at >= onset:
        return alert.alert.onset_gateway_us + int(round((at - onset) * 1e6))
    return alert.alert.onset_gateway_us


def _alarms(alerts: list[StoredAlert], episodes: dict[str, EpisodeState]) -> list[dict[str, Any]]:
    by_episode: dict[str, list[StoredAlert]] = {}
    for a in alerts:
        if str(a.alert.category) == "clinical":
            by_episode.setdefault(a.episode_id, []).append(a)
    out = []
    for eid, msgs in by_episode.items():
        latest = max(msgs, key=lambda m: m.seq)
        cleared = [event_us(m) for m in msgs if m.event == "cleared"]
        ep = episodes.get(eid)
        out.append({
            "episode_id": eid, "alert_id": str(uuid.UUID(latest.alert.alert_id)),
            "alert_type": ep.alert_type if ep else latest.alert.alert_type,
            "priority": str(ep.priority if ep else latest.alert.priority), "message": latest.alert.message,
            "onset_us": min(m.alert.onset_gateway_us for m in msgs), "cleared_us": min(cleared) if cleared else None,
            "active": bool(ep and ep.raised and not ep.cleared),
            "acknowledged_by": ep.acknowledged_by if ep else None,
            "acknowledged_us": ep.acknowledged_us if ep else None,
        })
    return sorted(out, key=lambda e: (e["onset_us"], e["episode_id"]))


REGISTRY_ACTIONS = {"create_device": "registered", "assign_device": "assigned", "remove_device": "removed",
                    "auto_register": "registered automatically"}
"""Audit actions on a device that the timeline shows, and how it words them."""


def _device_events(alerts: list[StoredAlert], audit: list[AuditRecord]) -> list[dict[str, Any]]:
    events = [{"at_us": event_us(a), "device_id": a.alert.device_id, "source": "alarm",
               "alert_id": str(uuid.UUID(a.alert.alert_id)), "alert_type": a.alert.alert_type, "event": a.event,
               "priority": str(a.alert.priority), "message": a.alert.message}
              for a in alerts if str(a.alert.category) == "technical"]
    for e in audit:
        device = e.target.removeprefix("device:")
        patient = e.details.get("patient_id")
        events.append({"at_us": e.at_us, "device_id": device, "source": "registry", "alert_id": None,
                       "alert_type": e.action, "event": e.action, "priority": None,
                       "message": f"device {device} {REGISTRY_ACTIONS[e.action]}"
                                  + (f" to patient {patient}" if isinstance(patient, str) and patient else "")
                                  + f" by {e.user}"})
    return sorted(events, key=lambda e: (e["at_us"], e["alert_id"] or ""))


async def _registry_events(store: Store, device_ids: set[str], start: int, end: int) -> list[AuditRecord]:
    """The audit log's registry actions on these devices between ``start`` and ``end``."""
    found: list[AuditRecord] = []
    for device in sorted(device_ids):
        found += [e for e in await store.audit_log(target=f"device:{device}", since_us=start, limit=MAX_ALERTS)
                  if e.at_us < end and e.action in REGISTRY_ACTIONS]
    return found


def _estimate(t0_us: int, r: ModelResult) -> dict[str, Any] | None:
    o = r.outputs
    probs = o.get("probabilities")
    if not isinstance(o.get("estimate"), str) or not isinstance(probs, dict):
        return None
    return {"t_us": t0_us, "window_id": r.window_id, "model": r.model, "version": r.version,
            "estimate": o["estimate"],
            "probabilities": {str(k): float(v) for k, v in probs.items() if isinstance(v, int | float)},
            "note": str(o.get("note") or "estimate")}


@router.get("/patients/{patient_id}/timeline", response_model=TimelineOut,
            responses=error_responses(401, 404, 422))
async def patient_timeline(
    patient_id: str,
    request: Request,
    user: CurrentUser,
    from_us: Annotated[int | None, _US, Query(alias="from", description="Start (µs); default to − 6 h.")] = None,
    to_us: Annotated[int | None, _US, Query(alias="to", description="End (µs, exclusive); default now.")] = None,
) -> dict[str, Any]:
    """Heart rate per minute, alarms, device events and estimates of one patient between ``from`` and ``to``."""
    ctx = get_ctx(request)
    store = ctx.store
    await require_patient(ctx, user, patient_id, f"patient {patient_id}")
    if await store.get_patient(patient_id) is None:
        raise not_found(f"patient {patient_id}")
    end = to_us if to_us is not None else store.clock()
    start = from_us if from_us is not None else max(0, end - DEFAULT_SPAN_US)
    if end < start:
        raise ApiError(422, "invalid_request", "to must not be before from")
    if end - start > MAX_SPAN_US:
        raise ApiError(422, "invalid_request", "a timeline spans at most 7 days")
    minutes = await store.vitals.minutes(patient_id, start, end)
    alerts = await store.alerts_for_patient(patient_id, start, end, limit=MAX_ALERTS)
    seen = {a.episode_id for a in alerts}
    for ep in await store.active_episodes(patient_id):   # begun before the span and still on: shown too
        if ep.episode_id not in seen and ep.onset_gateway_us < start and str(ep.category) == "clinical":
            alerts += await store.alerts_of_episode(ep.episode_id)
    episodes = await store.episodes(sorted({a.episode_id for a in alerts}))
    estimates = []
    for model in ESTIMATE_MODELS:
        for t0, result in await store.results.results_for_patient(patient_id, model, start, end):
            if (point := _estimate(t0, result)) is not None:
                estimates.append(point)
    devices = {d.device_id for d in await store.list_devices(patient_id=patient_id)} | {
        a.alert.device_id for a in alerts}
    audit = await _registry_events(store, devices, start, end)
    await store.audit(user.username, "view_timeline", f"patient:{patient_id}", {"from_us": start, "to_us": end})
    return {
        "patient_id": patient_id, "from_us": start, "to_us": end,
        "heart_rate": [{"minute_us": m.minute_us, "reports": m.reports, "mean_bpm": m.hr_mean_bpm,
                        "min_bpm": m.hr_min_bpm, "max_bpm": m.hr_max_bpm, "sqi_mean": m.sqi_mean,
                        "battery_pct": m.battery_pct} for m in minutes],
        "alarms": _alarms(alerts, episodes),
        "device_events": _device_events(alerts, audit),
        "estimates": sorted(estimates, key=lambda e: e["t_us"]),
    }
