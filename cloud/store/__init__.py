"""The cloud store: SQLAlchemy 2 (async) over SQLite by default or PostgreSQL in production.

- :mod:`cloud.store.schema`: the tables (registry, alerts, episodes, windows, latest status,
  acknowledgements, audit log, staff users and sessions, login failures, model results);
- :mod:`cloud.store.engine`: an async engine and sessions from one URL (drivers chosen here);
- :mod:`cloud.store.migrate`: Alembic migrations run from code (``upgrade_database(url)``);
- :mod:`cloud.store.database`: :class:`~cloud.store.database.Database`, the handle every repository
  shares (engine, sessions, clock, counters, change listeners);
- :mod:`cloud.store.records`: the frozen dataclasses every read returns;
- :mod:`cloud.store.writes`: idempotent, de-duplicating inserts of wire objects, batched in one
  transaction;
- :mod:`cloud.store.repositories`: one repository per aggregate (registry, alerts and episodes,
  windows, device status, accounts, audit, escalation, model results);
- :mod:`cloud.store.facade`: :class:`Store`, the façade with the flat typed async API the services
  use, which also exposes each repository (``store.alerts``, ``store.registry``, …).
"""

from cloud.errors import NotFound
from cloud.store.checks import EVENTS, episode_of
from cloud.store.database import Database
from cloud.store.engine import DEFAULT_URL, async_url, create_engine, session_factory, sync_url
from cloud.store.facade import Store
from cloud.store.migrate import (
    current_revision,
    downgrade_database,
    head_revision,
    schema_diff,
    upgrade_database,
)
from cloud.store.records import (
    AckRecord,
    AuditRecord,
    DeviceRecord,
    EpisodeState,
    Escalation,
    ModelResult,
    PatientRecord,
    ReceivedWindow,
    StoreCounters,
    StoredAlert,
    UserRecord,
    WindowMeta,
)
from cloud.store.repositories.alerts import PRIORITY_RANK
from cloud.store.repositories.deliveries import Delivery, DeliveryCandidate, NewDelivery

__all__ = [
    "DEFAULT_URL", "EVENTS", "PRIORITY_RANK", "AckRecord", "AuditRecord", "Database", "Delivery", "DeliveryCandidate",
    "DeviceRecord", "EpisodeState", "NewDelivery",
    "Escalation", "ModelResult", "NotFound", "PatientRecord", "ReceivedWindow", "Store", "StoreCounters",
    "StoredAlert", "UserRecord", "WindowMeta", "async_url", "create_engine", "current_revision",
    "downgrade_database", "episode_of", "head_revision", "schema_diff", "session_factory", "sync_url",
    "upgrade_database",
]
