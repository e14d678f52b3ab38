"""``ecgstream cloud …``: the cloud alert service (ingest, HTTP API, live feed, escalation) and its accounts."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click

_CONFIG = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    help="Cloud config (TOML; docs/cloud.example.toml). Default: the defaults plus ECGSTREAM_CLOUD__* overrides "
         "(SQLite under ./var, HTTP on 127.0.0.1:8080, broker on 127.0.0.1:1883).")


def _settings(config_path: Path | None) -> Any:
    from cloud.config import load_settings

    return load_settings(config_path)


@click.group()
def cloud() -> None:
    """Run and administer the cloud alert service (one TOML config: docs/cloud.example.toml)."""


@cloud.command("run")
@_CONFIG
@click.option("--auto-register", is_flag=True, default=None,
              help="Register unknown devices (and the patients their data names, named after the device) "
                   "instead of refusing them, each with an audit entry; default: [registry] auto_register (off).")
def run(config_path: Path | None, auto_register: bool | None) -> None:
    """Run ingest, the HTTP API and escalation until Ctrl-C or SIGTERM (start several to share the load)."""
    from dataclasses import replace

    from cloud.service import run_service

    settings = _settings(config_path)
    if auto_register:
        settings = replace(settings, registry=replace(settings.registry, auto_register=True))
    root = logging.getLogger()
    level = getattr(logging, settings.log.level.upper())
    root.setLevel(min(root.level or logging.WARNING, level))
    asyncio.run(run_service(settings))


@cloud.command("init-db")
@_CONFIG
def init_db(config_path: Path | None) -> None:
    """Create or migrate the database to the current schema."""
    from cloud.service import prepare_database
    from cloud.store import current_revision

    settings = _settings(config_path)
    asyncio.run(prepare_database(settings))
    click.echo(f"database at revision {current_revision(settings.database.url)}")


@cloud.group("users")
def users() -> None:
    """Staff accounts (clinician, admin)."""


async def _with_accounts(settings: Any, fn: Any) -> Any:
    from cloud.api import make_accounts
    from cloud.service import prepare_database
    from cloud.store import Store

    await prepare_database(settings)
    async with Store(settings.database.url) as store:
        return await fn(make_accounts(settings, store), store)


@users.command("add")
@_CONFIG
@click.argument("username")
@click.option("--role", type=click.Choice(["clinician", "admin"]), default="clinician", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def users_add(config_path: Path | None, username: str, role: str, password_stdin: bool) -> None:
    """Add a user (the password is prompted for, or read from stdin; never an argument)."""
    from cloud.accounts import AccountError, UserExists

    password = _read_password(password_stdin)
    settings = _settings(config_path)

    async def add(accounts: Any, store: Any) -> None:
        user = await accounts.create_user(username, password, role)
        await store.audit("cli", "create_user", f"user:{user.username}", {"role": user.role})

    try:
        asyncio.run(_with_accounts(settings, add))
    except (AccountError, UserExists) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added {role} {username}")


@users.command("list")
@_CONFIG
def users_list(config_path: Path | None) -> None:
    """List users and their roles."""
    async def listing(accounts: Any, _store: Any) -> list[Any]:
        return await accounts.list_users()

    for user in asyncio.run(_with_accounts(_settings(config_path), listing)):
        click.echo(f"{user.username}\t{user.role}\t{'active' if user.active else 'inactive'}"
                   + (f"\tteam={user.team}" if user.team else ""))


@users.command("delete")
@_CONFIG
@click.argument("username")
def users_delete(config_path: Path | None, username: str) -> None:
    """Delete a user and end their sessions."""
    async def remove(accounts: Any, store: Any) -> bool:
        gone = await accounts.delete_user(username)
        if gone:
            await store.audit("cli", "delete_user", f"user:{username}")
        return gone

    if not asyncio.run(_with_accounts(_settings(config_path), remove)):
        raise click.ClickException(f"no user {username!r}")
    click.echo(f"deleted {username}")


def _read_password(password_stdin: bool, prompt: str = "password") -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))


@users.command("passwd")
@_CONFIG
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of stdin.")
def users_passwd(config_path: Path | None, username: str, password_stdin: bool) -> None:
    """Set a user's password (prompted for, or read from stdin; never an argument) and end their sessions."""
    from cloud.accounts import AccountError
    from cloud.store import NotFound

    password = _read_password(password_stdin, "new password")
    settings = _settings(config_path)

    async def passwd(accounts: Any, store: Any) -> int:
        ended = int(await accounts.set_password(username, password))
        await store.audit("cli", "set_password", f"user:{username}", {"sessions_ended": ended})
        return ended

    try:
        ended = asyncio.run(_with_accounts(settings, passwd))
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    except NotFound:
        raise click.ClickException(f"no user {username!r}") from None
    click.echo(f"password of {username} changed; {ended} session(s) signed out")


