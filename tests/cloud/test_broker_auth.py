"""Broker credentials and ACL from the registry (cloud.broker_auth): hashes Mosquitto accepts, files that
regenerate identically, and a real Mosquitto that enforces them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from sqlalchemy import update

from cloud.broker_auth import (
    BrokerAuthError,
    GatewayAccess,
    GatewaySpec,
    generate_broker_auth,
    hash_password,
    load_accounts,
    parse_hash,
    read_accounts,
    read_password_file,
    render_acl,
    render_password_file,
    verify_password,
)
from cloud.store import Store, upgrade_database
from cloud.store.schema import Device
from tests.conftest import _port_open, free_port, mosquitto_binary, skip_or_fail

# -- the hash -----------------------------------------------------------------------------------


def test_hash_is_mosquitto_pbkdf2_sha512_format():
    salt = bytes(range(12))
    encoded = hash_password("correct horse", iterations=1234, salt=salt)
    _, kind, iterations, salt_b64, digest_b64 = encoded.split("$")
    assert (kind, iterations) == ("7", "1234")
    assert base64.b64decode(salt_b64) == salt
    assert base64.b64decode(digest_b64) == hashlib.pbkdf2_hmac("sha512", b"correct horse", salt, 1234)
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct horsE", encoded)


def test_each_hash_gets_a_fresh_salt():
    a, b = hash_password("same"), hash_password("same")
    assert a != b and verify_password("same", a) and verify_password("same", b)
    assert parse_hash(a).encode() == a


def test_salted_sha512_hashes_of_old_files_verify():
    salt = b"0123456789ab"
    old = "$6$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(
        hashlib.sha512(b"legacy" + salt).digest()).decode()
    assert verify_password("legacy", old) and not verify_password("legacy2", old)


@pytest.mark.parametrize("bad", [
    "plaintext", "$7$0$AAAAAAAAAAAAAAAA$" + "A" * 88, "$7$101$AAAA$" + "A" * 88,
    "$7$101$AAAAAAAAAAAAAAAA$AAAA", "$8$argon2", "$7$x$AAAAAAAAAAAAAAAA$" + "A" * 88,
])
def test_hashes_mosquitto_would_refuse_are_refused(bad):
    with pytest.raises(BrokerAuthError):
        parse_hash(bad)


def test_salts_mosquitto_cannot_read_are_refused():
    with pytest.raises(BrokerAuthError, match="12-byte salt"):
        hash_password("x", salt=b"short")


def test_hashes_written_by_mosquitto_passwd_verify(tmp_path):
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        skip_or_fail("mosquitto_passwd is not installed")
    pwfile = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(pwfile), "alice", "s3cret"], check=True)
    subprocess.run([tool, "-b", "-I", "2000", str(pwfile), "bob", "hunter2"], check=True)
    entries = read_password_file(pwfile)
    assert verify_password("s3cret", entries["alice"]) and not verify_password("s3cret", entries["bob"])
    assert verify_password("hunter2", entries["bob"]) and parse_hash(entries["bob"]).iterations == 2000


# -- file rendering -----------------------------------------------------------------------------


def test_password_file_round_trips_sorted():
    entries = {"dev-b": hash_password("b"), "dev-a": hash_password("a"), "cloud": hash_password("c")}
    text = render_password_file(entries)
    assert [line.split(":")[0] for line in text.splitlines()] == ["cloud", "dev-a", "dev-b"]


def test_password_file_reader_refuses_clear_text_without_echoing_it(tmp_path):
    path = tmp_path / "passwd"
    path.write_text(f"dev-a:{hash_password('a')}\n# comment\n\ndev-b:TopSecret99\n")
    with pytest.raises(BrokerAuthError, match=":4:") as err:
        read_password_file(path)
    assert "TopSecret99" not in str(err.value)


@pytest.mark.parametrize("username", ["has:colon", "has space", "", "x" * 65, "wild#"])
def test_bad_account_names_are_refused(username):
    with pytest.raises(BrokerAuthError):
        render_password_file({username: hash_password("x")})


def test_acl_grants_exactly_the_scheme():
    acl = render_acl(["dev-a", "dev-b"], [GatewayAccess("gw-1", ("dev-a",), ("pat-a",))], ["cloud"])
    blocks = {}
    for block in acl.split("\nuser ")[1:]:
        name, *rules = [line for line in block.splitlines() if line and not line.startswith("#")]
        blocks[name] = rules
    assert blocks == {
        "dev-a": ["topic write ecgstream/v1/device/dev-a/#"],
        "dev-b": ["topic write ecgstream/v1/device/dev-b/#"],
        # the uplink reads its own receipts and acks (they come down on its connection), writes neither
        "gw-1": ["topic write ecgstream/v1/device/dev-a/status", "topic write ecgstream/v1/gateway/gw-1/status",
                 "topic read ecgstream/v1/gateway/gw-1/receipt", "topic read ecgstream/v1/gateway/gw-1/ack",
                 "topic write ecgstream/v1/patient/pat-a/#"],
        "gw-1-ingest": ["topic read ecgstream/v1/device/dev-a/#"],
        "cloud": ["topic read ecgstream/v1/#", "topic write ecgstream/v1/gateway/+/receipt"],
        "cloud-downlink": ["topic write ecgstream/v1/gateway/+/ack"],
        "cloud-live": ["topic read ecgstream/v1/patient/+/live", "topic read ecgstream/v1/gateway/+/status"],
    }
    # nothing outside a user block (that would apply to anonymous clients)
    before_first_user = acl.split("\nuser ")[0]
    assert all(line.startswith("#") or not line for line in before_first_user.splitlines())


def test_one_name_for_two_accounts_is_refused():
    with pytest.raises(BrokerAuthError, match="twice"):
        render_acl(["gw-1"], [GatewayAccess("gw-1")], [])
    with pytest.raises(BrokerAuthError, match="twice"):    # a service's ack publisher is <s>-downlink
        render_acl(["cloud-downlink"], [], ["cloud"])


def test_accounts_toml(tmp_path):
    path = tmp_path / "accounts.toml"
    path.write_text('services = ["cloud-ingest", "cloud-api"]\n[gateways.gw-a]\npatients = ["p1", "p2"]\n'
                    "[gateways.gw-all]\n")
    gateways, services = load_accounts(path)
    assert gateways == [GatewaySpec("gw-a", ("p1", "p2")), GatewaySpec("gw-all", None)]
    assert services == ["cloud-ingest", "cloud-api"]
    path.write_text('[gateways.gw-a]\npatient = ["p1"]\n')
    with pytest.raises(BrokerAuthError, match="patients"):
        load_accounts(path)


# -- generation from a registry -----------------------------------------------------------------


@pytest.fixture
def registry_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade_database(url)
    return url


@pytest.fixture
async def registry(registry_url: str) -> AsyncIterator[Store]:
    """pat-a wears dev-a, pat-b wears dev-b and dev-c."""
    async with Store(registry_url) as store:
        for p in ("pat-a", "pat-b"):
            await store.add_patient(p)
        await store.add_device("dev-a", "pat-a")
        await store.add_device("dev-b", "pat-b")
        await store.add_device("dev-c", "pat-b")
        yield store


async def deactivate(store: Store, device_id: str) -> None:
    async with store.session() as s, s.begin():
        await s.execute(update(Device).where(Device.device_id == device_id).values(active=False))


GATEWAYS = [GatewaySpec("gw-a", ("pat-a",)), GatewaySpec("gw-all")]
SERVICES = ["cloud-ingest"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_generation_writes_private_files_and_one_time_credentials(registry, tmp_path, caplog):
    out = tmp_path / "broker"
    with caplog.at_level(logging.DEBUG):
        result = await generate_broker_auth(registry, out, gateways=GATEWAYS, services=SERVICES)
    assert result.accounts == {"device": 3, "gateway": 4, "service": 3}
    assert set(result.created) == {"dev-a", "dev-b", "dev-c", "gw-a", "gw-a-ingest", "gw-all", "gw-all-ingest",
                                   "cloud-ingest", "cloud-ingest-downlink", "cloud-ingest-live"}
    assert mode(result.password_file) == 0o600 and mode(result.acl_file) == 0o640
    assert mode(result.dynsec_file) == 0o600
    assert result.credentials_file is not None and mode(result.credentials_file) == 0o600
    hashes = read_password_file(result.password_file)
    accounts = json.loads(result.credentials_file.read_text())["accounts"]
    saved = {a["username"]: a["password"] for a in accounts}
    for cred in result.credentials:
        assert verify_password(cred.password, hashes[cred.username])
        assert saved[cred.username] == cred.password
        assert cred.password not in caplog.text and cred.password not in repr(result)
    acl = result.acl_file.read_text()
    assert "topic read ecgstream/v1/device/dev-a/#" in acl.split("user gw-a-ingest\n")[1].split("\n\n")[0]
    gw_a = acl.split("user gw-a\n")[1].split("\n\n")[0] + acl.split("user gw-a-ingest\n")[1].split("\n\n")[0]
    assert "dev-b" not in gw_a and "pat-b" not in gw_a  # gw-a serves pat-a only
    gw_all = acl.split("user gw-all-ingest\n")[1].split("\n\n")[0]
    assert all(f"device/{d}/#" in gw_all for d in ("dev-a", "dev-b", "dev-c"))


async def test_regeneration_is_idempotent_and_follows_the_registry(registry, tmp_path):
    out = tmp_path / "broker"
    first = await generate_broker_auth(registry, out, gateways=GATEWAYS, services=SERVICES)
    passwd, acl = first.password_file.read_bytes(), first.acl_file.read_bytes()
    first_hashes = read_password_file(first.password_file)
    again = await generate_broker_auth(registry, out, gateways=GATEWAYS, services=SERVICES)
    assert again.credentials == () and again.credentials_file is None and again.created == ()
    assert again.password_file.read_bytes() == passwd and again.acl_file.read_bytes() == acl

    await registry.add_device("dev-d", "pat-a")
    await deactivate(registry, "dev-c")
    changed = await generate_broker_auth(registry, out, gateways=GATEWAYS, services=SERVICES)
    assert changed.created == ("dev-d",) and changed.dropped == ("dev-c",)
    hashes = read_password_file(changed.password_file)
    assert "dev-c" not in hashes and "dev-c" not in changed.acl_file.read_text()
    assert "device/dev-d/#" in changed.acl_file.read_text().split("user gw-a-ingest\n")[1].split("\n\n")[0]
    # everyone else keeps the hash (and so the password) they had
    kept = {u: h for u, h in hashes.items() if u != "dev-d"}
    assert kept == {u: h for u, h in first_hashes.items() if u != "dev-c"}
    assert len(list(out.glob("credentials-*.json"))) == 2  # the first run's file is never overwritten


async def test_concurrent_runs_give_every_account_exactly_one_password(registry, tmp_path):
    out = tmp_path / "broker"
    runs = await asyncio.gather(*(generate_broker_auth(registry, out, gateways=GATEWAYS, services=SERVICES)
                                  for _ in range(3)))
    created = [c for run in runs for c in run.credentials]
    assert sorted(c.username for c in created) == ["cloud-ingest", "cloud-ingest-downlink", "cloud-ingest-live",
                                                   "dev-a", "dev-b", "dev-c",
                                                   "gw-a", "gw-a-ingest", "gw-all", "gw-all-ingest"]
    hashes = read_password_file(out / "passwd")
    assert all(verify_password(c.password, hashes[c.username]) for c in created)


async def test_rotation_replaces_only_the_named_account(registry, tmp_path):
    out = tmp_path / "broker"
    first = await generate_broker_auth(registry, out, services=SERVICES)
    old = {c.username: c.password for c in first.credentials}
    rotated = await generate_broker_auth(registry, out, services=SERVICES, rotate=["dev-b"])
    assert rotated.created == ("dev-b",)
    hashes = read_password_file(rotated.password_file)
    assert not verify_password(old["dev-b"], hashes["dev-b"])
    assert verify_password(rotated.credentials[0].password, hashes["dev-b"])
    assert verify_password(old["dev-a"], hashes["dev-a"])
    with pytest.raises(BrokerAuthError, match="unknown"):
        await generate_broker_auth(registry, out, services=SERVICES, rotate=["nobody"])


async def test_a_mosquitto_hash_in_the_registry_is_used_and_others_ignored(registry_url, tmp_path):
    async with Store(registry_url) as store:
        await store.add_patient("p")
        await store.add_device("pre", "p", credentials_hash=hash_password("provisioned"))
        await store.add_device("argon", "p", credentials_hash="$argon2id$placeholder")
        result = await generate_broker_auth(store, tmp_path / "b")
    hashes = read_password_file(result.password_file)
    assert verify_password("provisioned", hashes["pre"]) and result.created == ("argon",)


async def test_bad_configuration_writes_nothing(registry, tmp_path):
    out = tmp_path / "broker"
    with pytest.raises(BrokerAuthError, match="unregistered patients"):
        await generate_broker_auth(registry, out, gateways=[GatewaySpec("gw", ("pat-zzz",))])
    with pytest.raises(BrokerAuthError, match="twice"):
        await generate_broker_auth(registry, out, services=["dev-a"])
    assert not out.exists() or not any(out.iterdir())


# -- a real Mosquitto enforcing the generated files ---------------------------------------------


DEPLOYMENT = Path(__file__).resolve().parents[2] / "docs" / "deployment"


def dynsec_plugin() -> str | None:
    """Path of Mosquitto's dynamic-security plugin, or None."""
    candidates = ["/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
                  "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
                  "/usr/lib/mosquitto_dynamic_security.so", "/usr/local/lib/mosquitto_dynamic_security.so"]
    return next((c for c in candidates if Path(c).exists()), None)


