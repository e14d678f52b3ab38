"""Registration that a person can do (issue 14): ``ecgstream cloud patients|devices add|list|remove``, the
admin routes behind the dashboard's admin page, and ``cloud run --auto-register``.

Every storage test runs on SQLite and on PostgreSQL (``database_url``); the CLI runs through click's
CliRunner against the real store, the ingest worker's batch path against the real store, and the
auto-register switch end to end through ``ecgstream cloud run`` and a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from click.testing import CliRunner, Result

from cloud.config import parse_settings
from cloud.dashboard import STATIC_DIR
from cloud.ingest import IngestWorker, Reason
from cloud.store import Store
from ecgstream.cli import cli
from protocol.messages import DeviceStatus, encode_message
from protocol.topics import alert_topic, device_status_topic, window_topic
from protocol.window_payload import encode_window
from tests.cloud.api_support import ADMIN, CLINICIAN, make_api, until
from tests.cloud.conftest import make_alert, make_window
from tests.cloud.test_cloud_run import PASSWORD, START_S, _env, cloud_run, login
from tests.cloud.test_cloud_run import cli as cli_process

# -- the CLI ------------------------------------------------------------------------------------


def _invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["cloud", *args], env={"ECGSTREAM_CLOUD__DATABASE__URL": url},
                              catch_exceptions=False)


def _ok(url: str, *args: str) -> str:
    run = _invoke(url, *args)
    assert run.exit_code == 0, run.output
    return run.output


def _refused(url: str, *args: str) -> str:
    """The one-line error of a refused command (exit code 1, ``ecgstream: error: …``)."""
    run = _invoke(url, *args)
    assert run.exit_code == 1, run.output
    lines = run.output.strip().splitlines()
    assert len(lines) == 1, run.output
    return lines[0]


async def _audit(url: str) -> list[tuple[str, str, str]]:
    async with Store(url) as store:
        return [(e.user, e.action, e.target) for e in await store.audit_log()]


def test_patients_and_devices_round_trip_through_the_cli_with_clear_refusals_and_audit(migrated_url: str) -> None:
    url = migrated_url
    assert "no patients registered" in _ok(url, "patients", "list")
    assert _ok(url, "patients", "add", "bed-1", "--name", "Ana Lima", "--team", "Ward 3").strip() == \
        "added patient bed-1 (Ana Lima) in team Ward 3"
    _ok(url, "patients", "add", "bed-2", "--name", "Bo Chen")
    assert "already registered" in _refused(url, "patients", "add", "bed-1", "--name", "Someone else")
    assert "patient 'bed-9' is not registered" in _refused(url, "devices", "add", "dev-1", "--patient", "bed-9")
    _ok(url, "devices", "add", "dev-1", "--patient", "bed-1", "--profile", "polar-h10")
    assert "already registered to patient 'bed-1'" in _refused(url, "devices", "add", "dev-1", "--patient", "bed-1")
    other = _refused(url, "devices", "add", "dev-1", "--patient", "bed-2")
    assert "already assigned to patient 'bed-1'" in other and "devices remove dev-1" in other

    table = _ok(url, "patients", "list").splitlines()
    assert table[0].split() == ["PATIENT", "NAME", "TEAM", "ASSIGNED", "TO", "DEVICES"]
    assert re.fullmatch(r"bed-1\s+Ana Lima\s+Ward 3\s+-\s+dev-1", table[1])
    assert re.fullmatch(r"bed-2\s+Bo Chen\s+-\s+-\s+-", table[2])
    listed = json.loads(_ok(url, "patients", "list", "--json"))
    assert [(p["patient_id"], p["display_name"], p["team"], p["devices"]) for p in listed] == [
        ("bed-1", "Ana Lima", "Ward 3", ["dev-1"]), ("bed-2", "Bo Chen", None, [])]
    assert re.fullmatch(r"dev-1\s+bed-1\s+polar-h10\s+yes", _ok(url, "devices", "list").splitlines()[1])
    assert [d["device_id"] for d in json.loads(_ok(url, "devices", "list", "--json", "--patient", "bed-2"))] == []

    assert _ok(url, "patients", "rename", "bed-2", "--name", "Bo M. Chen").strip() == "patient bed-2 is now Bo M. Chen"
    assert "patient 'bed-8' is not registered" in _refused(url, "patients", "rename", "bed-8", "--name", "X")
    worn = _refused(url, "patients", "remove", "bed-1")
    assert "still wears device(s) dev-1" in worn
    assert "was worn by bed-1" in _ok(url, "devices", "remove", "dev-1")
    assert "device 'dev-1' is not registered" in _refused(url, "devices", "remove", "dev-1")
    _ok(url, "patients", "remove", "bed-1")
    assert "patient 'bed-1' is not registered" in _refused(url, "patients", "remove", "bed-1")
    assert [(p["patient_id"], p["display_name"]) for p in json.loads(_ok(url, "patients", "list", "--json"))] == [
        ("bed-2", "Bo M. Chen")]
    assert "must be 1-64 characters" in _invoke(url, "patients", "add", "bad id", "--name", "x").output

    assert asyncio.run(_audit(url)) == [
        ("cli", "create_patient", "patient:bed-1"), ("cli", "create_patient", "patient:bed-2"),
        ("cli", "create_device", "device:dev-1"), ("cli", "rename_patient", "patient:bed-2"),
        ("cli", "remove_device", "device:dev-1"),
        ("cli", "remove_patient", "patient:bed-1")]


def test_a_device_worn_by_nobody_is_given_to_the_patient_it_is_added_for(migrated_url: str) -> None:
    async def spare() -> None:
        async with Store(migrated_url) as store:
            await store.add_device("dev-spare")

    asyncio.run(spare())
    _ok(migrated_url, "patients", "add", "bed-7", "--name", "Cy")
    _ok(migrated_url, "devices", "add", "dev-spare", "--patient", "bed-7")
    assert json.loads(_ok(migrated_url, "devices", "list", "--json"))[0]["patient_id"] == "bed-7"
    assert ("cli", "assign_device", "device:dev-spare") in asyncio.run(_audit(migrated_url))


# -- auto-registration in the ingest ------------------------------------------------------------


def _messages(patient: str, device: str) -> list[tuple[str, bytes]]:
    """What an unregistered device's gateway sends first: its status, a window, two alerts."""
    return [(device_status_topic(device), encode_message(DeviceStatus(device, 80))),
            (window_topic(patient), encode_window(make_window(patient, device_id=device))),
            (alert_topic(patient), encode_message(make_alert(patient, device_id=device))),
            (alert_topic(patient), encode_message(make_alert(patient, device_id=device, event=None)))]