@users.command("unlock")
@_CONFIG
@click.argument("username")
def users_unlock(config_path: Path | None, username: str) -> None:
    """Forget a user's failed sign-ins, so the growing delay after them ends now."""
    async def unlock(accounts: Any, store: Any) -> int | None:
        if await store.get_user(username) is None:
            return None
        forgotten = int(await accounts.unlock(username))
        await store.audit("cli", "unlock_user", f"user:{username}", {"forgotten_failures": forgotten})
        return forgotten

    forgotten = asyncio.run(_with_accounts(_settings(config_path), unlock))
    if forgotten is None:
        raise click.ClickException(f"no user {username!r}")
    click.echo(f"unlocked {username} ({forgotten} failed sign-in(s) forgotten)")


@users.command("team")
@_CONFIG
@click.argument("username")
@click.argument("team", required=False)
def users_team(config_path: Path | None, username: str, team: str | None) -> None:
    """Put a user in a ward or care team (leave TEAM out for none): with [accounts] care_team_scoping a
    clinician sees only the patients assigned to them or to their team."""
    from cloud.accounts import AccountError
    from cloud.store import NotFound

    async def set_team(accounts: Any, store: Any) -> None:
        await accounts.set_team(username, team)
        await store.audit("cli", "set_team", f"user:{username}", {"team": team})

    try:
        asyncio.run(_with_accounts(_settings(config_path), set_team))
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    except NotFound:
        raise click.ClickException(f"no user {username!r}") from None
    click.echo(f"{username}: team {team!r}" if team is not None else f"{username}: no team")


# -- the registry: patients and the devices they wear -----------------------------------------------

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


async def _with_store(settings: Any, fn: Any) -> Any:
    from cloud.service import prepare_database
    from cloud.store import Store

    await prepare_database(settings)
    async with Store(settings.database.url) as store:
        return await fn(store)


def _registry_call(config_path: Path | None, fn: Any) -> Any:
    """Run ``fn(store)``; a refusal of the registry (unknown, duplicate, in use) is one clear line."""
    from cloud.errors import NotFound
    from cloud.store.repositories.registry import RegistryConflict

    try:
        return asyncio.run(_with_store(_settings(config_path), fn))
    except (NotFound, RegistryConflict) as exc:
        raise click.ClickException(str(exc)) from None


def _ident(value: str, what: str) -> str:
    from protocol.errors import TopicError
    from protocol.topics import validate_id

    try:
        return validate_id(value, what)
    except TopicError as exc:
        raise click.BadParameter(str(exc)) from None


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns, two spaces apart (a header line, then one line a row)."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in (header, *rows))


@cloud.group("patients")
def patients() -> None:
    """Registered patients (the ward shows them; their devices' data is accepted)."""


