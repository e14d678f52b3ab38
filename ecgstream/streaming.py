"""Stream virtual wearables over a chosen medium and watch them: the wiring behind
``ecgstream sim run``, ``ecgstream sim replay`` and ``ecgstream demo``.

The caller says how to build its devices given a transport factory; this
module picks the medium (loopback, MQTT on an external or embedded broker, BLE
on an emulated or real controller), starts a receiver where the medium allows
one, runs the devices as one fleet, and shows a live view.

Two receivers: :func:`stream` decodes and counts what arrives (``ecgstream sim``);
:func:`stream_to_edge` puts the edge gateway there (``ecgstream demo``): the same
:class:`edge.gateway.Gateway` as ``ecgstream edge run``, which ingests from the broker
through its MQTT ingest (or in-process from the loopback hub or the emulated BLE
central), runs its whole pipeline, writes alerts and windows to its SQLite outbox and
uplinks them to the same broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
from rich.console import Console, RenderableType
from rich.live import Live

from ecgstream.edge_sim import step_in_stream_time
from ecgstream.receivers import feed_ble, feed_loopback, watch_ble, watch_loopback, watch_mqtt, watch_uplink
from ecgstream.ward_view import AlertTap, EdgeWardView, WardView
from edge.ble.link import BleLink
from firmware_sim.device import VirtualDevice
from firmware_sim.fleet import Fleet, FleetStats
from firmware_sim.profiles import DeviceProfile, WireFormat
from firmware_sim.transports.base import DeviceTransport
from firmware_sim.transports.loopback import LoopbackHub, MessageKind, Subscription
from settings.tls import client_tls_context

if TYPE_CHECKING:
    from edge.agent import EdgeAgent, Sink
    from edge.config.schema import EdgeConfig
    from edge.gateway import Feed, Gateway
    from edge.ingest.mqtt import MqttIngest, PayloadSink
    from protocol.messages import Alert
    from protocol.window_payload import EcgWindow

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
            devices, links = await _on_ble(build, medium.hci, stack)
            watchers.extend(asyncio.create_task(_watch_ble_link(a, view)) for a in links)
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


BleAttach = Callable[[], Awaitable[tuple[BleLink, str, MessageKind]]]
"""Connects the emulated central to one device: its link, device id and message kind."""


async def open_broker(broker: BrokerAddress, stack: contextlib.AsyncExitStack) -> OpenBroker:
    """Reach ``broker`` (start the embedded one, on a free port, when ``broker.host`` is None; it stops with
    ``stack``): where it is and whether it speaks MQTT 5 (the embedded one speaks 3.1.1)."""
    host, port, _ = await _open_broker(broker, stack)
    return OpenBroker(host, port, mqtt5=broker.host is not None)


async def _open_broker(broker: BrokerAddress, stack: contextlib.AsyncExitStack) -> tuple[str, int, ssl.SSLContext | None]:
    """The broker's host and port (starting the embedded one when ``broker.host`` is None) and TLS context."""
    host, port = broker.host, broker.port
    if host is None:
        from firmware_sim.embedded_broker import EmbeddedBroker

        embedded = await stack.enter_async_context(EmbeddedBroker())
        host, port = embedded.host, embedded.port
        print(f"embedded MQTT broker on {host}:{port}", file=sys.stderr)
    return host, port, client_tls_context(broker)


async def _connect(broker: BrokerAddress, host: str, port: int, tls: ssl.SSLContext | None, name: str,
                   stack: contextlib.AsyncExitStack) -> aiomqtt.Client:
    try:
        return await stack.enter_async_context(
            aiomqtt.Client(host, port, identifier=f"{name}-{uuid.uuid4().hex[:8]}",
                           username=broker.username, password=broker.password, tls_context=tls)
        )
    except aiomqtt.MqttError as exc:
        raise ConnectionError(f"cannot reach the MQTT broker at {host}:{port}: {exc}") from None


async def _on_ble(build: DeviceBuilder, hci: str,
                  stack: contextlib.AsyncExitStack) -> tuple[list[VirtualDevice], list[BleAttach]]:
    """The devices as BLE peripherals and, on the emulated radio, a central's connection to each
    (none on a real adapter: a central elsewhere connects)."""
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
        return devices, []
    emulated = link
    central = BumbleBackend(stack_opener=lambda: open_ble_stack(emulated, "ecgstream-gateway"))
    stack.push_async_callback(central.close)

    async def attach(device_id: str, kind: BleProfile) -> tuple[BleLink, str, MessageKind]:
        ble_link = await central.connect(device_id, profile=kind)
        return ble_link, device_id, MessageKind.PMD if kind is BleProfile.POLAR_H10 else MessageKind.FRAME

    return devices, [functools.partial(attach, d, k) for d, k in profiles.items()]


