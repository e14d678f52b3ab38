"""The cloud store: SQLAlchemy 2 (async) over SQLite by default or PostgreSQL in production.

- :mod:`cloud.store.schema`: the tables (registry, alerts, episodes, windows, latest status,
  acknowledgements, audit log, staff users and sessions, login failures, model results);
- :mod:`cloud.store.engine`: an async engine and sessions from one URL (drivers chosen here);
- :mod:`cloud.store.migrate`: Alembic migrations run from code (``upgrade_database(url)``);
- :mod:`cloud.store.repository`: :class:`Store`, the typed async API with idempotent,
  de-duplicating writes.
"""

from cloud.store.engine import DEFAULT_URL, async_url, create_engine, session_factory, sync_url
from cloud.store.migrate import (
    current_revision,
    downgrade_database,
    head_revision,
    schema_diff,
    upgrade_database,
)
from cloud.store.repository import (
    EVENTS,
    PRIORITY_RANK,
    AckRecord,
    AuditRecord,
    EpisodeState,
    Escalation,
    ModelResult,
    NotFound,
    PatientRecord,
    Store,
    StoreCounters,
    StoredAlert,
    UserRecord,
    WindowMeta,
    episode_of,
)

__all__ = [
    "DEFAULT_URL", "EVENTS", "PRIORITY_RANK", "AckRecord", "AuditRecord", "EpisodeState", "Escalation",
    "ModelResult", "NotFound", "PatientRecord", "Store", "StoreCounters", "StoredAlert", "UserRecord", "WindowMeta",
    "async_url", "create_engine", "current_revision", "downgrade_database", "episode_of", "head_revision", "schema_diff", "session_factory", "sync_url",
    "upgrade_database",
]
