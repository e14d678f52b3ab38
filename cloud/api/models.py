"""Response bodies: the pydantic models each route declares (``response_model``), so the OpenAPI
document is the contract. The views (:mod:`cloud.api.views`) build plain dicts; FastAPI checks each
answer against its model. Unknown keys are refused (``extra="forbid"``): a field a view adds without
declaring it here fails loudly in the tests instead of silently leaving the contract. The one open
object is a model result, whose outputs are also spread into it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["clinician", "admin"]


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserRef(Out):
    username: str
    role: Role


class UserOut(Out):
    username: str
    role: Role
    active: bool
    team: str | None = Field(description="The user's ward or care team (care-team scoping).")
    created_us: int


class UserList(Out):
    users: list[UserOut]


class UnlockOut(Out):
    username: str
    forgotten_failures: int = Field(description="How many failed sign-ins were forgotten.")


class PasswordChangedOut(Out):
    sessions_ended: int = Field(description="The user's other sessions, now signed out.")


class LoginOut(Out):
    token: str = Field(description="The session token: send it as Authorization: Bearer, or rely on the cookie.")
    user: UserRef
    expires_us: int


class PatientOut(Out):
    patient_id: str
    display_name: str
    assigned_to: str | None
    assigned_us: int | None
    team: str | None = Field(description="The ward or care team looking after the patient (care-team scoping).")
    created_us: int


class PatientList(Out):
    patients: list[PatientOut]


class DeviceOut(Out):
    device_id: str
    patient_id: str | None
    profile: str
    active: bool
    created_us: int


class DeviceList(Out):
    devices: list[DeviceOut]


class ModelResultOut(BaseModel):
    """A cloud model's output for a window or alert; its ``outputs`` are also spread into the object."""

    model_config = ConfigDict(extra="allow")

    model: str
    version: str
    window_id: str | None
    alert_id: str | None
    created_us: int
    outputs: dict[str, Any]


class DeliveryOut(Out):
    """One message about the alert's episode to one escalation channel (``[[escalation.channels]]``)."""

    channel: str = Field(description="The configured channel's name.")
    kind: Literal["webhook", "smtp", "push"]
    target: str = Field(description="Where it went, without secrets (URL, e-mail addresses).")
    level: int = Field(description="The escalation level it was about (0: the raise itself).")
    priority: Literal["high", "medium", "low"]
    status: Literal["pending", "delivered", "failed", "cancelled"] = Field(
        description="pending (being sent or waiting to retry), delivered, failed (gave up after the last try), "
                    "cancelled (acknowledged or ended before it could be sent).")
    attempts: int
    last_error: str | None = Field(description="Why the latest failed try failed (kept after a later success).")
    created_us: int
    delivered_us: int | None


class AckNoteOut(Out):
    """One acknowledgement of an episode: who, when, and the note they left."""

    user: str
    at_us: int
    note: str


class AlertOut(Out):
    """One alert message with its episode's current state (``acknowledged*``, ``escalation_level``,
    ``episode_active``). ``details.episode_id`` and ``details.event`` travel as the edge sent them."""

    seq: int = Field(description="Storage order; the live feed's event id and the after_seq cursor.")
    alert_id: str
    episode_id: str
    patient_id: str
    device_id: str
    alert_type: str
    category: Literal["clinical", "technical"]
    priority: Literal["high", "medium", "low"]
    event: Literal["raised", "escalated", "cleared"]
    onset_gateway_us: int
    onset_device_us: int
    received_us: int
    window_id: str | None
    message: str
    details: dict[str, Any]
    model_versions: dict[str, str]
    reconstructed_leads: dict[str, float] = Field(description="Reconstructed lead → mean 90 % band half-width, mV.")
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_us: int | None
    escalation_level: int
    episode_active: bool
    results: list[ModelResultOut]
    evidence_window_ids: list[str] = Field(
        default_factory=list,
        description="One alert's detail only: the windows the edge named as covering the alarm's deciding samples "
                    "(for asystole the whole pause), oldest first; some may not have arrived yet.")
    evidence_windows: list[WindowMetaOut] = Field(
        default_factory=list,
        description="One alert's detail only: those of evidence_window_ids already stored, in time order.")
    acknowledgements: list[AckNoteOut] = Field(
        default_factory=list,
        description="One alert's detail only: every acknowledgement of the episode with its note, oldest first.")
    deliveries: list[DeliveryOut] = Field(
        default_factory=list,
        description="One alert's detail only: the episode's escalation deliveries (webhook, e-mail, push), oldest "
                    "first.")


class AlertList(Out):
    alerts: list[AlertOut]
    next_before_seq: int | None = Field(
        default=None, description="History search: a full page came back; pass this as before_seq for the next.")


class AckOut(Out):
    id: int
    episode_id: str
    alert_id: str
    user: str
    at_us: int
    note: str
    acknowledged_by: str | None = Field(description="The episode's first acknowledgement: who.")
    acknowledged_us: int | None = Field(description="The episode's first acknowledgement: when (µs).")


