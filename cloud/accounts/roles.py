"""Roles and the rules for user names and passwords."""

from __future__ import annotations

import re
from enum import StrEnum

from cloud.errors import CloudError


class Role(StrEnum):
    """``clinician``: reads everything, acknowledges, assigns patients. ``admin``: also manages users,
    patients, devices and reads the audit log."""

    CLINICIAN = "clinician"
    ADMIN = "admin"


USERNAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}"
"""1–64 characters, letters, digits and ``_ . @ -``, starting with a letter or digit."""
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
"""Longer inputs are refused before hashing (argon2 would hash them, slowly, for nothing)."""

TEAM_PATTERN = r"[A-Za-z0-9](?:[A-Za-z0-9 _.@-]{0,62}[A-Za-z0-9_.@-])?"
"""A ward or care-team name: 1–64 letters, digits, spaces and ``_ . @ -``, starting with a letter or
digit and not ending in a space."""

_USERNAME = re.compile(USERNAME_PATTERN)
_TEAM = re.compile(TEAM_PATTERN)


class AccountError(CloudError, ValueError):
    """A user name, password or role that the rules refuse (the message says which rule)."""


def validate_username(username: str) -> str:
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise AccountError("user name must be 1-64 letters, digits or _ . @ -, starting with a letter or digit")
    return username


def validate_password(password: str) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if not password.strip():
        raise AccountError("password must not be blank")
    return password


def validate_team(team: str | None) -> str | None:
    """A team name (None: no team)."""
    if team is None:
        return None
    if not isinstance(team, str) or not _TEAM.fullmatch(team):
        raise AccountError("team must be 1-64 letters, digits, spaces or _ . @ -, starting with a letter or digit")
    return team


def validate_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AccountError(f"role must be one of {', '.join(r.value for r in Role)}, got {role!r}") from None