async def test_without_auto_register_an_unknown_device_is_refused_and_counted(store: Store) -> None:
    worker = IngestWorker(store, client_id="refuser")
    outcomes = await worker.handle_batch(_messages("pat-x", "dev-x"))
    assert outcomes == [Reason.UNKNOWN_DEVICE.value] * 4
    assert worker.counters.rejected["unknown_device"] == 4 and worker.counters.auto_registered == 0
    assert await store.list_patients() == [] and await store.get_device("dev-x") is None
    assert await store.count_alerts() == 0 and await store.count_windows() == 0


async def test_auto_register_registers_the_device_and_its_patient_and_loses_nothing(store: Store) -> None:
    worker = IngestWorker(store, client_id="registrar", auto_register=True)
    messages = _messages("pat-x", "dev-x")
    outcomes = await worker.handle_batch(messages)
    assert outcomes == ["stored"] * 4                      # the messages that found the device included
    assert await store.count_alerts() == 2 and await store.count_windows() == 1
    assert (await store.latest_device_status("dev-x")) is not None
    (patient,) = await store.list_patients()
    assert (patient.patient_id, patient.display_name) == ("pat-x", "dev-x")      # named after the device
    assert (await store.get_device("dev-x")).patient_id == "pat-x"
    entries = [e for e in await store.audit_log() if e.action == "auto_register"]
    # the status registered the device (worn by nobody: a status names no patient), the window its patient
    # and gave it the device
    assert [(e.user, e.target, e.details.get("patient_id")) for e in entries] == [
        ("ingest", "device:dev-x", None), ("ingest", "patient:pat-x", None), ("ingest", "device:dev-x", "pat-x")]
    assert all(e.details["note"] == "auto-registered" for e in entries)
    assert worker.counters.auto_registered == 2
    again = await worker.handle_batch(messages[1:])        # the edge resends: nothing registered again
    assert again == ["duplicate", "duplicate", "duplicate"]
    assert len([e for e in await store.audit_log() if e.action == "auto_register"]) == 3


async def test_auto_register_never_moves_a_device_worn_by_another_patient(store: Store) -> None:
    await store.add_patient("pat-a", "Ana")
    await store.add_device("dev-a", "pat-a")
    worker = IngestWorker(store, client_id="registrar", auto_register=True)
    alert = make_alert("pat-b", device_id="dev-a")
    assert await worker.handle(alert_topic("pat-b"), encode_message(alert)) == Reason.WRONG_PATIENT.value
    assert (await store.get_device("dev-a")).patient_id == "pat-a"
    assert [p.patient_id for p in await store.list_patients()] == ["pat-a"]
    assert not [e for e in await store.audit_log() if e.action == "auto_register"]


