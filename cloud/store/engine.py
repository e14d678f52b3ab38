"""Engines and sessions from one database URL.

Why async: the cloud ingest worker (MQTT) and the alert service (FastAPI) are asyncio programs, as
the rest of ecgstream is. An async engine lets a worker keep reading the broker while a commit waits
on PostgreSQL, without a thread pool per worker and without blocking the event loop; with
``aiosqlite`` the same code runs against SQLite (whose I/O aiosqlite moves to a thread). Migrations are
the exception: they run once at start-up, through Alembic's ordinary synchronous API and the sync
drivers of the same URL (``sqlite3``, ``psycopg``), see :mod:`cloud.store.migrate`.

URLs: a plain ``sqlite:///path.db`` or ``postgresql://user@host/db`` is enough; the driver is chosen
here (``aiosqlite``/``psycopg`` async for the store, ``pysqlite``/``psycopg`` for migrations). An
explicit driver in the URL is replaced, so one configured URL serves both.

SQLite: each connection turns on WAL (readers do not block the writer), foreign keys, and a busy
timeout, so two workers writing one file wait for each other instead of failing with "database is
locked". Every write transaction in :mod:`cloud.store.repository` starts with its INSERT, so a
deferred transaction never has to upgrade a read lock (the case SQLite cannot wait out).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

DEFAULT_URL = "sqlite:///ecgstream-cloud.db"
SQLITE_BUSY_TIMEOUT_S = 30.0

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
_SYNC_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg"}


def _with_driver(url: str | URL, drivers: dict[str, str]) -> URL:
    u = make_url(url)
    backend = u.get_backend_name()
    if backend not in drivers:
        raise ValueError(f"unsupported database {backend!r} in {u.render_as_string(hide_password=True)}: "
                         f"use sqlite:/// or postgresql://")
    return u.set(drivername=drivers[backend])


def async_url(url: str | URL) -> URL:
    """The URL with the async driver of its backend (``sqlite+aiosqlite``, ``postgresql+psycopg``)."""
    return _with_driver(url, _ASYNC_DRIVERS)


def sync_url(url: str | URL) -> URL:
    """The URL with the sync driver of its backend (``sqlite+pysqlite``, ``postgresql+psycopg``)."""
    return _with_driver(url, _SYNC_DRIVERS)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode=WAL")  # an in-memory database stays "memory"
        cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()


def install_sqlite_pragmas(engine: Any) -> None:
    """Attach the per-connection SQLite settings to a (sync) engine; no-op for other backends."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)


def create_engine(url: str | URL = DEFAULT_URL, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url`` (see the module docstring for driver choice and SQLite settings)."""
    u = async_url(url)
    if u.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
    else:
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_async_engine(u, **kwargs)
    install_sqlite_pragmas(engine.sync_engine)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded rows readable after commit (the repository returns plain values)."""
    return async_sessionmaker(engine, expire_on_commit=False)
