"""Stream virtual wearables over a chosen medium and watch them: the wiring behind
``ecgstream sim run``, ``ecgstream sim replay`` and ``ecgstream demo``.

The caller says how to build its devices given a transport factory; this
module picks the medium (loopback, MQTT on an external or embedded broker, BLE
on an emulated or real controller), starts a receiver where the medium allows
one, runs the devices as one fleet, and shows a live view.

Two receivers: :func:`stream` decodes and counts what arrives (``ecgstream sim``);
:func:`stream_to_edge` puts the edge gateway there (``ecgstream demo``): the agent
ingests from the broker through its MQTT ingest (or in-process from the loopback
hub or the emulated BLE central), runs its whole pipeline, writes alerts and
windows to its SQLite outbox and uplinks them to the same broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
from rich.console import Console, RenderableType
from rich.live import Live

from ecgstream.receivers import feed_ble, feed_loopback, watch_ble, watch_loopback, watch_mqtt, watch_uplink
from ecgstream.ward_view import AlertTap, EdgeWardView, WardView
from edge.ble.link import BleLink
from firmware_sim.device import VirtualDevice, build_payloads
from firmware_sim.fleet import Fleet, FleetStats
from firmware_sim.profiles import DeviceProfile, WireFormat
from firmware_sim.transports.base import DeviceTransport
from firmware_sim.transports.loopback import LoopbackHub, MessageKind

if TYPE_CHECKING:
    from edge.agent import EdgeAgent

TransportFactory = Callable[[str, DeviceProfile], DeviceTransport]
DeviceBuilder = Callable[[TransportFactory], Sequence[VirtualDevice]]


@dataclass(frozen=True)
class BrokerAddress:
    """Where MQTT goes; ``host`` None means "start the embedded broker"."""

    host: str | None
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    cafile: str | None = None


@dataclass(frozen=True)
class Medium:
    """Where the wearables send: ``transport`` is loopback, mqtt or ble."""

    transport: str = "loopback"
    broker: BrokerAddress = BrokerAddress(None, 1883)
    hci: str = "emulated"


async def stream(
    build: DeviceBuilder,
    medium: Medium,
    *,
    pace: float,
    duration_s: float | None,
    view: WardView,
    live: bool | None = None,
    title: str = "ecgstream",
) -> FleetStats:
    """Build the devices on ``medium``, stream them, and keep ``view`` up to date."""
    async with contextlib.AsyncExitStack() as stack:
        watchers: list[asyncio.Task[None]] = []
        if medium.transport == "loopback":
            devices = await _on_loopback(build, view, watchers)
        elif medium.transport == "mqtt":
            devices = await _on_mqtt(build, medium.broker, view, watchers, stack)
        elif medium.transport == "ble":
            devices = await _on_ble(build, medium.hci, view, watchers, stack)
        else:
            raise ValueError(f"unknown transport {medium.transport!r} (loopback, mqtt or ble)")
        fleet = Fleet(devices)
        show = sys.stdout.isatty() if live is None else live
        try:
            async with _display(view, show, title):
                return await fleet.run(duration_s, pace)
        finally:
            await asyncio.sleep(0.3)  # let the receiver take what is still in flight
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)


async def _on_loopback(build: DeviceBuilder, view: WardView, watchers: list[asyncio.Task[None]]) -> list[VirtualDevice]:
    hub = LoopbackHub()
    sub = hub.subscribe()
    watchers.append(asyncio.create_task(watch_loopback(sub, view)))
    return list(build(lambda device_id, profile: hub.transport(device_id, wire=profile.wire)))


async def _on_mqtt(
    build: DeviceBuilder, broker: BrokerAddress, view: WardView, watchers: list[asyncio.Task[None]],
    stack: contextlib.AsyncExitStack,
) -> list[VirtualDevice]:
    from firmware_sim.transports.mqtt import MqttDeviceTransport

    host, port, tls = await _open_broker(broker, stack)
    monitor = await _connect(broker, host, port, tls, "ecgstream-monitor", stack)
    watchers.append(asyncio.create_task(watch_mqtt(monitor, view)))
    await asyncio.sleep(0.1)  # subscriptions in place before the first publish

    def transport(device_id: str, profile: DeviceProfile) -> DeviceTransport:
        return MqttDeviceTransport(device_id, hostname=host, port=port, username=broker.username,
                                   password=broker.password, tls_context=tls)

    return list(build(transport))


BleConsumer = Callable[[BleLink, str, MessageKind], Awaitable[None]]


async def _open_broker(broker: BrokerAddress, stack: contextlib.AsyncExitStack) -> tuple[str, int, ssl.SSLContext | None]:
    """The broker's host and port (starting the embedded one when ``broker.host`` is None) and TLS context."""
    host, port = broker.host, broker.port
    if host is None:
        from firmware_sim.embedded_broker import EmbeddedBroker

        embedded = await stack.enter_async_context(EmbeddedBroker())
        host, port = embedded.host, embedded.port
        print(f"embedded MQTT broker on {host}:{port}", file=sys.stderr)
    tls = ssl.create_default_context(cafile=broker.cafile) if broker.tls else None
    return host, port, tls


