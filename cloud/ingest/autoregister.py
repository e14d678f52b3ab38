"""Auto-registration (``ecgstream cloud run --auto-register``, ``[registry] auto_register``): a device the
registry does not know is registered instead of refused, so a demo or a small ward works without an
administrator registering every wearable first.

What is registered, from the message that found the device (in one transaction,
:meth:`cloud.store.repositories.registry.RegistryRepository.auto_register`):

- an alert or a window names its patient: that patient, when unknown, is registered with the
  device's id as display name (a person renames it later), and the device is registered as worn by
  them. A registered device worn by nobody is given to that patient.
- a device status names no patient: the device is registered worn by nobody; its first alert or
  window gives it to its patient.

Each creation is one audit entry, action ``auto_register`` by ``ingest`` (details ``{"note":
"auto-registered", …}``). The message that triggered it is then checked again and stored like any
other, so nothing is lost. A device registered to *another* patient stays refused
(``wrong_patient``): auto-registration never moves a device between patients. Off (the default),
an unknown device is refused and counted (``unknown_device``) as before.
"""

from __future__ import annotations

from typing import Any

from cloud.ingest.validation import Accepted, Reason, Rejected
from cloud.store.repositories.registry import AutoRegistered
from protocol.messages import DeviceStatus, GatewayStatus

AUTO_REGISTER_USER = "ingest"
"""The audit entries' user."""


async def needs_registration(result: Accepted | Rejected, accepted: Accepted, registry: Any) -> bool:
    """Whether the registry refused ``accepted`` only because its device is unknown, or known but worn
    by nobody (``registry`` is what the check read: a second look is served from the batch's cache)."""
    if not isinstance(result, Rejected) or isinstance(accepted.message, GatewayStatus):
        return False
    if result.reason is Reason.UNKNOWN_DEVICE:
        return True
    if result.reason is Reason.WRONG_PATIENT:
        device = await registry.get_device(accepted.message.device_id)
        return device is not None and device.patient_id is None
    return False


async def auto_register(store: Any, accepted: Accepted) -> AutoRegistered:
    """Register the sender of ``accepted`` (and its patient) in ``store`` (a :class:`cloud.store.Store`)."""
    message = accepted.message
    assert not isinstance(message, GatewayStatus)
    patient_id = None if isinstance(message, DeviceStatus) else message.patient_id
    result: AutoRegistered = await store.registry.auto_register(message.device_id, patient_id,
                                                                 by=AUTO_REGISTER_USER)
    return result


__all__ = ["AUTO_REGISTER_USER", "auto_register", "needs_registration"]
