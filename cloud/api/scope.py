"""Care-team scoping: which patients a signed-in user may see (``[accounts] care_team_scoping``).

Off (the default, for small deployments), every member of staff sees every patient. On, an admin still
sees everyone, and a clinician sees only the patients assigned to them (``assigned_to``) or looked
after by their ward or team (the patient's ``team`` equals the user's). Every route that returns
patient data asks :func:`visible_patients`; one asking for something of a patient the user may not see
answers 404 exactly as if it did not exist (:func:`require_patient`), so scoping does not leak which
patients, alerts or windows exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from cloud.accounts import Role
from cloud.api.context import ApiContext
from cloud.api.errors import not_found
from cloud.store import UserRecord

T = TypeVar("T")


def scoping_on(ctx: ApiContext, user: UserRecord) -> bool:
    """Whether ``user``'s view is limited to their care team."""
    return bool(getattr(ctx.settings.accounts, "care_team_scoping", False)) and user.role != Role.ADMIN.value


async def visible_patients(ctx: ApiContext, user: UserRecord) -> frozenset[str] | None:
    """The patient ids ``user`` may see; None: every patient (scoping off, or an admin)."""
    if not scoping_on(ctx, user):
        return None
    fresh = await ctx.store.get_user(user.username)  # the team may have changed since the session began
    team = fresh.team if fresh is not None else user.team
    return frozenset(await ctx.store.care_team_patient_ids(user.username, team))


def may_see(visible: frozenset[str] | None, patient_id: str) -> bool:
    return visible is None or patient_id in visible


async def require_patient(ctx: ApiContext, user: UserRecord, patient_id: str, what: str) -> None:
    """404 ``{what} not found`` unless ``user`` may see ``patient_id``."""
    if not may_see(await visible_patients(ctx, user), patient_id):
        raise not_found(what)


async def scoped_query(visible: frozenset[str] | None, patient_id: str | None,
                       query: Callable[[str | None], Awaitable[list[T]]], *,
                       key: Callable[[T], Any], newest_first: bool, limit: int) -> list[T]:
    """Run a list query (``query(patient_id)``) within the visible patients: as asked when scoping is
    off; one query per visible patient, merged in order and cut to ``limit``, when it is on."""
    if visible is None:
        return await query(patient_id)
    ids: Iterable[str] = sorted(visible) if patient_id is None else ([patient_id] if patient_id in visible else [])
    found: list[T] = []
    for pid in ids:
        found += await query(pid)
    found.sort(key=key, reverse=newest_first)
    return found[:limit]


def filter_visible(visible: frozenset[str] | None, items: Sequence[T], patient_of: Callable[[T], str | None]
                   ) -> list[T]:
    """The items whose patient ``visible`` includes (all of them when it is None)."""
    if visible is None:
        return list(items)
    return [i for i in items if (p := patient_of(i)) is not None and p in visible]


__all__ = ["filter_visible", "may_see", "require_patient", "scoped_query", "scoping_on", "visible_patients"]