async def _connect(broker: BrokerAddress, host: str, port: int, tls: ssl.SSLContext | None, name: str,
                   stack: contextlib.AsyncExitStack) -> aiomqtt.Client:
    try:
        return await stack.enter_async_context(
            aiomqtt.Client(host, port, identifier=f"{name}-{uuid.uuid4().hex[:8]}",
                           username=broker.username, password=broker.password, tls_context=tls)
        )
    except aiomqtt.MqttError as exc:
        raise ConnectionError(f"cannot reach the MQTT broker at {host}:{port}: {exc}") from None


async def _on_ble(
    build: DeviceBuilder, hci: str, view: WardView | None, watchers: list[asyncio.Task[None]],
    stack: contextlib.AsyncExitStack, consume: BleConsumer | None = None,
) -> list[VirtualDevice]:
    from edge.ble.bumble_backend import BumbleBackend
    from firmware_sim.transports.ble import BlePeripheralTransport
    from firmware_sim.transports.ble_emulated import BleProfile, EmulatedLink, open_ble_stack

    link = EmulatedLink() if hci == "emulated" else None
    profiles: dict[str, BleProfile] = {}

    def transport(device_id: str, profile: DeviceProfile) -> DeviceTransport:
        kind = BleProfile.POLAR_H10 if profile.wire is WireFormat.POLAR_PMD else BleProfile.ECGSTREAM
        profiles[device_id] = kind
        return BlePeripheralTransport(device_id, link if link is not None else hci, profile=kind,
                                      leads=profile.leads, fs_hz=int(profile.fs_hz),
                                      sample_format=profile.sample_format)

    devices = list(build(transport))
    if link is None:
        if len(devices) != 1:
            raise ValueError("a real BLE adapter serves one virtual wearable; use --transport mqtt for a ward")
        print(f"advertising as {devices[0].device_id} on {hci}; waiting for a central to connect", file=sys.stderr)
        return devices
    emulated = link
    central = BumbleBackend(stack_opener=lambda: open_ble_stack(emulated, "ecgstream-gateway"))
    stack.push_async_callback(central.close)

    async def attach(device_id: str, kind: BleProfile) -> None:
        ble_link = await central.connect(device_id, profile=kind)
        message = MessageKind.PMD if kind is BleProfile.POLAR_H10 else MessageKind.FRAME
        if consume is not None:
            await consume(ble_link, device_id, message)
        elif view is not None:
            await watch_ble(ble_link, device_id, message, view)

    watchers.extend(asyncio.create_task(attach(d, k)) for d, k in profiles.items())
    return devices


@contextlib.asynccontextmanager
async def _display(view: WardView, live: bool, title: str) -> AsyncIterator[None]:
    """A rich live table on a terminal; a summary line every 5 s otherwise."""
    async with _show(lambda: view.table(title), lambda: _summary(view), live):
        yield


