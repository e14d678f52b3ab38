"""``ecgstream edge run``: the edge gateway (MQTT and BLE ingest), with the embedded broker when a host is ``"embedded"``.

The embedded broker (amqtt, :mod:`firmware_sim.embedded_broker`) lives in the simulator, which
``edge`` may not import, so this wiring is here: one embedded broker serves both the device
ingest and the uplink when both are embedded. Ctrl-C (SIGINT) or SIGTERM stops the agent cleanly:
ingest stops, inference drains, the outbox is flushed and closed, the status file is removed
(:class:`edge.gateway.Gateway`, every step bounded), and the process exits 0 within 5 s in any state.
A second signal exits at once (status 128 + the signal number); a stop still running after
``STOP_GRACE_S`` is cut short the same way (status 1), with a log line saying so. The handlers are
plain :mod:`signal` handlers, not the event loop's, so they act even while the loop is blocked. A gateway that cannot start (the metrics port is taken) is one
error line naming the config key (:class:`edge.gateway.GatewayError`: exit status 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from importlib.metadata import PackageNotFoundError, version
from types import FrameType

from edge.ble.manager import BackendFactory
from edge.config.schema import EdgeConfig
from edge.gateway import Endpoint, Gateway
from edge.observability.logging import configure_logging

STOP_GRACE_S = 4.5
"""Seconds from the first SIGINT/SIGTERM to a forced exit when the clean stop has not finished."""

log = logging.getLogger(__name__)


class StopSignals:
    """SIGINT/SIGTERM: the first sets ``stop`` (in the loop's thread) and arms a watchdog; the second, or the
    watchdog after ``grace_s``, exits the process at once (``os._exit``: no cleanup can hang it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event, grace_s: float = STOP_GRACE_S) -> None:
        self._loop, self._stop, self.grace_s = loop, stop, grace_s
        self.received = 0
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:      # not the main thread: the loop's handlers (no second-signal exit)
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    self._loop.add_signal_handler(sig, self._stop.set)

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        name = signal.Signals(signum).name
        if self.received > 1:
            self._exit(128 + signum, f"second {name}: exiting now")
        print(f"ecgstream: {name}: stopping (again to exit at once)", file=sys.stderr, flush=True)
        with contextlib.suppress(RuntimeError):      # the loop is closed: we are on our way out anyway
            self._loop.call_soon_threadsafe(self._stop.set)
        watchdog = threading.Timer(self.grace_s, self._exit, (1, f"the stop took over {self.grace_s:g} s: exiting now"))
        watchdog.daemon = True
        watchdog.start()

    @staticmethod
    def _exit(status: int, why: str) -> None:
        log.warning("stop_forced status=%d: %s", status, why)
        print(f"ecgstream: {why}", file=sys.stderr, flush=True)
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        os._exit(status)


def _version() -> str:
    try:
        return version("ecgstream")
    except PackageNotFoundError:
        return ""


async def serve(config: EdgeConfig, *, ble_backend_factory: BackendFactory | None = None) -> None:
    """Run the gateway until SIGINT/SIGTERM.

    The ``[[ingest.ble]]`` devices are connected by the gateway's BLE ingest: bleak on an adapter, bumble
    on a transport spec (``hci = "usb:0"``); ``ble_backend_factory`` overrides that (a bumble central on
    the simulator's emulated radio: ``BumbleBackend(stack_opener=lambda: open_ble_stack(link, name))``).
    """
    import logging

    root = logging.getLogger()
    for handler in [h for h in root.handlers if not getattr(h, "_ecgstream_edge", False)]:
        root.removeHandler(handler)  # the CLI's basic handler: the agent logs in its configured format
    configure_logging(config.observability.log_level, config.observability.log_format)
    stop = asyncio.Event()
    signals = StopSignals(asyncio.get_running_loop(), stop)
    signals.install()
    async with contextlib.AsyncExitStack() as stack:
        embedded: Endpoint | None = None

        async def embedded_broker() -> Endpoint:
            nonlocal embedded
            if embedded is None:
                from firmware_sim.embedded_broker import EmbeddedBroker

                broker = await stack.enter_async_context(EmbeddedBroker())
                embedded = Endpoint(broker.host, broker.port)
                print(f"embedded MQTT broker on {broker.host}:{broker.port}", file=sys.stderr, flush=True)
            return embedded

        mqtt = config.ingest.mqtt
        ingest = None
        if mqtt.enabled:
            ingest = await embedded_broker() if mqtt.embedded else Endpoint(mqtt.host, mqtt.port)
        up = config.uplink
        uplink = await embedded_broker() if up.embedded else Endpoint(up.host, up.port)
        async with Gateway(config, ingest=ingest, uplink=uplink, version=_version(),
                           ble_backend_factory=ble_backend_factory) as gateway:
            await gateway.run_until(stop)
