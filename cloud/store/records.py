"""What the store returns (and the one input type it adds to the wire's): frozen dataclasses.

Every repository in :mod:`cloud.store.repositories` returns these plain values, never ORM rows, so
a caller can keep them after the session is gone, compare them, and never write to the database by
accident. :class:`ReceivedWindow` goes the other way: a window payload together with the
:class:`~protocol.window_payload.EcgWindow` it was already decoded to, so the store does not decode
it a second time (the cloud validates a window once, in the ingest).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from protocol.messages import Alert, AlertCategory, Priority
from protocol.window_payload import EcgWindow


@dataclass(frozen=True)
class PatientRecord:
    """A registered patient and who on the staff is responsible for them."""

    patient_id: str
    display_name: str
    created_us: int
    assigned_to: str | None
    assigned_us: int | None
    team: str | None = None
    """The ward or care team looking after this patient (care-team scoping)."""


@dataclass(frozen=True)
class DeviceRecord:
    """A registered wearable: who wears it, its profile, its broker credentials' hash, whether active."""

    device_id: str
    patient_id: str | None
    profile: str
    credentials_hash: str | None
    active: bool
    created_us: int


@dataclass(frozen=True)
class StoredAlert:
    """An alert message as stored: the wire message plus what the store derived and when it arrived."""

    seq: int
    alert: Alert
    episode_id: str
    event: str
    received_us: int


@dataclass(frozen=True)
class EpisodeState:
    """The current state of one alarm episode (merged from all its messages)."""

    episode_id: str
    patient_id: str
    device_id: str
    family: str
    alert_type: str
    category: AlertCategory
    priority: Priority
    onset_gateway_us: int
    window_id: str | None
    raised: bool
    cleared: bool
    messages: int
    first_received_us: int
    last_received_us: int
    acknowledged_by: str | None
    acknowledged_us: int | None
    escalation_level: int = 0
    escalated_us: int | None = None

    @property
    def active(self) -> bool:
        return self.raised and not self.cleared


@dataclass(frozen=True)
class AckRecord:
    """One acknowledgement of an episode by a member of staff."""

    id: int
    episode_id: str
    user: str
    at_us: int
    note: str


@dataclass(frozen=True)
class WindowMeta:
    """A stored window's indexed metadata (no samples; :meth:`cloud.store.Store.load_window` decodes those)."""

    seq: int
    window_id: str
    patient_id: str
    device_id: str
    t0_us: int
    fs_hz: int
    leads: tuple[str, ...]
    reconstructed: tuple[str, ...]
    n_samples: int
    lsb_nv: int
    has_uncertainty: bool
    payload_bytes: int
    received_us: int

    @property
    def duration_us(self) -> int:
        return self.n_samples * 1_000_000 // self.fs_hz


@dataclass(frozen=True)
class ReceivedWindow:
    """A window payload exactly as received, with the window it decodes to.

    The ingest decodes and validates every window payload once (:mod:`cloud.ingest.validation`) and
    hands the store both, so the store indexes ``window``'s metadata and keeps ``payload`` verbatim
    without decoding it again. Whoever builds one vouches that ``payload`` decodes to ``window``."""

    window: EcgWindow
    payload: bytes


@dataclass(frozen=True)
class AuditRecord:
    """One audit-log entry: ``user`` did ``action`` to ``target`` at ``at_us``."""

    id: int
    at_us: int
    user: str
    action: str
    target: str
    details: dict[str, Any]


@dataclass(frozen=True)
class UserRecord:
    """A member of staff (the password hash stays inside :mod:`cloud.accounts`)."""

    username: str
    role: str
    active: bool
    created_us: int
    password_hash: str = ""
    team: str | None = None
    """The ward or care team of this member of staff (care-team scoping)."""


@dataclass(frozen=True)
class Escalation:
    """One escalation the cloud made: ``episode_id`` went to ``level`` at ``at_us``."""

    episode_id: str
    alert_id: str | None
    patient_id: str
    alert_type: str
    priority: str
    level: int
    at_us: int


@dataclass(frozen=True)
class ModelResult:
    """A cloud model's output for a window (and the alert it was run for, if any)."""

    id: int
    window_id: str
    alert_id: str | None
    patient_id: str
    model: str
    version: str
    outputs: dict[str, Any]
    created_us: int


@dataclass
class StoreCounters:
    """What one Store instance stored, skipped as duplicate, or rejected (nothing is dropped silently)."""

    alerts_stored: int = 0
    alerts_duplicate: int = 0
    alerts_rejected: int = 0
    windows_stored: int = 0
    windows_duplicate: int = 0
    windows_rejected: int = 0
    status_updated: int = 0
    status_stale: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


__all__ = [
    "AckRecord", "AuditRecord", "DeviceRecord", "EpisodeState", "Escalation", "ModelResult", "PatientRecord",
    "ReceivedWindow", "StoreCounters", "StoredAlert", "UserRecord", "WindowMeta",
]