@patients.command("add")
@_CONFIG
@click.argument("patient_id")
@click.option("--name", "display_name", required=True, help="The name the ward shows (at most 200 characters).")
@click.option("--team", help="The ward or care team looking after the patient.")
def patients_add(config_path: Path | None, patient_id: str, display_name: str, team: str | None) -> None:
    """Register a patient (audited as create_patient by "cli")."""
    import re

    from cloud.accounts.roles import TEAM_PATTERN

    _ident(patient_id, "patient id")
    if len(display_name) > 200:
        raise click.BadParameter("must be at most 200 characters", param_hint="--name")
    if team is not None and not re.fullmatch(TEAM_PATTERN, team):
        raise click.BadParameter(f"team {team!r} must be 1-64 letters, digits, spaces and _ . @ -",
                                 param_hint="--team")

    async def add(store: Any) -> Any:
        return await store.registry.register_patient(patient_id, display_name, team=team, by="cli")

    _registry_call(config_path, add)
    click.echo(f"added patient {patient_id} ({display_name})" + (f" in team {team}" if team else ""))


@patients.command("list")
@_CONFIG
@_JSON
def patients_list(config_path: Path | None, as_json: bool) -> None:
    """List registered patients with their team, responsible clinician and devices."""
    async def listing(store: Any) -> tuple[list[Any], list[Any]]:
        return await store.list_patients(), await store.list_devices()

    found, devices = _registry_call(config_path, listing)
    worn: dict[str, list[str]] = {}
    for d in devices:
        if d.patient_id is not None:
            worn.setdefault(d.patient_id, []).append(d.device_id)
    if as_json:
        import json

        click.echo(json.dumps([{"patient_id": p.patient_id, "display_name": p.display_name, "team": p.team,
                                "assigned_to": p.assigned_to, "devices": worn.get(p.patient_id, []),
                                "created_us": p.created_us} for p in found], indent=2))
        return
    if not found:
        click.echo("no patients registered (add one: ecgstream cloud patients add PATIENT_ID --name NAME)")
        return
    click.echo(_table(("PATIENT", "NAME", "TEAM", "ASSIGNED TO", "DEVICES"),
                      [(p.patient_id, p.display_name, p.team or "-", p.assigned_to or "-",
                        ", ".join(worn.get(p.patient_id, [])) or "-") for p in found]))


@patients.command("rename")
@_CONFIG
@click.argument("patient_id")
@click.option("--name", "display_name", required=True, help="The new name the ward shows.")
def patients_rename(config_path: Path | None, patient_id: str, display_name: str) -> None:
    """Give a patient another display name (an auto-registered patient is named after its device)."""
    _ident(patient_id, "patient id")
    if not display_name.strip() or len(display_name) > 200:
        raise click.BadParameter("must be 1-200 characters", param_hint="--name")

    async def rename(store: Any) -> Any:
        return await store.registry.rename_patient(patient_id, display_name, by="cli")

    _registry_call(config_path, rename)
    click.echo(f"patient {patient_id} is now {display_name}")


@patients.command("remove")
@_CONFIG
@click.argument("patient_id")
def patients_remove(config_path: Path | None, patient_id: str) -> None:
    """Remove a patient from the registry (stored alerts and windows stay); their devices must go first."""
    _ident(patient_id, "patient id")

    async def remove(store: Any) -> Any:
        return await store.registry.remove_patient(patient_id, by="cli")

    _registry_call(config_path, remove)
    click.echo(f"removed patient {patient_id}")


@cloud.group("devices")
def devices() -> None:
    """Registered devices and the patient each is worn by (data from other devices is refused)."""


@devices.command("add")
@_CONFIG
@click.argument("device_id")
@click.option("--patient", "patient_id", required=True, help="The registered patient who wears it.")
@click.option("--profile", default="", help="The device profile (e.g. ecgstream-250, polar-h10); optional.")
def devices_add(config_path: Path | None, device_id: str, patient_id: str, profile: str) -> None:
    """Register a device worn by a patient (audited as create_device by "cli"); a registered device worn by
    nobody is given to the patient."""
    _ident(device_id, "device id")
    _ident(patient_id, "patient id")
    if len(profile) > 64:
        raise click.BadParameter("must be at most 64 characters", param_hint="--profile")

    async def add(store: Any) -> Any:
        return await store.registry.register_device(device_id, patient_id, by="cli", profile=profile)

    _registry_call(config_path, add)
    click.echo(f"added device {device_id} worn by patient {patient_id}")