async def test_two_workers_registering_one_device_at_once_register_and_audit_it_once(migrated_url: str) -> None:
    async with Store(migrated_url) as one, Store(migrated_url) as two:
        workers = [IngestWorker(s, client_id=f"w{i}", auto_register=True) for i, s in enumerate((one, two))]
        alerts = [make_alert("pat-z", device_id="dev-z") for _ in workers]
        outcomes = await asyncio.gather(*(w.handle(alert_topic("pat-z"), encode_message(a))
                                          for w, a in zip(workers, alerts, strict=True)))
        assert outcomes == ["stored", "stored"]
        assert sum(w.counters.auto_registered for w in workers) == 1
        assert len([e for e in await one.audit_log() if e.action == "auto_register"]) == 2  # patient + device


def test_the_auto_register_setting_is_off_by_default_and_read_from_file_and_environment() -> None:
    assert parse_settings("", env={}).registry.auto_register is False
    assert parse_settings("[registry]\nauto_register = true\n", env={}).registry.auto_register is True
    env = {"ECGSTREAM_CLOUD__REGISTRY__AUTO_REGISTER": "true"}
    assert parse_settings("", env=env).registry.auto_register is True


@pytest.mark.slow
@pytest.mark.mosquitto
async def test_cloud_run_auto_register_accepts_an_unknown_device_and_without_it_refuses_one(
        tmp_path: Path, mqtt_broker: Any, unique_id: str) -> None:
    env = _env(broker__host=mqtt_broker.host, broker__port=mqtt_broker.port, broker__group=f"{unique_id}g",
               broker__client_id=f"{unique_id}-cloud", http__port=0, database__url=f"sqlite:///{tmp_path / 'c.db'}")
    code, _, err = await cli_process(tmp_path, env, "cloud", "users", "add", "admin", "--role", "admin",
                                     "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err

    async def publish(patient: str, device: str) -> str:
        alert = make_alert(patient, device_id=device)
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"{unique_id}-edge",
                                  protocol=aiomqtt.ProtocolVersion.V5) as edge:
            await edge.publish(alert_topic(patient), encode_message(alert), qos=1)
        return alert.alert_id

    async with cloud_run(tmp_path, env, "--auto-register") as proc:
        url = await proc.started()
        await until(lambda: "subscribed at" in proc.text(), "the worker subscribed", START_S)
        assert "auto-register is on" in proc.text()
        alert_id = await publish(f"{unique_id}p", f"{unique_id}d")
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            await login(c)

            async def stored() -> bool:
                r = await c.get("/api/alerts", params={"patient_id": f"{unique_id}p"})
                return alert_id in {a["alert_id"] for a in r.json()["alerts"]}

            await until(stored, "the unknown device's alert stored", START_S)
            patients = (await c.get("/api/patients")).json()["patients"]
            assert [(p["patient_id"], p["display_name"]) for p in patients] == [(f"{unique_id}p", f"{unique_id}d")]
            audit = (await c.get("/api/audit")).json()["entries"]
            assert {(e["user"], e["action"], e["target"]) for e in audit} >= {
                ("ingest", "auto_register", f"patient:{unique_id}p"),
                ("ingest", "auto_register", f"device:{unique_id}d")}
        assert await proc.terminate() == 0

    # off (the default): refused and counted. Its own share group and client id: the first process's
    # persistent session stays in its group, so the broker could hand this message to it instead
    env = dict(env, ECGSTREAM_CLOUD__BROKER__GROUP=f"{unique_id}g2", ECGSTREAM_CLOUD__BROKER__CLIENT_ID=f"{unique_id}-c2")
    async with cloud_run(tmp_path, env) as proc:
        url = await proc.started()
        await until(lambda: "subscribed at" in proc.text(), "the worker subscribed", START_S)
        await publish(f"{unique_id}q", f"{unique_id}e")
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            async def refused() -> bool:
                text = (await c.get("/metrics")).text
                return re.search(r'^ecgstream_cloud_ingest_rejected_total\{reason="unknown_device"\} 1\.0$',
                                 text, re.M) is not None

            try:
                await until(refused, "the unknown device refused and counted", START_S)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; cloud run's log:\n{proc.text()[-3000:]}") from None
            await login(c)
            assert [p["patient_id"] for p in (await c.get("/api/patients")).json()["patients"]] == [f"{unique_id}p"]
        assert await proc.terminate() == 0


# -- the admin routes and page ------------------------------------------------------------------


