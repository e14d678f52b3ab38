"""``ecgstream cloud run``: one cloud process running ingest, the HTTP API and escalation together.

Start-up: create the SQLite folder if needed, run the migrations (``[database] migrate``), open one
:class:`cloud.store.Store`, then start what ``[run]`` asks for, all on one asyncio loop:

- **ingest**: a :class:`cloud.ingest.IngestWorker` in the shared-subscription group ``[broker] group``.
  Without a reachable MQTT 5 broker the worker keeps retrying with backoff; the service logs one clear
  warning saying so (the API keeps serving what is stored) and an info line once it subscribes.
  With ``[registry] auto_register`` (``cloud run --auto-register``) an unknown device is registered
  with its patient instead of refused (:mod:`cloud.ingest.autoregister`).
- **api**: uvicorn serving :func:`cloud.api.create_app` in-process (``[http] host/port``; port 0 picks a
  free one, logged as ``serving HTTP on http://host:port``).
- **escalation**: a :class:`cloud.escalation.Escalator`; safe in every process (one conditional UPDATE
  decides each escalation). With ``[[escalation.channels]]``, also a :class:`cloud.escalation.DeliveryWorker`
  that delivers escalations to webhooks, e-mail and push topics (each delivery claimed by one process);
  a channel whose secret's environment variable is unset is a start-up error.
- **models**: a :class:`cloud.model_worker.ModelWorker` hosting the ``[[model_worker.models]]`` (by
  default the shipped full-precision edge classifier and every shipped heavy model: ECG–text zero-shot,
  stress, prototypes) on the windows behind stored alerts; several
  processes split it with ``[model_worker] partition``.
- **housekeeping**: expired sessions and aged-out login failures are deleted every few minutes.
- **downlink** (with the API): a :class:`cloud.downlink.AckPublisher` on the ``[broker]`` with its own
  account (``[downlink]``: username ``<[broker] username>-downlink``, password from
  ``ECGSTREAM_CLOUD__DOWNLINK__PASSWORD``, client id = that username; without a broker username, client
  id ``<client id>-downlink``; :meth:`cloud.config.CloudSettings.downlink_account`): each
  acknowledgement made through the API is published, QoS 1, to the gateway that raised the episode
  (``ecgstream/v1/gateway/{id}/ack``), which releases its latch. Without a broker the acknowledgement
  is still stored; the publish waits in a queue and is retried (one warning per outage; counted in
  ``/metrics`` as ``ecgstream_cloud_downlink_*_total``).

Several such processes (on one host or many) share the load: they share the database, split the
broker's traffic through the shared subscription, and any of them may serve any client (sessions and
the login limiter live in the database; the live feed polls it).

SIGINT/SIGTERM stop it cleanly: live-feed streams end, uvicorn stops accepting and finishes requests,
the ingest worker and escalator are cancelled (an unacknowledged MQTT message is redelivered by the
broker), the store is closed. :func:`run_service` returns normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from cloud.api import create_app
from cloud.config import CloudSettings, sqlite_path
from cloud.downlink import AckPublisher
from cloud.escalation import DeliveryWorker, Escalator, build_channels
from cloud.ingest import IngestWorker
from cloud.model_worker import ModelWorker, default_model_specs, load_hosted
from cloud.store import Store, upgrade_database
from settings.tls import client_tls_context

log = logging.getLogger("cloud.service")

BROKER_NOTE_AFTER_S = 3.0
HOUSEKEEPING_S = 300.0


@dataclass
class ServiceInfo:
    """What a started service is doing (for callers and tests)."""

    http_url: str | None
    store: Store
    ingest: IngestWorker | None
    escalator: Escalator | None
    app: Any
    downlink: AckPublisher | None = None
    deliveries: DeliveryWorker | None = None


class _InProcessServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGINT/SIGTERM and stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def prepare_database(settings: CloudSettings) -> None:
    """Create the SQLite file's folder and migrate (when configured)."""
    path = sqlite_path(settings.database.url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if settings.database.migrate:
        try:
            await asyncio.to_thread(upgrade_database, settings.database.url)
        except SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise RuntimeError(f"cannot open or migrate the database {_redact(settings.database.url)}: "
                               f"{first[0] if first else type(exc).__name__}") from exc


async def _watch_ingest(worker: IngestWorker, settings: CloudSettings) -> None:
    """One clear warning when no broker answers, one info line when the worker subscribes (each time)."""
    b = settings.broker
    where = f"{b.host}:{b.port}"
    while True:
        try:
            await asyncio.wait_for(worker.subscribed.wait(), BROKER_NOTE_AFTER_S)
        except TimeoutError:
            log.warning(
                "cloud ingest: no MQTT 5 broker is serving at %s (%d connection attempts failed so far); the API "
                "keeps serving stored data and ingest keeps retrying in the background. Start Mosquitto or a "
                "clustered broker there, set [broker] host/port (ECGSTREAM_CLOUD__BROKER__HOST/PORT), or turn "
                "ingest off with [run] ingest = false. (An MQTT 3.1.1-only broker, such as the demo's embedded "
                "one, cannot serve the shared subscription.)", where, worker.counters.connection_errors)
            await worker.subscribed.wait()
        log.info("cloud ingest: subscribed at %s as %s in group %r", where, worker.client_id, worker.group)
        while worker.subscribed.is_set():
            await asyncio.sleep(0.5)
        log.warning("cloud ingest: lost the broker at %s; reconnecting", where)


async def _housekeeping(store: Store, settings: CloudSettings) -> None:
    window_us = int(settings.accounts.login_window_s * 1e6)
    while True:
        try:
            n = await store.purge_expired(login_failures_before_us=store.clock() - window_us)
            if n:
                log.info("housekeeping: deleted %d expired sessions and old login failures", n)
        except Exception as exc:  # noqa: BLE001 - retry next time
            log.warning("housekeeping failed: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(HOUSEKEEPING_S)


async def run_service(settings: CloudSettings, *, stop: asyncio.Event | None = None, handle_signals: bool = True,
                      on_ready: Callable[[ServiceInfo], None] | None = None) -> None:
    """Run until ``stop`` is set or SIGINT/SIGTERM arrives (when ``handle_signals``)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
    try:
        await prepare_database(settings)
        async with Store(settings.database.url) as store:
            await _serve(settings, store, stop, on_ready)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _serve(settings: CloudSettings, store: Store, stop: asyncio.Event,
                 on_ready: Callable[[ServiceInfo], None] | None) -> None:
    background: dict[str, asyncio.Task[Any]] = {}
    channels = build_channels(settings.escalation.channels) if settings.run.escalation else []  # secrets: fail early
    ingest: IngestWorker | None = None
    escalator: Escalator | None = None
    if settings.run.ingest:
        b = settings.broker
        ingest = IngestWorker(store, hostname=b.host, port=b.port, group=b.group, client_id=settings.client_id(),
                              username=b.username, password=b.password, tls_context=client_tls_context(b),
                              enforce_registry=b.enforce_registry, session_expiry_s=b.session_expiry_s,
                              auto_register=settings.registry.auto_register, shared=b.shared_subscription)
        if settings.registry.auto_register:
            log.warning("cloud ingest: auto-register is on: an unknown device is registered with the patient its "
                        "data names (audited as auto_register) instead of refused%s",
                        "" if b.enforce_registry else " (no effect: [broker] enforce_registry is off)")
        background["ingest"] = asyncio.create_task(ingest.run(), name="cloud-ingest")
        background["ingest-watch"] = asyncio.create_task(_watch_ingest(ingest, settings), name="cloud-ingest-watch")
    deliveries: DeliveryWorker | None = None
    if settings.run.escalation:
        escalator = Escalator(store, settings.escalation)
        background["escalation"] = asyncio.create_task(escalator.run(), name="cloud-escalation")
        if channels:
            deliveries = DeliveryWorker(store, settings.escalation, channels)
            background["deliveries"] = asyncio.create_task(deliveries.run(), name="cloud-deliveries")
            log.info("escalation delivery: channels %s", ", ".join(
                f"{c.name} ({c.kind} to {c.target})" for c in settings.escalation.channels))
    models = _model_worker(store, settings) if settings.run.models else None
    if models is not None:
        background["models"] = asyncio.create_task(models.run(), name="cloud-models")
    background["housekeeping"] = asyncio.create_task(_housekeeping(store, settings), name="cloud-housekeeping")

    app = server = server_task = None
    url = None
    downlink: AckPublisher | None = None
    if settings.run.api and not settings.broker.embedded:
        b = settings.broker
        account = settings.downlink_account()        # its own broker account, not the ingest worker's
        downlink = AckPublisher(hostname=b.host, port=b.port, client_id=account.client_id,
                                username=account.username, password=account.password,
                                tls_context=client_tls_context(b))
        background["downlink"] = asyncio.create_task(downlink.run(), name="cloud-downlink")
    if settings.run.api:
        app = create_app(settings, store, ingest=ingest)
        if downlink is not None:
            app.state.ctx.extras["downlink"] = downlink        # the ack route hands it each acknowledgement
            app.state.ctx.metrics.add_source("downlink", downlink.counters.as_dict)
        if escalator is not None:
            app.state.ctx.metrics.add_source("escalation", escalator.counters.as_dict)
        if deliveries is not None:
            app.state.ctx.metrics.add_source("deliveries", deliveries.counters.as_dict)
        if models is not None:
            app.state.ctx.metrics.add_source("models", models.counters.as_dict)
        try:
            sock = _bind(settings.http.host, settings.http.port)
        except OSError:
            await _cancel(background)
            raise
        proxies = settings.http.forwarded_allow_ips
        server = _InProcessServer(uvicorn.Config(
            app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=5,
            proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None))
        server_task = asyncio.create_task(server.serve(sockets=[sock]), name="cloud-http")
        while not server.started and not server_task.done():
            await asyncio.sleep(0.02)
        if server_task.done():
            await _cancel(background)
            exc = server_task.exception()
            raise OSError(f"the HTTP server could not start on {settings.http.host}:{settings.http.port}"
                          + (f": {exc}" if exc else ""))
        host, port = sock.getsockname()[:2]
        url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        log.info("serving HTTP on %s (API under /api, dashboard at /)", url)
    parts = [p for p, on in (("ingest", settings.run.ingest), ("api", settings.run.api),
                             ("escalation", settings.run.escalation), ("models", models is not None)) if on]
    log.info("ecgstream cloud running: %s; database %s", ", ".join(parts) or "nothing",
                _redact(settings.database.url))
    if on_ready is not None:
        on_ready(ServiceInfo(http_url=url, store=store, ingest=ingest, escalator=escalator, app=app,
                             downlink=downlink, deliveries=deliveries))

    watched = [t for t in (server_task, background.get("ingest"), background.get("escalation"),
                           background.get("deliveries")) if t is not None]
    stopper = asyncio.create_task(stop.wait())
    problems: list[str] = []
    try:
        done, _ = await asyncio.wait([stopper, *watched], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is stopper:
                continue
            exc = None if t.cancelled() else t.exception()
            problems.append(f"{t.get_name()} stopped unexpectedly" + (f": {exc!r}" if exc else ""))
            log.error("%s", problems[-1])
    finally:
        stopper.cancel()
        log.info("ecgstream cloud stopping")
        if app is not None:
            app.state.ctx.stopping.set()  # live-feed streams end, so uvicorn can finish
        if server is not None and server_task is not None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(server_task), 10.0)
            if not server_task.done():
                server.force_exit = True
                await asyncio.wait([server_task], timeout=5.0)
        await _cancel(background)
        log.info("ecgstream cloud stopped")
    if problems:
        raise RuntimeError("; ".join(problems))


def _model_worker(store: Store, settings: CloudSettings) -> ModelWorker | None:
    """The model worker as configured; with no model configured, the shipped FP32 classifier and every shipped
    heavy model (:func:`cloud.model_worker.default_model_specs`) whose file exists; None when there is nothing
    to host. A model that cannot be loaded is a start-up error."""
    mw = settings.model_worker
    specs = mw.models
    if specs is None:
        specs = default_model_specs()
        if not specs:
            log.info("model worker: no [[model_worker.models]] and no shipped model files; not hosting models")
            return None
    if not specs:
        return None
    hosted = [load_hosted(spec) for spec in specs]
    return ModelWorker(store, hosted, poll_s=mw.poll_s, max_batch=mw.max_batch, window_wait_s=mw.window_wait_s,
                       partition=mw.partition_tuple())


def _bind(host: str, port: int) -> socket.socket:
    """The HTTP listening socket, bound here so that a taken port is one clear error (and port 0 works)."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise OSError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc} (set [http] port, or "
                      f"ECGSTREAM_CLOUD__HTTP__PORT)") from None
    return sock


async def _cancel(tasks: dict[str, asyncio.Task[Any]]) -> None:
    for t in tasks.values():
        t.cancel()
    for t in tasks.values():
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


__all__ = ["ServiceInfo", "prepare_database", "run_service"]
