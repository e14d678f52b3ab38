"""Accounts: sign-in (with the rate limiter), sign-out, token check and user management over the store."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cloud.accounts.passwords import PasswordHasher
from cloud.accounts.ratelimit import LoginRateLimiter
from cloud.accounts.roles import (
    MAX_PASSWORD,
    AccountError,
    Role,
    validate_password,
    validate_role,
    validate_team,
    validate_username,
)
from cloud.accounts.tokens import hash_token, new_token
from cloud.errors import CloudError
from cloud.store import UserRecord

log = logging.getLogger(__name__)


class BadCredentials(CloudError):
    """Unknown user, inactive user or wrong password (deliberately indistinguishable)."""


class RateLimited(CloudError):
    """Too many failed sign-ins; try again after :attr:`retry_after_s`."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class UserExists(CloudError):
    """A user with that name already exists."""


@dataclass(frozen=True)
class LoginResult:
    token: str
    user: UserRecord
    expires_us: int


class Accounts:
    """Staff accounts on a :class:`cloud.store.Store`::

        accounts = Accounts(store, hasher=PasswordHasher(), session_ttl_s=12 * 3600)
        await accounts.create_user("dr.osei", "correct horse", "clinician")
        result = await accounts.login("dr.osei", "correct horse", client="10.0.0.7")
        user = await accounts.authenticate(result.token)
    """

    def __init__(self, store: Any, *, hasher: PasswordHasher | None = None, session_ttl_s: float = 12 * 3600.0,
                 limiter: LoginRateLimiter | None = None) -> None:
        self.store = store
        self.hasher = hasher or PasswordHasher()
        self.session_ttl_us = int(session_ttl_s * 1e6)
        self.limiter = limiter or LoginRateLimiter(store)

    async def create_user(self, username: str, password: str, role: str | Role) -> UserRecord:
        """Add a user; raises AccountError for a name/password/role the rules refuse, UserExists if taken."""
        validate_username(username)
        validate_password(password)
        role = validate_role(str(role))
        if await self.store.get_user(username) is not None:
            raise UserExists(f"user {username!r} already exists")
        if not await self.store.add_user(username, await self.hasher.hash_async(password), role.value):
            raise UserExists(f"user {username!r} already exists")
        user = await self.store.get_user(username)
        assert user is not None
        return user

    async def set_password(self, username: str, password: str, *, keep_token: str | None = None) -> int:
        """Give ``username`` a new password and end their sessions (all but ``keep_token``'s); returns
        how many sessions ended. AccountError for a password the rules refuse, NotFound for no such user."""
        validate_password(password)
        await self.store.set_password_hash(username, await self.hasher.hash_async(password))
        return int(await self.store.delete_sessions(
            username, keep_token_hash=hash_token(keep_token) if keep_token is not None else None))

    async def change_password(self, username: str, old_password: str, new_password: str, *, client: str = "",
                              keep_token: str | None = None) -> int:
        """A user changing their own password: the old one must match (the login limiter counts a wrong
        one, and RateLimited comes first), the new one must pass the rules. Every other session of the
        user ends; the one of ``keep_token`` (the request's own) stays. Returns how many ended."""
        retry = await self.limiter.retry_after_s(username, client)
        if retry is not None:
            raise RateLimited(retry)
        user = await self.store.get_user(username)
        ok = user is not None and user.active and len(old_password) <= MAX_PASSWORD and \
            await self.hasher.verify_async(user.password_hash, old_password)
        if not ok:
            await self.limiter.failed(username, client)
            raise BadCredentials("the current password is wrong")
        validate_password(new_password)
        if new_password == old_password:
            raise AccountError("the new password must differ from the current one")
        return await self.set_password(username, new_password, keep_token=keep_token)

    async def unlock(self, username: str) -> int:
        """Forget ``username``'s failed sign-ins (an admin's unlock); returns how many were forgotten."""
        return await self.limiter.unlock(username)

    async def set_team(self, username: str, team: str | None) -> UserRecord:
        """Put a user in a ward or care team (None: none); NotFound for an unknown user."""
        return await self.store.set_user_team(username, validate_team(team))

    async def login(self, username: str, password: str, *, client: str = "") -> LoginResult:
        """Check the password and open a session. Raises RateLimited before checking anything once the
        limit is reached, and BadCredentials (recording the failure) when the check fails."""
        if not isinstance(username, str) or not isinstance(password, str):
            raise BadCredentials("user name and password must be strings")
        username = username[:128]
        retry = await self.limiter.retry_after_s(username, client)
        if retry is not None:
            raise RateLimited(retry)
        user = await self.store.get_user(username)
        ok = False
        if len(password) <= MAX_PASSWORD:
            ok = await self.hasher.verify_async(user.password_hash if user else self.hasher.dummy_hash, password)
        if user is None or not user.active or not ok:
            await self.limiter.failed(username, client)
            raise BadCredentials("unknown user name or wrong password")
        await self.limiter.succeeded(username, client)
        if self.hasher.needs_rehash(user.password_hash):  # the configured cost changed since it was set
            await self.store.set_password_hash(username, await self.hasher.hash_async(password))
        token = new_token()
        expires = self.store.clock() + self.session_ttl_us
        await self.store.create_session(hash_token(token), user.username, expires, client=client)
        return LoginResult(token=token, user=user, expires_us=expires)

    async def authenticate(self, token: str) -> UserRecord | None:
        """The user of a valid, unexpired session token; None otherwise."""
        if not token or len(token) > 256:
            return None
        return await self.store.session_user(hash_token(token))

    async def logout(self, token: str) -> bool:
        return await self.store.delete_session(hash_token(token))

    async def delete_user(self, username: str) -> bool:
        return await self.store.delete_user(username)

    async def list_users(self) -> list[UserRecord]:
        return await self.store.list_users()


__all__ = ["AccountError", "Accounts", "BadCredentials", "LoginResult", "RateLimited", "UserExists"]
