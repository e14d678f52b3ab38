"""Mosquitto dynamic-security plugin configuration generated from the device registry.

Why this and not only the ``acl_file``: Mosquitto 2.0's ``acl_file`` never checks a SUBSCRIBE (measured
with Mosquitto 2.0.11: every filter is granted, ``topic deny`` lines included, and access is checked
only when a message is delivered). A device that joins the cloud's shared subscription
``$share/cloud/ecgstream/v1/patient/+/alert`` is then handed its share of the alerts, which the
delivery check drops: with one cloud worker it took 20 of 40 alerts away. The dynamic-security
plugin checks subscriptions (``subscribeLiteral``/``subscribePattern``), checks sends and receives,
and can bind a client id to an account, so this module writes its JSON configuration
(``dynamic-security.json``) with *deny* as the default for all four ACL types but unsubscribe:

- **device** ``<d>``: send ``device/<d>/samples`` and ``device/<d>/status`` (its last will too);
  no subscription, nothing received;
- **gateway uplink** ``<gw>``: send ``patient/<p>/window|alert|live`` for its patients,
  ``gateway/<gw>/status`` and ``device/<d>/status`` for its devices; subscribe exactly, and receive,
  its own ``gateway/<gw>/receipt`` (the cloud's receipts) and ``gateway/<gw>/ack`` (staff
  acknowledgements: the edge's ack downlink rides on the uplink's connection);
- **gateway ingest** ``<gw>-ingest``: subscribe exactly ``device/+/samples`` and ``device/+/status``
  (what ``edge.ingest.mqtt`` subscribes to), receive only its own devices' ``device/<d>/#``;
- **cloud service** ``<s>``: subscribe exactly the ingest worker's filters, shared
  (``$share/<group>/…``) and plain, receive ``ecgstream/v1/#``; send only receipts,
  ``ecgstream/v1/gateway/+/receipt`` (a pattern: any gateway);
- **cloud ack publisher** ``<s>-downlink`` (one per service; the API's
  :class:`cloud.downlink.AckPublisher`): send ``ecgstream/v1/gateway/+/ack``, nothing else (no
  subscription, nothing received). Only it can release a gateway's latched alarm;
- **cloud live relay** ``<s>-live`` (one per service; :class:`cloud.api.live.LiveRelay`, the ward's
  live ECG and vitals): subscribe exactly, and receive, ``patient/+/live`` and ``gateway/+/status``;
  send nothing.

Mosquitto 2.0.11 checks a shared subscription against the *whole* filter, ``$share/<group>/``
included (measured: ``subscribePattern ecgstream/v1/patient/+/alert`` does not grant
``$share/cloud/ecgstream/v1/patient/+/alert``), so the shared filters are listed literally with
the deployment's group name. Literal grants (not patterns) also mean that no account can invent a
filter of its own, such as a wildcard that would cover another tenant.

Every client record is bound to ``clientid = username``: a CONNECT with that username and any
other client id is refused, so no account can take over another account's session. With
``use_username_as_clientid true`` on the listener (docs/deployment/mosquitto-cloud.conf) the broker
puts the username in place of whatever id the client sent before the plugin checks it, so the
components may keep their own ids; the binding still holds if that option is ever removed.

Passwords are the same PBKDF2-SHA512 hashes as the ``password_file`` (``$7$``: 12-byte salt,
64-byte digest, iterations), stored as the plugin stores them (base64 ``salt`` and ``password``
plus ``iterations``). The plugin reads the file only at start-up (a SIGHUP does not reload it in
Mosquitto 2.0), so a regenerated file takes effect when the broker restarts.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

from protocol.topics import (
    ROOT,
    TOPIC_VERSION,
    Channel,
    Scope,
    alert_topic,
    device_status_topic,
    gateway_ack_topic,
    gateway_receipt_topic,
    gateway_status_topic,
    live_topic,
    samples_topic,
    shared_subscription,
    subscription,
    window_topic,
)

DYNSEC_FILE = "dynamic-security.json"
INGEST_SUFFIX = "-ingest"
"""A gateway's MQTT ingest client has its own account ``<gw>-ingest`` (its client id today)."""
DOWNLINK_SUFFIX = "-downlink"
"""A cloud service's ack publisher has its own account ``<s>-downlink`` (``[downlink]`` of the cloud settings)."""
LIVE_SUFFIX = "-live"
"""A cloud service's live relay has its own account ``<s>-live`` (password ``ECGSTREAM_CLOUD__LIVE__PASSWORD``)."""
LIVE_FILTERS: tuple[str, ...] = (subscription(Scope.PATIENT, Channel.LIVE), subscription(Scope.GATEWAY, Channel.STATUS))
"""What the live relay subscribes to (``cloud.api.live.TOPICS``)."""
RECEIPTS_OF_ANY_GATEWAY = subscription(Scope.GATEWAY, Channel.RECEIPT)
"""``ecgstream/v1/gateway/+/receipt``: what a cloud service (its ingest worker) may send."""
ACKS_TO_ANY_GATEWAY = subscription(Scope.GATEWAY, Channel.ACK)
"""``ecgstream/v1/gateway/+/ack``: what a cloud ack publisher may send."""
DEFAULT_SHARE_GROUP = "cloud"
"""The cloud ingest workers' shared-subscription group (``[broker] group`` of the cloud settings)."""