async def _watch_ble_link(attach: BleAttach, view: WardView) -> None:
    ble_link, device_id, kind = await attach()
    await watch_ble(ble_link, device_id, kind, view)


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
    broker_at: OpenBroker | None = None,
    receipts: bool = False,
    gateway_t0: float = GATEWAY_T0_S,
    on_alert: Callable[[Alert], None] | None = None,
    on_window: Callable[[EcgWindow], None] | None = None,
    deliver_timeout_s: float = 10.0,
) -> EdgeRun:
    """Build the devices on ``medium`` and stream them into the edge gateway (module docstring).

    The gateway is :class:`edge.gateway.Gateway`, the one ``ecgstream edge run`` runs, with the
    demo's sources (its MQTT ingest on the demo's broker, or the loopback hub or emulated BLE central
    fed in-process), the demo's clock, and an :class:`AlertTap` in front of its outbox. At a finite
    ``pace`` it runs as the live gateway does (async micro-batched inference, a tick every ``tick_s``
    of stream time on a clock running at ``pace``). As fast as possible (``pace`` inf) the devices are
    stepped in stream time by :func:`ecgstream.edge_sim.step_in_stream_time`: before each tick the
    driver waits until the agent has taken every message sent so far, and the agent's clock is the
    stream time, so the alerts are those of a real-time run.

    ``broker_at``: a broker the caller already runs (the whole-system demo shares it with the cloud);
    else ``medium.broker`` is reached (or the embedded one started). ``receipts``: the uplink waits for
    the cloud's end-to-end receipts (on when a cloud ingests; off, the broker's PUBACK counts).
    ``gateway_t0``: the gateway time (Unix s) of stream time 0. ``on_alert`` and ``on_window`` see
    each alert and window as the agent hands it to the outbox. At the end the uplink gets ``deliver_timeout_s`` to empty the outbox.
    """
    from edge.config import load_config
    from edge.gateway import Endpoint, Gateway

    clock = DemoClock(pace, gateway_t0)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):  # a fresh outbox: nothing left over from an earlier run
        Path(f"{settings.outbox_path}{suffix}").unlink(missing_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(_edge_log(settings.log_path))
        if broker_at is None:
            host, port, tls = await _open_broker(medium.broker, stack)
            mqtt5 = medium.broker.host is not None  # the embedded broker is MQTT 3.1.1
        else:
            host, port, mqtt5 = broker_at.host, broker_at.port, broker_at.mqtt5
            tls = client_tls_context(medium.broker)
        stack.push_async_callback(asyncio.sleep, 0.2)  # the broker sees the gateway's clients go before it stops
        source = await _edge_source(build, medium, host, port, tls, stack, clock.realtime)
        broker = Endpoint(host, port, mqtt5=mqtt5)

        def tap(outbox: Sink) -> Sink:
            tapped = AlertTap(outbox, view)
            return tapped if on_alert is None and on_window is None else _OutputHook(tapped, on_alert, on_window)

        gateway = await stack.enter_async_context(Gateway(
            _demo_config(load_config(None), settings, medium.broker, host, port, receipts=receipts),
            ingest=broker if source.mqtt else None,
            uplink=broker, feeds=source.feeds, clock=clock, mode="async" if clock.realtime else "sync",
            sink=tap, patients=settings.patients, version=_version(),
            uplink_poll_s=0.2, uplink_heartbeat_s=10.0, keep_status=True))
        agent = gateway.agent
        view.attach(agent, clock)
        await gateway.ready()
        cloud = await _connect(medium.broker, host, port, tls, "ecgstream-demo-cloud", stack)
        watcher = asyncio.create_task(watch_uplink(cloud, view.uplinked), name="cloud")
        stack.push_async_callback(_cancel, [watcher])
        behind = source.behind(agent, gateway.mqtt_ingest)

        async def settle() -> None:
            await _settle(behind, source.stall_s)

        show = sys.stdout.isatty() if live is None else live
        async with _show(lambda: view.table(title), view.summary_line, show,
                         every_s=5.0 if clock.realtime else 2.0):
            if clock.realtime:
                stats = await _run_live(source.devices, gateway, clock, duration_s, settings, settle)
            else:
                stats = await _run_in_stream_time(source.devices, gateway, clock, duration_s, settings, settle,
                                                  lambda: source.drain(agent))
            await gateway.drain(flush_sessions=True)
            gateway.write_status()
            await gateway.delivered(deliver_timeout_s)  # the uplink delivers what the agent wrote last
            await asyncio.sleep(0.3)  # and the subscriber sees it
        return EdgeRun(stats, agent, settings, f"{host}:{port}", dict(view.uplinked), gateway.outbox.total_depth,
                       view.stream_s())


def _demo_config(base: EdgeConfig, settings: EdgeSettings, broker: BrokerAddress, host: str, port: int, *,
                 receipts: bool = False) -> EdgeConfig:
    """The demo gateway's config: ``base`` (defaults and ECGSTREAM_EDGE__* overrides) with the demo's
    id, files and status interval, and the demo's broker (as reached) for ingest and uplink; no BLE
    list (patients come from ``settings``), no metrics exporter. ``receipts``: a cloud ingests and
    sends end-to-end receipts (without one, nothing would: the uplink counts the broker's PUBACK)."""
    cafile = Path(broker.cafile) if broker.cafile and broker.tls else None
    user, password, tls = broker.username, broker.password, broker.tls
    mqtt = replace(base.ingest.mqtt, enabled=True, client_id=None, host=host, port=port, username=user,
                   password=password, tls=tls, cafile=cafile)
    uplink = replace(base.uplink, client_id=None, outbox_path=settings.outbox_path, host=host, port=port,
                     username=user, password=password, tls=tls, cafile=cafile, receipts=receipts)
    return replace(
        base, gateway_id=settings.gateway_id, ingest=replace(base.ingest, mqtt=mqtt, ble=()), uplink=uplink,
        observability=replace(base.observability, status_file=settings.status_path,
                              status_interval_s=settings.status_every_s, metrics_port=0),
    )


@dataclass(frozen=True)
class OpenBroker:
    """A broker already running for this process (the whole-system demo's): where, and whether MQTT 5."""

    host: str
    port: int
    mqtt5: bool


class _OutputHook:
    """A sink in front of another that calls ``on_alert`` / ``on_window`` with each alert / window it passes on."""

    def __init__(self, sink: Sink, on_alert: Callable[[Alert], None] | None,
                 on_window: Callable[[EcgWindow], None] | None) -> None:
        self.sink, self.on_alert, self.on_window = sink, on_alert, on_window
        self.outbox = getattr(sink, "outbox", None)  # the agent's status reads the outbox depth from its sink

    def put_alert(self, alert: Alert) -> None:
        self.sink.put_alert(alert)
        if self.on_alert is not None:
            self.on_alert(alert)

    def put_window(self, window: EcgWindow) -> None:
        self.sink.put_window(window)
        if self.on_window is not None:
            self.on_window(window)

    def flush(self) -> None:
        self.sink.flush()


@dataclass
class _EdgeSource:
    """The demo's devices and how their data reaches the gateway."""

    devices: list[VirtualDevice]
    mqtt: bool = False
    """Through the gateway's own MQTT ingest (``published`` counts what the devices sent)."""
    feeds: list[Feed] = field(default_factory=list)
    """In-process sources the gateway runs (loopback hub live, emulated BLE links)."""
    hub: Subscription | None = None
    """The loopback hub drained by the stream-time driver."""
    published: Callable[[], int] | None = None
    sent_frames: bool = False
    """Count frames sent against payloads taken (BLE) to know what is still on its way."""
    stall_s: float = 1.0

    def drain(self, agent: EdgeAgent) -> None:
        """Stream time: hand the agent everything the loopback hub holds (arrival: the agent's clock)."""
        if self.hub is not None:
            for m in self.hub.drain():
                agent.feed(m.device_id, m.data, str(m.kind), transport="loopback")

    def behind(self, agent: EdgeAgent, ingest: MqttIngest | None) -> Callable[[], int]:
        """Messages sent that the agent has not taken yet (0 where that is not known)."""
        published = self.published
        if ingest is not None and published is not None:
            return lambda: published() - ingest.counters.messages
        if self.sent_frames:
            devices = self.devices
            return lambda: sum(d.stats.frames_sent for d in devices) - agent.counters.payloads
        return lambda: 0


async def _edge_source(build: DeviceBuilder, medium: Medium, host: str, port: int, tls: ssl.SSLContext | None,
                       stack: contextlib.AsyncExitStack, realtime: bool) -> _EdgeSource:
    """Build the devices on ``medium`` and say how their data goes into the gateway."""
    if medium.transport == "mqtt":
        from firmware_sim.transports.mqtt import MqttDeviceTransport

        transports: list[MqttDeviceTransport] = []

        def mqtt(device_id: str, profile: DeviceProfile) -> DeviceTransport:
            t = MqttDeviceTransport(device_id, hostname=host, port=port, username=medium.broker.username,
                                    password=medium.broker.password, tls_context=tls)
            transports.append(t)
            return t

        return _EdgeSource(list(build(mqtt)), mqtt=True,
                           published=lambda: sum(t.messages_published for t in transports))
    if medium.transport == "loopback":
        hub = LoopbackHub()
        sub = hub.subscribe()
        devices = list(build(lambda device_id, profile: hub.transport(device_id, wire=profile.wire)))
        if realtime:
            return _EdgeSource(devices, feeds=[lambda agent: feed_loopback(sub, agent)])
        return _EdgeSource(devices, hub=sub)
    if medium.transport == "ble":
        devices, links = await _on_ble(build, medium.hci, stack)
        feeds: list[Feed] = [functools.partial(_feed_ble_link, link) for link in links]
        # notifications are not all frames: never wait long for a count that may not match
        return _EdgeSource(devices, feeds=feeds, sent_frames=True, stall_s=0.05)
    raise ValueError(f"unknown transport {medium.transport!r} (loopback, mqtt or ble)")


async def _feed_ble_link(link: BleAttach, agent: PayloadSink) -> None:
    """Connect, feed until the link drops (the agent marks it down), and connect again when the device
    is back (a scripted disconnection ends; the gateway's BleIngest does the same for real devices)."""
    from edge.ble import BleError

    while True:
        try:
            ble_link, device_id, kind = await link()
        except BleError:
            await asyncio.sleep(0.2)
            continue
        await feed_ble(ble_link, device_id, kind, agent)


async def _run_live(devices: list[VirtualDevice], gateway: Gateway, clock: DemoClock, duration_s: float | None,
                    settings: EdgeSettings, settle: Callable[[], Awaitable[None]]) -> FleetStats:
    """Real time (or ``pace`` times it): the fleet runs on the loop; the gateway ticks on its own clock."""
    fleet = Fleet(devices)
    await asyncio.gather(*(d.start(duration_s) for d in devices))  # connected: the fleet's time starts now
    agent = gateway.agent
    clock.progress = lambda: max((s.stream_now_s for s in agent.sessions.values()), default=0.0) + 1.0
    clock.start()
    stop = asyncio.Event()
    ticker = asyncio.create_task(gateway.run_until(stop, tick_s=max(0.02, settings.tick_s / clock.pace)),
                                 name="edge-tick")
    try:
        stats = await fleet.run(duration_s, clock.pace)
        await settle()
        gateway.tick()
    finally:
        stop.set()
        await asyncio.gather(ticker, return_exceptions=True)
    return stats


async def _run_in_stream_time(devices: list[VirtualDevice], gateway: Gateway, clock: DemoClock,
                              duration_s: float | None, settings: EdgeSettings,
                              settle: Callable[[], Awaitable[None]], drain: Callable[[], None]) -> FleetStats:
    """As fast as possible, in stream time (:func:`ecgstream.edge_sim.step_in_stream_time`): the gateway's
    clock follows the stream time; before each tick the agent takes everything sent so far (``settle``
    for a broker or radio, ``drain`` for the loopback hub); between ticks, only what the hub holds
    (a broker's messages arrive when the ingest gets them, stamped with the clock then)."""

    def advance(t_s: float) -> None:
        clock.stream_s = t_s

    async def take(t_s: float) -> None:
        await settle()
        drain()

    async def sent(t_s: float) -> None:
        drain()

    stepped = await step_in_stream_time(devices, duration_s=duration_s, tick_s=settings.tick_s, take=take,
                                        tick=lambda t_s: gateway.tick(), advance=advance, sent=sent)
    stats = FleetStats(devices=len(devices), ticks=stepped.ticks, simulated_s=stepped.end_s, wall_s=stepped.wall_s,
                       cpu_s=stepped.cpu_s)
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


def _edge_log(path: Path) -> contextlib.AbstractContextManager[None]:
    """The agent logs (one line per alert, rejected payload, …) to a file, not over the live table."""
    return log_to_file(path, ("edge", "mqtt"))  # mqtt: aiomqtt's ("pending publish calls")


@contextlib.contextmanager
def log_to_file(path: Path, logger_names: tuple[str, ...], *, append: bool = False) -> Iterator[None]:
    """While the block runs, the named loggers (INFO and up) write to ``path`` only, not to the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a" if append else "w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    loggers = [logging.getLogger(name) for name in logger_names]
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
