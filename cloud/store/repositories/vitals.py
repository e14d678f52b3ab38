"""Per-minute vitals of each patient, summarised from the gateways' status reports (the patient
timeline's heart-rate trend).

A gateway status of minor version 1 carries each of its patients' vitals (about one report a second,
:class:`protocol.messages.PatientVitals`). :meth:`VitalsRepository.record` folds one report into the
row of its patient and minute (``minute_us``: the start of the minute of ``t_gateway_us``, the
gateway's clock): report count, heart-rate sum/min/max over the reports that carried one, signal
quality sum, latest battery. The fold is an upsert whose update only adds and takes minima and
maxima, so reports may arrive in any order; the ingest worker records a status only when it was new
(a redelivered or replayed status changes nothing there, :meth:`cloud.store.Store.upsert_gateway_status`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, select

from cloud.store.database import Database
from cloud.store.schema import VitalsMinute
from protocol.messages import GatewayStatus

MINUTE_US = 60_000_000


@dataclass(frozen=True)
class VitalsMinuteRecord:
    """One patient's vitals over one minute: heart rate mean/min/max (None when no report had one)."""

    patient_id: str
    minute_us: int
    reports: int
    hr_mean_bpm: float | None
    hr_min_bpm: float | None
    hr_max_bpm: float | None
    sqi_mean: float | None
    battery_pct: int | None


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value or value in (float("inf"), float("-inf")) else float(value)


def _record(r: VitalsMinute) -> VitalsMinuteRecord:
    return VitalsMinuteRecord(
        patient_id=r.patient_id, minute_us=r.minute_us, reports=r.reports,
        hr_mean_bpm=r.hr_sum / r.hr_reports if r.hr_reports and r.hr_sum is not None else None,
        hr_min_bpm=r.hr_min, hr_max_bpm=r.hr_max,
        sqi_mean=r.sqi_sum / r.sqi_reports if r.sqi_reports and r.sqi_sum is not None else None,
        battery_pct=r.battery_pct)


class VitalsRepository:
    """Per-minute vitals (``store.vitals``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, status: GatewayStatus) -> int:
        """Fold each patient's vitals in ``status`` into its minute; returns how many were folded."""
        if not status.patients:
            return 0
        minute = status.t_gateway_us - status.t_gateway_us % MINUTE_US
        async with self.db.sessions.begin() as s:
            for vitals in status.patients:
                hr = _finite(vitals.heart_rate_bpm)
                sqi = _finite(vitals.sqi)
                await s.execute(self._upsert(vitals.patient_id, minute, hr, sqi, vitals.battery_pct))
        self.db.changed("vitals")
        return len(status.patients)

    def _upsert(self, patient_id: str, minute: int, hr: float | None, sqi: float | None,
                battery: int | None) -> Any:
        stmt = self.db.insert(VitalsMinute).values(
            patient_id=patient_id, minute_us=minute, reports=1, hr_reports=int(hr is not None), hr_sum=hr,
            hr_min=hr, hr_max=hr, sqi_sum=sqi, sqi_reports=int(sqi is not None), battery_pct=battery)
        t, x = VitalsMinute.__table__.c, stmt.excluded

        def added(col: str) -> Any:
            return case((x[col].is_(None), t[col]), (t[col].is_(None), x[col]), else_=t[col] + x[col])

        def least(col: str) -> Any:
            return case((x[col].is_(None), t[col]), (t[col].is_(None) | (x[col] < t[col]), x[col]), else_=t[col])

        def greatest(col: str) -> Any:
            return case((x[col].is_(None), t[col]), (t[col].is_(None) | (x[col] > t[col]), x[col]), else_=t[col])

        return stmt.on_conflict_do_update(index_elements=[t.patient_id, t.minute_us], set_={
            "reports": t.reports + 1,
            "hr_reports": t.hr_reports + x.hr_reports,
            "hr_sum": added("hr_sum"),
            "hr_min": least("hr_min"),
            "hr_max": greatest("hr_max"),
            "sqi_sum": added("sqi_sum"),
            "sqi_reports": t.sqi_reports + x.sqi_reports,
            "battery_pct": case((x.battery_pct.is_(None), t.battery_pct), else_=x.battery_pct),
        })

    async def minutes(self, patient_id: str, since_us: int | None = None, until_us: int | None = None, *,
                      limit: int = 10_080) -> list[VitalsMinuteRecord]:
        """The patient's minutes with ``since_us <= minute_us < until_us``, oldest first (at most ``limit``:
        a week of minutes by default)."""
        q = select(VitalsMinute).where(VitalsMinute.patient_id == patient_id)
        if since_us is not None:
            q = q.where(VitalsMinute.minute_us >= since_us - since_us % MINUTE_US)
        if until_us is not None:
            q = q.where(VitalsMinute.minute_us < until_us)
        q = q.order_by(VitalsMinute.minute_us).limit(limit)
        async with self.db.sessions() as s:
            return [_record(r) for r in (await s.scalars(q)).all()]


__all__ = ["MINUTE_US", "VitalsMinuteRecord", "VitalsRepository"]
