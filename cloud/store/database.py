"""The database handle every repository shares: engine, sessions, dialect, clock, counters, listeners.

One :class:`Database` per process (it owns an engine and its connection pool, unless it was given
one). The repositories in :mod:`cloud.store.repositories` hold a reference to it and read
``clock``, ``counters`` and ``dialect`` through it at call time, so replacing the clock (tests do)
changes it for all of them at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cloud.store.engine import DEFAULT_URL, create_engine, session_factory
from cloud.store.records import StoreCounters


def now_us() -> int:
    """Cloud Unix time in µs (the default clock)."""
    return time.time_ns() // 1000


class Database:
    """An async engine with its session factory, the clock that stamps ``received_us``/``at_us``,
    the write counters and the in-process change listeners.

    ``url`` is a database URL (an engine is created and owned, see :mod:`cloud.store.engine`) or an
    existing :class:`AsyncEngine` (shared, not disposed by :meth:`close`)."""

    def __init__(self, url: str | URL | AsyncEngine = DEFAULT_URL, *, clock: Callable[[], int] = now_us,
                 **engine_kwargs: Any) -> None:
        self.engine = url if isinstance(url, AsyncEngine) else create_engine(url, **engine_kwargs)
        self.owns_engine = not isinstance(url, AsyncEngine)
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(self.engine)
        self.dialect: str = self.engine.dialect.name
        self.clock = clock
        self.counters = StoreCounters()
        self._listeners: list[Callable[[str], None]] = []

    def insert(self, table: Any) -> Any:
        """The dialect's ``INSERT`` (the one with ``on_conflict_do_nothing``/``_do_update``)."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # -- change notification (in-process) -------------------------------------------------------

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(kind)`` after a change made through this handle is committed."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[str], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def changed(self, kind: str) -> None:
        """Tell the listeners that a ``kind`` change was committed."""
        for callback in list(self._listeners):
            callback(kind)

    async def close(self) -> None:
        if self.owns_engine:
            await self.engine.dispose()


__all__ = ["Database", "now_us"]
