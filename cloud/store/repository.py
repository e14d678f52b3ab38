"""Compatibility names: what ``cloud.store.repository`` exported before the store was split by concern.

:class:`~cloud.store.facade.Store` now lives in :mod:`cloud.store.facade`, its values in
:mod:`cloud.store.records`, the per-aggregate queries in :mod:`cloud.store.repositories`; this module
re-exports them so ``from cloud.store.repository import Store, NotFound`` keeps working.
"""

from cloud.errors import NotFound
from cloud.store.checks import EVENTS, episode_of
from cloud.store.database import now_us
from cloud.store.facade import Store
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

__all__ = [
    "EVENTS", "PRIORITY_RANK", "AckRecord", "AuditRecord", "DeviceRecord", "EpisodeState", "Escalation", "ModelResult",
    "NotFound", "PatientRecord", "ReceivedWindow", "Store", "StoreCounters", "StoredAlert", "UserRecord", "WindowMeta",
    "episode_of", "now_us",
]
