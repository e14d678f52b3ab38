"""MQTT topic scheme, versioned in the topic itself.

::

    ecgstream/v1/device/{device_id}/samples    device -> edge    binary samples (protocol.samples_payload)
    ecgstream/v1/device/{device_id}/status     device -> edge    JSON DeviceStatus
    ecgstream/v1/patient/{patient_id}/window   edge -> cloud     binary ECG window (protocol.window_payload)
    ecgstream/v1/patient/{patient_id}/alert    edge -> cloud     JSON Alert
    ecgstream/v1/patient/{patient_id}/live     edge -> cloud     binary live chunk (protocol.live_payload): ~1 s of
                                                                 lead II, V1, V5 at 125 Hz for the ward's display,
                                                                 QoS 0, never queued (a late chunk is worthless)
    ecgstream/v1/gateway/{gateway_id}/status   edge -> cloud     JSON gateway status; from minor version 1 it
                                                                 carries each patient's vitals every second
    ecgstream/v1/gateway/{gateway_id}/ack      cloud -> edge     JSON AlarmAck (protocol.downlink): staff
                                                                 acknowledged an alarm episode of that gateway
    ecgstream/v1/gateway/{gateway_id}/receipt  cloud -> edge     JSON Receipt (protocol.receipts): what the cloud
                                                                 committed (or refused) of that gateway's uplink

Identifiers are 1-64 characters from ``[A-Za-z0-9_.-]`` so they can never
contain MQTT wildcards or separators; devices publish only under their own
``device/{id}/`` branch, which a broker ACL enforces.

The live stream sits under the patient (``patient/{id}/live``) rather than under the gateway: it keeps
the five-level scheme that :func:`parse_topic` reads, a gateway's existing ACL (``patient/{p}/#`` for its
patients) already lets it publish there, and the cloud can scope a browser's stream by patient
(care teams) from the topic alone. The chunk itself names the device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from protocol.errors import TopicError

ROOT = "ecgstream"
TOPIC_VERSION = "v1"
_PREFIX = f"{ROOT}/{TOPIC_VERSION}"
_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
"""An id, matched whole (``fullmatch``: ``$`` would also match before a trailing newline)."""


class Scope(StrEnum):
    DEVICE = "device"
    PATIENT = "patient"
    GATEWAY = "gateway"


class Channel(StrEnum):
    SAMPLES = "samples"
    STATUS = "status"
    WINDOW = "window"
    ALERT = "alert"
    LIVE = "live"
    ACK = "ack"
    RECEIPT = "receipt"


_ALLOWED = {
    Scope.DEVICE: {Channel.SAMPLES, Channel.STATUS},
    Scope.PATIENT: {Channel.WINDOW, Channel.ALERT, Channel.LIVE},
    Scope.GATEWAY: {Channel.STATUS, Channel.ACK, Channel.RECEIPT},
}


@dataclass(frozen=True)
class Topic:
    """A parsed ecgstream topic."""

    scope: Scope
    ident: str
    channel: Channel

    def __str__(self) -> str:
        return f"{_PREFIX}/{self.scope}/{self.ident}/{self.channel}"


def validate_id(ident: str, what: str = "identifier") -> str:
    """Return ``ident`` if it is a valid device/patient/gateway id, else raise TopicError."""
    if not isinstance(ident, str) or not _ID.fullmatch(ident):
        raise TopicError(f"{what} {ident!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return ident


def topic(scope: Scope | str, ident: str, channel: Channel | str) -> str:
    """Build a topic string, checking the id and that the channel exists for the scope."""
    try:
        scope, channel = Scope(scope), Channel(channel)
    except ValueError as exc:
        raise TopicError(str(exc)) from None
    if channel not in _ALLOWED[scope]:
        raise TopicError(f"there is no {channel} channel for a {scope}")
    return str(Topic(scope, validate_id(ident, f"{scope} id"), channel))


def samples_topic(device_id: str) -> str:
    return topic(Scope.DEVICE, device_id, Channel.SAMPLES)


def device_status_topic(device_id: str) -> str:
    return topic(Scope.DEVICE, device_id, Channel.STATUS)


def window_topic(patient_id: str) -> str:
    return topic(Scope.PATIENT, patient_id, Channel.WINDOW)


def alert_topic(patient_id: str) -> str:
    return topic(Scope.PATIENT, patient_id, Channel.ALERT)


def live_topic(patient_id: str) -> str:
    """The patient's live display stream (:mod:`protocol.live_payload`), edge -> cloud, QoS 0."""
    return topic(Scope.PATIENT, patient_id, Channel.LIVE)


def gateway_status_topic(gateway_id: str) -> str:
    return topic(Scope.GATEWAY, gateway_id, Channel.STATUS)


def gateway_ack_topic(gateway_id: str) -> str:
    """The downlink on which the cloud tells one gateway that staff acknowledged one of its alarm episodes."""
    return topic(Scope.GATEWAY, gateway_id, Channel.ACK)


def gateway_receipt_topic(gateway_id: str) -> str:
    """The downlink on which the cloud tells one gateway which of its alerts and windows it has committed."""
    return topic(Scope.GATEWAY, gateway_id, Channel.RECEIPT)


def parse_topic(name: str) -> Topic:
    """Parse a concrete topic; raises TopicError if it is not one of the scheme's."""
    parts = name.split("/") if isinstance(name, str) else []
    if len(parts) != 5 or parts[0] != ROOT:
        raise TopicError(f"{name!r} is not an ecgstream topic ({_PREFIX}/<scope>/<id>/<channel>)")
    if parts[1] != TOPIC_VERSION:
        raise TopicError(f"topic version {parts[1]!r} is not supported (this build speaks {TOPIC_VERSION})")
    try:
        scope, channel = Scope(parts[2]), Channel(parts[4])
    except ValueError:
        raise TopicError(f"{name!r} has an unknown scope or channel") from None
    if channel not in _ALLOWED[scope]:
        raise TopicError(f"there is no {channel} channel for a {scope}")
    return Topic(scope, validate_id(parts[3], f"{scope} id"), channel)


def subscription(scope: Scope | str, channel: Channel | str, *, ident: str = "+") -> str:
    """Topic filter for one channel of every (``+``) or one id."""
    scope, channel = Scope(scope), Channel(channel)
    if ident != "+":
        validate_id(ident, f"{scope} id")
    return f"{_PREFIX}/{scope}/{ident}/{channel}"


def shared_subscription(group: str, topic_filter: str) -> str:
    """MQTT 5 shared subscription: workers in ``group`` split the messages of ``topic_filter``."""
    validate_id(group, "share group")
    return f"$share/{group}/{topic_filter}"
