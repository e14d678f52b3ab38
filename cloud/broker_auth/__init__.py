"""Broker credentials and ACLs from the device registry (issue 6).

Devices authenticate to the MQTT broker with their own credentials and may publish only under
their own topics. :mod:`cloud.broker_auth.mosquitto` generates Mosquitto's ``password_file``
(``$7$`` PBKDF2-SHA512 hashes) and ``acl_file`` from :class:`cloud.store.Store`'s registry plus
the gateways and cloud service accounts of a deployment; ``docs/deployment/mosquitto-cloud.conf``
is a broker configuration that uses them.
"""

from cloud.broker_auth.mosquitto import (
    DEFAULT_ITERATIONS,
    BrokerAuthError,
    BrokerAuthResult,
    Credential,
    GatewayAccess,
    GatewaySpec,
    generate_broker_auth,
    hash_password,
    load_accounts,
    parse_hash,
    read_password_file,
    render_acl,
    render_password_file,
    verify_password,
)

__all__ = [
    "DEFAULT_ITERATIONS", "BrokerAuthError", "BrokerAuthResult", "Credential", "GatewayAccess",
    "GatewaySpec", "generate_broker_auth", "hash_password", "load_accounts", "parse_hash",
    "read_password_file", "render_acl", "render_password_file", "verify_password",
]
