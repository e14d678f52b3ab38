"""Patients and devices: everyone reads, admins write; clinicians and admins assign patients; admins put
patients in a ward or care team. With care-team scoping a clinician reads and assigns only the patients
they may see (:mod:`cloud.api.scope`); another patient answers 404, as if it did not exist."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import IntegrityError

from cloud.api.deps import AdminUser, CurrentUser, get_ctx
from cloud.api.errors import ApiError, not_found
from cloud.api.models import DeviceList, DeviceOut, PatientList, PatientOut
from cloud.api.openapi import error_responses
from cloud.api.schemas import (
    ID_PATTERN,
    AssignBody,
    CreateDeviceBody,
    CreatePatientBody,
    DevicePatientBody,
    PatientNameBody,
    TeamBody,
)
from cloud.api.scope import filter_visible, require_patient, visible_patients
from cloud.store import NotFound, PatientRecord
from cloud.store.repositories.registry import RegistryConflict

router = APIRouter(prefix="/api", tags=["registry"])


def patient_json(p: PatientRecord) -> dict[str, Any]:
    return {"patient_id": p.patient_id, "display_name": p.display_name, "assigned_to": p.assigned_to,
            "assigned_us": p.assigned_us, "team": p.team, "created_us": p.created_us}


def device_json(d: Any) -> dict[str, Any]:
    return {"device_id": d.device_id, "patient_id": d.patient_id, "profile": d.profile, "active": bool(d.active),
            "created_us": d.created_us}


@router.get("/patients", response_model=PatientList, responses=error_responses(401))
async def list_patients(request: Request, user: CurrentUser) -> dict[str, Any]:
    ctx = get_ctx(request)
    visible = await visible_patients(ctx, user)
    patients = await ctx.store.patients(None if visible is None else sorted(visible))
    return {"patients": [patient_json(p) for p in patients]}


@router.post("/patients", status_code=201, response_model=PatientOut,
             responses=error_responses(401, 403, 409, 413, 422))
async def create_patient(body: CreatePatientBody, request: Request, admin: AdminUser
                         ) -> dict[str, Any]:
    store = get_ctx(request).store
    if not await store.add_patient(body.patient_id, body.display_name):
        raise ApiError(409, "conflict", f"patient {body.patient_id!r} is already registered")
    await store.audit(admin.username, "create_patient", f"patient:{body.patient_id}",
                      {"display_name": body.display_name})
    if body.team is not None:
        await store.set_patient_team(body.patient_id, body.team, by=admin.username)
    patient = await store.get_patient(body.patient_id)
    assert patient is not None
    return patient_json(patient)


@router.post("/patients/{patient_id}/assign", response_model=PatientOut,
             responses=error_responses(401, 404, 413, 422))
async def assign_patient(patient_id: str, body: AssignBody, request: Request,
                         user: CurrentUser) -> dict[str, Any]:
    ctx = get_ctx(request)
    store = ctx.store
    if await store.get_patient(patient_id) is None:
        raise not_found(f"patient {patient_id[:80]!r}")
    await require_patient(ctx, user, patient_id, f"patient {patient_id[:80]!r}")
    if body.username is not None:
        target = await store.get_user(body.username)
        if target is None or not target.active:
            raise ApiError(404, "not_found", f"user {body.username!r} not found")
    try:
        patient = await store.assign_patient(patient_id, body.username, by=user.username)
    except NotFound:
        raise not_found(f"patient {patient_id[:80]!r}") from None
    return patient_json(patient)


@router.put("/patients/{patient_id}/team", response_model=PatientOut,
            responses=error_responses(401, 403, 404, 413, 422))
async def set_patient_team(patient_id: str, body: TeamBody, request: Request, admin: AdminUser) -> dict[str, Any]:
    """Put a patient in the care of a ward or team (``null``: none); audited as ``set_team``."""
    store = get_ctx(request).store
    if not re.fullmatch(ID_PATTERN, patient_id):
        raise not_found(f"patient {patient_id[:80]!r}")
    try:
        patient = await store.set_patient_team(patient_id, body.team, by=admin.username)
    except NotFound:
        raise not_found(f"patient {patient_id!r}") from None
    return patient_json(patient)


@router.put("/patients/{patient_id}/name", response_model=PatientOut,
            responses=error_responses(401, 403, 404, 413, 422))
async def rename_patient(patient_id: str, body: PatientNameBody, request: Request, admin: AdminUser
                         ) -> dict[str, Any]:
    """Give a patient another display name (an auto-registered patient is named after its device);
    audited as ``rename_patient``."""
    if not re.fullmatch(ID_PATTERN, patient_id):
        raise not_found(f"patient {patient_id[:80]!r}")
    try:
        patient = await get_ctx(request).store.registry.rename_patient(patient_id, body.display_name,
                                                                        by=admin.username)
    except NotFound:
        raise not_found(f"patient {patient_id!r}") from None
    return patient_json(patient)


@router.delete("/patients/{patient_id}", status_code=204, response_class=Response,
               responses=error_responses(401, 403, 404, 409, 422))
async def delete_patient(patient_id: str, request: Request, admin: AdminUser) -> Response:
    """Remove a patient from the registry (stored alerts and windows stay); 409 while devices are still
    registered to them. Audited as ``remove_patient``."""
    if not re.fullmatch(ID_PATTERN, patient_id):
        raise not_found(f"patient {patient_id[:80]!r}")
    try:
        await get_ctx(request).store.registry.remove_patient(patient_id, by=admin.username)
    except NotFound:
        raise not_found(f"patient {patient_id!r}") from None
    except RegistryConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return Response(status_code=204)


@router.get("/devices", response_model=DeviceList, responses=error_responses(401))
async def list_devices(request: Request, user: CurrentUser) -> dict[str, Any]:
    ctx = get_ctx(request)
    devices = filter_visible(await visible_patients(ctx, user), await ctx.store.list_devices(),
                             lambda d: d.patient_id)
    return {"devices": [device_json(d) for d in devices]}


@router.post("/devices", status_code=201, response_model=DeviceOut,
             responses=error_responses(401, 403, 404, 409, 413, 422))
async def create_device(body: CreateDeviceBody, request: Request, admin: AdminUser
                        ) -> dict[str, Any]:
    store = get_ctx(request).store
    if body.patient_id is not None and await store.get_patient(body.patient_id) is None:
        raise not_found(f"patient {body.patient_id!r}")
    try:
        fresh = await store.add_device(body.device_id, body.patient_id, profile=body.profile)
    except IntegrityError:  # the patient was deleted between the check and the insert
        raise not_found(f"patient {body.patient_id!r}") from None
    if not fresh:
        raise ApiError(409, "conflict", f"device {body.device_id!r} is already registered")
    await store.audit(admin.username, "create_device", f"device:{body.device_id}",
                      {"patient_id": body.patient_id, "profile": body.profile})
    device = await store.get_device(body.device_id)
    return device_json(device)


@router.put("/devices/{device_id}/patient", response_model=DeviceOut,
            responses=error_responses(401, 403, 404, 413, 422))
async def set_device_patient(device_id: str, body: DevicePatientBody, request: Request,
                             admin: AdminUser) -> dict[str, Any]:
    store = get_ctx(request).store
    if not re.fullmatch(ID_PATTERN, device_id) or await store.get_device(device_id) is None:
        raise not_found(f"device {device_id[:80]!r}")
    if body.patient_id is not None and await store.get_patient(body.patient_id) is None:
        raise not_found(f"patient {body.patient_id!r}")
    try:
        await store.assign_device(device_id, body.patient_id)
    except NotFound:
        raise not_found(f"device {device_id!r}") from None
    except IntegrityError:
        raise not_found(f"patient {body.patient_id!r}") from None
    await store.audit(admin.username, "assign_device", f"device:{device_id}", {"patient_id": body.patient_id})
    return device_json(await store.get_device(device_id))


@router.delete("/devices/{device_id}", status_code=204, response_class=Response,
               responses=error_responses(401, 403, 404, 422))
async def delete_device(device_id: str, request: Request, admin: AdminUser) -> Response:
    """Remove a device from the registry (its stored data stays; new data from it is refused). Audited as
    ``remove_device``."""
    if not re.fullmatch(ID_PATTERN, device_id):
        raise not_found(f"device {device_id[:80]!r}")
    try:
        await get_ctx(request).store.registry.remove_device(device_id, by=admin.username)
    except NotFound:
        raise not_found(f"device {device_id!r}") from None
    return Response(status_code=204)