class WindowMetaOut(Out):
    window_id: str
    patient_id: str
    device_id: str
    t0_us: int
    fs_hz: int
    n_samples: int
    leads: list[str]
    reconstructed: list[str]
    received_us: int


class WindowList(Out):
    windows: list[WindowMetaOut]


class WindowOut(Out):
    window_id: str
    patient_id: str
    device_id: str
    t0_us: int
    fs_hz: int
    n_samples: int
    leads: list[str]
    reconstructed: list[str]
    samples_mv: list[list[float]] = Field(description="One array per lead, in mV.")
    uncertainty_mv: dict[str, list[float]] = Field(
        description="Reconstructed lead → half-width of the 90 % band per sample, in mV.")
    received_us: int | None
    results: list[ModelResultOut]
    gaps: list[list[int]] = Field(
        default_factory=list,
        description="[start, end) sample ranges with no data (lost frames the edge could not bridge): drawn as gaps.")


class WardRow(Out):
    patient_id: str
    display_name: str
    assigned_to: str | None
    device_id: str | None
    battery_pct: int | None
    connected: bool | None
    lead_off: list[str]
    last_seen_us: int | None
    heart_rate_bpm: float | None
    heart_rate_us: int | None
    state: Literal["alarm", "technical", "offline", "ok"]
    active_clinical: int
    active_technical: int
    last_alert: AlertOut | None


class WardOut(Out):
    patients: list[WardRow]


class AuditEntry(Out):
    id: int
    user: str
    action: str
    target: str
    details: dict[str, Any]
    at_us: int


class AuditLog(Out):
    entries: list[AuditEntry]


class Health(Out):
    ok: bool
    database: str = Field(description='"ok", or the driver error when the database does not answer.')
    ingest: Literal["subscribed", "not connected"] | None = Field(
        default=None, description="Only where this process runs an ingest worker.")


class ZeroShotRequest(BaseModel):
    """``POST /api/windows/{id}/zeroshot``: the labels to score (knowledge-base names, keys or synonyms, or free
    text) and the prompt set."""

    model_config = ConfigDict(extra="forbid")
    labels: list[str] = Field(min_length=1, max_length=64, description="Label texts, in the order to score them.")
    prompts: Literal["knowledge", "plain"] = "knowledge"


class ZeroShotOut(Out):
    window_id: str
    model: str = Field(description="The zero-shot model's version.")
    prompts: Literal["knowledge", "plain"]
    labels: list[str]
    scores: list[float] = Field(description="Softmax over the labels, same order.")
    similarities: list[float] = Field(description="Cosine similarity of the window's and each label's embedding.")


# -- review: the patient timeline and strips ---------------------------------------------------------


class HeartRateMinute(Out):
    """One minute of the patient's vitals as the gateway reported them (about one report a second)."""

    minute_us: int = Field(description="Start of the minute (gateway clock, µs).")
    reports: int
    mean_bpm: float | None
    min_bpm: float | None
    max_bpm: float | None
    sqi_mean: float | None = Field(description="Mean signal quality of the analysis lead, 0-1.")
    battery_pct: int | None


class TimelineAlarm(Out):
    """One clinical alarm episode in the window asked for."""

    episode_id: str
    alert_id: str = Field(description="The episode's latest message (open it for the detail).")
    alert_type: str
    priority: Literal["high", "medium", "low"]
    message: str
    onset_us: int
    cleared_us: int | None = Field(description="When the edge cleared it (None while active or unknown).")
    active: bool
    acknowledged_by: str | None
    acknowledged_us: int | None


class DeviceEvent(Out):
    """A change in the device's state: a technical alarm raised, escalated or cleared (lead off,
    communication lost, signal quality, battery, …; ``source`` "alarm"), or the device registered,
    assigned or removed (``source`` "registry", from the audit log, by the cloud's clock)."""

    at_us: int
    device_id: str
    source: Literal["alarm", "registry"]
    alert_id: str | None = Field(description="The technical alarm's message (alarm events only).")
    alert_type: str = Field(description="The alarm type, or the registry action (create_device, …).")
    event: str = Field(description="raised, escalated or cleared; or the registry action.")
    priority: Literal["high", "medium", "low"] | None
    message: str


class EstimatePoint(Out):
    """A cloud model's estimate for one window (the stress model: an estimate from synthetic training data)."""

    t_us: int = Field(description="The window's start (µs).")
    window_id: str
    model: str
    version: str
    estimate: str
    probabilities: dict[str, float]
    note: str


class TimelineOut(Out):
    patient_id: str
    from_us: int
    to_us: int
    heart_rate: list[HeartRateMinute] = Field(description="Per minute, oldest first.")
    alarms: list[TimelineAlarm] = Field(description="Clinical alarm episodes by onset.")
    device_events: list[DeviceEvent] = Field(description="Technical alarm events by time.")
    estimates: list[EstimatePoint] = Field(description="Model estimates over time (stress), oldest first.")


class StripOut(Out):
    """The 12-lead strip around a moment: the stored windows covering ``from_us``..``to_us``."""

    patient_id: str
    at_us: int
    from_us: int
    to_us: int
    windows: list[WindowOut] = Field(description="In time order; empty when none is stored there.")
