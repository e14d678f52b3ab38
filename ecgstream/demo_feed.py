"""The demo's view of the dashboard: sign in as staff would and read the live feed (``GET /api/events``).

:class:`FeedWatcher` logs in through ``POST /api/auth/login`` and keeps the Server-Sent Events stream
open (``?live=0``: alerts, acknowledgements, escalations and ward rows, no ECG), recording each alert
with the moment it arrived (:func:`time.monotonic`). The demo's summary is measured on what it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedAlert:
    """One ``alert`` event of the feed and when it arrived (monotonic seconds)."""

    arrived_s: float
    alert: dict[str, Any]


@dataclass
class FeedWatcher:
    """Signs in at ``base_url`` and records the feed's alerts until :meth:`close`."""

    base_url: str
    username: str
    password: str
    alerts: list[FeedAlert] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)
    """Events seen, by SSE event name."""
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _client: httpx.AsyncClient | None = None

    async def login(self) -> str:
        """Sign in; the session token (raises :class:`httpx.HTTPStatusError` on a refused login)."""
        client = self._http()
        r = await client.post("/api/auth/login", json={"username": self.username, "password": self.password})
        r.raise_for_status()
        token = str(r.json()["token"])
        client.headers["Authorization"] = f"Bearer {token}"
        return token

    async def start(self) -> None:
        """Sign in and open the feed (returns once it is open)."""
        await self.login()
        self._task = asyncio.create_task(self._follow(), name="demo-feed")
        waiter = asyncio.create_task(self.connected.wait())
        await asyncio.wait([waiter, self._task], return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            waiter.cancel()
            self._task.result()          # it ended before connecting: its error

    async def get(self, path: str) -> Any:
        """``GET path`` as the signed-in user; the JSON body."""
        r = await self._http().get(path)
        r.raise_for_status()
        return r.json()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(10.0, read=None))
        return self._client

    async def _follow(self) -> None:
        async with self._http().stream("GET", "/api/events", params={"live": "0"}) as response:
            response.raise_for_status()
            self.connected.set()
            name, data = "message", list[str]()
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    continue
                if line == "":
                    if data:
                        self._record(name, "\n".join(data))
                    name, data = "message", []
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))

    def _record(self, name: str, data: str) -> None:
        self.events[name] = self.events.get(name, 0) + 1
        if name != "alert":
            return
        try:
            alert = json.loads(data)
        except json.JSONDecodeError:
            log.warning("demo feed: an alert event that is not JSON: %.80s", data)
            return
        self.alerts.append(FeedAlert(time.monotonic(), alert))