class AuthBroker:
    """A private mosquitto on a free port, configured by docs/deployment/mosquitto-cloud.conf (with
    mosquitto-edge.conf in its include_dir) with only the listener and the paths swapped."""

    def __init__(self, binary: str, workdir: Path, auth_dir: Path) -> None:
        plugin = dynsec_plugin()
        if plugin is None:
            skip_or_fail("Mosquitto's dynamic-security plugin is not installed")
        self.binary = binary
        self.host, self.port = "127.0.0.1", free_port()
        include = workdir / "ecgstream.d"
        include.mkdir()
        edge = (DEPLOYMENT / "mosquitto-edge.conf").read_text()
        edge = re.sub(r"(?m)^persistence_location .*$", f"persistence_location {workdir}/", edge)
        (include / "mosquitto-edge.conf").write_text(edge)
        conf = (DEPLOYMENT / "mosquitto-cloud.conf").read_text()
        for pattern, value in [
            (r"^listener 1883$", f"listener {self.port} {self.host}"),
            (r"^plugin .*$", f"plugin {plugin}"),
            (r"^plugin_opt_config_file .*$", f"plugin_opt_config_file {auth_dir / 'dynamic-security.json'}"),
            (r"^include_dir .*$", f"include_dir {include}"),
        ]:
            conf, n = re.subn(f"(?m){pattern}", value, conf)
            assert n == 1, f"the deployment config has no line {pattern!r}"
        # A mosquitto started as root drops to the `mosquitto` user, which could not read the 0600
        # files this test's user owns; in production the files belong to the broker's user.
        conf += f"\nuser {pwd.getpwuid(os.geteuid()).pw_name}\n"
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(conf)
        self.log = workdir / "mosquitto.log"
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not _port_open(self.host, self.port, 0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not start: {self.log.read_text()[-800:]}")
            time.sleep(0.05)

    def restart(self) -> None:
        """Stop (SIGTERM: sessions are saved) and start on the same port: the plugin reads its file
        only at start-up."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)
        self.start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def client(self, username: str | None, password: str | None, **kw) -> aiomqtt.Client:
        return aiomqtt.Client(self.host, self.port, username=username, password=password, timeout=10, **kw)


@pytest.fixture
async def deployment(registry, tmp_path) -> AsyncIterator[tuple[AuthBroker, dict[str, str], Store, Path]]:
    binary = mosquitto_binary()
    if binary is None:
        skip_or_fail("the mosquitto binary is not installed")
        return
    auth_dir = tmp_path / "auth"
    result = await generate_broker_auth(registry, auth_dir, gateways=[GatewaySpec("gw-a", ("pat-a",))],
                                        services=SERVICES)
    broker = AuthBroker(binary, tmp_path, auth_dir)
    try:
        yield broker, {c.username: c.password for c in result.credentials}, registry, auth_dir
    finally:
        broker.stop()


async def receive_until(client: aiomqtt.Client, sentinel: bytes) -> list[tuple[str, bytes]]:
    """Every message up to and including ``sentinel`` (bounded wait: a hang fails, it does not time)."""
    got = []
    async with asyncio.timeout(15):
        async for message in client.messages:
            got.append((str(message.topic), bytes(message.payload)))
            if message.payload == sentinel:
                return got
    return got


@pytest.mark.mosquitto
async def test_devices_publish_only_under_their_own_topics(deployment):
    broker, pw, _, _ = deployment
    async with broker.client("cloud-ingest", pw["cloud-ingest"], identifier="cloud-ingest") as cloud:
        await cloud.subscribe("ecgstream/v1/patient/+/alert", qos=1)
        await cloud.subscribe("ecgstream/v1/device/+/status", qos=1)
        async with broker.client("dev-a", pw["dev-a"], identifier="dev-a") as dev:
            await dev.publish("ecgstream/v1/device/dev-b/samples", b"forged-device", qos=1)
            await dev.publish("ecgstream/v1/patient/pat-a/alert", b"forged-alert", qos=1)
            await dev.publish("ecgstream/v1/device/dev-b/status", b"forged-status", qos=1)
            await dev.publish("ecgstream/v1/device/dev-a/status", b"own", qos=1)
        got = await receive_until(cloud, b"own")
    # one connection's publishes are forwarded in order: had the forgeries passed, they came first
    assert got == [("ecgstream/v1/device/dev-a/status", b"own")]


@pytest.mark.mosquitto
@pytest.mark.parametrize("username, password", [
    ("dev-a", "wrong"), ("nobody", "whatever"), (None, None), ("dev-a", None),
])
async def test_wrong_or_missing_credentials_are_refused(deployment, username, password):
    broker, pw, _, _ = deployment
    with pytest.raises(aiomqtt.MqttError):
        async with broker.client(username, password):
            pass


@pytest.mark.mosquitto
async def test_gateway_reads_its_devices_and_writes_for_its_patients_and_cloud_reads_all(deployment):
    broker, pw, _, _ = deployment
    v5 = aiomqtt.ProtocolVersion.V5
    async with (broker.client("cloud-ingest", pw["cloud-ingest"], identifier="cloud-ingest",
                              protocol=v5) as cloud,
                broker.client("gw-a-ingest", pw["gw-a-ingest"], identifier="gw-a-ingest") as gw_in):
        await cloud.subscribe("$share/cloud/ecgstream/v1/patient/+/window", qos=1)
        await cloud.subscribe("$share/cloud/ecgstream/v1/gateway/+/status", qos=1)
        await gw_in.subscribe("ecgstream/v1/device/+/samples", qos=1)  # as edge.ingest.mqtt does
        for dev in ("dev-b", "dev-a"):  # dev-b belongs to pat-b, not served by gw-a
            async with broker.client(dev, pw[dev], identifier=dev) as d:
                await d.publish(f"ecgstream/v1/device/{dev}/samples", dev.encode(), qos=1)
        assert await receive_until(gw_in, b"dev-a") == [("ecgstream/v1/device/dev-a/samples", b"dev-a")]

        await cloud.publish("ecgstream/v1/patient/pat-a/window", b"forged-by-service", qos=1)  # read-only
        async with broker.client("gw-a", pw["gw-a"], identifier="gw-a") as gw:
            await gw.publish("ecgstream/v1/patient/pat-b/window", b"not-my-patient", qos=1)
            await gw.publish("ecgstream/v1/gateway/gw-other/status", b"not-my-status", qos=1)
            await gw.publish("ecgstream/v1/patient/pat-a/window", b"window", qos=1)
            await gw.publish("ecgstream/v1/gateway/gw-a/status", b"status", qos=1)
        got = await receive_until(cloud, b"status")
    assert got == [("ecgstream/v1/patient/pat-a/window", b"window"),
                   ("ecgstream/v1/gateway/gw-a/status", b"status")]


@pytest.mark.mosquitto
async def test_a_deregistered_device_is_locked_out_after_regeneration(deployment):
    broker, pw, store, auth_dir = deployment
    await deactivate(store, "dev-a")
    result = await generate_broker_auth(store, auth_dir, gateways=[GatewaySpec("gw-a", ("pat-a",))],
                                        services=SERVICES)
    assert result.dropped == ("dev-a",) and result.credentials == ()
    broker.restart()  # the dynamic-security plugin reads its file at start-up
    with pytest.raises(aiomqtt.MqttError):
        async with broker.client("dev-a", pw["dev-a"]):
            pass
    async with broker.client("dev-b", pw["dev-b"]) as dev_b:  # kept hashes: old passwords still work
        await dev_b.publish("ecgstream/v1/device/dev-b/status", b"{}", qos=1)


def test_cli_writes_the_files_from_the_registry_and_never_prints_passwords(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ecgstream.cli import cli

    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)

    async def register() -> None:
        async with Store(url) as store:
            await store.add_patient("pat-a")
            await store.add_device("dev-a", "pat-a")

    asyncio.run(register())
    (tmp_path / "accounts.toml").write_text('services = ["cloud-ingest"]\n[gateways.gw-1]\npatients = ["pat-a"]\n')
    monkeypatch.setenv("ECGSTREAM_CLOUD__DATABASE__URL", url)
    out = tmp_path / "auth"
    args = ["cloud", "broker-auth", "--out-dir", str(out), "--accounts", str(tmp_path / "accounts.toml")]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "6 created" in first.output           # dev-a, gw-1, gw-1-ingest, cloud-ingest, its -downlink and -live
    creds = json.loads(next(out.glob("credentials-*.json")).read_text())
    secrets = [c["password"] for c in creds["accounts"]]
    assert len(secrets) == 6 and not any(s in first.output for s in secrets)
    acl = (out / "acl").read_text()
    assert "topic write ecgstream/v1/device/dev-a/#" in acl and "user gw-1" in acl
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "6 accounts kept, 0 created" in again.output
    missing = CliRunner().invoke(cli, [*args[:4], "--accounts", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "nope.toml" in missing.output


# -- the dynamic-security plugin file ---------------------------------------------------------------


def dynsec_doc(result) -> dict:
    return json.loads(result.dynsec_file.read_text())


async def test_dynsec_file_binds_client_ids_denies_by_default_and_grants_exact_subscriptions(registry, tmp_path):
    result = await generate_broker_auth(registry, tmp_path / "b", gateways=[GatewaySpec("gw-a", ("pat-a",))],
                                        services=["cloud-1"], share_group="ward")
    doc = dynsec_doc(result)
    assert doc["defaultACLAccess"] == {"publishClientSend": False, "publishClientReceive": False,
                                       "subscribe": False, "unsubscribe": True}
    hashes = read_password_file(result.password_file)
    clients = {c["username"]: c for c in doc["clients"]}
    assert set(clients) == set(hashes) == {"dev-a", "dev-b", "dev-c", "gw-a", "gw-a-ingest", "cloud-1",
                                           "cloud-1-downlink", "cloud-1-live"}
    for name, c in clients.items():
        assert c["clientid"] == name and c["roles"] == [{"rolename": name, "priority": 0}]
        h = parse_hash(hashes[name])  # the same PBKDF2 hash as the password file
        assert (base64.b64decode(c["salt"]), base64.b64decode(c["password"]), c["iterations"]) == (
            h.salt, h.digest, h.iterations)
    acls = {r["rolename"]: {(a["acltype"], a["topic"]) for a in r["acls"] if a["allow"]} for r in doc["roles"]}
    assert acls["dev-a"] == {("publishClientSend", "ecgstream/v1/device/dev-a/samples"),
                             ("publishClientSend", "ecgstream/v1/device/dev-a/status")}
    assert acls["gw-a"] == {("publishClientSend", t) for t in (
        "ecgstream/v1/patient/pat-a/window", "ecgstream/v1/patient/pat-a/alert", "ecgstream/v1/patient/pat-a/live",
        "ecgstream/v1/gateway/gw-a/status",
        "ecgstream/v1/device/dev-a/status")} | {(kind, f"ecgstream/v1/gateway/gw-a/{channel}")
                                                for kind in ("subscribeLiteral", "publishClientReceive")
                                                for channel in ("receipt", "ack")}
    assert acls["gw-a-ingest"] == {("subscribeLiteral", "ecgstream/v1/device/+/samples"),
                                   ("subscribeLiteral", "ecgstream/v1/device/+/status"),
                                   ("publishClientReceive", "ecgstream/v1/device/dev-a/#")}
    subs = {t for kind, t in acls["cloud-1"] if kind == "subscribeLiteral"}
    assert "$share/ward/ecgstream/v1/patient/+/alert" in subs and "ecgstream/v1/patient/+/alert" in subs
    assert all(t.startswith(("$share/ward/ecgstream/v1/", "ecgstream/v1/")) and "#" not in t for t in subs)
    # the ingest worker sends receipts, nothing else; its ack publisher sends acks, nothing else
    assert {t for kind, t in acls["cloud-1"] if kind == "publishClientSend"} == {"ecgstream/v1/gateway/+/receipt"}
    assert {kind for kind, _ in acls["cloud-1"]} == {"subscribeLiteral", "publishClientReceive", "publishClientSend"}
    assert acls["cloud-1-downlink"] == {("publishClientSend", "ecgstream/v1/gateway/+/ack")}
    # its live relay reads the ward's live stream and the gateways' status, and sends nothing
    assert acls["cloud-1-live"] == {(kind, t) for kind in ("subscribeLiteral", "publishClientReceive")
                                    for t in ("ecgstream/v1/patient/+/live", "ecgstream/v1/gateway/+/status")}


async def test_an_old_salted_sha512_hash_must_be_rotated_for_the_plugin(registry, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    salt = b"0123456789ab"
    old = "$6$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(
        hashlib.sha512(b"legacy" + salt).digest()).decode()
    (out / "passwd").write_text(f"dev-a:{old}\n")
    with pytest.raises(BrokerAuthError, match="rotate"):
        await generate_broker_auth(registry, out)
    result = await generate_broker_auth(registry, out, rotate=["dev-a"])
    assert "dev-a" in result.created and {c["username"] for c in dynsec_doc(result)["clients"]} >= {"dev-a"}


def test_accounts_toml_share_group(tmp_path):
    path = tmp_path / "accounts.toml"
    path.write_text('services = ["c1"]\nshare_group = "ward"\n')
    assert read_accounts(path).share_group == "ward"
    path.write_text('services = ["c1"]\n')
    assert read_accounts(path).share_group is None
    path.write_text('share_group = "a/b"\n')
    with pytest.raises(BrokerAuthError, match="share group"):
        read_accounts(path)


def test_cli_takes_the_share_group_from_the_cloud_settings(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ecgstream.cli import cli

    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)
    (tmp_path / "accounts.toml").write_text('services = ["cloud-1"]\n')
    monkeypatch.setenv("ECGSTREAM_CLOUD__DATABASE__URL", url)
    monkeypatch.setenv("ECGSTREAM_CLOUD__BROKER__GROUP", "icu")
    out = tmp_path / "auth"
    run = CliRunner().invoke(cli, ["cloud", "broker-auth", "--out-dir", str(out), "--accounts",
                                   str(tmp_path / "accounts.toml")])
    assert run.exit_code == 0, run.output
    assert "'icu'" in run.output and "restart the broker" in run.output
    assert "$share/icu/ecgstream/v1/patient/+/alert" in (out / "dynamic-security.json").read_text()
