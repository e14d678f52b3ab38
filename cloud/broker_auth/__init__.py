"""Broker credentials and ACLs from the device registry (issues 6 and 16).

Devices authenticate to the MQTT broker with their own credentials, may publish only under their
own topics and subscribe to nothing; every client has its own account, bound to its client id: a
gateway's uplink (which also reads its own receipts and acks) and ingest, a cloud service's ingest
worker (the only writer of receipts), its ack publisher ``<s>-downlink`` (the only writer of acks) and its live relay ``<s>-live``.
:mod:`cloud.broker_auth.mosquitto` generates Mosquitto's ``password_file`` (``$7$`` PBKDF2-SHA512
hashes), ``acl_file`` and (:mod:`cloud.broker_auth.dynsec`) the dynamic-security plugin's
``dynamic-security.json``, which also checks subscriptions, from :class:`cloud.store.Store`'s
registry plus the gateways and cloud service accounts of a deployment;
``docs/deployment/mosquitto-cloud.conf`` is a broker configuration that uses them and
``docs/security.md`` the threat model they answer.
"""

from cloud.broker_auth.dynsec import DEFAULT_SHARE_GROUP, DYNSEC_FILE, render_dynsec
from cloud.broker_auth.mosquitto import (
    DEFAULT_ITERATIONS,
    AccountsFile,
    BrokerAuthError,
    BrokerAuthResult,
    Credential,
    GatewayAccess,
    GatewaySpec,
    downlink_account,
    generate_broker_auth,
    hash_password,
    ingest_account,
    live_account,
    load_accounts,
    parse_hash,
    read_accounts,
    read_password_file,
    render_acl,
    render_password_file,
    verify_password,
)

__all__ = [
    "DEFAULT_ITERATIONS", "DEFAULT_SHARE_GROUP", "DYNSEC_FILE", "AccountsFile", "BrokerAuthError", "BrokerAuthResult", "Credential", "GatewayAccess",
    "GatewaySpec", "generate_broker_auth", "hash_password", "downlink_account", "ingest_account", "live_account", "load_accounts", "parse_hash",
    "read_accounts", "read_password_file", "render_acl", "render_dynsec", "render_password_file",
    "verify_password",
]
