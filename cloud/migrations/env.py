"""Alembic environment of the cloud store, driven from code (:mod:`cloud.store.migrate`).

Uses the connection handed in ``config.attributes['connection']`` or, failing that, makes one from
``config.attributes['url']``. Offline (SQL script) mode renders for that URL's dialect.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from cloud.store.engine import install_sqlite_pragmas
from cloud.store.schema import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs: Any) -> None:
    # render_as_batch: later ALTERs become SQLite's copy-and-move, which its ALTER TABLE lacks
    context.configure(target_metadata=target_metadata, compare_type=True, render_as_batch=True, **kwargs)


def run_offline() -> None:
    _configure(url=config.attributes["url"], literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.attributes["url"])
    install_sqlite_pragmas(engine)
    try:
        with engine.begin() as conn:
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
