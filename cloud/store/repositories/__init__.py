"""The store's repositories: one per aggregate, each a small class over the shared
:class:`cloud.store.database.Database` handle, each returning frozen dataclasses
(:mod:`cloud.store.records`).

- :mod:`.registry`: patients and devices, and who is responsible for a patient;
- :mod:`.alerts`: alert messages, the episodes they merge into, acknowledgements;
- :mod:`.windows`: ECG window payloads and their indexed metadata;
- :mod:`.device_status`: the latest device and gateway status reports;
- :mod:`.accounts`: staff users, sign-in sessions, login failures;
- :mod:`.audit`: the audit log;
- :mod:`.escalation`: escalating unacknowledged episodes, once, across processes;
- :mod:`.model_results`: what the cloud's models said about a window.

:class:`cloud.store.Store` is the façade that owns one of each (``store.registry``,
``store.alerts``, …) and keeps the flat method API the services use.
"""

from cloud.store.repositories.accounts import AccountRepository
from cloud.store.repositories.alerts import AlertRepository
from cloud.store.repositories.audit import AuditRepository
from cloud.store.repositories.device_status import StatusRepository
from cloud.store.repositories.escalation import EscalationRepository
from cloud.store.repositories.model_results import ModelResultRepository
from cloud.store.repositories.registry import RegistryRepository
from cloud.store.repositories.windows import WindowRepository

__all__ = [
    "AccountRepository", "AlertRepository", "AuditRepository", "EscalationRepository", "ModelResultRepository",
    "RegistryRepository", "StatusRepository", "WindowRepository",
]
