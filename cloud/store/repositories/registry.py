"""The registry: patients, the devices they wear, and the member of staff responsible for each patient."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select, update

from cloud.errors import NotFound
from cloud.store.database import Database
from cloud.store.records import DeviceRecord, PatientRecord
from cloud.store.schema import AuditEntry, Device, Patient


def patient_record(r: Patient) -> PatientRecord:
    return PatientRecord(patient_id=r.patient_id, display_name=r.display_name, created_us=r.created_us,
                         assigned_to=r.assigned_to, assigned_us=r.assigned_us, team=r.team)


def device_record(r: Device) -> DeviceRecord:
    return DeviceRecord(device_id=r.device_id, patient_id=r.patient_id, profile=r.profile,
                        credentials_hash=r.credentials_hash, active=bool(r.active), created_us=r.created_us)


class RegistryRepository:
    """Patients and devices (``store.registry``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_patient(self, patient_id: str, display_name: str = "") -> bool:
        """Register a patient; False if the id is already registered (unchanged)."""
        stmt = self.db.insert(Patient).values(
            patient_id=patient_id, display_name=display_name, created_us=self.db.clock()
        ).on_conflict_do_nothing(index_elements=[Patient.patient_id]).returning(Patient.patient_id)
        async with self.db.sessions.begin() as s:
            return (await s.execute(stmt)).first() is not None

    async def add_device(self, device_id: str, patient_id: str | None = None, *, profile: str = "",
                         credentials_hash: str | None = None) -> bool:
        """Register a device (worn by ``patient_id``, which must be registered); False if already known."""
        stmt = self.db.insert(Device).values(
            device_id=device_id, patient_id=patient_id, profile=profile, credentials_hash=credentials_hash,
            active=True, created_us=self.db.clock(),
        ).on_conflict_do_nothing(index_elements=[Device.device_id]).returning(Device.device_id)
        async with self.db.sessions.begin() as s:
            return (await s.execute(stmt)).first() is not None

    async def assign_device(self, device_id: str, patient_id: str | None) -> None:
        """Give a registered device to another patient (or to nobody); NotFound for an unknown device."""
        async with self.db.sessions.begin() as s:
            res = await s.execute(update(Device).where(Device.device_id == device_id)
                                  .values(patient_id=patient_id).returning(Device.device_id))
            if res.first() is None:
                raise NotFound(f"device {device_id!r} is not registered")

    async def get_device(self, device_id: str) -> DeviceRecord | None:
        async with self.db.sessions() as s:
            row = await s.get(Device, device_id)
        return None if row is None else device_record(row)

    async def list_devices(self, *, patient_id: str | None = None,
                           patient_ids: Sequence[str] | None = None) -> list[DeviceRecord]:
        """Registered devices by id (all, those worn by ``patient_id``, or by any of ``patient_ids``)."""
        q = select(Device).order_by(Device.device_id)
        if patient_id is not None:
            q = q.where(Device.patient_id == patient_id)
        if patient_ids is not None:
            q = q.where(Device.patient_id.in_(list(patient_ids)))
        async with self.db.sessions() as s:
            return [device_record(d) for d in (await s.scalars(q)).all()]

    async def list_patients(self) -> list[PatientRecord]:
        """Every registered patient, by id."""
        async with self.db.sessions() as s:
            return [patient_record(p) for p in (await s.scalars(select(Patient).order_by(Patient.patient_id))).all()]

    async def get_patient(self, patient_id: str) -> PatientRecord | None:
        async with self.db.sessions() as s:
            row = await s.get(Patient, patient_id)
        return None if row is None else patient_record(row)

    async def patients(self, patient_ids: Sequence[str] | None = None) -> list[PatientRecord]:
        """Registered patients (all, or those named) with their assignment, by id."""
        if patient_ids is None:
            return await self.list_patients()
        q = select(Patient).where(Patient.patient_id.in_(list(patient_ids))).order_by(Patient.patient_id)
        async with self.db.sessions() as s:
            return [patient_record(p) for p in (await s.scalars(q)).all()]

    async def set_patient_team(self, patient_id: str, team: str | None, *, by: str) -> PatientRecord:
        """Put a patient in the care of a ward or team (None: none), audited as ``set_team`` by ``by``
        (in the live feed's ``assign`` stream of changes). Raises NotFound for an unregistered patient."""
        at = self.db.clock()
        async with self.db.sessions.begin() as s:
            res = await s.execute(update(Patient).where(Patient.patient_id == patient_id)
                                  .values(team=team).returning(Patient))
            row = res.scalar_one_or_none()
            if row is None:
                raise NotFound(f"patient {patient_id!r} is not registered")
            s.add(AuditEntry(at_us=at, user=by, action="set_team", target=f"patient:{patient_id}",
                             details={"team": team}))
            record = patient_record(row)
        self.db.changed("assign")
        return record

    async def care_team_patient_ids(self, username: str, team: str | None) -> list[str]:
        """Patients assigned to ``username`` or looked after by ``team`` (when not None), by id."""
        cond = Patient.assigned_to == username
        if team is not None:
            cond = or_(cond, Patient.team == team)
        async with self.db.sessions() as s:
            return list((await s.scalars(select(Patient.patient_id).where(cond).order_by(Patient.patient_id))).all())

    async def assign_patient(self, patient_id: str, username: str | None, *, by: str) -> PatientRecord:
        """Make ``username`` (None: nobody) responsible for a patient, audited as ``assign`` by ``by``.
        Raises NotFound for an unregistered patient."""
        at = self.db.clock()
        async with self.db.sessions.begin() as s:
            res = await s.execute(update(Patient).where(Patient.patient_id == patient_id)
                                  .values(assigned_to=username, assigned_us=at).returning(Patient))
            row = res.scalar_one_or_none()
            if row is None:
                raise NotFound(f"patient {patient_id!r} is not registered")
            s.add(AuditEntry(at_us=at, user=by, action="assign", target=f"patient:{patient_id}",
                             details={"assigned_to": username}))
            record = patient_record(row)
        self.db.changed("assign")
        return record


__all__ = ["RegistryRepository", "device_record", "patient_record"]
