"""JSON views of stored things, as the API contract (``docs/api.md``) spells them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from cloud.api.errors import ApiError
from cloud.store import AckRecord, EpisodeState, ModelResult, Store, StoredAlert, UserRecord, WindowMeta
from protocol.window_payload import EcgWindow


def canonical_uuid(value: str, what: str) -> str:
    """A path's UUID in canonical form; 422 if it is not one."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise ApiError(422, "invalid_request", f"{what} {value[:80]!r} is not a UUID") from None


def user_json(user: UserRecord) -> dict[str, Any]:
    return {"username": user.username, "role": user.role, "active": user.active, "team": user.team,
            "created_us": user.created_us}


def result_json(r: ModelResult) -> dict[str, Any]:
    return {**r.outputs, "model": r.model, "version": r.version, "window_id": r.window_id, "alert_id": r.alert_id,
            "created_us": r.created_us, "outputs": r.outputs}


def alert_json(a: StoredAlert, episode: EpisodeState | None, results: Sequence[ModelResult] = ()) -> dict[str, Any]:
    m = a.alert
    return {
        "seq": a.seq, "alert_id": str(uuid.UUID(m.alert_id)), "episode_id": a.episode_id,
        "patient_id": m.patient_id, "device_id": m.device_id, "alert_type": m.alert_type,
        "category": str(m.category), "priority": str(m.priority), "event": a.event,
        "onset_gateway_us": m.onset_gateway_us, "onset_device_us": m.onset_device_us,
        "received_us": a.received_us, "window_id": m.window_id, "message": m.message, "details": dict(m.details),
        "model_versions": dict(m.model_versions), "reconstructed_leads": dict(m.reconstructed_leads),
        "acknowledged": bool(episode and episode.acknowledged_by),
        "acknowledged_by": episode.acknowledged_by if episode else None,
        "acknowledged_us": episode.acknowledged_us if episode else None,
        "escalation_level": episode.escalation_level if episode else 0,
        "episode_active": bool(episode and episode.active),
        "results": [result_json(r) for r in results],
    }


async def alerts_json(store: Store, alerts: Sequence[StoredAlert], *, with_results: bool = True) -> list[dict[str, Any]]:
    """Alert JSON for many alerts with one episode query and one result query."""
    episodes = await store.episodes([a.episode_id for a in alerts])
    results = await store.results_for_alerts(alerts) if with_results else {}
    return [alert_json(a, episodes.get(a.episode_id), results.get(str(uuid.UUID(a.alert.alert_id)), []))
            for a in alerts]


def ack_json(ack: AckRecord, alert_id: str) -> dict[str, Any]:
    return {"id": ack.id, "episode_id": ack.episode_id, "alert_id": alert_id, "user": ack.user,
            "at_us": ack.at_us, "note": ack.note}


def window_meta_json(w: WindowMeta) -> dict[str, Any]:
    return {"window_id": w.window_id, "patient_id": w.patient_id, "device_id": w.device_id, "t0_us": w.t0_us,
            "fs_hz": w.fs_hz, "n_samples": w.n_samples, "leads": list(w.leads), "reconstructed": list(w.reconstructed),
            "received_us": w.received_us}


def window_json(w: EcgWindow, meta: WindowMeta | None = None) -> dict[str, Any]:
    """Samples in mV (rounded to the window's resolution), the 90 % band half-width of each
    reconstructed lead in ``uncertainty_mv``."""
    decimals = max(0, int(np.ceil(-np.log10(w.lsb_nv * 1e-6))) + 1)
    samples = np.round(w.millivolts(), decimals)
    unc = w.uncertainty_mv()
    uncertainty = {} if unc is None else {
        lead: np.round(unc[i], decimals).tolist() for i, lead in enumerate(w.reconstructed)}
    return {
        "window_id": str(uuid.UUID(w.window_id)), "patient_id": w.patient_id, "device_id": w.device_id,
        "t0_us": w.t0_us, "fs_hz": w.fs_hz, "n_samples": w.n_samples, "leads": list(w.leads),
        "reconstructed": list(w.reconstructed), "samples_mv": samples.tolist(), "uncertainty_mv": uncertainty,
        "received_us": meta.received_us if meta else None,
        "gaps": [list(g) for g in w.gaps],
    }


# -- the ward ---------------------------------------------------------------------------------------


HR_DEPTH = 20
"""How many of a patient's latest alerts the ward searches for a heart rate."""


def _heart_rate(alerts: Sequence[StoredAlert]) -> tuple[float | None, int | None]:
    """The newest heart rate in these alerts' details (``heart_rate_bpm`` or ``rate_bpm``) and its onset."""
    for alert in alerts:
        for key in ("heart_rate_bpm", "rate_bpm"):
            value = alert.alert.details.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
                return float(value), alert.alert.onset_gateway_us
    return None, None


async def ward_rows(store: Store, *, offline_after_s: float, patient_ids: Sequence[str] | None = None
                    ) -> list[dict[str, Any]]:
    """One row per patient (registered, or seen in an active episode), by patient id."""
    patients = {p.patient_id: p for p in await store.patients(patient_ids)}
    counts = await store.active_counts(patient_ids)
    ids = set(patients) | set(counts)
    if patient_ids is not None:
        ids &= set(patient_ids)
    devices = await store.list_devices(patient_ids=sorted(ids))
    statuses = await store.device_statuses([d.device_id for d in devices])
    recent = await store.latest_alerts(sorted(ids), depth=HR_DEPTH)
    windows = await store.last_window_received(sorted(ids))
    last_eps = await store.episodes([a[0].episode_id for a in recent.values()])
    by_patient: dict[str, list[Any]] = {}
    for d in devices:
        if d.patient_id is not None:
            by_patient.setdefault(d.patient_id, []).append(d)
    now = store.clock()
    rows = []
    for pid in sorted(ids):
        p = patients.get(pid)
        mine = by_patient.get(pid, [])
        with_status = [d for d in mine if d.device_id in statuses]
        device = (max(with_status, key=lambda d: statuses[d.device_id][1]) if with_status
                  else (mine[0] if mine else None))
        status, status_us = statuses.get(device.device_id, (None, None)) if device else (None, None)
        last_alert = recent[pid][0] if pid in recent else None
        heart_rate, heart_rate_us = _heart_rate(recent.get(pid, ()))
        seen = [t for t in (status_us, windows.get(pid), last_alert.received_us if last_alert else None)
                if t is not None]
        last_seen = max(seen) if seen else None
        clinical = counts.get(pid, {}).get("clinical", 0)
        technical = counts.get(pid, {}).get("technical", 0)
        lead_off = list(status.lead_off) if status else []
        if clinical:
            state = "alarm"
        elif technical or lead_off:
            state = "technical"
        elif last_seen is None or now - last_seen > offline_after_s * 1e6 or (status and not status.connected):
            state = "offline"
        else:
            state = "ok"
        rows.append({
            "patient_id": pid, "display_name": p.display_name if p and p.display_name else pid,
            "assigned_to": p.assigned_to if p else None, "device_id": device.device_id if device else None,
            "battery_pct": status.battery_pct if status else None, "connected": status.connected if status else None,
            "lead_off": lead_off, "last_seen_us": last_seen, "heart_rate_bpm": heart_rate, "heart_rate_us": heart_rate_us,
            "state": state, "active_clinical": clinical, "active_technical": technical,
            "last_alert": alert_json(last_alert, last_eps.get(last_alert.episode_id)) if last_alert else None,
        })
    return rows