@devices.command("list")
@_CONFIG
@_JSON
@click.option("--patient", "patient_id", help="Only the devices this patient wears.")
def devices_list(config_path: Path | None, as_json: bool, patient_id: str | None) -> None:
    """List registered devices and who wears them."""
    async def listing(store: Any) -> list[Any]:
        return await store.list_devices(patient_id=patient_id)

    found = _registry_call(config_path, listing)
    if as_json:
        import json

        click.echo(json.dumps([{"device_id": d.device_id, "patient_id": d.patient_id, "profile": d.profile,
                                "active": d.active, "created_us": d.created_us} for d in found], indent=2))
        return
    if not found:
        click.echo("no devices registered (add one: ecgstream cloud devices add DEVICE_ID --patient PATIENT_ID)")
        return
    click.echo(_table(("DEVICE", "PATIENT", "PROFILE", "ACTIVE"),
                      [(d.device_id, d.patient_id or "-", d.profile or "-", "yes" if d.active else "no")
                       for d in found]))


@devices.command("remove")
@_CONFIG
@click.argument("device_id")
def devices_remove(config_path: Path | None, device_id: str) -> None:
    """Remove a device from the registry (its stored data stays; its new data is refused)."""
    _ident(device_id, "device id")

    async def remove(store: Any) -> Any:
        return await store.registry.remove_device(device_id, by="cli")

    record = _registry_call(config_path, remove)
    click.echo(f"removed device {device_id}" + (f" (was worn by {record.patient_id})" if record.patient_id else ""))


