"""The registry: patients, the devices they wear, and the member of staff responsible for each patient."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from cloud.errors import CloudError, NotFound
from cloud.store.database import Database
from cloud.store.records import DeviceRecord, PatientRecord
from cloud.store.schema import AuditEntry, Device, Patient


def patient_record(r: Patient) -> PatientRecord:
    return PatientRecord(patient_id=r.patient_id, display_name=r.display_name, created_us=r.created_us,
                         assigned_to=r.assigned_to, assigned_us=r.assigned_us, team=r.team)


def device_record(r: Device) -> DeviceRecord:
    return DeviceRecord(device_id=r.device_id, patient_id=r.patient_id, profile=r.profile,
                        credentials_hash=r.credentials_hash, active=bool(r.active), created_us=r.created_us)


class RegistryConflict(CloudError, ValueError):
    """A registry change refused because of what is registered: the patient or device exists already,
    the device is worn by another patient, or the patient still wears devices (one line, for a person)."""


@dataclass(frozen=True)
class AutoRegistered:
    """What :meth:`RegistryRepository.auto_register` created (each audited as ``auto_register``)."""

    patient: bool = False
    """A new patient (named after the device)."""
    device: bool = False
    """A new device."""
    assigned: bool = False
    """A registered device that was worn by nobody now wears the patient its data names."""

    def __bool__(self) -> bool:
        return self.patient or self.device or self.assigned


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


    # -- registration by a person (CLI, admin page) and by the ingest (auto-register) --------------

    async def register_patient(self, patient_id: str, display_name: str = "", *, by: str,
                               team: str | None = None) -> PatientRecord:
        """Register a patient (in ``team``'s care, when given), audited as ``create_patient`` by ``by``.
        Raises RegistryConflict when the id is already registered (nothing changes)."""
        at = self.db.clock()
        async with self.db.sessions.begin() as s:
            row = (await s.execute(
                self.db.insert(Patient).values(patient_id=patient_id, display_name=display_name, created_us=at,
                                               team=team)
                .on_conflict_do_nothing(index_elements=[Patient.patient_id]).returning(Patient))).scalar_one_or_none()
            if row is None:
                raise RegistryConflict(f"patient {patient_id!r} is already registered")
            record = patient_record(row)
            s.add(AuditEntry(at_us=at, user=by, action="create_patient", target=f"patient:{patient_id}",
                             details={"display_name": display_name, "team": team}))
        self.db.changed("assign")
        return record

    async def rename_patient(self, patient_id: str, display_name: str, *, by: str) -> PatientRecord:
        """Give a patient another display name (an auto-registered one is named after its device), audited
        as ``rename_patient`` by ``by``. Raises NotFound for an unregistered patient."""
        at = self.db.clock()
        async with self.db.sessions.begin() as s:
            row = (await s.execute(update(Patient).where(Patient.patient_id == patient_id)
                                   .values(display_name=display_name).returning(Patient))).scalar_one_or_none()
            if row is None:
                raise NotFound(f"patient {patient_id!r} is not registered")
            record = patient_record(row)
            s.add(AuditEntry(at_us=at, user=by, action="rename_patient", target=f"patient:{patient_id}",
                             details={"display_name": display_name}))
        self.db.changed("assign")
        return record

    async def register_device(self, device_id: str, patient_id: str, *, by: str, profile: str = "") -> DeviceRecord:
        """Register ``device_id`` as worn by ``patient_id``, audited as ``create_device`` by ``by``; a device
        that is registered but worn by nobody is given to the patient (audited as ``assign_device``).
        Raises NotFound for an unregistered patient and RegistryConflict when the device is already
        registered (to this patient, or to another one)."""
        at = self.db.clock()
        insert = self.db.insert(Device).values(
            device_id=device_id, patient_id=patient_id, profile=profile, active=True, created_us=at,
        ).on_conflict_do_nothing(index_elements=[Device.device_id]).returning(Device)
        try:
            async with self.db.sessions.begin() as s:
                row = (await s.execute(insert)).scalar_one_or_none()
                if row is None:  # registered already: only a device worn by nobody may be given to the patient
                    row = (await s.execute(update(Device).where(Device.device_id == device_id,
                                                                Device.patient_id.is_(None))
                                           .values(patient_id=patient_id).returning(Device))).scalar_one_or_none()
                    action = "assign_device"
                else:
                    action = "create_device"
                if row is not None:
                    s.add(AuditEntry(at_us=at, user=by, action=action, target=f"device:{device_id}",
                                     details={"patient_id": patient_id, "profile": row.profile}))
                    record = device_record(row)
        except IntegrityError:  # the foreign key: no such patient
            raise NotFound(f"patient {patient_id!r} is not registered") from None
        if row is None:
            existing = await self.get_device(device_id)
            owner = existing.patient_id if existing is not None else None
            if owner == patient_id:
                raise RegistryConflict(f"device {device_id!r} is already registered to patient {patient_id!r}")
            raise RegistryConflict(f"device {device_id!r} is already assigned to patient {owner!r}; remove it "
                                   f"first (ecgstream cloud devices remove {device_id})")
        self.db.changed("assign")
        return record

    async def remove_device(self, device_id: str, *, by: str) -> DeviceRecord:
        """Delete a device from the registry (its stored data stays), audited as ``remove_device`` by
        ``by``. Raises NotFound for an unregistered device."""
        at = self.db.clock()
        async with self.db.sessions.begin() as s:
            row = (await s.execute(delete(Device).where(Device.device_id == device_id)
                                   .returning(Device))).scalar_one_or_none()
            if row is None:
                raise NotFound(f"device {device_id!r} is not registered")
            record = device_record(row)
            s.add(AuditEntry(at_us=at, user=by, action="remove_device", target=f"device:{device_id}",
                             details={"patient_id": record.patient_id}))
        self.db.changed("assign")
        return record

    async def remove_patient(self, patient_id: str, *, by: str) -> PatientRecord:
        """Delete a patient from the registry (their stored alerts and windows stay), audited as
        ``remove_patient`` by ``by``. Raises NotFound for an unregistered patient and RegistryConflict
        while devices are still registered to them (remove or reassign those first)."""
        at = self.db.clock()
        try:
            async with self.db.sessions.begin() as s:
                row = (await s.execute(delete(Patient).where(Patient.patient_id == patient_id)
                                       .returning(Patient))).scalar_one_or_none()
                if row is None:
                    raise NotFound(f"patient {patient_id!r} is not registered")
                record = patient_record(row)
                s.add(AuditEntry(at_us=at, user=by, action="remove_patient", target=f"patient:{patient_id}",
                                 details={"display_name": record.display_name}))
                await s.flush()  # PostgreSQL checks the devices' foreign key here, SQLite at the latest on commit
        except IntegrityError:
            worn = [d.device_id for d in await self.list_devices(patient_id=patient_id)]
            raise RegistryConflict(f"patient {patient_id!r} still wears device(s) {', '.join(worn) or '?'}; "
                                   f"remove them first (ecgstream cloud devices remove …)") from None
        self.db.changed("assign")
        return record

    async def auto_register(self, device_id: str, patient_id: str | None, *, by: str = "ingest",
                            display_name: str | None = None) -> AutoRegistered:
        """Register an unknown device as the ingest finds it (``cloud run --auto-register``), in one
        transaction: the patient its data names (when not registered, named after the device), the
        device worn by that patient (or by nobody, for a device status, which names no patient), or a
        registered device worn by nobody given to that patient. A new patient is named ``display_name``
        when given (a name the gateway sent), else after the device. Each creation is audited as
        ``auto_register`` by ``by`` (details ``{"note": "auto-registered", …}``). Safe for several
        workers at once: whatever another worker registered first is kept and not audited again."""
        at = self.db.clock()
        name = display_name or device_id
        made = {"patient": False, "device": False, "assigned": False}
        async with self.db.sessions.begin() as s:
            if patient_id is not None:
                made["patient"] = (await s.execute(
                    self.db.insert(Patient).values(patient_id=patient_id, display_name=name, created_us=at)
                    .on_conflict_do_nothing(index_elements=[Patient.patient_id])
                    .returning(Patient.patient_id))).first() is not None
            made["device"] = (await s.execute(
                self.db.insert(Device).values(device_id=device_id, patient_id=patient_id, profile="", active=True,
                                              created_us=at)
                .on_conflict_do_nothing(index_elements=[Device.device_id]).returning(Device.device_id))
            ).first() is not None
            if not made["device"] and patient_id is not None:
                made["assigned"] = (await s.execute(
                    update(Device).where(Device.device_id == device_id, Device.patient_id.is_(None))
                    .values(patient_id=patient_id).returning(Device.device_id))).first() is not None
            if made["patient"]:
                s.add(AuditEntry(at_us=at, user=by, action="auto_register", target=f"patient:{patient_id}",
                                 details={"note": "auto-registered", "display_name": name,
                                          "device_id": device_id}))
            if made["device"] or made["assigned"]:
                s.add(AuditEntry(at_us=at, user=by, action="auto_register", target=f"device:{device_id}",
                                 details={"note": "auto-registered", "patient_id": patient_id}))
        result = AutoRegistered(**made)
        if result:
            self.db.changed("assign")
        return result


__all__ = ["AutoRegistered", "RegistryConflict", "RegistryRepository", "device_record", "patient_record"]
