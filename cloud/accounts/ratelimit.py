"""Login rate limiting with growing delays, never a hard lock that anyone can trigger.

Failed sign-ins are rows in the database (``login_failures``), not process memory, so N API processes
behind a load balancer enforce one limit rather than N. Three counts, each over ``window_s``:

- **this user name from this address**: after ``max_failures`` failures the next try must wait
  1 s, then 2 s, 4 s, … (2^k s after the latest failure), capped at ``max_delay_s``. This is what
  slows a guesser down;
- **this address, any user name** (``2 × max_failures`` free): the same growing delay, so one address
  spraying passwords over many accounts is slowed too;
- **this user name, any address** (``2 × max_failures`` free): a growing delay capped at the small
  ``account_max_delay_s``, so guessing from many addresses is slowed while the real user, signing in
  from their own address, waits at most that long however many failures an attacker piles up.

A correct password does not skip a delay (otherwise the answer would tell a guesser when it was
right); it forgives that user name's failures from that address only. An admin can forgive all of a
user name's failures at once (:meth:`LoginRateLimiter.unlock`: ``ecgstream cloud users unlock`` or
``POST /api/users/{username}/unlock``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def backoff_s(failures: int, free: int, cap_s: float) -> float:
    """The wait after ``failures`` failures when the first ``free`` cost nothing: 2^(failures - free) s, capped."""
    if failures < free:
        return 0.0
    return float(min(2.0 ** min(failures - free, 62), cap_s))


class LoginRateLimiter:
    """``store`` is a :class:`cloud.store.Store` (``login_failures_near``, ``record_login_failure``, …)."""

    def __init__(self, store: Any, *, max_failures: int = 5, window_s: float = 3600.0, max_delay_s: float = 300.0,
                 account_max_delay_s: float = 15.0) -> None:
        self.store = store
        self.max_failures = max_failures
        self.window_us = int(window_s * 1e6)
        self.max_delay_s = max_delay_s
        self.account_max_delay_s = account_max_delay_s

    def _waits(self, rows: Sequence[tuple[str, str, int]], username: str, client: str) -> list[tuple[int, float]]:
        """(latest failure µs, delay s) of each of the three counts."""
        username, client = username[:128], client[:64]
        pair = [t for u, c, t in rows if u == username and c == client]
        by_client = [t for _, c, t in rows if c == client]
        by_user = [t for u, _, t in rows if u == username]
        n = self.max_failures
        counts = ((pair, n, self.max_delay_s), (by_client, 2 * n, self.max_delay_s),
                  (by_user, 2 * n, min(self.account_max_delay_s, self.max_delay_s)))
        return [(max(times), backoff_s(len(times), free, cap)) for times, free, cap in counts if times]

    async def retry_after_s(self, username: str, client: str) -> float | None:
        """Seconds until a sign-in for ``username`` from ``client`` may be tried again; None: allowed now."""
        now = self.store.clock()
        rows = await self.store.login_failures_near(username, client, now - self.window_us)
        due = max((last + int(delay * 1e6) for last, delay in self._waits(rows, username, client) if delay > 0),
                  default=None)
        if due is None or due <= now:
            return None
        return max(1e-6 * (due - now), 1.0)

    async def failed(self, username: str, client: str) -> None:
        await self.store.record_login_failure(username, client)

    async def succeeded(self, username: str, client: str = "") -> None:
        """A correct sign-in forgives that user name's failures from that address (not the others')."""
        await self.store.forget_login_failures(username, client)

    async def unlock(self, username: str) -> int:
        """Forget every failure of ``username`` (an admin's unlock); returns how many were forgotten."""
        return int(await self.store.forget_login_failures(username))
