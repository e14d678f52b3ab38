"""The edge gateway as one object: config → outbox, agent, exporter, uplink and ingest; a clean stop.

:class:`Gateway` is what ``ecgstream edge run``, the demo (``ecgstream demo``) and the edge benches
run. Built from an :class:`~edge.config.schema.EdgeConfig`, with what differs between them injected:

* **sources**: the MQTT ingest broker (``ingest``, used when ``[ingest.mqtt]`` is enabled), the BLE
  backend factory for the ``[[ingest.ble]]`` devices, and in-process ``feeds`` (coroutine functions
  given the agent as a :class:`~edge.ingest.mqtt.PayloadSink`, e.g. the demo's loopback hub);
* **clock** (default :func:`time.time`): the agent's gateway clock (arrival times, ticks) and that of
  BLE arrivals and ``SET_TIME``; a run faster than real time passes a clock at its pace;
* **sinks**: ``sink`` wraps the outbox sink (the demo's ``AlertTap`` logs each alert on its screen),
  ``on_ready`` sees the agent once everything runs;
* **mode**: ``"async"`` (live: inference micro-batched on a worker thread, :meth:`Gateway.run_until`
  ticks on the loop) or ``"sync"`` (stream time: the driver calls :meth:`Gateway.tick`).

**Live display stream.** With ``[uplink] live`` on (the default; :class:`~edge.uplink.live.LiveSettings`,
or the ``live=`` argument), the uplink also publishes each patient's ECG in ~1 s chunks and every
patient's vitals each second at QoS 0 (:mod:`edge.uplink.live`), never through the outbox; ``gw.live``
is the feed.

``async with Gateway(config, ...) as gw`` opens, in order, the metrics exporter, the outbox, the agent
(its inference), the uplink with the ack downlink (:class:`~edge.downlink.DownlinkListener`, fed by
the uplink's connection: staff acknowledgements from the cloud release latched alarms), the MQTT ingest, the BLE ingest and the feeds; leaving it stops them in
today's clean order: BLE ingest first (nothing more comes in), then the MQTT ingest and the feeds,
inference drained and its last output flushed to the outbox, the uplink stopped, the outbox closed
and the status file removed. What opened before a failure is closed again. Every wait of the stop is
bounded (``Gateway.STOP_STEPS_S``): a step that runs out of time is logged (``stop_step_cut_short``)
and left behind, so a stop takes a few seconds in any state.

**BLE.** The ``[[ingest.ble]]`` devices are kept connected by one :class:`~edge.ble.BleIngest`: each
notification goes to :meth:`EdgeAgent.feed` (kind ``frame`` or ``pmd``, transport ``ble``), each link
drop to :meth:`EdgeAgent.link_down`, and the device→patient map comes from the same list. Backends are
made by ``ble_backend_factory`` (default :func:`edge.ble.default_backend`: bleak on an adapter, bumble
on a transport spec such as ``usb:0``); a bumble central on an *emulated* radio exists only in a
process that also runs the simulator, so tests and ``ecgstream/`` pass a factory for it, which keeps
``edge`` free of ``firmware_sim``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Literal

from edge.agent import AgentConfig, EdgeAgent, OutboxSink, Sink
from edge.ble import BleError, BleIngest, default_backend
from edge.ble.manager import BackendFactory
from edge.config.schema import EdgeConfig
from edge.downlink import DownlinkListener
from edge.inference import InferencePipeline, select_backend
from edge.inference.classifier_stage import ClassifierStage
from edge.ingest.mqtt import MqttIngest, PayloadSink
from edge.observability.exporter import Exporter, start_exporter
from edge.observability.logging import log_event
from edge.observability.metrics import EdgeMetrics
from edge.observability.status import HealthReport, remove_status, write_status
from edge.persistence import SessionPersistence
from edge.uplink import LiveFeed, LiveSettings, Outbox, Uplink
from settings.tls import client_tls_context

log = logging.getLogger(__name__)

Feed = Callable[[PayloadSink], Awaitable[None]]
"""An in-process source: given the agent, hands it payloads until cancelled (or until it ends)."""
SinkWrapper = Callable[[OutboxSink], Sink]
"""Puts a sink in front of the outbox sink (it must pass everything on)."""
Mode = Literal["async", "sync"]


@dataclass(frozen=True)
class Endpoint:
    """A broker as actually reached (the embedded one resolved to its host and port)."""

    host: str
    port: int
    mqtt5: bool = True
    """Whether the broker speaks MQTT 5 (False: the embedded MQTT 3.1.1 broker; the uplink, and with it
    the ack downlink, then uses MQTT 3.1.1 at once instead of finding out by a timed-out MQTT 5 CONNECT)."""


class GatewayError(RuntimeError):
    """The gateway cannot start; the message is one line naming the config key to change."""


def open_pipeline(config: EdgeConfig) -> InferencePipeline | None:
    """The reconstruction pipeline (with the classifier as its second stage when that file exists), or
    None (rules only) when the reconstruction model is missing."""
    p = config.processing
    if not Path(p.reconstruction_model).is_file():
        log_event(log, "rules_only", level=logging.WARNING, reason=f"no model at {p.reconstruction_model}")
        return None
    backend = select_backend(p.backend, p.reconstruction_model, max_batch=p.max_batch)
    log_event(log, "inference_backend", backend=backend.name, model=str(p.reconstruction_model))
    stage = None
    if Path(p.classifier_model).is_file():
        stage = ClassifierStage(select_backend(p.backend, p.classifier_model, max_batch=p.max_batch))
        log_event(log, "classifier", backend=stage.backend.name, model=str(p.classifier_model), version=stage.version)
    else:
        log_event(log, "no_classifier", level=logging.WARNING, reason=f"no model at {p.classifier_model}")
    return InferencePipeline(backend, second_stage=stage, max_batch=p.max_batch, deadline_ms=p.latency_deadline_ms,
                             calibration_dir=p.calibration_dir)


def open_ble_ingest(config: EdgeConfig, agent: EdgeAgent, backend_factory: BackendFactory = default_backend) -> BleIngest:
    """A :class:`~edge.ble.BleIngest` for the configured BLE devices, feeding ``agent`` (not started).

    Notifications arrive stamped with the agent's clock; a link drop marks the device's stream down
    (:meth:`EdgeAgent.link_down`). Also kept as ``agent.ble`` for status and tests.
    """

    def on_payload(device_id: str, data: bytes, kind: str, arrival_s: float) -> None:
        agent.feed(device_id, data, kind, arrival_s, transport="ble")

    def on_disconnect(device_id: str, error: BleError) -> None:
        agent.link_down(device_id, str(error))

    ble = BleIngest(config.ingest.ble, on_payload, on_disconnect=on_disconnect, backend_factory=backend_factory,
                    clock=agent.clock, gateway_time_us=lambda: int(round(agent.clock() * 1e6)))
    agent.ble = ble
    return ble


class Gateway:
    """One edge gateway (module docstring). Use as ``async with``; not reusable once left."""

    def __init__(
        self, config: EdgeConfig, *, ingest: Endpoint | None = None, uplink: Endpoint | None = None,
        feeds: Sequence[Feed] = (), ble_backend_factory: BackendFactory | None = None,
        clock: Callable[[], float] = time.time, mode: Mode = "async", sink: SinkWrapper | None = None,
        on_ready: Callable[[EdgeAgent], None] | None = None, patients: Mapping[str, str] | None = None,
        version: str = "", uplink_poll_s: float = 0.5, uplink_heartbeat_s: float | None = 30.0,
        keep_status: bool = False, live: LiveSettings | None = None,
    ) -> None:
        """``patients`` adds device → patient ids to those of the BLE list (devices on other media);
        ``uplink_poll_s`` and ``uplink_heartbeat_s`` are the uplink's; ``keep_status`` leaves the last
        status file behind on exit (the demo's, for the user to read); ``live`` the display stream's
        settings (default: from ``[uplink]``, :meth:`LiveSettings.from_uplink`)."""
        self.config = config
        self.ingest_endpoint, self.uplink_endpoint = ingest, uplink
        self.feeds = tuple(feeds)
        self.ble_backend_factory = ble_backend_factory or default_backend
        self.clock, self.mode, self.version = clock, mode, version
        self._wrap, self._on_ready = sink, on_ready
        self.patients = dict(patients or {})
        self.uplink_poll_s, self.uplink_heartbeat_s = uplink_poll_s, uplink_heartbeat_s
        self.keep_status = keep_status
        self.metrics = EdgeMetrics(config.gateway_id, version=version)
        self.exporter: Exporter | None = None
        self.outbox_sink: OutboxSink | None = None
        self.persistence: SessionPersistence | None = None
        """Saves and restores sessions' episodes and window grids with the outbox (:mod:`edge.persistence`)."""
        self.uplink: Uplink | None = None
        self.live_settings = live if live is not None else LiveSettings.from_uplink(config.uplink)
        self.live: LiveFeed | None = None
        """The live display feed the uplink publishes (when the uplink runs and live is on)."""
        self.downlink: DownlinkListener | None = None
        self.mqtt_ingest: MqttIngest | None = None
        self.ble: BleIngest | None = None
        self._outbox: Outbox | None = None
        self._agent: EdgeAgent | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.stop_cut_short: list[str] = []
        """Stop steps that ran out of time (logged as ``stop_step_cut_short``)."""
        self._beat = time.monotonic()           # the event loop's last heartbeat (``health``)
        self._next_status = -float("inf")

    @property
    def agent(self) -> EdgeAgent:
        """The running agent (after ``__aenter__``; still there, stopped, after ``__aexit__``)."""
        if self._agent is None:
            raise RuntimeError("the gateway is not started: use 'async with Gateway(...)'")
        return self._agent

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            raise RuntimeError("the gateway is not started: use 'async with Gateway(...)'")
        return self._outbox

    # -- start and stop ------------------------------------------------------------------------------

    async def __aenter__(self) -> Gateway:
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stop()

    async def _start(self) -> None:
        config = self.config
        self.exporter = self._start_exporter()
        self._outbox = Outbox(config.uplink.outbox_path, max_bytes=int(config.uplink.disk_budget_mb * 1024 * 1024))
        self.outbox_sink = OutboxSink(self._outbox)
        self.metrics.watch_uplink(self._outbox, lambda: self.uplink)   # outbox and uplink series, read at each scrape
        agent_config = AgentConfig.from_edge_config(config)
        if self.patients:
            agent_config = replace(agent_config, patients={**agent_config.patients, **self.patients})
        self._agent = agent = EdgeAgent(
            agent_config, self._wrap(self.outbox_sink) if self._wrap is not None else self.outbox_sink,
            pipeline=open_pipeline(config), metrics=self.metrics, mode=self.mode, version=self.version,
            clock=self.clock)
        # restart safety: open episodes and window grids are saved with the outbox and restored per device
        self.persistence = persistence = SessionPersistence(self._outbox, max_age_s=config.uplink.restore_max_age_s)
        self.outbox_sink.states = lambda: persistence.pending(agent.sessions.values())
        agent.restore_session = persistence.restore
        await agent.start()
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="loop-heartbeat"))
        up_ep, in_ep = self.uplink_endpoint, self.ingest_endpoint
        if up_ep is not None:
            up = config.uplink
            # staff acknowledgements from the cloud release latched alarms: the uplink subscribes to the ack
            # topic on its own connection (one broker account, client id = username) and hands them over
            self.downlink = DownlinkListener(agent, gateway_id=config.gateway_id, registry=self.metrics.registry)
            if self.live_settings.enabled:
                self.live = LiveFeed(agent, self.live_settings)
            self.uplink = Uplink(self._outbox, hostname=up_ep.host, port=up_ep.port,
                                 gateway_id=up.client_id or config.gateway_id, username=up.username,
                                 password=up.password, tls_context=client_tls_context(up), poll_s=self.uplink_poll_s,
                                 heartbeat_s=self.uplink_heartbeat_s, software=self.version,
                                 device_statuses=agent.device_statuses, qos=up.qos, receipts=up.receipts,
                                 receipt_timeout_s=up.receipt_timeout_s, receipt_timeout_max_s=max(600.0, up.receipt_timeout_s),
                                 refusal_backoff_s=up.refusal_backoff_s, refusal_backoff_max_s=max(300.0, up.refusal_backoff_s),
                                 session_expiry_s=up.session_expiry_s, on_refused=agent.uplink_refused,
                                 on_accepted=agent.uplink_accepted, mqtt5=up_ep.mqtt5, downlink=self.downlink,
                                 live=self.live)
            self.outbox_sink.on_stored = self.uplink.notify     # alerts leave as soon as they are stored
            self._tasks.append(asyncio.create_task(self.uplink.run(), name="uplink"))
        if in_ep is not None and config.ingest.mqtt.enabled:
            mqtt = config.ingest.mqtt
            self.mqtt_ingest = MqttIngest(agent, hostname=in_ep.host, port=in_ep.port,
                                          client_id=mqtt.client_id or f"{config.gateway_id}-ingest",
                                          username=mqtt.username, password=mqtt.password,
                                          tls_context=client_tls_context(mqtt))
            self._tasks.append(asyncio.create_task(self.mqtt_ingest.run(), name="mqtt-ingest"))
        if config.ingest.ble:
            self.ble = open_ble_ingest(config, agent, self.ble_backend_factory)
            await self.ble.start()
        for i, feed in enumerate(self.feeds):
            self._tasks.append(asyncio.create_task(_run_feed(feed, agent), name=f"feed-{i}"))
        log_event(log, "agent_started", gateway_id=config.gateway_id,
                  ingest=None if self.mqtt_ingest is None or in_ep is None else f"{in_ep.host}:{in_ep.port}",
                  uplink=None if up_ep is None else f"{up_ep.host}:{up_ep.port}",
                  ble_devices=len(config.ingest.ble), feeds=len(self.feeds), mode=self.mode)
        if self._on_ready is not None:
            self._on_ready(agent)

    def _start_exporter(self) -> Exporter | None:
        obs = self.config.observability
        try:
            return start_exporter(self.metrics, obs.metrics_port, obs.metrics_host,
                                  status=lambda: None if self._agent is None else self._agent.status(),
                                  health=self.health)
        except OSError as exc:
            reason = "the port is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise GatewayError(
                f"observability.metrics_port = {obs.metrics_port}: the metrics exporter cannot listen on "
                f"{obs.metrics_host}:{obs.metrics_port} ({reason}); set observability.metrics_port to a free port, "
                "or 0 for no exporter") from None

    HEALTH_INGEST_DOWN_S = 30.0
    """``/health`` turns 503 when the MQTT ingest has been without its broker longer than this (s)."""
    HEALTH_LOOP_LAG_S = 5.0
    """``/health`` turns 503 when the event loop has not run its heartbeat for this long (s)."""
    _BEAT_S = 0.5

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(self._BEAT_S)

    def health(self, now: float | None = None) -> HealthReport:
        """Whether ingest is alive (the exporter's ``/health``; callable from any thread): unhealthy when no
        ingest runs (the MQTT ingest task ended, no BLE devices and no feed left), the MQTT ingest has been
        without its broker over ``HEALTH_INGEST_DOWN_S``, or the event loop lags over ``HEALTH_LOOP_LAG_S``."""
        now = time.monotonic() if now is None else now
        problems: list[str] = []
        tasks = list(self._tasks)
        lag = max(0.0, now - self._beat)
        running = [t.get_name() for t in tasks if not t.done() and (t.get_name() == "mqtt-ingest"
                                                                    or t.get_name().startswith("feed-"))]
        if self.ble is not None and self.config.ingest.ble:
            running.append("ble")
        checks: dict[str, object] = {"started": self._agent is not None, "ingest_running": running,
                                     "loop_lag_s": round(lag, 3)}
        if self._agent is None or not tasks:
            problems.append("the gateway is not running")
        if lag > self.HEALTH_LOOP_LAG_S:
            problems.append(f"event loop lagging: no heartbeat for {lag:.1f} s")
        if any(t.get_name() == "mqtt-ingest" and t.done() for t in tasks):
            problems.append("the MQTT ingest task has ended")
        elif not running and tasks:
            problems.append("no ingest is running")
        if self.mqtt_ingest is not None:
            down = self.mqtt_ingest.down_s(now)
            checks["mqtt_ingest_down_s"] = round(down, 3)
            if down > self.HEALTH_INGEST_DOWN_S:
                problems.append(f"MQTT ingest without its broker for {down:.0f} s")
        return HealthReport(not problems, tuple(problems), checks)

    STOP_STEPS_S = {"ble": 0.8, "ingest": 0.8, "drain": 1.5, "uplink": 0.5}
    """Longest wait of each stop step (s): together with the exporter's and outbox's close, a stop takes at
    most ~4 s in any state (``ecgstream edge run`` must exit within 5 s of SIGTERM)."""

    async def _bounded(self, step: str, aw: Awaitable[object], timeout_s: float) -> bool:
        """Await ``aw`` for at most ``timeout_s``; a step cut short (left cancelled, not awaited further: a
        task that ignores cancellation cannot hold the stop) or failing is logged, never raised."""
        task = asyncio.ensure_future(aw)
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            task.cancel()
            self.stop_cut_short.append(step)
            log_event(log, "stop_step_cut_short", level=logging.WARNING, step=step, timeout_s=timeout_s)
            return False
        if not task.cancelled() and task.exception() is not None:
            log.error("stop_step_failed step=%s", step, exc_info=task.exception())
            return False
        return True

    async def _stop(self) -> None:
        """Today's clean stop order (module docstring), every wait bounded (``STOP_STEPS_S``); safe after a
        partial start."""
        steps = self.STOP_STEPS_S
        try:
            if self.ble is not None:  # BLE ingest first: nothing more comes in once we start draining
                await self._bounded("ble_disconnect", self.ble.stop(), steps["ble"])
            inputs = [t for t in self._tasks if t.get_name() != "uplink"]   # feeds, ingest, downlink
            for t in inputs:
                t.cancel()
            await self._bounded("ingest_stop", asyncio.wait(inputs) if inputs else asyncio.sleep(0), steps["ingest"])
            if self._agent is not None:          # the agent's last output stored before the uplink goes
                await self._bounded("inference_drain", self._agent.close(), steps["drain"])
            rest = [t for t in self._tasks if t not in inputs]
            for t in rest:
                t.cancel()
            await self._bounded("uplink_stop", asyncio.wait(rest) if rest else asyncio.sleep(0), steps["uplink"])
            self._tasks.clear()
        finally:
            if self.exporter is not None:
                self.exporter.close()
                self.exporter = None
            if self.outbox_sink is not None:
                self.outbox_sink.close()          # the window-encoding threads
            if self._outbox is not None:
                self._outbox.close()
        if self._agent is None:
            return                  # it never started: a status file there is not ours
        if not self.keep_status:
            remove_status(self.config.observability.status_file)
        log_event(log, "agent_stopped", gateway_id=self.config.gateway_id, alerts=self._agent.counters.alerts,
                  windows=self._agent.counters.windows_done)

    # -- running -------------------------------------------------------------------------------------

    async def ready(self, timeout_s: float = 10.0) -> None:
        """Wait until the MQTT ingest has subscribed (at once without one); ConnectionError after ``timeout_s``."""
        if self.mqtt_ingest is None or self.ingest_endpoint is None:
            return
        try:
            await asyncio.wait_for(self.mqtt_ingest.subscribed.wait(), timeout_s)
        except TimeoutError:
            ep = self.ingest_endpoint
            raise ConnectionError(f"the edge ingest could not subscribe at {ep.host}:{ep.port}") from None

    async def run_until(self, stop: asyncio.Event, *, tick_s: float = 0.5) -> None:
        """Tick every ``tick_s`` (wall seconds) and write the status file every ``status_interval_s`` until
        ``stop`` is set (live mode: what ``ecgstream edge run`` does)."""
        obs = self.config.observability
        loop = asyncio.get_running_loop()
        next_status = 0.0
        while not stop.is_set():
            self.agent.tick()
            if loop.time() >= next_status:      # bounded: a stuck disk must not keep the loop from stopping
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.to_thread(write_status, obs.status_file, self.agent.status()),
                                           max(obs.status_interval_s, 1.0))
                next_status = loop.time() + obs.status_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick_s)

    def tick(self, now_s: float | None = None) -> None:
        """One tick at gateway time ``now_s`` (default: the clock), and the status file when it is due by
        that time (stream-time stepping: the driver calls this)."""
        now = self.clock() if now_s is None else now_s
        self.agent.tick(now)
        if now >= self._next_status:
            self.write_status(now)
            self._next_status = now + self.config.observability.status_interval_s

    def write_status(self, now_s: float | None = None) -> None:
        """Write the status file now."""
        write_status(self.config.observability.status_file, self.agent.status(now_s))

    async def drain(self, *, flush_sessions: bool = False) -> None:
        """Inference drained and its output in the outbox; ``flush_sessions``: the streams ended, so
        everything they hold is analysed too (a replay's or the demo's end)."""
        await self.agent.close(flush_sessions=flush_sessions)

    async def delivered(self, timeout_s: float = 10.0) -> bool:
        """Wait until the uplink has emptied the outbox (at most ``timeout_s``); whether it is empty."""
        deadline = time.monotonic() + timeout_s
        while self.outbox.total_depth and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return not self.outbox.total_depth


async def _run_feed(feed: Feed, sink: PayloadSink) -> None:
    """Run one feed; its failure is logged, not raised into the gateway (the other sources go on)."""
    try:
        await feed(sink)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - one source's failure must not stop the others
        log.exception("feed_failed")
