"""Login rate limiting: at most ``max_failures`` failed sign-ins per user name, and per client address,
within ``window_s``; then sign-in is refused until the oldest failure ages out.

Failures are rows in the database (``login_failures``), not process memory, so N API processes behind
a load balancer enforce one limit rather than N. Counting per user name stops guessing one account's
password from many addresses; counting per address stops one address trying many accounts. A correct
password does not bypass the limit (otherwise the limit would tell a guesser when it was right).
"""

from __future__ import annotations

from typing import Any


class LoginRateLimiter:
    """``store`` is a :class:`cloud.store.Store` (``login_failures``, ``record_login_failure``, …)."""

    def __init__(self, store: Any, *, max_failures: int = 5, window_s: float = 300.0) -> None:
        self.store = store
        self.max_failures = max_failures
        self.window_us = int(window_s * 1e6)

    async def retry_after_s(self, username: str, client: str) -> float | None:
        """Seconds until a sign-in for ``username`` from ``client`` may be tried again; None: allowed now."""
        now = self.store.clock()
        by_user, by_client = await self.store.login_failures(username, client, now - self.window_us)
        waits = [failures[-self.max_failures] + self.window_us - now
                 for failures in (by_user, by_client) if len(failures) >= self.max_failures]
        if not waits:
            return None
        return max(1e-6 * max(waits), 1.0)

    async def failed(self, username: str, client: str) -> None:
        await self.store.record_login_failure(username, client)

    async def succeeded(self, username: str) -> None:
        """A correct sign-in forgives that user name's failures (not the client address's)."""
        await self.store.clear_login_failures(username)
