""":class:`Store`, the façade over the repositories: one object, one flat async API.

The API, the ingest and model workers, the escalator and the accounts service call ``store.<method>``
as they always have; each method delegates to the repository of its aggregate
(:mod:`cloud.store.repositories`), which new code may also use directly (``store.alerts``,
``store.registry``, …). All of them share one :class:`~cloud.store.database.Database` (``store.db``).

All writes are short transactions that start with their INSERT (see :mod:`cloud.store.engine` on
SQLite locking). Errors in the data raise :class:`protocol.errors.ProtocolError` subclasses before
anything is written; a missing row raises :class:`cloud.errors.NotFound`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cloud.store.database import Database, now_us
from cloud.store.engine import DEFAULT_URL
from cloud.store.records import (
    AckRecord,
    AuditRecord,
    DeviceRecord,
    EpisodeState,
    Escalation,
    ModelResult,
    PatientRecord,
    StoreCounters,
    StoredAlert,
    UserRecord,
    WindowMeta,
)
from cloud.store.repositories import (
    AccountRepository,
    AlertRepository,
    AuditRepository,
    EscalationRepository,
    ModelResultRepository,
    RegistryRepository,
    StatusRepository,
    WindowRepository,
)
from cloud.store.repositories.deliveries import DeliveryRepository
from cloud.store.repositories.vitals import VitalsRepository
from cloud.store.repositories.windows import WindowInput
from cloud.store.writes import commit
from protocol.messages import Alert, DeviceStatus, GatewayStatus
from protocol.window_payload import EcgWindow


class Store:
    """The cloud store. One per process (it owns an engine and its connection pool)::

        upgrade_database(url)                  # once, at start-up (cloud.store.migrate)
        async with Store(url) as store:
            fresh = await store.store_alert(alert)

    ``clock`` (µs, cloud Unix time) stamps ``received_us``/``at_us``; tests may pass their own, or
    assign ``store.clock`` later (every repository reads it through ``store.db``).
    """

    def __init__(self, url: str | URL | AsyncEngine = DEFAULT_URL, *, clock: Callable[[], int] = now_us,
                 **engine_kwargs: Any) -> None:
        self.db = Database(url, clock=clock, **engine_kwargs)
        self.registry = RegistryRepository(self.db)
        self.alerts = AlertRepository(self.db)
        self.windows = WindowRepository(self.db)
        self.status = StatusRepository(self.db)
        self.accounts = AccountRepository(self.db)
        self.audit_trail = AuditRepository(self.db)
        self.escalation = EscalationRepository(self.db)
        self.results = ModelResultRepository(self.db)
        self.deliveries = DeliveryRepository(self.db)
        """Escalation deliveries to webhooks, e-mail and push (:mod:`cloud.escalation.delivery` sends them)."""
        self.vitals = VitalsRepository(self.db)
        """Per-minute vitals from the gateways' status reports (the patient timeline's heart-rate trend)."""

    # -- the shared handle ------------------------------------------------------------------------

    @property
    def engine(self) -> AsyncEngine:
        return self.db.engine

    @property
    def dialect(self) -> str:
        return self.db.dialect

    @property
    def clock(self) -> Callable[[], int]:
        return self.db.clock

    @clock.setter
    def clock(self, clock: Callable[[], int]) -> None:
        self.db.clock = clock

    @property
    def counters(self) -> StoreCounters:
        return self.db.counters

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(kind)`` after this Store commits a change (``"alert"``, ``"ack"``,
        ``"escalation"``, ``"status"``, ``"assign"``). Only changes made through *this* instance are
        seen: other processes' writes are found by polling (:meth:`alerts_after`, :meth:`audit_after`)."""
        self.db.add_listener(callback)

    def remove_listener(self, callback: Callable[[str], None]) -> None:
        self.db.remove_listener(callback)

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def session(self) -> AsyncSession:
        """A session on this store's engine, for queries the repositories do not offer yet."""
        return self.db.sessions()

    # -- ingest: alerts and windows in one transaction ---------------------------------------------

    async def store_batch(self, items: Sequence[Alert | WindowInput], *,
                          received_us: int | None = None) -> list[bool]:
        """Store alerts and windows (:class:`~cloud.store.records.ReceivedWindow`, EcgWindow or payload
        bytes) in **one transaction**; per item, True if new, False if its id was already stored.
        Everything is checked before anything is written: one invalid item raises its error
        (SchemaError, FrameError, …) and stores nothing, as does a database error. One commit per
        batch instead of per message is what lets one ingest worker keep up with hundreds of
        patients (``bench/bench_cloud_ingest.py``)."""
        now = self.db.clock() if received_us is None else received_us
        writes = [self.alerts.prepare(i, now) if isinstance(i, Alert) else self.windows.prepare(i, now)
                  for i in items]
        return await commit(self.db, writes)

    # -- registry ---------------------------------------------------------------------------------

    async def add_patient(self, patient_id: str, display_name: str = "") -> bool:
        return await self.registry.add_patient(patient_id, display_name)

    async def add_device(self, device_id: str, patient_id: str | None = None, *, profile: str = "",
                         credentials_hash: str | None = None) -> bool:
        return await self.registry.add_device(device_id, patient_id, profile=profile,
                                              credentials_hash=credentials_hash)

    async def assign_device(self, device_id: str, patient_id: str | None) -> None:
        await self.registry.assign_device(device_id, patient_id)

    async def get_device(self, device_id: str) -> DeviceRecord | None:
        return await self.registry.get_device(device_id)

    async def list_devices(self, *, patient_id: str | None = None,
                           patient_ids: Sequence[str] | None = None) -> list[DeviceRecord]:
        return await self.registry.list_devices(patient_id=patient_id, patient_ids=patient_ids)

    async def list_patients(self) -> list[PatientRecord]:
        return await self.registry.list_patients()

    async def get_patient(self, patient_id: str) -> PatientRecord | None:
        return await self.registry.get_patient(patient_id)

    async def patients(self, patient_ids: Sequence[str] | None = None) -> list[PatientRecord]:
        return await self.registry.patients(patient_ids)

    async def assign_patient(self, patient_id: str, username: str | None, *, by: str) -> PatientRecord:
        return await self.registry.assign_patient(patient_id, username, by=by)

    async def set_patient_team(self, patient_id: str, team: str | None, *, by: str) -> PatientRecord:
        return await self.registry.set_patient_team(patient_id, team, by=by)

    async def care_team_patient_ids(self, username: str, team: str | None) -> list[str]:
        return await self.registry.care_team_patient_ids(username, team)

    # -- alerts, episodes, acknowledgements -------------------------------------------------------

    async def store_alert(self, alert: Alert, *, received_us: int | None = None) -> bool:
        return await self.alerts.store_alert(alert, received_us=received_us)

    async def get_alert(self, alert_id: str) -> StoredAlert:
        return await self.alerts.get_alert(alert_id)

    async def alerts_for_patient(self, patient_id: str, since_us: int | None = None, until_us: int | None = None,
                                 *, limit: int | None = None) -> list[StoredAlert]:
        return await self.alerts.alerts_for_patient(patient_id, since_us, until_us, limit=limit)

    async def alerts_after(self, seq: int = 0, *, limit: int | None = 1000) -> list[StoredAlert]:
        return await self.alerts.alerts_after(seq, limit=limit)

    async def alerts_of_episode(self, episode_id: str) -> list[StoredAlert]:
        return await self.alerts.alerts_of_episode(episode_id)

    async def alerts_by_seq(self, seqs: Sequence[int]) -> list[StoredAlert]:
        return await self.alerts.alerts_by_seq(seqs)

    async def count_alerts(self) -> int:
        return await self.alerts.count_alerts()

    async def last_alert_seq(self) -> int:
        return await self.alerts.last_alert_seq()

    async def query_alerts(self, *, patient_id: str | None = None, category: str | None = None,
                           active: bool | None = None, after_seq: int | None = None,
                           limit: int = 100, alert_type: str | None = None, priority: str | None = None,
                           acknowledged: bool | None = None, text: str | None = None,
                           since_us: int | None = None, until_us: int | None = None,
                           before_seq: int | None = None) -> list[StoredAlert]:
        return await self.alerts.query_alerts(patient_id=patient_id, category=category, active=active,
                                              after_seq=after_seq, limit=limit, alert_type=alert_type,
                                              priority=priority, acknowledged=acknowledged, text=text,
                                              since_us=since_us, until_us=until_us, before_seq=before_seq)

    async def latest_alerts(self, patient_ids: Sequence[str], *, depth: int = 1) -> dict[str, list[StoredAlert]]:
        return await self.alerts.latest_alerts(patient_ids, depth=depth)

    async def get_episode(self, episode_id: str) -> EpisodeState:
        return await self.alerts.get_episode(episode_id)

    async def active_episodes(self, patient_id: str | None = None) -> list[EpisodeState]:
        return await self.alerts.active_episodes(patient_id)

    async def episodes(self, episode_ids: Sequence[str]) -> dict[str, EpisodeState]:
        return await self.alerts.episodes(episode_ids)

    async def active_counts(self, patient_ids: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        return await self.alerts.active_counts(patient_ids)

    async def acknowledge(self, episode_id: str, user: str, *, note: str = "",
                          alert_id: str | None = None) -> AckRecord:
        return await self.alerts.acknowledge(episode_id, user, note=note, alert_id=alert_id)

    async def acknowledgements(self, episode_id: str) -> list[AckRecord]:
        return await self.alerts.acknowledgements(episode_id)

    # -- windows ----------------------------------------------------------------------------------

    async def store_window(self, window: WindowInput, *, received_us: int | None = None) -> bool:
        return await self.windows.store_window(window, received_us=received_us)

    async def windows_for_patient(self, patient_id: str, t0_from: int | None = None, t0_to: int | None = None,
                                  *, limit: int | None = None) -> list[WindowMeta]:
        return await self.windows.windows_for_patient(patient_id, t0_from, t0_to, limit=limit)

    async def list_windows(self, *, patient_id: str | None = None, t0_from: int | None = None,
                           t0_to: int | None = None, limit: int = 100) -> list[WindowMeta]:
        return await self.windows.list_windows(patient_id=patient_id, t0_from=t0_from, t0_to=t0_to, limit=limit)

    async def window_meta(self, window_id: str) -> WindowMeta:
        return await self.windows.window_meta(window_id)

    async def window_payload(self, window_id: str) -> bytes:
        return await self.windows.window_payload(window_id)

    async def load_window(self, window_id: str) -> EcgWindow:
        return await self.windows.load_window(window_id)

    async def count_windows(self) -> int:
        return await self.windows.count_windows()

    async def last_window_received(self, patient_ids: Sequence[str]) -> dict[str, int]:
        return await self.windows.last_window_received(patient_ids)

    # -- device and gateway status ----------------------------------------------------------------

    async def upsert_device_status(self, status: DeviceStatus, *, received_us: int | None = None) -> bool:
        return await self.status.upsert_device_status(status, received_us=received_us)

    async def latest_device_status(self, device_id: str) -> DeviceStatus | None:
        return await self.status.latest_device_status(device_id)

    async def device_statuses(self, device_ids: Sequence[str] | None = None, *, received_since_us: int | None = None
                              ) -> dict[str, tuple[DeviceStatus, int]]:
        return await self.status.device_statuses(device_ids, received_since_us=received_since_us)

    async def upsert_gateway_status(self, status: GatewayStatus, *, received_us: int | None = None) -> bool:
        return await self.status.upsert_gateway_status(status, received_us=received_us)

    async def latest_gateway_status(self, gateway_id: str) -> GatewayStatus | None:
        return await self.status.latest_gateway_status(gateway_id)

    # -- audit ------------------------------------------------------------------------------------

    async def audit(self, user: str, action: str, target: str, details: dict[str, Any] | None = None) -> AuditRecord:
        return await self.audit_trail.audit(user, action, target, details)

    async def audit_log(self, *, user: str | None = None, target: str | None = None, since_us: int | None = None,
                        limit: int | None = 1000) -> list[AuditRecord]:
        return await self.audit_trail.audit_log(user=user, target=target, since_us=since_us, limit=limit)

    async def audit_after(self, after_id: int = 0, *, actions: Sequence[str] | None = None,
                          limit: int | None = 1000) -> list[AuditRecord]:
        return await self.audit_trail.audit_after(after_id, actions=actions, limit=limit)

    async def audit_by_ids(self, ids: Sequence[int], *, actions: Sequence[str] | None = None) -> list[AuditRecord]:
        return await self.audit_trail.audit_by_ids(ids, actions=actions)

    async def last_audit_id(self) -> int:
        return await self.audit_trail.last_audit_id()

    # -- staff accounts and sessions --------------------------------------------------------------

    async def add_user(self, username: str, password_hash: str, role: str) -> bool:
        return await self.accounts.add_user(username, password_hash, role)

    async def get_user(self, username: str) -> UserRecord | None:
        return await self.accounts.get_user(username)

    async def list_users(self) -> list[UserRecord]:
        return await self.accounts.list_users()

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        await self.accounts.set_password_hash(username, password_hash)

    async def delete_user(self, username: str) -> bool:
        return await self.accounts.delete_user(username)

    async def create_session(self, token_hash: str, username: str, expires_us: int, *, client: str = "") -> None:
        await self.accounts.create_session(token_hash, username, expires_us, client=client)

    async def session_user(self, token_hash: str) -> UserRecord | None:
        return await self.accounts.session_user(token_hash)

    async def delete_session(self, token_hash: str) -> bool:
        return await self.accounts.delete_session(token_hash)

    async def purge_expired(self, *, login_failures_before_us: int | None = None) -> int:
        return await self.accounts.purge_expired(login_failures_before_us=login_failures_before_us)

    async def record_login_failure(self, username: str, client: str) -> int:
        return await self.accounts.record_login_failure(username, client)

    async def login_failures(self, username: str, client: str, since_us: int) -> tuple[list[int], list[int]]:
        return await self.accounts.login_failures(username, client, since_us)

    async def clear_login_failures(self, username: str) -> None:
        await self.accounts.clear_login_failures(username)

    async def login_failures_near(self, username: str, client: str, since_us: int) -> list[tuple[str, str, int]]:
        return await self.accounts.login_failures_near(username, client, since_us)

    async def forget_login_failures(self, username: str, client: str | None = None) -> int:
        """Forget the failed sign-ins of a user name (only those from ``client`` when given); returns how many."""
        return await self.accounts.clear_login_failures(username, client)

    async def set_user_team(self, username: str, team: str | None) -> UserRecord:
        return await self.accounts.set_team(username, team)

    async def delete_sessions(self, username: str, *, keep_token_hash: str | None = None) -> int:
        return await self.accounts.delete_sessions(username, keep_token_hash=keep_token_hash)

    # -- escalation -------------------------------------------------------------------------------

    async def escalate_due(self, after_us: Mapping[str, int], *, max_level: int = 3,
                           categories: Sequence[str] = ("clinical",), user: str = "system") -> list[Escalation]:
        return await self.escalation.escalate_due(after_us, max_level=max_level, categories=categories, user=user)

    # -- model results ----------------------------------------------------------------------------

    async def store_model_result(self, window_id: str, model: str, version: str, outputs: Mapping[str, Any], *,
                                 patient_id: str, alert_id: str | None = None) -> bool:
        return await self.results.store_model_result(window_id, model, version, outputs, patient_id=patient_id,
                                                     alert_id=alert_id)

    async def results_for_window(self, window_id: str) -> list[ModelResult]:
        return await self.results.results_for_window(window_id)

    async def results_for_alert(self, alert_id: str) -> list[ModelResult]:
        return await self.results.results_for_alert(alert_id)

    async def results_for_alerts(self, alerts: Sequence[StoredAlert]) -> dict[str, list[ModelResult]]:
        return await self.results.results_for_alerts(alerts)


def _share_docstrings() -> None:
    """Each delegating method shows the docstring of the repository method it calls."""
    repositories = (RegistryRepository, AlertRepository, WindowRepository, StatusRepository, AccountRepository,
                    AuditRepository, EscalationRepository, ModelResultRepository)
    for cls in repositories:
        for name, method in vars(cls).items():
            facade = vars(Store).get(name)
            if not name.startswith("_") and callable(facade) and facade.__doc__ is None:
                facade.__doc__ = method.__doc__


_share_docstrings()

__all__ = ["Store"]
