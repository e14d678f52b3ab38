"""Helpers for the alert-service tests: an app over a real store, signed-in httpx clients, a real uvicorn.

Not a test module: the ``test_api_*`` modules, ``test_escalation`` and ``test_cloud_run`` import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
import uvicorn

from cloud.api import create_app
from cloud.config import AccountsConfig, CloudSettings, EscalationConfig, FeedConfig, parse_settings
from cloud.store import Store

ADMIN = ("admin", "admin-password-1")
CLINICIAN = ("dr.osei", "clinician-pass-1")
WAIT_S = 30.0


def fast_settings(**tables: Any) -> CloudSettings:
    """Defaults with a cheap argon2 (tests hash many passwords) and a quick live-feed poll."""
    settings = parse_settings("", env={})
    settings = replace(settings, accounts=AccountsConfig(argon2_time_cost=1, argon2_memory_kib=8),
                       feed=FeedConfig(poll_s=0.05, keepalive_s=15.0),
                       escalation=EscalationConfig(high_s=0.2, medium_s=0.4, low_s=0.6, check_interval_s=0.05))
    return replace(settings, **tables)


@dataclass
class Api:
    """An app over ``store``, with an admin and a clinician account."""

    app: Any
    store: Store
    settings: CloudSettings

    def client(self, token: str | None = None, **kw: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://cloud.test",
                                 headers=headers, **kw)

    async def token(self, user: tuple[str, str]) -> str:
        async with self.client() as c:
            r = await c.post("/api/auth/login", json={"username": user[0], "password": user[1]})
            assert r.status_code == 200, r.text
            return r.json()["token"]

    @contextlib.asynccontextmanager
    async def as_user(self, user: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
        async with self.client(await self.token(user)) as c:
            yield c

    @property
    def rejections(self) -> dict[str, int]:
        return self.app.state.ctx.metrics.rejections


@contextlib.asynccontextmanager
async def make_api(url: str, settings: CloudSettings | None = None, *, users: bool = True) -> AsyncIterator[Api]:
    settings = settings or fast_settings()
    async with Store(url) as store:
        app = create_app(settings, store)
        api = Api(app, store, settings)
        if users:
            accounts = app.state.ctx.accounts
            await accounts.create_user(*ADMIN, "admin")
            await accounts.create_user(*CLINICIAN, "clinician")
        yield api


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run ``app`` under a real uvicorn on a free port of 127.0.0.1; yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), "uvicorn to start")
        if task.done():
            task.result()
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        app.state.ctx.stopping.set()
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)


async def until(cond: Callable[[], object], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``cond`` (sync or async) until truthy; returns its value. No timing assertions: a generous timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = cond()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class SseReader:
    """Parse a text/event-stream response into ``(event, id, data)`` tuples."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = WAIT_S) -> tuple[str, str | None, Any]:
        return await asyncio.wait_for(self._next(), timeout)

    async def until(self, pred: Callable[[str, str | None, Any], bool], timeout: float = WAIT_S
                    ) -> tuple[str, str | None, Any]:
        async def scan() -> tuple[str, str | None, Any]:
            while True:
                ev = await self._next()
                if pred(*ev):
                    return ev
        return await asyncio.wait_for(scan(), timeout)

    async def _next(self) -> tuple[str, str | None, Any]:
        event, ident, data = "message", None, []
        async for line in self._lines:
            if line == "":
                if data:
                    return event, ident, json.loads("\n".join(data))
                event, ident, data = "message", None, []
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                event = value
            elif key == "id":
                ident = value
            elif key == "data":
                data.append(value)
        raise EOFError("the event stream ended")
