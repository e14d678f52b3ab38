"""Schema migrations from code: ``upgrade_database(url)`` brings any database to the current schema.

Alembic is configured programmatically (no ``alembic.ini`` to ship or find): the scripts live in
:mod:`cloud.migrations`, and the URL travels as a connection in ``Config.attributes`` rather than
through ConfigParser, so a password with ``%`` in it needs no escaping. Migrations are synchronous
and run once at start-up; from asyncio code call ``await asyncio.to_thread(upgrade_database, url)``.

Developers who want the ``alembic`` command line (``revision --autogenerate``, ``history``) can use
:func:`alembic_config` from a Python shell, e.g.::

    from alembic import command
    from cloud.store.migrate import alembic_config
    command.revision(alembic_config("sqlite:///dev.db"), "add x", autogenerate=True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Connection

from cloud.store.engine import install_sqlite_pragmas, sync_url
from cloud.store.schema import Base

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | URL | None = None, connection: Connection | None = None) -> Config:
    """An Alembic Config for :mod:`cloud.migrations`; ``url`` or an open sync ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    if url is not None:
        cfg.attributes["url"] = sync_url(url)
    return cfg


def _with_connection(url: str | URL, fn: Any) -> Any:
    engine = create_engine(sync_url(url))
    install_sqlite_pragmas(engine)
    try:
        with engine.begin() as conn:
            return fn(conn)
    finally:
        engine.dispose()


def upgrade_database(url: str | URL, revision: str = "head") -> None:
    """Run the migrations on ``url`` up to ``revision`` (creating the schema in an empty database)."""
    _with_connection(url, lambda conn: command.upgrade(alembic_config(connection=conn), revision))


def downgrade_database(url: str | URL, revision: str = "base") -> None:
    """Undo migrations down to ``revision`` (``base``: drop every table the migrations made)."""
    _with_connection(url, lambda conn: command.downgrade(alembic_config(connection=conn), revision))


def current_revision(url: str | URL) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return _with_connection(url, lambda conn: MigrationContext.configure(conn).get_current_revision())


def head_revision() -> str | None:
    """The newest revision the code ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def schema_diff(url: str | URL) -> list[Any]:
    """Alembic's autogenerate diff between the database and :mod:`cloud.store.schema` (empty: in sync)."""
    def diff(conn: Connection) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(ctx, Base.metadata))
    return _with_connection(url, diff)
