"""Keep every configured BLE wearable connected and hand each notification on.

:class:`BleIngest` runs one task per device. Each task connects through the
device's backend (``bleak`` or ``bumble``, one backend per adapter, shared by
the devices on it), sends the gateway clock with ``SET_TIME`` (ecgstream
wearables), and hands every notification to ``on_payload(device_id, data,
kind, arrival_s)`` in arrival order, ``kind`` being ``"frame"`` (a
:mod:`protocol.ble_frame` frame) or ``"pmd"`` (a Polar PMD ECG frame). Decoding
is the caller's job.

When a link drops, ``on_disconnect(device_id, error)`` is called and the task
reconnects, re-subscribes and restarts the stream by itself, waiting
:class:`~edge.ble.link.Backoff` delays between attempts (reset once a link has
stayed up ``stable_after_s``). Nothing is silent: per device,
:class:`BleDeviceStats` counts connections, reconnections, drops, failed
attempts, notifications and those the link queue dropped; an exception raised
by a callback is logged and counted, and never stops the device's task or
disturbs the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from edge.ble.link import (
    Backoff,
    BleCentralBackend,
    BleDisconnected,
    BleError,
    BleLink,
    BleProfile,
    PayloadKind,
)
from edge.config.schema import BleDeviceConfig

logger = logging.getLogger(__name__)

OnPayload = Callable[[str, bytes, PayloadKind, float], Any]
"""``(device_id, data, kind, arrival_s)``; may be a coroutine function (awaited in order)."""
OnDisconnect = Callable[[str, BleError], Any]
"""``(device_id, error)`` when a connected link goes down; may be a coroutine function."""
OnConnect = Callable[[str, BleLink], Any]
"""``(device_id, link)`` once a link is set up and streaming; may be a coroutine function."""
BackendFactory = Callable[[str, str | None], BleCentralBackend]
"""``(backend, hci) -> backend instance``: one is made per distinct (backend, hci) pair."""

RECONNECT_BACKOFF = Backoff(initial_s=0.5, factor=2.0, max_s=30.0)
"""Waits between a device's connection attempts (reset once a link stayed up ``stable_after_s``)."""

POLAR_MIN_MTU = 232
"""A real Polar H10 offers ATT MTU 232; a PMD frame of 73 samples needs 229 bytes + 3."""


def default_backend(kind: str, hci: str | None) -> BleCentralBackend:
    """bleak on adapter ``hci`` (None: the system's), or bumble on transport spec ``hci``."""
    if kind == "bleak":
        from edge.ble.bleak_backend import BleakBackend

        return BleakBackend(hci)
    if kind == "bumble":
        if hci is None:
            raise BleError(
                "the bumble backend needs a transport spec (hci = 'usb:0', 'hci-socket:0', …); an emulated "
                "link exists only inside a process that also runs the simulator, which passes a backend_factory"
            )
        from edge.ble.bumble_backend import BumbleBackend

        return BumbleBackend(hci)
    raise BleError(f"unknown BLE backend {kind!r} (bleak or bumble)")


def ble_profile(config: BleDeviceConfig) -> BleProfile:
    """The GATT profile of a configured device (its ``profile`` key)."""
    return BleProfile.POLAR_H10 if config.profile == "polar-h10" else BleProfile.ECGSTREAM


def device_id_of(config: BleDeviceConfig) -> str:
    """The device id (the loader fills it; derived the same way when it is unset)."""
    if config.device_id:
        return config.device_id
    if config.address:
        return config.address.replace(":", "").lower()
    return str(config.name)


@dataclass
class BleDeviceStats:
    """What happened to one device's BLE link (never reset)."""

    device_id: str
    target: str
    profile: BleProfile
    backend: str
    connected: bool = False
    connects: int = 0
    """Links set up, the first one included."""
    reconnects: int = 0
    """Links set up after an earlier one of this device went down."""
    disconnects: int = 0
    """Links lost (dropped by the peripheral or the radio)."""
    connect_failures: int = 0
    """Connection attempts that failed (not found, refused, wrong profile)."""
    received: int = 0
    """Notifications handed to ``on_payload``."""
    dropped: int = 0
    """Notifications a link dropped because its consumer fell behind."""
    callback_errors: int = 0
    """Exceptions raised by ``on_payload``/``on_connect``/``on_disconnect`` (logged)."""
    set_time_failures: int = 0
    last_error: str | None = None
    last_disconnect_reason: int | None = None


