"""Validation of what arrives on the cloud's subscriptions, before anything is stored.

:func:`validate` turns one ``(topic, payload)`` into :class:`Accepted` (the decoded message) or
:class:`Rejected` with a :class:`Reason`. It never raises on bad input: every way a message can be
wrong maps to one reason, and the worker counts rejections per reason (nothing is dropped silently).

Checks, in order (the first failure decides the reason):

1. the topic parses and is one the cloud ingests (patient alert/window, gateway status, device
   status): ``bad_topic``;
2. size, before anything is parsed: ``oversized`` above ``max_bytes`` (default the protocol's
   :data:`protocol.envelope.MAX_PAYLOAD_BYTES`) or, for the JSON messages, above
   :data:`protocol.messages.MAX_MESSAGE_BYTES`;
3. the protocol's decoder: an unknown schema version gives ``unsupported_version``, anything else
   it refuses (not JSON, missing fields, corrupt window bytes, bad CRC of the zlib data) ``malformed``;
4. the topic's id must equal the payload's (patient id for alerts and windows, gateway id for
   gateway status, device id for device status): ``topic_mismatch`` (a sender publishing under
   someone else's topic);
5. with a registry (anything with ``async get_device(device_id)``, e.g. :class:`cloud.store.Store`),
   the payload's device must be registered (``unknown_device``), active (``inactive_device``) and,
   for alerts and windows, worn by the payload's patient (``wrong_patient``). ``registry=None``
   skips this step.

Two more reasons are found only when the message is stored (the worker counts them the same way):
``episode_owner``, an alert event (a clear, say) naming an episode that another patient's or
device's alert raised, and ``store_refused``, data the database refused (:mod:`cloud.ingest.failures`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from protocol.envelope import MAX_PAYLOAD_BYTES
from protocol.errors import ProtocolError, TopicError, UnsupportedVersionError
from protocol.messages import MAX_MESSAGE_BYTES, Alert, DeviceStatus, GatewayStatus, decode_message
from protocol.topics import Channel, Scope, Topic, parse_topic
from protocol.window_payload import EcgWindow, decode_window


class Reason(StrEnum):
    """Why a message was rejected (each counted separately)."""

    BAD_TOPIC = "bad_topic"
    OVERSIZED = "oversized"
    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOPIC_MISMATCH = "topic_mismatch"
    UNKNOWN_DEVICE = "unknown_device"
    INACTIVE_DEVICE = "inactive_device"
    WRONG_PATIENT = "wrong_patient"
    EPISODE_OWNER = "episode_owner"
    """An alert event names an episode of another patient or device (found when it is stored)."""
    STORE_REFUSED = "store_refused"
    """The database refused the message's data (found when it is stored; see :mod:`cloud.ingest.failures`)."""


class Kind(StrEnum):
    ALERT = "alert"
    WINDOW = "window"
    GATEWAY_STATUS = "gateway_status"
    DEVICE_STATUS = "device_status"


@dataclass(frozen=True)
class Accepted:
    """A valid message: ``message`` is an Alert, an EcgWindow, a GatewayStatus or a DeviceStatus;
    ``payload`` the bytes as received (windows are stored verbatim)."""

    kind: Kind
    topic: Topic
    message: Alert | EcgWindow | GatewayStatus | DeviceStatus
    payload: bytes


@dataclass(frozen=True)
class Rejected:
    reason: Reason
    detail: str = ""

    def __bool__(self) -> bool:  # so ``if result:`` reads "accepted"
        return False


class RegisteredDevice(Protocol):
    """What validation reads of a registered device (e.g. :class:`cloud.store.DeviceRecord`)."""

    @property
    def patient_id(self) -> str | None: ...

    @property
    def active(self) -> bool: ...


class Registry(Protocol):
    """Anything that looks devices up by id (e.g. :class:`cloud.store.Store`)."""

    async def get_device(self, device_id: str) -> RegisteredDevice | None: ...


