"""``ecgstream cloud run`` as a real process: default config on a fresh machine, ingest end to end through a
real broker, two processes sharing the load, clean stop on SIGTERM; ``cloud users`` and ``init-db``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import httpx
import pytest

from cloud.config import ConfigError, load_settings, parse_settings
from protocol.messages import encode_message
from protocol.topics import alert_topic
from tests.cloud.api_support import until
from tests.cloud.conftest import make_alert
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
START_S = 90.0  # a cold start imports a lot on a busy 2-core machine
PASSWORD = "admin-password-1"


class CloudProcess:
    """One ``ecgstream cloud run`` child process with its stderr collected."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.log: list[str] = []
        self._reader = asyncio.create_task(self._read())
        self.url: str | None = None

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            if m := re.search(r"serving HTTP on (http://\S+)", line):
                self.url = m.group(1)

    def text(self) -> str:
        return "\n".join(self.log)

    async def started(self) -> str:
        await until(lambda: self.url or self.proc.returncode is not None, "the HTTP server", START_S)
        assert self.url, f"cloud run exited early:\n{self.text()}"
        return self.url

    async def terminate(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), 60)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
        await self._reader
        return code


def _env(**cloud: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECGSTREAM_CLOUD__")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["ECGSTREAM_CLOUD__ACCOUNTS__ARGON2_MEMORY_KIB"] = "8"
    env["ECGSTREAM_CLOUD__ACCOUNTS__ARGON2_TIME_COST"] = "1"
    env.update({f"ECGSTREAM_CLOUD__{k.upper()}": str(v) for k, v in cloud.items()})
    return env


async def cli(cwd: Path, env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ecgstream", *args, cwd=cwd, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), START_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def cloud_run(cwd: Path, env: dict[str, str], *args: str) -> AsyncIterator[CloudProcess]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ecgstream", "cloud", "run", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    cp = CloudProcess(proc)
    try:
        yield cp
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def login(c: httpx.AsyncClient) -> None:
    r = await c.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    assert r.status_code == 200, r.text
    c.headers["Authorization"] = f"Bearer {r.json()['token']}"


@pytest.mark.slow
async def test_default_config_on_a_fresh_machine_without_a_broker(tmp_path: Path) -> None:
    nothing = free_port()  # no broker listens here
    env = _env(http__port=0, broker__port=nothing)
    code, out, err = await cli(tmp_path, env, "cloud", "users", "add", "admin", "--role", "admin",
                               "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    assert (tmp_path / "var" / "ecgstream-cloud.db").is_file()  # the default: SQLite under ./var
    code, _, err = await cli(tmp_path, env, "cloud", "users", "add", "nurse.kim", "--password-stdin",
                             stdin="nurse-password\n")
    assert code == 0, err
    code, out, _ = await cli(tmp_path, env, "cloud", "users", "list")
    assert code == 0 and out.split() == ["admin", "admin", "active", "nurse.kim", "clinician", "active"]
    assert (await cli(tmp_path, env, "cloud", "users", "delete", "nurse.kim"))[0] == 0
    code, out, _ = await cli(tmp_path, env, "cloud", "users", "list")
    assert code == 0 and out.split() == ["admin", "admin", "active"]
    code, _, err = await cli(tmp_path, env, "cloud", "users", "add", "admin", "--password-stdin",
                             stdin="another-password\n")
    assert code != 0 and "already exists" in err
    async with cloud_run(tmp_path, env) as cp:
        base = await cp.started()
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            health = (await c.get("/healthz")).json()
            assert (health["database"], health["ingest"]) == ("ok", "not connected")
            await login(c)
            assert (await c.get("/api/ward")).json() == {"patients": []}
            assert (await c.get("/")).status_code == 200
            await until(lambda: "no MQTT 5 broker is serving" in cp.text(), "the no-broker note", START_S)
            assert f"127.0.0.1:{nothing}" in cp.text()
            async with c.stream("GET", "/api/events") as feed:  # an open live feed does not block the stop
                lines = feed.aiter_lines()
                assert (await anext(lines)).startswith("retry:")
                assert await cp.terminate() == 0
                rest = [line async for line in lines]  # the server ends the stream
                assert all(not line.startswith("event:") for line in rest)
    assert "ecgstream cloud stopped" in cp.text()
    assert "Traceback" not in cp.text()


@pytest.mark.slow
async def test_ingest_end_to_end_and_two_processes_share_the_load(tmp_path: Path, mqtt_broker, unique_id: str
                                                                  ) -> None:
    group = f"{unique_id}g"
    env = _env(broker__host=mqtt_broker.host, broker__port=mqtt_broker.port, broker__group=group,
               http__port=0, database__url=f"sqlite:///{tmp_path / 'shared.db'}")
    code, _, err = await cli(tmp_path, env, "cloud", "init-db")
    assert code == 0, err
    code, _, err = await cli(tmp_path, env, "cloud", "users", "add", "admin", "--role", "admin", "--password-stdin",
                             stdin=PASSWORD + "\n")
    assert code == 0, err
    patient, device = f"{unique_id}p", f"{unique_id}d"
    envs = [dict(env, ECGSTREAM_CLOUD__BROKER__CLIENT_ID=f"{unique_id}-{i}") for i in (1, 2)]
    async with cloud_run(tmp_path, envs[0]) as one, cloud_run(tmp_path, envs[1]) as two:
        urls = [await one.started(), await two.started()]
        await until(lambda: all("subscribed at" in p.text() for p in (one, two)), "both workers subscribed", START_S)
        async with httpx.AsyncClient(base_url=urls[0], timeout=30) as c:
            await login(c)
            assert (await c.post("/api/patients", json={"patient_id": patient, "display_name": "Ada"})).status_code == 201
            assert (await c.post("/api/devices", json={"device_id": device, "patient_id": patient})).status_code == 201
            alerts = [make_alert(patient, device_id=device) for _ in range(12)]
            async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"{unique_id}-edge",
                                      protocol=aiomqtt.ProtocolVersion.V5) as edge:
                for a in alerts:
                    await edge.publish(alert_topic(patient), encode_message(a), qos=1)

            async def listed() -> set[str]:
                r = await c.get("/api/alerts", params={"patient_id": patient, "limit": 100})
                return {a["alert_id"] for a in r.json()["alerts"]}

            await until(lambda: listed_is_all(listed, alerts), "all alerts on /api/alerts", START_S)
            token = c.headers["Authorization"]
        async with httpx.AsyncClient(base_url=urls[1], timeout=30, headers={"Authorization": token}) as c:
            me = await c.get("/api/me")  # a session opened at one process works at the other
            assert me.status_code == 200 and me.json()["username"] == "admin"
        received = []
        for url in urls:  # the shared subscription gave each message to one process only
            async with httpx.AsyncClient(base_url=url, timeout=30) as c:
                text = (await c.get("/metrics")).text
            count = {name: float(re.search(rf"^ecgstream_cloud_ingest_{name}_total (\S+)$", text, re.M).group(1))
                     for name in ("received", "alerts_stored", "duplicates")}
            assert count["received"] == count["alerts_stored"] and count["duplicates"] == 0
            received.append(count["received"])
        assert sum(received) == len(alerts)
        assert await one.terminate() == 0 and await two.terminate() == 0


async def listed_is_all(listed, alerts) -> bool:
    return await listed() == {a.alert_id for a in alerts}


@pytest.mark.slow
async def test_bad_config_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cloud.toml").write_text("[http]\nport = 70000\n")
    code, _, err = await cli(tmp_path, _env(), "cloud", "run", "--config", str(tmp_path / "cloud.toml"))
    assert code == 2
    assert "[http] port 70000 is not a TCP port" in err and "Traceback" not in err
    code, _, err = await cli(tmp_path, _env(broker__password="x", http__portt="1"), "cloud", "run")
    assert code == 2 and "unknown key 'portt'" in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await cli(tmp_path, _env(http__port=port, run__ingest="false"), "cloud", "run")
    assert code == 2 and f"cannot serve HTTP on 127.0.0.1:{port}" in err and "Traceback" not in err


# -- the settings (no process) -------------------------------------------------------------------


def test_defaults_need_no_services() -> None:
    s = parse_settings("", env={})
    assert s.database.url == "sqlite:///var/ecgstream-cloud.db" and s.database.migrate
    assert (s.http.host, s.http.port) == ("127.0.0.1", 8080)
    assert (s.broker.host, s.broker.port, s.broker.group) == ("127.0.0.1", 1883, "cloud")
    assert (s.run.ingest, s.run.api, s.run.escalation) == (True, True, True)
    assert s.escalation.after_us() == {"high": 60_000_000, "medium": 180_000_000, "low": 600_000_000}
    assert s.client_id().startswith("cloud-")


def test_a_worker_with_a_broker_account_connects_with_its_username_as_client_id() -> None:
    """Brokers set up by `cloud broker-auth` bind each account to its client id: the worker uses its username."""
    s = parse_settings('[broker]\nusername = "cloud-a"\n', env={"ECGSTREAM_CLOUD__BROKER__PASSWORD": "x"})
    assert s.client_id() == "cloud-a"
    s = parse_settings('[broker]\nusername = "cloud-a"\nclient_id = "worker-7"\n',
                       env={"ECGSTREAM_CLOUD__BROKER__PASSWORD": "x"})
    assert s.client_id() == "worker-7"


def test_file_and_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text('[database]\nurl = "sqlite:///data/c.db"\n[broker]\nhost = "mq.example"\ntls = true\n'
                    '[escalation]\nhigh_s = 30\n')
    s = load_settings(path, env={"ECGSTREAM_CLOUD__HTTP__PORT": "9000", "ECGSTREAM_CLOUD__RUN__INGEST": "false",
                                 "ECGSTREAM_CLOUD__ESCALATION__MEDIUM_S": "0.5",
                                 "ECGSTREAM_CLOUD__BROKER__PASSWORD": "s3cret"})
    assert s.database.url == f"sqlite:///{tmp_path / 'data' / 'c.db'}"  # relative to the file
    assert (s.broker.host, s.broker.port, s.broker.password) == ("mq.example", 8883, "s3cret")  # tls: 8883
    assert "s3cret" not in repr(s)
    assert (s.http.port, s.run.ingest, s.escalation.high_s, s.escalation.medium_s) == (9000, False, 30.0, 0.5)
    example = load_settings(REPO / "docs" / "cloud.example.toml", env={})
    assert example.http.port == 8080 and example.escalation.max_level == 3
    (model,) = example.model_worker.models
    assert model.name == "classifier" and model.path.resolve() == (REPO / "models/artifacts/classifier_mamba.onnx")
    assert load_settings(None, env={}).model_worker.models is None   # default: the shipped classifier
    split = parse_settings('[model_worker]\npartition = "1/3"\n', env={})
    assert split.model_worker.partition_tuple() == (1, 3)


@pytest.mark.parametrize("text,env,message", [
    ("[http]\nport = 70000\n", {}, "[http] port 70000 is not a TCP port"),
    ("[http]\nport = \"80\"\n", {}, "[http] port must be an integer"),
    ("[nope]\nx = 1\n", {}, "unknown table [nope]"),
    ("[broker]\npassword = \"x\"\n", {}, "is a secret"),
    ("[broker]\ncafile = \"ca.pem\"\n", {}, "cafile needs tls = true"),
    ("[database]\nurl = \"mysql://x/y\"\n", {}, "must be sqlite"),
    ("[escalation]\nhigh_s = -1\n", {}, "[escalation] high_s -1.0 must be > 0"),
    ("[log]\nlevel = \"loud\"\n", {}, "[log] level must be one of"),
    ("", {"ECGSTREAM_CLOUD__HTTP__PORT": "eighty"}, "ECGSTREAM_CLOUD__HTTP__PORT: [http] port must be an integer"),
    ("", {"ECGSTREAM_CLOUD__RUN__API": "maybe"}, "must be true or false"),
    ("", {"ECGSTREAM_CLOUD__PORT": "1"}, "expected ECGSTREAM_CLOUD__<TABLE>__<KEY>"),
    ("not toml [", {}, "not valid TOML"),
    ("[broker]\nhost = \"embedded\"\n", {}, "cannot serve the cloud's shared subscription"),
    ("[model_worker]\npartition = \"2/2\"\n", {}, "[model_worker] partition '2/2' must be i/n"),
    ("[model_worker]\nmodels = \"x.onnx\"\n", {}, "models must be an array of tables"),
    ("[[model_worker.models]]\nname = \"a\"\n", {}, "each model needs a name and a path"),
    ("[[model_worker.models]]\nname = \"a\"\npath = \"a.onnx\"\nkind = \"magic\"\n", {}, "kind 'magic'"),
    ("[[model_worker.models]]\nname = \"a\"\npath = \"a.onnx\"\n[[model_worker.models]]\nname = \"a\"\n"
     "path = \"b.onnx\"\n", {}, "model names must be unique"),
])
def test_bad_settings_name_the_place(text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(text, source="cloud.toml", env=env)
    assert message in str(err.value)


def test_fhir_system_base_comes_from_the_settings_and_a_bad_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(None).fhir.system_base == "urn:ecgstream:fhir"
    monkeypatch.setenv("ECGSTREAM_CLOUD__FHIR__SYSTEM_BASE", "https://fhir.example-hospital.org/ecgstream")
    assert load_settings(None).fhir.system_base == "https://fhir.example-hospital.org/ecgstream"
    monkeypatch.setenv("ECGSTREAM_CLOUD__FHIR__SYSTEM_BASE", "not a uri")
    with pytest.raises(ConfigError, match=r"^ECGSTREAM_CLOUD__FHIR__SYSTEM_BASE: \[fhir\] system_base 'not a uri' must"):
        load_settings(None)