SERVICE_FILTERS: tuple[str, ...] = (
    subscription(Scope.PATIENT, Channel.ALERT),
    subscription(Scope.PATIENT, Channel.WINDOW),
    subscription(Scope.GATEWAY, Channel.STATUS),
    subscription(Scope.DEVICE, Channel.STATUS),
)
"""What a cloud ingest worker subscribes to (``cloud.ingest.worker.TOPIC_FILTERS``)."""
GATEWAY_INGEST_FILTERS: tuple[str, ...] = (
    subscription(Scope.DEVICE, Channel.SAMPLES),
    subscription(Scope.DEVICE, Channel.STATUS),
)
"""What a gateway's MQTT ingest subscribes to (``edge.ingest.mqtt``)."""

DEFAULT_ACL_ACCESS = {"publishClientSend": False, "publishClientReceive": False, "subscribe": False,
                      "unsubscribe": True}


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def device_acls(device_id: str) -> list[dict[str, Any]]:
    return [_acl("publishClientSend", samples_topic(device_id)),
            _acl("publishClientSend", device_status_topic(device_id))]


def gateway_uplink_acls(gateway_id: str, devices: Iterable[str], patients: Iterable[str]) -> list[dict[str, Any]]:
    return ([_acl("publishClientSend", t) for p in sorted(set(patients))
             for t in (window_topic(p), alert_topic(p), live_topic(p))]
            + [_acl("publishClientSend", gateway_status_topic(gateway_id))]
            # the gateway reports its BLE devices' battery and connection on their behalf
            + [_acl("publishClientSend", device_status_topic(d)) for d in sorted(set(devices))]
            # what comes back down on the uplink's own connection: the cloud's receipts and staff acks
            + [_acl(acltype, t) for t in (gateway_receipt_topic(gateway_id), gateway_ack_topic(gateway_id))
               for acltype in ("subscribeLiteral", "publishClientReceive")])


def gateway_ingest_acls(devices: Iterable[str]) -> list[dict[str, Any]]:
    return ([_acl("subscribeLiteral", f) for f in GATEWAY_INGEST_FILTERS]
            + [_acl("publishClientReceive", f"{ROOT}/{TOPIC_VERSION}/device/{d}/#") for d in sorted(set(devices))])


def service_acls(share_group: str) -> list[dict[str, Any]]:
    return ([_acl("subscribeLiteral", shared_subscription(share_group, f)) for f in SERVICE_FILTERS]
            + [_acl("subscribeLiteral", f) for f in SERVICE_FILTERS]
            + [_acl("publishClientReceive", f"{ROOT}/{TOPIC_VERSION}/#")]
            + [_acl("publishClientSend", RECEIPTS_OF_ANY_GATEWAY)])


def downlink_acls() -> list[dict[str, Any]]:
    """A cloud service's ack publisher ``<s>-downlink``: send acks to any gateway, nothing else."""
    return [_acl("publishClientSend", ACKS_TO_ANY_GATEWAY)]


def live_relay_acls() -> list[dict[str, Any]]:
    """A cloud service's live relay ``<s>-live``: subscribe to and receive the live stream and the
    gateways' status (vitals), send nothing."""
    return [_acl(acltype, f) for f in LIVE_FILTERS for acltype in ("subscribeLiteral", "publishClientReceive")]


def client_record(username: str, kind: str, encoded_hash: str) -> dict[str, Any]:
    """One dynsec client: bound to ``clientid == username``, with its own role of the same name."""
    from cloud.broker_auth.mosquitto import BrokerAuthError, parse_hash

    h = parse_hash(encoded_hash)
    if h.kind != 7:
        raise BrokerAuthError(f"account {username!r} has a salted-SHA-512 ($6$) hash, which the "
                              "dynamic-security plugin cannot use: rotate it (--rotate)")
    return {"username": username, "textname": kind, "clientid": username,
            "password": base64.b64encode(h.digest).decode(), "salt": base64.b64encode(h.salt).decode(),
            "iterations": h.iterations, "roles": [{"rolename": username, "priority": 0}]}


def render_dynsec(hashes: Mapping[str, str], kinds: Mapping[str, str],
                  acls: Mapping[str, list[dict[str, Any]]]) -> str:
    """The plugin's JSON: one client and one role per account (sorted, so regeneration is stable)."""
    users = sorted(hashes)
    doc = {
        "defaultACLAccess": DEFAULT_ACL_ACCESS,
        "clients": [client_record(u, kinds[u], hashes[u]) for u in users],
        "groups": [],
        "roles": [{"rolename": u, "acls": acls[u]} for u in users],
    }
    return json.dumps(doc, indent=1) + "\n"
