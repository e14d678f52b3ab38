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
def run(config_path: Path | None) -> None:
    """Run ingest, the HTTP API and escalation until Ctrl-C or SIGTERM (start several to share the load)."""
    from cloud.service import run_service

    settings = _settings(config_path)
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

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
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
        click.echo(f"{user.username}\t{user.role}\t{'active' if user.active else 'inactive'}")


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
