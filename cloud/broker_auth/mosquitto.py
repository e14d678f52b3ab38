"""Mosquitto password, ACL and dynamic-security files generated from the device registry.

**Accounts.** Every MQTT client authenticates with its own username and password, and every client
has its own account (the broker binds the client id to it, see below); usernames are the ids
(device, gateway, service), one namespace, so a collision is an error:

- a **device** (a wearable that publishes over MQTT) may only *write* its own samples and status
  (including its last will); it subscribes to nothing;
- a **gateway** has two accounts, one per client: the uplink ``<gw>`` *writes* its own
  ``ecgstream/v1/gateway/<gw>/…``, its devices' status and the ``ecgstream/v1/patient/<p>/…`` topics
  of the patients it serves (windows and alerts); the MQTT ingest ``<gw>-ingest`` *subscribes* to
  ``device/+/samples`` and ``device/+/status`` and *receives* its own devices' messages only; the
  uplink also *subscribes* to and *receives* its own ``gateway/<gw>/receipt`` and ``gateway/<gw>/ack``
  (the cloud's receipts and staff acknowledgements come down on the uplink's connection) and may
  write neither;
- a **cloud service** (an ingest worker: one account per worker process) *subscribes* to the ingest
  filters, shared (``$share/<group>/ecgstream/v1/…``) or not, *receives* ``ecgstream/v1/#`` and
  *writes* receipts, ``ecgstream/v1/gateway/+/receipt``, only; each service ``<s>`` also has an ack
  publisher account ``<s>-downlink`` (the API's :class:`cloud.downlink.AckPublisher`), which *writes*
  ``ecgstream/v1/gateway/+/ack`` and nothing else: nobody else can publish an ack or a receipt;
  and a live relay account ``<s>-live`` (:class:`cloud.api.live.LiveRelay`), which *subscribes* to and
  *receives* ``patient/+/live`` and ``gateway/+/status`` (the ward's live ECG and vitals) only;
- nobody else anything, and ``allow_anonymous false`` refuses clients without credentials.

Three files carry this. ``dynamic-security.json`` (:mod:`cloud.broker_auth.dynsec`) is what the
broker should load: the dynamic-security plugin checks SUBSCRIBE, sends and receives and binds each
account to ``clientid == username``. Mosquitto 2.0's ``acl_file`` checks no subscription at all
(measured with 2.0.11: even ``$share/cloud/…`` by a device is granted, and the messages the broker
then hands that device are dropped on delivery, lost to the cloud), so ``acl`` is only for a
broker that cannot load the plugin (it still stops forged publishes). ``passwd`` is the password
file, and the store of every account's hash from one run to the next.

**Which patients a gateway serves** is not in the registry (it has patients and devices, not
gateways), so it is configuration: :class:`GatewaySpec` with an explicit tuple of patient ids, or
``None`` for *all* registered patients (a single-gateway or demo deployment). A gateway with
explicit patients reads the devices assigned to those patients; one with ``None`` reads every
active device. :func:`read_accounts` reads gateways, services and the cloud's shared-subscription
group from a TOML file::

    services = ["cloud-ingest-1", "cloud-ingest-2"]   # one per worker process (each gets <s>-downlink and <s>-live too)
    share_group = "cloud"     # optional: default the cloud settings' [broker] group ("cloud")

    [gateways.gw-ward-3]      # accounts gw-ward-3 (uplink) and gw-ward-3-ingest
    patients = ["pat-001", "pat-002"]

    [gateways.gw-home]        # no patients key: every registered patient

**Passwords.** :func:`hash_password` writes Mosquitto's ``$7$`` format, PBKDF2-HMAC-SHA512 as
``mosquitto_passwd`` writes it: ``$7$<iterations>$<base64 12-byte salt>$<base64 64-byte digest>``
(Mosquitto 2.0 refuses any other salt length). The default is :data:`DEFAULT_ITERATIONS` = 1000
rounds (``mosquitto_passwd`` 2.0 uses 101): every password made here is 32 random bytes, for
which key stretching adds nothing, while the single-threaded broker pays the rounds on every
CONNECT (≈1 ms at 1000 rounds; a reconnect storm of 10,000 devices at OWASP's 210,000 rounds
would stall it for minutes).

**Regeneration** (:func:`generate_broker_auth`) is idempotent: an account that exists in the old
password file keeps its hash (else a valid Mosquitto hash stored in the registry's
``devices.credentials_hash``, else a new random password); accounts of devices removed from the
registry or marked inactive disappear. The password file (0600), the dynamic-security file (0600)
and the ACL file (0640) are each replaced atomically, under an exclusive lock
(``.broker-auth.lock``) so that concurrent runs cannot lose each other's accounts; new passwords go
once into a fresh 0600 ``credentials-*.json`` beside them and are returned, never logged. Mosquitto
reads ``passwd`` and ``acl`` again on SIGHUP; the plugin reads its file only when the broker starts
(restart it; persistent sessions and queues survive a restart). Generated files carry
no timestamp, so an unchanged registry gives byte-identical files; hand edits are lost on the
next run (add hand-made accounts as services instead).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cloud.broker_auth.dynsec import (
    DEFAULT_SHARE_GROUP,
    DOWNLINK_SUFFIX,
    DYNSEC_FILE,
    INGEST_SUFFIX,
    LIVE_FILTERS,
    LIVE_SUFFIX,
    device_acls,
    downlink_acls,
    gateway_ingest_acls,
    gateway_uplink_acls,
    live_relay_acls,
    render_dynsec,
    service_acls,
)
from cloud.errors import CloudError
from protocol.errors import TopicError
from protocol.topics import ROOT, TOPIC_VERSION, validate_id

log = logging.getLogger(__name__)

DEFAULT_ITERATIONS = 1000
SALT_BYTES = 12
"""Mosquitto 2.0 accepts only 12-byte salts (``unpwd__decode_passwords``)."""
DIGEST_BYTES = 64
PASSWORD_BYTES = 32
PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
_PREFIX = f"{ROOT}/{TOPIC_VERSION}"


class BrokerAuthError(CloudError, ValueError):
    """Bad input for the broker's password or ACL file (nothing was written)."""


