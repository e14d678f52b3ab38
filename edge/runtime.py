"""The running gateway: config → logging, metrics, status, agent, MQTT and BLE ingest, uplink; clean stop.

:func:`run_gateway` is what ``ecgstream edge run`` runs once it knows where the brokers are (the
command starts the embedded broker when a host is ``"embedded"``: that broker lives in
``firmware_sim``, which ``edge`` may not import). It runs until ``stop`` is set, then stops the
ingest, drains inference, flushes the outbox, stops the uplink, closes the outbox and removes the
status file.

**BLE.** The ``[[ingest.ble]]`` devices are kept connected by one :class:`~edge.ble.BleIngest`: each
notification goes to :meth:`EdgeAgent.feed` (kind ``frame`` or ``pmd``, transport ``ble``), each link
drop to :meth:`EdgeAgent.link_down`, and the device→patient map comes from the same list. Backends are
made by ``ble_backend_factory`` (default :func:`edge.ble.default_backend`: bleak on an adapter, bumble
on a transport spec such as ``usb:0``); a bumble central on an *emulated* radio exists only in a
process that also runs the simulator, so tests and ``ecgstream/`` pass a factory for it, which keeps
``edge`` free of ``firmware_sim``.

**Clock.** ``clock`` (default :func:`time.time`) is the gateway clock of the agent (arrival times,
ticks) and of BLE arrivals and ``SET_TIME``; a test running simulated devices faster than real time
passes a clock running at the same pace, so device and gateway clocks agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.agent import AgentConfig, EdgeAgent, OutboxSink
from edge.ble import BleError, BleIngest, default_backend
from edge.ble.manager import BackendFactory
from edge.config.schema import BrokerConfig, EdgeConfig
from edge.inference import InferencePipeline, select_backend
from edge.inference.classifier_stage import ClassifierStage
from edge.ingest.mqtt import MqttIngest
from edge.observability.exporter import start_exporter
from edge.observability.logging import log_event
from edge.observability.metrics import EdgeMetrics
from edge.observability.status import remove_status, write_status
from edge.uplink import Outbox, Uplink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """A broker as actually reached (the embedded one resolved to its host and port)."""

    host: str
    port: int


def tls_context(broker: BrokerConfig) -> ssl.SSLContext | None:
    if not broker.tls:
        return None
    return ssl.create_default_context(cafile=str(broker.cafile) if broker.cafile else None)


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


async def run_gateway(
    config: EdgeConfig, *, ingest: Endpoint | None, uplink: Endpoint | None, stop: asyncio.Event,
    version: str = "", tick_s: float = 0.5, on_ready: Callable[[EdgeAgent], None] | None = None,
    ble_backend_factory: BackendFactory | None = None, clock: Callable[[], float] = time.time,
) -> EdgeAgent:
    """Run the agent until ``stop`` is set; returns it (stopped) for inspection (module docstring)."""
    obs = config.observability
    metrics = EdgeMetrics(config.gateway_id, version=version)
    outbox = Outbox(config.uplink.outbox_path, max_bytes=int(config.uplink.disk_budget_mb * 1024 * 1024))
    sink = OutboxSink(outbox)
    agent = EdgeAgent(AgentConfig.from_edge_config(config), sink, pipeline=open_pipeline(config),
                      metrics=metrics, mode="async", version=version, clock=clock)
    ble: BleIngest | None = None
    exporter = start_exporter(metrics, obs.metrics_port, obs.metrics_host, status=agent.status)
    tasks: list[asyncio.Task[None]] = []
    try:
        await agent.start()
        if uplink is not None:
            up = Uplink(outbox, hostname=uplink.host, port=uplink.port, gateway_id=config.uplink.client_id or config.gateway_id,
                        username=config.uplink.username, password=config.uplink.password,
                        tls_context=tls_context(config.uplink), software=version,
                        device_statuses=agent.device_statuses)
            sink.on_stored = up.notify           # alerts leave as soon as they are stored
            tasks.append(asyncio.create_task(up.run(), name="uplink"))
        if ingest is not None and config.ingest.mqtt.enabled:
            mi = MqttIngest(agent, hostname=ingest.host, port=ingest.port, client_id=f"{config.gateway_id}-ingest",
                            username=config.ingest.mqtt.username, password=config.ingest.mqtt.password,
                            tls_context=tls_context(config.ingest.mqtt))
            tasks.append(asyncio.create_task(mi.run(), name="mqtt-ingest"))
        if config.ingest.ble:
            ble = open_ble_ingest(config, agent, ble_backend_factory or default_backend)
            await ble.start()
        log_event(log, "agent_started", gateway_id=config.gateway_id,
                  ingest=None if ingest is None else f"{ingest.host}:{ingest.port}",
                  uplink=None if uplink is None else f"{uplink.host}:{uplink.port}",
                  ble_devices=len(config.ingest.ble))
        if on_ready is not None:
            on_ready(agent)
        next_status = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            agent.tick()
            if loop.time() >= next_status:
                await asyncio.to_thread(write_status, obs.status_file, agent.status())
                next_status = loop.time() + obs.status_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick_s)
    finally:
        if ble is not None:  # BLE ingest first: nothing more comes in once we start draining
            await ble.stop()
        for t in tasks[::-1]:  # ingest first, then (after the agent's last output is in the outbox) uplink
            if t.get_name() == "uplink":
                await agent.close()
            t.cancel()
            await asyncio.gather(t, return_exceptions=True)
        await agent.close()
        if exporter is not None:
            exporter.close()
        sink.close()          # the window-encoding threads
        outbox.close()
        remove_status(obs.status_file)
        log_event(log, "agent_stopped", gateway_id=config.gateway_id, alerts=agent.counters.alerts,
                  windows=agent.counters.windows_done)
    return agent


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