@contextlib.asynccontextmanager
async def _show(render: Callable[[], RenderableType], line: Callable[[], str], live: bool,
                every_s: float = 5.0) -> AsyncIterator[None]:
    """``render()`` live on a terminal (4 times a second); else ``line()`` on stderr every ``every_s``."""
    console = Console(stderr=not live)

    async def refresh(update: Callable[[], None], period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            update()

    if live:
        with Live(render(), console=console, refresh_per_second=4, transient=False) as screen:
            task = asyncio.create_task(refresh(lambda: screen.update(render()), 0.25))
            try:
                yield
            finally:
                task.cancel()
                screen.update(render())
    else:
        task = asyncio.create_task(refresh(lambda: console.print(line(), highlight=False, soft_wrap=True), every_s))
        try:
            yield
        finally:
            task.cancel()


def _summary(view: WardView) -> str:
    t = view.totals()
    return (f"{len(view.streams)} devices: {t['frames']} frames, {t['lost_frames']} lost, "
            f"{t['duplicates_or_late']} dup/late, {t['rejected']} rejected")


# -- the demo: the same media into the edge gateway --------------------------------------------------

GATEWAY_T0_S = 1_700_000_000.0
"""Gateway time (Unix s) of stream time 0 when the demo runs as fast as possible (as in :mod:`ecgstream.edge_sim`)."""


@dataclass(frozen=True)
class EdgeSettings:
    """The demo gateway: where its outbox, status file and log go, and who wears which device."""

    out_dir: Path = Path("out/demo")
    gateway_id: str = "demo-edge"
    patients: Mapping[str, str] = field(default_factory=dict)
    """Device id → patient id (alerts and windows go to the patient's topics)."""
    tick_s: float = 0.5
    """Stream seconds between the agent's ticks."""
    status_every_s: float = 2.0
    """Stream seconds between status file writes (live: wall seconds)."""

    @property
    def outbox_path(self) -> Path:
        return self.out_dir / "outbox.sqlite"

    @property
    def status_path(self) -> Path:
        return self.out_dir / "status.json"

    @property
    def log_path(self) -> Path:
        return self.out_dir / "edge.log"


@dataclass
class EdgeRun:
    """What a run through the edge gateway left behind."""

    stats: FleetStats
    agent: EdgeAgent
    settings: EdgeSettings
    broker: str
    uplinked: dict[str, int]
    """Messages the uplink delivered to the broker, by channel (``alert``, ``window``), as a subscriber saw them."""
    outbox_depth: int
    """Messages still in the outbox at the end (not yet acknowledged by the broker)."""
    stream_s: float


class DemoClock:
    """The gateway clock: ``t0`` + stream time.

    At a finite pace it runs ``pace`` times real time from :meth:`start`, but never ahead of
    ``progress()``: the stream time of the furthest sample the agent has received, plus a second.
    On a machine too busy for the pace (the broker, eight devices and the agent share one event
    loop), the gateway's time then slows down with the data it gets instead of taking the backlog
    for silent devices; one device that really goes quiet while the others stream is still seen.
    As fast as possible, the driver sets :attr:`stream_s` as it steps the devices.
    """

    def __init__(self, pace: float, t0: float = GATEWAY_T0_S, progress: Callable[[], float] | None = None) -> None:
        self.pace, self.t0, self.progress = pace, t0, progress
        self.stream_s = 0.0
        self._anchor: float | None = None

    @property
    def realtime(self) -> bool:
        return math.isfinite(self.pace)

    def start(self) -> None:
        self._anchor = time.monotonic()

    def __call__(self) -> float:
        if self.realtime and self._anchor is not None:
            t = (time.monotonic() - self._anchor) * self.pace
            if self.progress is not None:
                t = min(t, self.progress())
            self.stream_s = max(self.stream_s, t)
        return self.t0 + self.stream_s


async def stream_to_edge(
    build: DeviceBuilder,
    medium: Medium,
    *,
    pace: float,
    duration_s: float | None,
    view: EdgeWardView,
    settings: EdgeSettings = EdgeSettings(),
    live: bool | None = None,
    title: str = "ecgstream demo",
) -> EdgeRun:
    """Build the devices on ``medium`` and stream them into an edge agent (module docstring).

    At a finite ``pace`` the agent runs as the live gateway does (async micro-batched inference,
    a tick every ``tick_s`` of stream time on a clock running at ``pace``). As fast as possible
    (``pace`` inf) the devices are stepped in stream time, as :mod:`ecgstream.edge_sim` does: before
    each tick the driver waits until the agent has taken every message sent so far, and the
    agent's clock is the stream time, so the alerts are those of a real-time run.
    """
    from edge.agent import AgentConfig, EdgeAgent, OutboxSink
    from edge.config import load_config
    from edge.ingest.mqtt import MqttIngest
    from edge.observability.status import write_status
    from edge.runtime import open_pipeline
    from edge.uplink import Outbox, Uplink
    from firmware_sim.transports.mqtt import MqttDeviceTransport

    clock = DemoClock(pace)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):  # a fresh outbox: nothing left over from an earlier run
        Path(f"{settings.outbox_path}{suffix}").unlink(missing_ok=True)
    config = load_config(None)
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(_edge_log(settings.log_path))
        host, port, tls = await _open_broker(medium.broker, stack)
        outbox = Outbox(settings.outbox_path, max_bytes=int(config.uplink.disk_budget_mb * 1024 * 1024))
        stack.callback(outbox.close)
        agent_config = AgentConfig.from_edge_config(config)
        agent_config = AgentConfig(gateway_id=settings.gateway_id, session=agent_config.session,
                                   patients=dict(settings.patients), status_interval_s=settings.status_every_s,
                                   max_batch=agent_config.max_batch)
        agent = EdgeAgent(agent_config, AlertTap(OutboxSink(outbox), view), pipeline=open_pipeline(config),
                          mode="async" if clock.realtime else "sync", clock=clock, version=_version())
        view.attach(agent, clock)
        tasks: list[asyncio.Task[None]] = []
        stack.push_async_callback(_cancel, tasks)
        await agent.start()
        uplink = Uplink(outbox, hostname=host, port=port, gateway_id=settings.gateway_id,
                        username=medium.broker.username, password=medium.broker.password, tls_context=tls,
                        poll_s=0.2, heartbeat_s=10.0, software=_version(), device_statuses=agent.device_statuses)
        tasks.append(asyncio.create_task(uplink.run(), name="uplink"))
        cloud = await _connect(medium.broker, host, port, tls, "ecgstream-demo-cloud", stack)
        tasks.append(asyncio.create_task(watch_uplink(cloud, view.uplinked), name="cloud"))

        drain: Callable[[], None] = lambda: None  # noqa: E731
        behind: Callable[[], int] = lambda: 0  # noqa: E731
        stall_s = 1.0
        if medium.transport == "mqtt":
            ingest = MqttIngest(agent, hostname=host, port=port, client_id=f"{settings.gateway_id}-ingest",
                                username=medium.broker.username, password=medium.broker.password, tls_context=tls)
            tasks.append(asyncio.create_task(ingest.run(), name="mqtt-ingest"))
            try:
                await asyncio.wait_for(ingest.subscribed.wait(), 10.0)
            except TimeoutError:
                raise ConnectionError(f"the edge ingest could not subscribe at {host}:{port}") from None
            transports: list[MqttDeviceTransport] = []

            def mqtt(device_id: str, profile: DeviceProfile) -> DeviceTransport:
                t = MqttDeviceTransport(device_id, hostname=host, port=port, username=medium.broker.username,
                                        password=medium.broker.password, tls_context=tls)
                transports.append(t)
                return t

            devices = list(build(mqtt))
            behind = lambda: sum(t.messages_published for t in transports) - ingest.counters.messages  # noqa: E731
        elif medium.transport == "loopback":
            hub = LoopbackHub()
            sub = hub.subscribe()
            devices = list(build(lambda device_id, profile: hub.transport(device_id, wire=profile.wire)))
            if clock.realtime:
                tasks.append(asyncio.create_task(feed_loopback(sub, agent), name="loopback-feed"))
            else:
                def drain() -> None:
                    for m in sub.drain():
                        agent.feed(m.device_id, m.data, str(m.kind), transport="loopback")
        elif medium.transport == "ble":
            async def consume(link: BleLink, device_id: str, kind: MessageKind) -> None:
                await feed_ble(link, device_id, kind, agent)

            devices = await _on_ble(build, medium.hci, None, tasks, stack, consume)
            behind = lambda: sum(d.stats.frames_sent for d in devices) - agent.counters.payloads  # noqa: E731
            stall_s = 0.05  # notifications are not all frames: never wait long for a count that may not match
        else:
            raise ValueError(f"unknown transport {medium.transport!r} (loopback, mqtt or ble)")

        def status() -> None:
            write_status(settings.status_path, agent.status())

        show = sys.stdout.isatty() if live is None else live
        async with _show(lambda: view.table(title), view.summary_line, show,
                         every_s=5.0 if clock.realtime else 2.0):
            if clock.realtime:
                stats = await _run_live(devices, agent, clock, duration_s, settings, status,
                                        lambda: _settle(behind, stall_s))
            else:
                stats = await _run_in_stream_time(devices, agent, clock, duration_s, settings, status, drain,
                                                  lambda: _settle(behind, stall_s))
            await agent.close(flush_sessions=True)
            status()
            deadline = time.monotonic() + 10.0  # the uplink delivers what the agent wrote last
            while outbox.total_depth and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # and the subscriber sees it
        return EdgeRun(stats, agent, settings, f"{host}:{port}", dict(view.uplinked), outbox.total_depth,
                       view.stream_s())


