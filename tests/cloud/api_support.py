"""Helpers for the alert-service tests: an app over a real store, signed-in httpx clients, a real uvicorn,
and the contract checks.

Contracts: :func:`assert_matches_openapi` checks a real answer against what the app's own OpenAPI
document declares for that operation and status (media type, and the JSON body against the declared
schema with ``jsonschema``, resolving ``$ref`` into the document's components). The clients
:meth:`Api.client` makes run it on **every** answer they get (``check_contract=False`` opts out), so
each API test also proves its answers match the document. :func:`assert_valid_fhir` validates a FHIR
resource (and each resource of a Bundle) against the official R4B JSON schema vendored in
``cloud/interop/schema``.

Not a test module: the ``test_api_*`` modules, ``test_escalation`` and ``test_cloud_run`` import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import uvicorn

import cloud.interop
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

    def client(self, token: str | None = None, *, check_contract: bool = True, **kw: Any) -> httpx.AsyncClient:
        """A client of the app; with ``check_contract`` every answer is checked against the OpenAPI
        document (:func:`assert_matches_openapi`)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if check_contract:
            hooks = kw.pop("event_hooks", {}) or {}
            hooks = {**hooks, "response": [*hooks.get("response", []), self._check_contract]}
            kw["event_hooks"] = hooks
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://cloud.test",
                                 headers=headers, **kw)

    async def _check_contract(self, response: httpx.Response) -> None:
        if response.headers.get("content-type", "").startswith(EVENT_STREAM):
            check_media_type(self.app, response)  # a live stream: its body never ends
            return
        await response.aread()
        assert_matches_openapi(self.app, response)

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
        event, ident, data = "message", None, list[str]()
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


# -- contracts: OpenAPI ----------------------------------------------------------------------------

EVENT_STREAM = "text/event-stream"
_JSON_TYPES = ("application/json", "application/fhir+json")


def _operation(app: Any, response: httpx.Response) -> tuple[str, dict[str, Any]] | None:
    """The documented ``(path template, operation)`` the request went to, or None (undocumented route)."""
    doc = app.openapi()
    method = response.request.method.lower()
    path = response.request.url.path
    for template, operations in doc["paths"].items():
        pattern = "^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method in operations:
            return template, operations[method]
    return None


def _declared(app: Any, response: httpx.Response) -> tuple[str, dict[str, Any]] | None:
    found = _operation(app, response)
    if found is None:
        return None
    template, operation = found
    what = f"{response.request.method} {template}"
    declared = operation["responses"].get(str(response.status_code))
    assert declared is not None, (f"{what} answered {response.status_code}, which its OpenAPI operation does not "
                                  f"declare ({sorted(operation['responses'])}): {response.text[:300]}")
    return what, declared


def check_media_type(app: Any, response: httpx.Response) -> dict[str, Any] | None:
    """Assert the answer's media type is one its operation declares for that status; the media entry."""
    found = _declared(app, response)
    if found is None:
        return None
    what, declared = found
    content = declared.get("content") or {}
    ctype = response.headers.get("content-type", "").split(";")[0].strip()
    if not content:
        assert not response.content, f"{what} {response.status_code}: declared without a body, got {ctype}"
        return None
    media = next((m for k, m in content.items() if k.split(";")[0].strip() == ctype), None)
    assert media is not None, f"{what} {response.status_code} answered {ctype!r}; declared {sorted(content)}"
    return media


def assert_matches_openapi(app: Any, response: httpx.Response) -> Any:
    """Check a real answer against the app's OpenAPI document: the status is declared for the
    operation, the media type is the declared one, and a JSON body validates against the declared
    schema (``$ref`` resolved into ``components``). Returns the parsed body (None for other media).
    Answers of undocumented routes (the dashboard, static files) are not checked."""
    media = check_media_type(app, response)
    if media is None:
        return None
    ctype = response.headers.get("content-type", "").split(";")[0].strip()
    if ctype not in _JSON_TYPES:
        assert isinstance(media.get("schema", {}).get("type", "string"), str)
        return None
    body = response.json()
    schema = {**media.get("schema", {}), "components": app.openapi().get("components", {})}
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(body), key=lambda e: list(e.path))
    where = f"{response.request.method} {response.request.url.path} {response.status_code}"
    assert not errors, f"{where}: the body does not match its declared schema:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.path)) or '(root)'}: {e.message[:300]}" for e in errors[:10])
    return body


# -- contracts: FHIR -------------------------------------------------------------------------------

FHIR_SCHEMA = Path(cloud.interop.__file__).parent / "schema" / "fhir.r4b.schema.json.gz"
"""The official FHIR R4B JSON schema (hl7.fhir.r4b.core 4.3.0, package/openapi/fhir.schema.json)."""


@functools.cache
def _fhir_definitions() -> dict[str, Any]:
    return dict(json.loads(gzip.decompress(FHIR_SCHEMA.read_bytes()))["definitions"])


@functools.cache
def _fhir_validator(resource_type: str) -> jsonschema.Draft6Validator:
    definitions = _fhir_definitions()
    assert resource_type in definitions, f"{resource_type!r} is not an R4B resource type"
    return jsonschema.Draft6Validator({"$ref": f"#/definitions/{resource_type}", "definitions": definitions})


def fhir_schema_errors(resource: dict[str, Any]) -> list[str]:
    """What the official R4B schema finds wrong with ``resource`` (and each resource of a Bundle)."""
    kind = resource.get("resourceType")
    if not isinstance(kind, str):
        return ["no resourceType"]
    found = [f"{kind} at {'/'.join(map(str, e.path)) or '(root)'}: {e.message[:300]}"
             for e in _fhir_validator(kind).iter_errors(resource)]
    if kind == "Bundle":
        for i, entry in enumerate(resource.get("entry", [])):
            found += [f"entry {i}: {msg}" for msg in fhir_schema_errors(entry.get("resource", {}))]
    return found


def assert_valid_fhir(resource: dict[str, Any]) -> dict[str, Any]:
    """Assert ``resource`` is valid against the official FHIR R4B JSON schema; returns it."""
    errors = fhir_schema_errors(resource)
    assert not errors, "not valid FHIR R4B (official JSON schema):\n" + "\n".join(errors[:10])
    return resource
