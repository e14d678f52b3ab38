"""Stream virtual wearables over a chosen medium and watch them: the wiring behind
``ecgstream sim run``, ``ecgstream sim replay`` and ``ecgstream demo``.

The caller says how to build its devices given a transport factory; this
module picks the medium (loopback, MQTT on an external or embedded broker, BLE
on an emulated or real controller), starts an in-process receiver where the
medium allows one, runs the devices as one fleet, and shows a live view.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import aiomqtt
from rich.console import Console
from rich.live import Live

from ecgstream.receivers import watch_ble, watch_loopback, watch_mqtt
from ecgstream.ward_view import WardView
from firmware_sim.device import VirtualDevice
from firmware_sim.fleet import Fleet, FleetStats
from firmware_sim.profiles import DeviceProfile, WireFormat
from firmware_sim.transports.base import DeviceTransport
from firmware_sim.transports.loopback import LoopbackHub, MessageKind

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
    from firmware_sim.embedded_broker import EmbeddedBroker
    from firmware_sim.transports.mqtt import MqttDeviceTransport

    host, port = broker.host, broker.port
    if host is None:
        embedded = await stack.enter_async_context(EmbeddedBroker())
        host, port = embedded.host, embedded.port
        print(f"embedded MQTT broker on {host}:{port}", file=sys.stderr)
    tls = ssl.create_default_context(cafile=broker.cafile) if broker.tls else None
    try:
        monitor = await stack.enter_async_context(
            aiomqtt.Client(host, port, identifier=f"ecgstream-monitor-{uuid.uuid4().hex[:8]}",
                           username=broker.username, password=broker.password, tls_context=tls)
        )
    except aiomqtt.MqttError as exc:
        raise ConnectionError(f"cannot reach the MQTT broker at {host}:{port}: {exc}") from None
    watchers.append(asyncio.create_task(watch_mqtt(monitor, view)))
    await asyncio.sleep(0.1)  # subscriptions in place before the first publish

    def transport(device_id: str, profile: DeviceProfile) -> DeviceTransport:
        return MqttDeviceTransport(device_id, hostname=host, port=port, username=broker.username,
                                   password=broker.password, tls_context=tls)

    return list(build(transport))


async def _on_ble(
    build: DeviceBuilder, hci: str, view: WardView, watchers: list[asyncio.Task[None]],
    stack: contextlib.AsyncExitStack,
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
        await watch_ble(ble_link, device_id, message, view)

    watchers.extend(asyncio.create_task(attach(d, k)) for d, k in profiles.items())
    return devices


@contextlib.asynccontextmanager
async def _display(view: WardView, live: bool, title: str) -> AsyncIterator[None]:
    """A rich live table on a terminal; a summary line every 5 s otherwise."""
    console = Console(stderr=not live)

    async def refresh(update: Callable[[], None], every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            update()

    if live:
        with Live(view.table(title), console=console, refresh_per_second=4, transient=False) as screen:
            task = asyncio.create_task(refresh(lambda: screen.update(view.table(title)), 0.25))
            try:
                yield
            finally:
                task.cancel()
                screen.update(view.table(title))
    else:
        task = asyncio.create_task(refresh(lambda: console.print(_summary(view)), 5.0))
        try:
            yield
        finally:
            task.cancel()


def _summary(view: WardView) -> str:
    t = view.totals()
    return (f"{len(view.streams)} devices: {t['frames']} frames, {t['lost_frames']} lost, "
            f"{t['duplicates_or_late']} dup/late, {t['rejected']} rejected")