# -- password hashes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MosquittoHash:
    """A parsed Mosquitto password hash: ``kind`` 6 (salted SHA-512) or 7 (PBKDF2-SHA512)."""

    kind: int
    iterations: int
    salt: bytes
    digest: bytes

    def encode(self) -> str:
        salt, digest = base64.b64encode(self.salt).decode(), base64.b64encode(self.digest).decode()
        if self.kind == 6:
            return f"$6${salt}${digest}"
        return f"$7${self.iterations}${salt}${digest}"


def hash_password(password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> str:
    """A Mosquitto ``$7$`` hash of ``password`` (what ``mosquitto_passwd -I <iterations>`` writes)."""
    if not isinstance(password, str) or not password:
        raise BrokerAuthError("password must be a non-empty string")
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
        raise BrokerAuthError(f"iterations must be a positive integer, got {iterations!r}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    if len(salt) != SALT_BYTES:
        raise BrokerAuthError(f"Mosquitto needs a {SALT_BYTES}-byte salt, got {len(salt)} bytes")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return MosquittoHash(7, iterations, salt, digest).encode()


def parse_hash(encoded: str) -> MosquittoHash:
    """Parse a ``$6$`` or ``$7$`` hash as Mosquitto 2.0 does; BrokerAuthError if it would refuse it."""
    parts = encoded.split("$") if isinstance(encoded, str) else []
    try:
        if len(parts) == 4 and parts[:2] == ["", "6"]:
            kind, iterations, salt_b64, digest_b64 = 6, 1, parts[2], parts[3]
        elif len(parts) == 5 and parts[:2] == ["", "7"]:
            kind, iterations, salt_b64, digest_b64 = 7, int(parts[2]), parts[3], parts[4]
        else:
            raise BrokerAuthError("not a Mosquitto $6$ or $7$ password hash")
        salt = base64.b64decode(salt_b64, validate=True)
        digest = base64.b64decode(digest_b64, validate=True)
    except (ValueError, binascii.Error) as exc:
        if isinstance(exc, BrokerAuthError):
            raise
        raise BrokerAuthError(f"malformed Mosquitto password hash: {exc}") from None
    if iterations < 1 or len(salt) != SALT_BYTES or len(digest) != DIGEST_BYTES:
        raise BrokerAuthError(f"Mosquitto password hash needs iterations >= 1, a {SALT_BYTES}-byte salt "
                              f"and a {DIGEST_BYTES}-byte digest")
    return MosquittoHash(kind, iterations, salt, digest)


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a Mosquitto ``$6$``/``$7$`` hash (constant-time compare)."""
    h = parse_hash(encoded)
    if h.kind == 6:
        digest = hashlib.sha512(password.encode() + h.salt).digest()
    else:
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), h.salt, h.iterations)
    return hmac.compare_digest(digest, h.digest)


def new_password() -> str:
    """A fresh random password (32 bytes, URL-safe base64: 43 characters)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


# -- file rendering -----------------------------------------------------------------------------


def render_password_file(entries: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """The password file: one ``username:hash`` line per account, sorted by username."""
    pairs = list(entries.items() if isinstance(entries, Mapping) else entries)
    seen: set[str] = set()
    for username, encoded in pairs:
        _check_username(username)
        if username in seen:
            raise BrokerAuthError(f"account {username!r} appears twice")
        seen.add(username)
        parse_hash(encoded)
    return "".join(f"{u}:{h}\n" for u, h in sorted(pairs))


def read_password_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{username: hash}`` of an existing password file ({} if there is none).

    Raises BrokerAuthError (naming the line, never its content) for a line that is not
    ``username:hash`` with a hash Mosquitto 2.0 accepts, e.g. a clear-text password.
    """
    p = Path(path)
    if not p.exists():
        return {}
    out: dict[str, str] = {}
    for number, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        username, sep, encoded = line.partition(":")
        if not sep:
            raise BrokerAuthError(f"{p}:{number}: not a 'username:hash' line")
        try:
            parse_hash(encoded.strip())
        except BrokerAuthError as exc:
            raise BrokerAuthError(f"{p}:{number}: account {username.strip()!r}: {exc}") from None
        out[username.strip()] = encoded.strip()
    return out


@dataclass(frozen=True)
class GatewayAccess:
    """What one gateway may do: read these devices, write for these patients (and its own status)."""

    gateway_id: str
    devices: tuple[str, ...] = ()
    patients: tuple[str, ...] = ()


def device_acl(device_id: str) -> list[str]:
    return [f"topic write {_PREFIX}/device/{device_id}/#"]


def gateway_acl(access: GatewayAccess) -> list[str]:
    """The gateway's uplink account ``<gw>``: writes for its patients, itself and its devices' status."""
    devices = sorted(set(access.devices))
    gw = f"{_PREFIX}/gateway/{access.gateway_id}"
    # the gateway reports its BLE devices' battery and connection on their behalf; it reads (never
    # writes) its receipts and acks, which come down on the uplink's connection
    return ([f"topic write {_PREFIX}/device/{d}/status" for d in devices]
            + [f"topic write {gw}/status", f"topic read {gw}/receipt", f"topic read {gw}/ack"]
            + [f"topic write {_PREFIX}/patient/{p}/#" for p in sorted(set(access.patients))])


def gateway_ingest_acl(access: GatewayAccess) -> list[str]:
    """The gateway's MQTT ingest account ``<gw>-ingest``: reads its devices' topics."""
    return [f"topic read {_PREFIX}/device/{d}/#" for d in sorted(set(access.devices))]


def ingest_account(gateway_id: str) -> str:
    """The account (and client id) of a gateway's MQTT ingest client: ``<gw>-ingest``."""
    return f"{gateway_id}{INGEST_SUFFIX}"


def downlink_account(service: str) -> str:
    """The account (and client id) of a cloud service's ack publisher: ``<s>-downlink``."""
    return f"{service}{DOWNLINK_SUFFIX}"


def live_account(service: str) -> str:
    """The account (and client id) of a cloud service's live relay: ``<s>-live``."""
    return f"{service}{LIVE_SUFFIX}"


def live_acl(service: str) -> list[str]:
    """A cloud service's live relay ``<s>-live``: reads the live stream and the gateways' status."""
    return [f"topic read {f}" for f in LIVE_FILTERS]


def service_acl(service: str) -> list[str]:
    """A cloud service ``<s>`` (its ingest worker): reads everything, writes receipts only."""
    return [f"topic read {_PREFIX}/#", f"topic write {_PREFIX}/gateway/+/receipt"]


def downlink_acl(service: str) -> list[str]:
    """A cloud service's ack publisher ``<s>-downlink``: writes acks, nothing else."""
    return [f"topic write {_PREFIX}/gateway/+/ack"]


def render_acl(devices: Iterable[str], gateways: Iterable[GatewayAccess], services: Iterable[str]) -> str:
    """The ACL file: one ``user`` block per account (see the module docstring for what each may do).

    ``devices``: device ids; ``gateways``: resolved gateway access; ``services``: service accounts.
    """
    devices, services = sorted(devices), sorted(services)
    gateways = sorted(gateways, key=lambda g: g.gateway_id)
    for g in gateways:
        for ident, what in [(d, "device id") for d in g.devices] + [(p, "patient id") for p in g.patients]:
            _check_id(ident, what)
    _check_unique([*devices, *(u for g in gateways for u in (g.gateway_id, ingest_account(g.gateway_id))),
                   *services, *(u for s in services for u in (downlink_account(s), live_account(s)))])
    lines = [
        "# ecgstream broker ACL: generated from the device registry by cloud.broker_auth; do not edit.",
        "# Devices write only their own device/<id>/ branch; a gateway's uplink writes its devices'",
        "# status, its patients' topics and its own status, and reads its own receipts and acks; its",
        "# ingest reads its devices; cloud services read, and write receipts; <s>-downlink writes acks;",
        "# <s>-live reads the live stream and gateway status.",
        "# Mosquitto 2.0 checks none of this on SUBSCRIBE, only on delivery: a client may still join",
        "# another's shared subscription and make the broker drop its share. Load",
        "# dynamic-security.json (the dynamic-security plugin) to refuse such subscriptions.",
        "",
    ]
    for d in devices:
        lines += [f"# device {d}", f"user {d}", *device_acl(d), ""]
    for g in gateways:
        lines += [f"# gateway {g.gateway_id} (uplink): writes for {_count(g.patients, 'patient')}",
                  f"user {g.gateway_id}", *gateway_acl(g), "",
                  f"# gateway {g.gateway_id} (ingest): reads {_count(g.devices, 'device')}",
                  f"user {ingest_account(g.gateway_id)}", *gateway_ingest_acl(g), ""]
    for s in services:
        lines += [f"# cloud service {s}", f"user {s}", *service_acl(s), "",
                  f"# cloud service {s} (ack publisher)", f"user {downlink_account(s)}", *downlink_acl(s), "",
                  f"# cloud service {s} (live relay)", f"user {live_account(s)}", *live_acl(s), ""]
    return "\n".join(lines)


def _count(items: Iterable[str], noun: str) -> str:
    n = len(set(items))
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _check_id(ident: str, what: str) -> str:
    try:
        return validate_id(ident, what)
    except TopicError as exc:
        raise BrokerAuthError(str(exc)) from None


def _check_username(username: str) -> str:
    return _check_id(username, "account name")


def _check_unique(usernames: list[str]) -> None:
    for u in usernames:
        _check_username(u)
    dupes = sorted({u for u in usernames if usernames.count(u) > 1})
    if dupes:
        raise BrokerAuthError("account names used twice (devices, gateways and services share one "
                              f"namespace): {dupes}")


# -- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewaySpec:
    """A gateway account; ``patients=None`` means every registered patient."""

    gateway_id: str
    patients: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AccountsFile:
    """What an accounts TOML file holds: gateways, service accounts and the cloud's share group
    (``None``: not set, use the cloud settings' ``[broker] group``)."""

    gateways: list[GatewaySpec]
    services: list[str]
    share_group: str | None = None


def load_accounts(path: str | os.PathLike[str]) -> tuple[list[GatewaySpec], list[str]]:
    """Gateways and service accounts from a TOML file (format in the module docstring)."""
    accounts = read_accounts(path)
    return accounts.gateways, accounts.services


def read_accounts(path: str | os.PathLike[str]) -> AccountsFile:
    """Gateways, service accounts and ``share_group`` (``None`` if the file has none) from a TOML file."""
    try:
        doc = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BrokerAuthError(f"cannot read broker accounts from {path}: {exc}") from None
    unknown = set(doc) - {"gateways", "services", "share_group"}
    if unknown:
        raise BrokerAuthError(f"{path}: unknown keys {sorted(unknown)} "
                              "(expected 'gateways', 'services', 'share_group')")
    group = doc.get("share_group")
    if group is not None:
        if not isinstance(group, str):
            raise BrokerAuthError(f"{path}: 'share_group' must be a string")
        _check_id(group, "share group")
    services = doc.get("services", [])
    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise BrokerAuthError(f"{path}: 'services' must be a list of account names")
    gateways = []
    for gw, body in (doc.get("gateways") or {}).items():
        if not isinstance(body, dict) or set(body) - {"patients"}:
            raise BrokerAuthError(f"{path}: [gateways.{gw}] may only have a 'patients' list")
        patients = body.get("patients")
        if patients is not None and not (isinstance(patients, list)
                                         and all(isinstance(p, str) for p in patients)):
            raise BrokerAuthError(f"{path}: [gateways.{gw}] patients must be a list of patient ids")
        gateways.append(GatewaySpec(gw, None if patients is None else tuple(patients)))
    return AccountsFile(gateways, list(services), group)


# -- generation from the registry ---------------------------------------------------------------


class Registry(Protocol):
    """What :func:`generate_broker_auth` reads (a :class:`cloud.store.Store` is one)."""

    async def list_devices(self, *, patient_id: str | None = None) -> list[Any]: ...

    async def list_patients(self) -> list[Any]: ...


@dataclass(frozen=True)
class Credential:
    """A new account's clear-text password (its repr hides the password, so it never lands in a log)."""

    username: str
    kind: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class BrokerAuthResult:
    """What a regeneration did. ``credentials`` holds the only copy of the new passwords besides
    ``credentials_file``: hand them to provisioning, then delete that file."""

    password_file: Path
    acl_file: Path
    dynsec_file: Path
    credentials_file: Path | None
    credentials: tuple[Credential, ...]
    kept: tuple[str, ...]
    created: tuple[str, ...]
    dropped: tuple[str, ...]
    accounts: dict[str, int]


async def generate_broker_auth(store: Registry, out_dir: str | os.PathLike[str], *,
                               gateways: Iterable[GatewaySpec] = (), services: Iterable[str] = (),
                               rotate: Iterable[str] = (), iterations: int = DEFAULT_ITERATIONS,
                               share_group: str = DEFAULT_SHARE_GROUP, password_file: str = PASSWORD_FILE,
                               acl_file: str = ACL_FILE, dynsec_file: str = DYNSEC_FILE) -> BrokerAuthResult:
    """Write ``out_dir/passwd``, ``out_dir/acl`` and ``out_dir/dynamic-security.json`` for the
    registry's active devices, ``gateways`` (two accounts each: ``<gw>`` for the uplink and
    ``<gw>-ingest``) and ``services`` (two accounts each: ``<s>``, whose ingest workers share
    subscriptions in ``share_group``, and ``<s>-downlink`` for its ack publisher);
    keep existing hashes, create passwords for new accounts (and for the accounts named in
    ``rotate``), drop accounts that are gone. Nothing is written if the input is bad."""
    out = Path(out_dir)
    _check_id(share_group, "share group")
    gateways, services, rotate = list(gateways), list(services), set(rotate)
    devices = [d for d in await store.list_devices() if getattr(d, "active", True)]
    patients = {p.patient_id for p in await store.list_patients()}
    accesses = []
    for spec in gateways:
        _check_id(spec.gateway_id, "gateway id")
        if spec.patients is None:
            served, readable = sorted(patients), [d.device_id for d in devices]
        else:
            missing = sorted(set(spec.patients) - patients)
            if missing:
                raise BrokerAuthError(f"gateway {spec.gateway_id} serves unregistered patients {missing}")
            served = sorted(set(spec.patients))
            readable = [d.device_id for d in devices if d.patient_id in set(served)]
        accesses.append(GatewayAccess(spec.gateway_id, tuple(readable), tuple(served)))
    kinds = {d.device_id: "device" for d in devices}
    registry_hash = {d.device_id: d.credentials_hash for d in devices if getattr(d, "credentials_hash", None)}
    gateway_accounts = [u for g in accesses for u in (g.gateway_id, ingest_account(g.gateway_id))]
    service_accounts = [u for s in services for u in (s, downlink_account(s), live_account(s))]
    wanted = [*kinds, *gateway_accounts, *service_accounts]
    _check_unique(wanted)
    kinds |= {u: "gateway" for u in gateway_accounts} | {s: "service" for s in service_accounts}
    unknown_rotate = sorted(rotate - set(wanted))
    if unknown_rotate:
        raise BrokerAuthError(f"cannot rotate unknown accounts {unknown_rotate}")

    out.mkdir(parents=True, exist_ok=True)
    # PBKDF2 for many new accounts and fsyncs: off the event loop
    return await asyncio.to_thread(_write_files, out, kinds, registry_hash, accesses, list(services), rotate,
                                   iterations, share_group, (password_file, acl_file, dynsec_file))


def _dynsec_acls(kinds: Mapping[str, str], accesses: list[GatewayAccess], services: list[str],
                 share_group: str) -> dict[str, list[dict[str, Any]]]:
    """Each account's dynamic-security ACLs (see :mod:`cloud.broker_auth.dynsec`)."""
    acls = {u: device_acls(u) for u, k in kinds.items() if k == "device"}
    for s in services:
        acls[s] = service_acls(share_group)
        acls[downlink_account(s)] = downlink_acls()
        acls[live_account(s)] = live_relay_acls()
    for g in accesses:
        acls[g.gateway_id] = gateway_uplink_acls(g.gateway_id, g.devices, g.patients)
        acls[ingest_account(g.gateway_id)] = gateway_ingest_acls(g.devices)
    return acls


def _write_files(out: Path, kinds: dict[str, str], registry_hash: Mapping[str, str],
                 accesses: list[GatewayAccess], services: list[str], rotate: set[str], iterations: int,
                 share_group: str, names: tuple[str, str, str]) -> BrokerAuthResult:
    """Read the old password file, decide every account's hash, write the files; under an exclusive
    lock on ``out/.broker-auth.lock`` so that two concurrent runs cannot lose each other's accounts."""
    password_file, acl_file, dynsec_file = names
    with open(out / ".broker-auth.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = read_password_file(out / password_file)
        hashes: dict[str, str] = {}
        credentials: list[Credential] = []
        kept: list[str] = []
        for username in sorted(kinds):
            if username not in rotate:
                old = existing.get(username) or _valid_hash(registry_hash.get(username))
                if old is not None:
                    hashes[username] = old
                    kept.append(username)
                    continue
            password = new_password()
            hashes[username] = hash_password(password, iterations=iterations)
            credentials.append(Credential(username, kinds[username], password))
        dropped = sorted(set(existing) - set(kinds))
        passwd_text = render_password_file(hashes)
        acl_text = render_acl([u for u, k in kinds.items() if k == "device"], accesses, services)
        dynsec_text = render_dynsec(hashes, kinds, _dynsec_acls(kinds, accesses, services, share_group))
        creds_path = _write_credentials(out, credentials) if credentials else None
        _atomic_write(out / acl_file, acl_text, 0o640)
        _atomic_write(out / dynsec_file, dynsec_text, 0o600)
        _atomic_write(out / password_file, passwd_text, 0o600)
    counts = {kind: sum(1 for k in kinds.values() if k == kind) for kind in ("device", "gateway", "service")}
    log.info("broker auth: %d accounts (%s) in %s; %d kept, %d new, %d dropped", len(hashes),
             ", ".join(f"{n} {k}s" for k, n in counts.items()), out, len(kept), len(credentials),
             len(dropped))
    return BrokerAuthResult(
        password_file=out / password_file, acl_file=out / acl_file, dynsec_file=out / dynsec_file,
        credentials_file=creds_path,
        credentials=tuple(credentials), kept=tuple(kept), created=tuple(c.username for c in credentials),
        dropped=tuple(dropped), accounts=counts,
    )


def _valid_hash(encoded: str | None) -> str | None:
    """A registry hash if Mosquitto can use it (the registry may hold other schemes, e.g. argon2)."""
    if encoded is None:
        return None
    try:
        parse_hash(encoded)
    except BrokerAuthError:
        return None
    return encoded


def _atomic_write(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` with ``text`` (mode ``mode`` from the first byte) in one rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _write_credentials(out: Path, credentials: list[Credential]) -> Path:
    """A new 0600 file (never overwriting an earlier, maybe uncollected one) with the new passwords."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    doc = {"note": "New MQTT broker passwords. Provision them, then delete this file.",
           "accounts": [{"username": c.username, "kind": c.kind, "password": c.password}
                        for c in credentials]}
    while True:
        path = out / f"credentials-{stamp}-{secrets.token_hex(3)}.json"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        break
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        json.dump(doc, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(out)
    return path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
