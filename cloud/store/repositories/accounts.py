"""Staff accounts, sign-in sessions (stored by token hash) and failed sign-ins (for the rate limiter).

The rules (password hashing, roles, limits) live in :mod:`cloud.accounts`; this is only their storage.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_, select, update

from cloud.errors import NotFound
from cloud.store.database import Database
from cloud.store.records import UserRecord
from cloud.store.schema import LoginFailure, Patient, SessionRow, User


def user_record(r: User) -> UserRecord:
    return UserRecord(username=r.username, role=r.role, active=bool(r.active), created_us=r.created_us,
                      password_hash=r.password_hash, team=r.team)


def _rowcount(result: Any) -> int:
    """Rows a DELETE touched (a DML statement's result is a CursorResult)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


class AccountRepository:
    """Users, sessions and login failures (``store.accounts``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_user(self, username: str, password_hash: str, role: str) -> bool:
        """Add a member of staff; False if the name is taken (nothing changes)."""
        stmt = self.db.insert(User).values(
            username=username, password_hash=password_hash, role=role, active=True, created_us=self.db.clock(),
        ).on_conflict_do_nothing(index_elements=[User.username]).returning(User.username)
        async with self.db.sessions.begin() as s:
            return (await s.execute(stmt)).first() is not None

    async def get_user(self, username: str) -> UserRecord | None:
        async with self.db.sessions() as s:
            row = await s.get(User, username)
        return None if row is None else user_record(row)

    async def list_users(self) -> list[UserRecord]:
        async with self.db.sessions() as s:
            return [user_record(u) for u in (await s.scalars(select(User).order_by(User.username))).all()]

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        """Replace a user's password hash; NotFound for an unknown user."""
        async with self.db.sessions.begin() as s:
            res = await s.execute(update(User).where(User.username == username)
                                  .values(password_hash=password_hash).returning(User.username))
            if res.first() is None:
                raise NotFound(f"user {username!r} does not exist")

    async def set_team(self, username: str, team: str | None) -> UserRecord:
        """Put a user in a ward or care team (None: none); NotFound for an unknown user."""
        async with self.db.sessions.begin() as s:
            res = await s.execute(update(User).where(User.username == username).values(team=team).returning(User))
            row = res.scalar_one_or_none()
            if row is None:
                raise NotFound(f"user {username!r} does not exist")
            return user_record(row)

    async def delete_sessions(self, username: str, *, keep_token_hash: str | None = None) -> int:
        """End every session of ``username`` (but the one of ``keep_token_hash``); returns how many."""
        stmt = delete(SessionRow).where(SessionRow.username == username)
        if keep_token_hash is not None:
            stmt = stmt.where(SessionRow.token_hash != keep_token_hash)
        async with self.db.sessions.begin() as s:
            return _rowcount(await s.execute(stmt))

    async def delete_user(self, username: str) -> bool:
        """Remove a user, their sessions and their patient assignments; False if there is no such user.
        (Their acknowledgements and audit entries stay: those name the user, they do not point at them.)"""
        async with self.db.sessions.begin() as s:
            await s.execute(delete(SessionRow).where(SessionRow.username == username))
            await s.execute(update(Patient).where(Patient.assigned_to == username)
                            .values(assigned_to=None, assigned_us=self.db.clock()))
            res = await s.execute(delete(User).where(User.username == username).returning(User.username))
            return res.first() is not None

    async def create_session(self, token_hash: str, username: str, expires_us: int, *, client: str = "") -> None:
        """Store a session by the hash of its token (see :mod:`cloud.accounts.tokens`)."""
        async with self.db.sessions.begin() as s:
            s.add(SessionRow(token_hash=token_hash, username=username, created_us=self.db.clock(),
                             expires_us=expires_us, client=client[:64]))

    async def session_user(self, token_hash: str) -> UserRecord | None:
        """The active user of an unexpired session, or None."""
        q = (select(User).join(SessionRow, SessionRow.username == User.username)
             .where(SessionRow.token_hash == token_hash, SessionRow.expires_us > self.db.clock(),
                    User.active.is_(True)))
        async with self.db.sessions() as s:
            row = await s.scalar(q)
        return None if row is None else user_record(row)

    async def delete_session(self, token_hash: str) -> bool:
        async with self.db.sessions.begin() as s:
            res = await s.execute(delete(SessionRow).where(SessionRow.token_hash == token_hash)
                                  .returning(SessionRow.token_hash))
            return res.first() is not None

    async def purge_expired(self, *, login_failures_before_us: int | None = None) -> int:
        """Delete expired sessions (and login failures older than the given time); returns rows deleted."""
        async with self.db.sessions.begin() as s:
            n = _rowcount(await s.execute(delete(SessionRow).where(SessionRow.expires_us <= self.db.clock())))
            if login_failures_before_us is not None:
                n += _rowcount(await s.execute(delete(LoginFailure)
                                               .where(LoginFailure.at_us < login_failures_before_us)))
            return n

    async def record_login_failure(self, username: str, client: str) -> int:
        """Remember one failed sign-in; returns its time (µs)."""
        at = self.db.clock()
        async with self.db.sessions.begin() as s:
            s.add(LoginFailure(username=username[:128], client=client[:64], at_us=at))
        return at

    async def login_failures(self, username: str, client: str, since_us: int) -> tuple[list[int], list[int]]:
        """Times (oldest first) of failed sign-ins since ``since_us``: for this user name, and from this client."""
        base = select(LoginFailure.at_us).where(LoginFailure.at_us >= since_us).order_by(LoginFailure.at_us)
        async with self.db.sessions() as s:
            by_user = list((await s.scalars(base.where(LoginFailure.username == username[:128]))).all())
            by_client = list((await s.scalars(base.where(LoginFailure.client == client[:64]))).all())
        return by_user, by_client

    async def login_failures_near(self, username: str, client: str, since_us: int) -> list[tuple[str, str, int]]:
        """``(username, client, at_us)`` of the failed sign-ins since ``since_us`` for this user name
        (from any address) or from this client (for any user name), oldest first."""
        q = (select(LoginFailure.username, LoginFailure.client, LoginFailure.at_us)
             .where(LoginFailure.at_us >= since_us,
                    or_(LoginFailure.username == username[:128], LoginFailure.client == client[:64]))
             .order_by(LoginFailure.at_us, LoginFailure.id))
        async with self.db.sessions() as s:
            return [(u, c, int(t)) for u, c, t in (await s.execute(q)).all()]

    async def clear_login_failures(self, username: str, client: str | None = None) -> int:
        """Forget the failed sign-ins of a user name (only those from ``client`` when given); returns how many."""
        stmt = delete(LoginFailure).where(LoginFailure.username == username[:128])
        if client is not None:
            stmt = stmt.where(LoginFailure.client == client[:64])
        async with self.db.sessions.begin() as s:
            return _rowcount(await s.execute(stmt))


__all__ = ["AccountRepository", "user_record"]
