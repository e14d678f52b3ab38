"""``ecgstream edge run``: the edge gateway (MQTT and BLE ingest), with the embedded broker when a host is ``"embedded"``.

The embedded broker (amqtt, :mod:`firmware_sim.embedded_broker`) lives in the simulator, which
``edge`` may not import, so this wiring is here: one embedded broker serves both the device
ingest and the uplink when both are embedded. Ctrl-C (SIGINT) or SIGTERM stops the agent cleanly:
ingest stops, inference drains, the outbox is flushed and closed, the status file is removed
(:class:`edge.gateway.Gateway`). A gateway that cannot start (the metrics port is taken) is one
error line naming the config key (:class:`edge.gateway.GatewayError`: exit status 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from importlib.metadata import PackageNotFoundError, version

from edge.ble.manager import BackendFactory
from edge.config.schema import EdgeConfig
from edge.gateway import Endpoint, Gateway
from edge.observability.logging import configure_logging


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
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
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