async def test_admins_rename_and_remove_devices_then_patients_and_clinicians_may_not(migrated_url: str) -> None:
    async with make_api(migrated_url) as api, api.as_user(ADMIN) as admin, api.as_user(CLINICIAN) as clinician:
        r = await admin.post("/api/patients", json={"patient_id": "bed-1", "display_name": "Ana", "team": "ICU"})
        assert r.status_code == 201, r.text
        assert (await admin.post("/api/devices", json={"device_id": "dev-1", "patient_id": "bed-1"})).status_code == 201
        assert (await clinician.delete("/api/devices/dev-1")).status_code == 403
        assert (await clinician.delete("/api/patients/bed-1")).status_code == 403
        renamed = await admin.put("/api/patients/bed-1/name", json={"display_name": "Ana Lima"})
        assert renamed.status_code == 200 and renamed.json()["display_name"] == "Ana Lima"
        assert (await clinician.put("/api/patients/bed-1/name", json={"display_name": "X"})).status_code == 403
        assert (await admin.put("/api/patients/bed-9/name", json={"display_name": "X"})).status_code == 404
        assert (await admin.put("/api/patients/bed-1/name", json={"display_name": ""})).status_code == 422
        busy = await admin.delete("/api/patients/bed-1")
        assert busy.status_code == 409 and "dev-1" in busy.json()["detail"]
        assert (await admin.delete("/api/devices/dev-1")).status_code == 204
        assert (await admin.delete("/api/devices/dev-1")).status_code == 404
        assert (await admin.delete("/api/patients/bed-1")).status_code == 204
        assert (await admin.delete("/api/patients/bed-1")).status_code == 404
        assert (await admin.delete("/api/patients/no%20such")).status_code == 404
        assert (await admin.get("/api/patients")).json() == {"patients": []}
        entries = (await admin.get("/api/audit")).json()["entries"]
        assert [(e["user"], e["action"], e["target"]) for e in entries
                if e["action"] in ("rename_patient", "remove_device", "remove_patient")] == [
            (ADMIN[0], "rename_patient", "patient:bed-1"), (ADMIN[0], "remove_device", "device:dev-1"),
            (ADMIN[0], "remove_patient", "patient:bed-1")]


async def test_the_admin_page_is_served_under_the_dashboards_policy(migrated_url: str) -> None:
    async with make_api(migrated_url) as api, api.client(check_contract=False) as c:
        page = await c.get("/static/admin.html")
        script = await c.get("/static/admin.js")
    assert page.status_code == 200 and script.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert '<script type="module" src="/static/admin.js"></script>' in html
    # no inline script, event handler or style: the CSP would block them
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and not re.search(r"\son[a-z]+\s*=", html)
    assert "style=" not in html and "<style" not in html
    js = (STATIC_DIR / "admin.js").read_text()
    for route in ("/api/users", "/api/patients", "/api/devices", "/api/me"):
        assert route in js


# -- the edge's device → patient map, with display names ----------------------------------------

EDGE_TOML = """
[ingest.patients]
"es-0003" = "bed-03"
"es-0004" = "bed-04"

[ingest.patient_names]
"bed-03" = "Ana Lima"

[[ingest.ble]]
patient = "bed-05"
patient_name = "Bo Chen"
address = "AA:BB:CC:DD:EE:05"
"""


def test_the_edge_config_maps_mqtt_and_ble_devices_to_patients_with_display_names() -> None:
    from edge.config import ConfigError, parse_config

    ingest = parse_config(EDGE_TOML, env={}).ingest
    assert ingest.device_patients() == {"es-0003": "bed-03", "es-0004": "bed-04", "aabbccddee05": "bed-05"}
    assert ingest.display_names() == {"bed-03": "Ana Lima", "bed-05": "Bo Chen"}
    with pytest.raises(ConfigError, match="named 'Someone else' in \\[ingest.patient_names\\] and 'Bo Chen' here"):
        parse_config(EDGE_TOML.replace('"bed-03" = "Ana Lima"', '"bed-03" = "Ana Lima"\n"bed-05" = "Someone else"'),
                     env={})
    with pytest.raises(ConfigError, match="patient_names 'bed 9' must be 1-64 characters"):
        parse_config('[ingest.patient_names]\n"bed 9" = "Cy"\n', env={})


def test_import_edge_registers_the_gateways_patients_by_name_and_their_devices_once(
        tmp_path: Path, migrated_url: str) -> None:
    edge = tmp_path / "edge.toml"
    edge.write_text(EDGE_TOML)
    out = _ok(migrated_url, "registry", "import-edge", "--edge-config", str(edge))
    assert "registered 6 new" in out
    listed = json.loads(_ok(migrated_url, "patients", "list", "--json"))
    assert [(p["patient_id"], p["display_name"], p["devices"]) for p in listed] == [
        ("bed-03", "Ana Lima", ["es-0003"]), ("bed-04", "", ["es-0004"]), ("bed-05", "Bo Chen", ["aabbccddee05"])]
    assert "registered 0 new" in _ok(migrated_url, "registry", "import-edge", "--edge-config", str(edge))
    assert len(asyncio.run(_audit(migrated_url))) == 6
