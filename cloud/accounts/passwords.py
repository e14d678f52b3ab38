"""Password hashing: argon2id (argon2-cffi), run in a worker thread so a sign-in never stalls the event loop."""

from __future__ import annotations

import asyncio

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    """argon2id with configurable cost (defaults: argon2-cffi's RFC 9106 low-memory profile, 64 MiB, t=3).

    Tests use a tiny cost; production keeps the defaults. :meth:`verify` of an unknown user is done
    against :attr:`dummy_hash`, so a wrong user name costs the same time as a wrong password."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 1) -> None:
        self._hasher = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self.dummy_hash = self._hasher.hash("ecgstream-no-such-user")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches; False (never an exception) for a mismatch or a corrupt hash."""
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    async def hash_async(self, password: str) -> str:
        return await asyncio.to_thread(self.hash, password)

    async def verify_async(self, password_hash: str, password: str) -> bool:
        return await asyncio.to_thread(self.verify, password_hash, password)