_KINDS = {
    (Scope.PATIENT, Channel.ALERT): Kind.ALERT,
    (Scope.PATIENT, Channel.WINDOW): Kind.WINDOW,
    (Scope.GATEWAY, Channel.STATUS): Kind.GATEWAY_STATUS,
    (Scope.DEVICE, Channel.STATUS): Kind.DEVICE_STATUS,
}


def check_payload(topic: str, payload: bytes | bytearray | memoryview, *,
                  max_bytes: int = MAX_PAYLOAD_BYTES) -> Accepted | Rejected:
    """Steps 1-4 (everything but the registry); pure and synchronous."""
    try:
        parsed = parse_topic(topic)
    except TopicError as exc:
        return Rejected(Reason.BAD_TOPIC, str(exc))
    kind = _KINDS.get((parsed.scope, parsed.channel))
    if kind is None:
        return Rejected(Reason.BAD_TOPIC, f"{topic!r} is not a topic the cloud ingests")
    if not isinstance(payload, bytes | bytearray | memoryview):
        return Rejected(Reason.MALFORMED, f"payload is {type(payload).__name__}, not bytes")
    size = len(payload)
    limit = max_bytes if kind is Kind.WINDOW else min(max_bytes, MAX_MESSAGE_BYTES)
    if size > limit:
        return Rejected(Reason.OVERSIZED, f"{size} bytes > {limit}")
    data = bytes(payload)
    try:
        message: Alert | EcgWindow | GatewayStatus | DeviceStatus
        if kind is Kind.ALERT:
            message = decode_message(data, Alert)
        elif kind is Kind.WINDOW:
            message = decode_window(data)
        elif kind is Kind.DEVICE_STATUS:
            message = decode_message(data, DeviceStatus)
        else:
            message = decode_message(data, GatewayStatus)
    except UnsupportedVersionError as exc:
        return Rejected(Reason.UNSUPPORTED_VERSION, str(exc))
    except ProtocolError as exc:
        return Rejected(Reason.MALFORMED, str(exc))
    except Exception as exc:  # noqa: BLE001 - a decoder bug must not crash the worker either
        return Rejected(Reason.MALFORMED, f"{type(exc).__name__}: {exc}")
    if isinstance(message, GatewayStatus):
        owner = message.gateway_id
    elif isinstance(message, DeviceStatus):
        owner = message.device_id
    else:
        owner = message.patient_id
    if owner != parsed.ident:
        return Rejected(Reason.TOPIC_MISMATCH,
                        f"{kind} for {owner!r} published under {parsed.scope} {parsed.ident!r}")
    return Accepted(kind, parsed, message, data)


async def check_registry(accepted: Accepted, registry: Registry) -> Accepted | Rejected:
    """Step 5: the sending device is registered, active and worn by the payload's patient."""
    message = accepted.message
    if isinstance(message, GatewayStatus):
        return accepted  # gateways have no registry table yet
    device = await registry.get_device(message.device_id)
    if device is None:
        return Rejected(Reason.UNKNOWN_DEVICE, f"device {message.device_id!r} is not registered")
    if not getattr(device, "active", True):
        return Rejected(Reason.INACTIVE_DEVICE, f"device {message.device_id!r} is deactivated")
    if isinstance(message, DeviceStatus):
        return accepted  # a device's own status: no patient in it to check
    if device.patient_id != message.patient_id:
        return Rejected(Reason.WRONG_PATIENT,
                        f"device {message.device_id!r} is registered to {device.patient_id!r}, "
                        f"not {message.patient_id!r}")
    return accepted


async def validate(topic: str, payload: bytes | bytearray | memoryview, registry: Registry | None = None, *,
                   max_bytes: int = MAX_PAYLOAD_BYTES) -> Accepted | Rejected:
    """All checks; ``registry=None`` means the registry is not enforced. Never raises on bad input
    (a registry lookup that fails, e.g. the database is down, does raise: that is not the sender's fault)."""
    result = check_payload(topic, payload, max_bytes=max_bytes)
    if isinstance(result, Rejected) or registry is None:
        return result
    return await check_registry(result, registry)


__all__ = ["Accepted", "Kind", "Reason", "RegisteredDevice", "Registry", "Rejected", "check_payload", "check_registry", "validate"]
