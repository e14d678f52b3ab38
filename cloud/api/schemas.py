"""Request bodies: strict pydantic models (unknown keys refused, lengths and id patterns enforced)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from cloud.accounts.roles import MAX_PASSWORD, MIN_PASSWORD, TEAM_PATTERN, USERNAME_PATTERN

ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""Patient and device ids (:func:`protocol.topics.validate_id`)."""

Ident = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Username = Annotated[str, StringConstraints(pattern=f"^{USERNAME_PATTERN}$")]
Team = Annotated[str, StringConstraints(pattern=f"^{TEAM_PATTERN}$")]
Password = Annotated[str, StringConstraints(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(Body):
    username: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD)]


class CreateUserBody(Body):
    username: Username
    password: Annotated[str, StringConstraints(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)]
    role: Literal["clinician", "admin"]


class CreatePatientBody(Body):
    patient_id: Ident
    display_name: Annotated[str, StringConstraints(max_length=200)] = ""
    team: Team | None = None


class PatientNameBody(Body):
    """A patient's display name (what the ward shows)."""

    display_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class TeamBody(Body):
    """A ward or care team (``null``: none)."""

    team: Team | None


class PasswordChangeBody(Body):
    old_password: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD)]
    new_password: Password


class CreateDeviceBody(Body):
    device_id: Ident
    patient_id: Ident | None = None
    profile: Annotated[str, StringConstraints(max_length=64)] = ""


class DevicePatientBody(Body):
    patient_id: Ident | None


class AssignBody(Body):
    username: Username | None


class AckBody(Body):
    note: Annotated[str, StringConstraints(max_length=2000)] = ""