async def _run_live(devices: list[VirtualDevice], agent: EdgeAgent, clock: DemoClock, duration_s: float | None,
                    settings: EdgeSettings, status: Callable[[], None],
                    settle: Callable[[], Awaitable[None]]) -> FleetStats:
    """Real time (or ``pace`` times it): the fleet runs on the loop; the agent ticks on its own clock."""

    async def ticking() -> None:
        period = max(0.02, settings.tick_s / clock.pace)
        next_status = 0.0
        while True:
            await asyncio.sleep(period)
            agent.tick()
            if time.monotonic() >= next_status:
                status()
                next_status = time.monotonic() + settings.status_every_s

    fleet = Fleet(devices)
    await asyncio.gather(*(d.start(duration_s) for d in devices))  # connected: the fleet's time starts now
    clock.progress = lambda: max((s.stream_now_s for s in agent.sessions.values()), default=0.0) + 1.0
    clock.start()
    ticker = asyncio.create_task(ticking(), name="edge-tick")
    try:
        stats = await fleet.run(duration_s, clock.pace)
        await settle()
        agent.tick()
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
    return stats


async def _run_in_stream_time(devices: list[VirtualDevice], agent: EdgeAgent, clock: DemoClock,
                              duration_s: float | None, settings: EdgeSettings, status: Callable[[], None],
                              drain: Callable[[], None], settle: Callable[[], Awaitable[None]]) -> FleetStats:
    """As fast as possible, in stream time: step every device in time order; before each tick, let the
    agent take everything sent so far (``settle`` for a broker or radio, ``drain`` for the loopback hub)."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for d in devices:
        await d.start(duration_s)
    next_tick, ticks, now = settings.tick_s, 0, 0.0
    every = max(1, round(settings.status_every_s / settings.tick_s))
    try:
        while True:
            running = [d for d in devices if not d.done]
            if not running:
                break
            now = min(d.next_event_s() for d in running)
            if not math.isfinite(now):
                break
            while next_tick <= now:
                clock.stream_s = next_tick
                await settle()
                drain()
                agent.tick()
                ticks += 1
                if ticks % every == 0:
                    status()
                next_tick += settings.tick_s
            clock.stream_s = now
            for d in running:
                if d.next_event_s() <= now:
                    blocks = d.prepare(now)
                    await d.complete(now, list(zip(blocks, build_payloads([(d, b) for b in blocks]), strict=True)))
            drain()
    finally:
        for d in devices:
            await d.stop()
    await settle()
    drain()
    agent.tick()
    stats = FleetStats(devices=len(devices), ticks=ticks, simulated_s=now, wall_s=time.perf_counter() - wall0,
                       cpu_s=time.process_time() - cpu0)
    for d in devices:
        stats.frames_generated += d.stats.frames_generated
        stats.frames_sent += d.stats.frames_sent
        stats.frames_failed += d.stats.frames_failed
        stats.frames_lost += d.faults.stats.frames_lost
        stats.statuses_sent += d.stats.statuses_sent
    return stats


async def _settle(behind: Callable[[], int], stall_s: float) -> None:
    """Wait until nothing sent is still on its way to the agent (or nothing moved for ``stall_s``)."""
    await asyncio.sleep(0)
    last, since = behind(), time.monotonic()
    while (left := behind()) > 0:
        if left < last:
            last, since = left, time.monotonic()
        elif time.monotonic() - since > stall_s:
            return
        await asyncio.sleep(0.001)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks[::-1]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.2)  # the broker sees those clients go before it stops


@contextlib.contextmanager
def _edge_log(path: Path) -> Iterator[None]:
    """The agent logs (one line per alert, rejected payload, …) to a file, not over the live table."""
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("edge", "mqtt")]  # mqtt: aiomqtt's ("pending publish calls")
    saved = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, (level, propagate) in zip(loggers, saved, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        handler.close()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ecgstream")
    except PackageNotFoundError:
        return ""