class BleIngest:
    """One task per configured device, each keeping its device connected (module docstring).

    ``backend_factory`` makes a backend per distinct (backend, hci) pair (tests
    and the simulator pass one that puts bumble on an emulated link);
    ``connect_timeout`` bounds each scan and connection; ``clock`` gives
    ``arrival_s`` (default :func:`time.monotonic`), ``gateway_time_us`` the clock
    sent with ``SET_TIME`` (default wall clock, µs).
    """

    def __init__(
        self,
        devices: Sequence[BleDeviceConfig],
        on_payload: OnPayload,
        *,
        on_disconnect: OnDisconnect | None = None,
        on_connect: OnConnect | None = None,
        backend_factory: BackendFactory = default_backend,
        backoff: Backoff = RECONNECT_BACKOFF,
        connect_timeout: float = 10.0,
        stable_after_s: float = 10.0,
        queue_size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        gateway_time_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._devices = {device_id_of(d): d for d in devices}
        if len(self._devices) != len(devices):
            raise ValueError("BLE device ids must be unique")
        self._on_payload = on_payload
        self._on_disconnect = on_disconnect
        self._on_connect = on_connect
        self._factory = backend_factory
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self.stable_after_s = stable_after_s
        self._queue_size = queue_size
        self._clock = clock
        self._gateway_time_us = gateway_time_us
        self._sleep = sleep
        self.backends: dict[tuple[str, str | None], BleCentralBackend] = {}
        self.links: dict[str, BleLink] = {}
        """The live link of each connected device."""
        self.stats = {
            device_id: BleDeviceStats(device_id, str(d.address or d.name), ble_profile(d), d.backend)
            for device_id, d in self._devices.items()
        }
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Make the backends and start one task per device (returns at once)."""
        if self._tasks:
            return
        self._stopping = False
        for device_id, config in self._devices.items():
            key = (config.backend, config.hci)
            if key not in self.backends:
                self.backends[key] = self._factory(*key)
            self._tasks[device_id] = asyncio.create_task(self._run(device_id, config, self.backends[key]),
                                                         name=f"ble-{device_id}")

    async def stop(self) -> None:
        """Stop every task, disconnect every link, release the adapters."""
        self._stopping = True
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in list(self.links.values()):
            with contextlib.suppress(BleError):
                await link.disconnect()
        self.links.clear()
        backends = list(self.backends.values())
        self.backends.clear()
        for backend in backends:
            try:
                await backend.close()
            except Exception as exc:  # one adapter failing to close must not keep the others open
                logger.warning("closing BLE backend %s: %s", backend.name, exc)

    async def __aenter__(self) -> BleIngest:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def wait_connected(self, device_id: str | None = None, *, timeout: float = 30.0) -> None:
        """Wait until ``device_id`` (None: every device) has a live link; TimeoutError otherwise."""
        ids = [device_id] if device_id is not None else list(self._devices)

        async def poll() -> None:
            while not all(self.stats[i].connected for i in ids):
                await asyncio.sleep(0.005)

        await asyncio.wait_for(poll(), timeout)

    # -- one device -----------------------------------------------------------------------

    async def _run(self, device_id: str, config: BleDeviceConfig, backend: BleCentralBackend) -> None:
        stats = self.stats[device_id]
        profile = stats.profile
        attempt = 0
        while not self._stopping:
            try:
                link = await backend.connect(
                    stats.target, profile=profile, timeout=self.connect_timeout,
                    min_mtu=POLAR_MIN_MTU if profile is BleProfile.POLAR_H10 else None,
                    queue_size=self._queue_size,
                )
            except Exception as exc:  # BleError expected; anything else must not end the task either
                stats.connect_failures += 1
                stats.last_error = str(exc)
                if isinstance(exc, BleError):
                    logger.info("BLE %s: connect failed: %s", device_id, exc)
                else:
                    logger.exception("BLE %s: connect failed unexpectedly", device_id)
                await self._sleep(self.backoff.delay(attempt))
                attempt += 1
                continue
            up_since = self._clock()
            await self._serve(device_id, link, stats)
            if self._stopping:
                return
            if self._clock() - up_since >= self.stable_after_s:
                attempt = 0
            await self._sleep(self.backoff.delay(attempt))
            attempt += 1

    async def _serve(self, device_id: str, link: BleLink, stats: BleDeviceStats) -> None:
        """Stream one link until it ends; count and report how."""
        if stats.connects:
            stats.reconnects += 1
        stats.connects += 1
        stats.connected = True
        self.links[device_id] = link
        logger.info("BLE %s: connected to %s (%s, MTU %d)", device_id, link.address, link.profile, link.mtu)
        if link.profile is BleProfile.ECGSTREAM:
            try:
                await link.set_time(self._gateway_time_us())
            except BleError as exc:  # the stream is still usable: the edge maps clocks by itself
                stats.set_time_failures += 1
                logger.warning("BLE %s: SET_TIME failed: %s", device_id, exc)
        if self._on_connect is not None:
            await self._call(stats, self._on_connect, device_id, link)
        kind = link.kind
        error: BleError | None = None
        try:
            async for payload in link:
                stats.received += 1
                await self._call(stats, self._on_payload, device_id, payload, kind, self._clock())
        except BleDisconnected as exc:
            error = exc
            stats.last_disconnect_reason = exc.reason
        finally:
            stats.connected = False
            stats.dropped += link.dropped
            if self.links.get(device_id) is link:
                del self.links[device_id]
        if error is None:  # closed locally (stop(), or the backend was closed under us)
            if self._stopping:
                return
            error = BleError(f"BLE link to {link.address} was closed")
        stats.disconnects += 1
        stats.last_error = str(error)
        logger.warning("BLE %s: %s; reconnecting", device_id, error)
        if self._on_disconnect is not None:
            await self._call(stats, self._on_disconnect, device_id, error)

    @staticmethod
    async def _call(stats: BleDeviceStats, callback: Callable[..., Any], *args: Any) -> None:
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            stats.callback_errors += 1
            logger.exception("BLE %s: callback %s failed", stats.device_id, getattr(callback, "__name__", callback))
