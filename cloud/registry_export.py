"""The devices (and their patients) the registry assigns to one gateway, in the files the edge reads.

A gateway serves the patients its ``[gateways.<id>] patients`` list names in the broker accounts file
(:func:`cloud.broker_auth.read_accounts`; no list, or no accounts file: every patient), exactly as the
generated broker ACLs do. Its devices are the registry's active devices worn by those patients. Two
renderings: the edge's ``[ingest] allowed_devices_file`` (one device id a line, ``#`` comments) and an
``[ingest.patients]`` TOML table (device id → patient id) that the operator pastes into the edge config,
because the edge reads the device → patient map from its config file only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cloud.broker_auth import BrokerAuthError, GatewaySpec
from cloud.broker_auth.mosquitto import Registry


@dataclass(frozen=True)
class AssignedDevice:
    """One device the gateway may accept, and the patient who wears it."""

    device_id: str
    patient_id: str


def gateway_spec(gateway_id: str, gateways: Iterable[GatewaySpec]) -> GatewaySpec:
    """The gateway's entry of an accounts file; raises :class:`BrokerAuthError` when it has none."""
    for spec in gateways:
        if spec.gateway_id == gateway_id:
            return spec
    raise BrokerAuthError(f"gateway {gateway_id!r} is not in the accounts file")


async def devices_for_gateway(store: Registry, spec: GatewaySpec) -> list[AssignedDevice]:
    """The registry's active devices worn by the patients ``spec`` serves (all patients when it names
    none), sorted by device id; unassigned devices are left out (the edge could not name their patient).
    Raises :class:`BrokerAuthError` when the spec names a patient the registry does not know."""
    patients = {p.patient_id for p in await store.list_patients()}
    served = patients if spec.patients is None else set(spec.patients)
    missing = sorted(served - patients)
    if missing:
        raise BrokerAuthError(f"gateway {spec.gateway_id} serves unregistered patients {missing}")
    devices = [d for d in await store.list_devices() if getattr(d, "active", True)]
    return sorted((AssignedDevice(d.device_id, d.patient_id) for d in devices if d.patient_id in served),
                  key=lambda d: d.device_id)


def render_allow_list(gateway_id: str, devices: Sequence[AssignedDevice]) -> str:
    """The ``[ingest] allowed_devices_file`` text: one device id a line, its patient as a comment."""
    lines = [f"# devices the registry assigns to gateway {gateway_id} (ecgstream cloud registry export-devices)"]
    lines += [f"{d.device_id}  # {d.patient_id}" for d in devices]
    return "\n".join(lines) + "\n"


def render_patients_toml(gateway_id: str, devices: Sequence[AssignedDevice]) -> str:
    """An ``[ingest.patients]`` table (device id → patient id) for the gateway's edge config."""
    lines = [f"# devices the registry assigns to gateway {gateway_id}: paste into its edge config",
             "[ingest.patients]"]
    lines += [f"{json.dumps(d.device_id)} = {json.dumps(d.patient_id)}" for d in devices]
    return "\n".join(lines) + "\n"