@cloud.command("broker-auth")
@_CONFIG
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for dynamic-security.json (the broker's plugin file), passwd and acl.")
@click.option("--accounts", "accounts_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML with the gateway and service accounts (services = [...], share_group = ..., "
                   "[gateways.<id>] patients = [...]).")
@click.option("--rotate", multiple=True, metavar="ACCOUNT", help="Give this account a new password (repeatable).")
def broker_auth(config_path: Path | None, out_dir: Path, accounts_path: Path | None, rotate: tuple[str, ...]) -> None:
    """Write the broker's accounts and ACLs from the device registry (docs/security.md).

    Devices publish only their own topics and subscribe to nothing; every client (device, gateway
    uplink <gw>, gateway ingest <gw>-ingest, each cloud worker) has its own account, bound to its
    client id. New passwords are written once to a 0600 credentials file for provisioning, never
    printed. Run it as the broker's user (or chown the files), then restart the broker (its
    dynamic-security plugin reads the file at start-up only).
    """
    from cloud.broker_auth import AccountsFile, BrokerAuthError, generate_broker_auth, read_accounts
    from cloud.store import Store

    settings = _settings(config_path)
    try:
        accounts = read_accounts(accounts_path) if accounts_path else AccountsFile([], [])
    except BrokerAuthError as exc:
        raise click.ClickException(str(exc)) from None
    group = accounts.share_group or settings.broker.group

    async def generate() -> Any:
        async with Store(settings.database.url) as store:
            return await generate_broker_auth(store, out_dir, gateways=accounts.gateways, services=accounts.services,
                                              rotate=rotate, share_group=group)

    try:
        result = asyncio.run(generate())
    except BrokerAuthError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {result.dynsec_file}, {result.password_file} and {result.acl_file} (shared-subscription "
               f"group {group!r}): {len(result.kept)} accounts kept, {len(result.created)} created, "
               f"{len(result.dropped)} dropped; restart the broker to apply them")
    if result.credentials_file is not None:
        click.echo(f"new passwords in {result.credentials_file} (0600): hand them to provisioning, then delete it")


@cloud.group("registry")
def registry() -> None:
    """The device registry, exported for the gateways and imported from their edge configs."""


@registry.command("export-devices")
@_CONFIG
@click.option("--gateway", "gateway_id", required=True, help="The gateway whose devices to export.")
@click.option("--accounts", "accounts_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The broker accounts TOML (as for broker-auth): the gateway serves the patients of its "
                   "[gateways.<id>] patients list. Without it, or without a list, every patient.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the edge's [ingest] allowed_devices_file here (one device id a line).")
@click.option("--patients-out", "patients_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write an [ingest.patients] TOML table (device id = patient id) to paste into the "
                   "gateway's edge config.")
def registry_export_devices(config_path: Path | None, gateway_id: str, accounts_path: Path | None,
                            out_path: Path, patients_path: Path | None) -> None:
    """Write the devices the registry assigns to a gateway, for its edge allow-list and patient map."""
    from cloud.broker_auth import BrokerAuthError, GatewaySpec, read_accounts
    from cloud.registry_export import (
        devices_for_gateway,
        gateway_spec,
        render_allow_list,
        render_patients_toml,
    )
    from cloud.store import Store

    settings = _settings(config_path)
    try:
        spec = (gateway_spec(gateway_id, read_accounts(accounts_path).gateways) if accounts_path
                else GatewaySpec(gateway_id, None))
    except BrokerAuthError as exc:
        raise click.ClickException(str(exc)) from None

    async def export() -> Any:
        async with Store(settings.database.url) as store:
            return await devices_for_gateway(store, spec)

    try:
        devices = asyncio.run(export())
    except BrokerAuthError as exc:
        raise click.ClickException(str(exc)) from None
    out_path.write_text(render_allow_list(gateway_id, devices), encoding="utf-8")
    if patients_path is not None:
        patients_path.write_text(render_patients_toml(gateway_id, devices), encoding="utf-8")
    click.echo(f"{len(devices)} device(s) of gateway {gateway_id} written to {out_path}"
               + (f" and {patients_path}" if patients_path is not None else ""))


@registry.command("import-edge")
@_CONFIG
@click.option("--edge-config", "edge_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A gateway's edge config (TOML): its [ingest.patients], [[ingest.ble]] and [ingest.patient_names].")
def registry_import_edge(config_path: Path | None, edge_path: Path) -> None:
    """Register the patients (with their display names) and devices a gateway's edge config maps, so their
    data is accepted; what is registered already is kept (audited by "cli"; the reverse of export-devices)."""
    from cloud.errors import NotFound
    from cloud.store.repositories.registry import RegistryConflict
    from edge.config import ConfigError as EdgeConfigError
    from edge.config import load_config

    try:
        ingest = load_config(edge_path, env={}).ingest
    except EdgeConfigError as exc:
        raise click.ClickException(str(exc)) from None
    worn = ingest.device_patients()
    names = ingest.display_names()

    async def register(store: Any) -> tuple[list[str], list[str]]:
        done: list[str] = []
        problems: list[str] = []
        for patient_id in sorted(set(worn.values()) | set(names)):
            try:
                await store.registry.register_patient(patient_id, names.get(patient_id, ""), by="cli")
                done.append(f"patient {patient_id}")
            except RegistryConflict:
                pass  # registered already: kept as it is
        for device_id, patient_id in sorted(worn.items()):
            try:
                await store.registry.register_device(device_id, patient_id, by="cli")
                done.append(f"device {device_id}")
            except (RegistryConflict, NotFound) as exc:
                if "already registered to patient" not in str(exc):
                    problems.append(str(exc))
        return done, problems

    done, problems = _registry_call(config_path, register)
    click.echo(f"registered {len(done)} new ({', '.join(done) or 'nothing new'}) from {edge_path}")
    for line in problems:
        click.echo(f"kept: {line}", err=True)
