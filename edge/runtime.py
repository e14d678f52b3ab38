"""The running gateway's entry: :func:`run_gateway` runs a :class:`~edge.gateway.Gateway` until told to stop.

``ecgstream edge run`` runs this once it knows where the brokers are (the command starts the
embedded broker when a host is ``"embedded"``: that broker lives in ``firmware_sim``, which ``edge``
may not import). It runs until ``stop`` is set, then stops the ingest, drains inference, flushes the
outbox, stops the uplink, closes the outbox and removes the status file (:class:`~edge.gateway.Gateway`
does all of that; this is the thin entry kept for callers that want one call).

**Clock.** ``clock`` (default :func:`time.time`) is the gateway clock of the agent (arrival times,
ticks) and of BLE arrivals and ``SET_TIME``; a test running simulated devices faster than real time
passes a clock running at the same pace, so device and gateway clocks agree.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from edge.agent import EdgeAgent
from edge.ble.manager import BackendFactory
from edge.config.schema import EdgeConfig
from edge.gateway import Endpoint, Gateway, GatewayError, open_ble_ingest, open_pipeline

__all__ = ["Endpoint", "Gateway", "GatewayError", "open_ble_ingest", "open_pipeline", "run_gateway"]


async def run_gateway(
    config: EdgeConfig, *, ingest: Endpoint | None, uplink: Endpoint | None, stop: asyncio.Event,
    version: str = "", tick_s: float = 0.5, on_ready: Callable[[EdgeAgent], None] | None = None,
    ble_backend_factory: BackendFactory | None = None, clock: Callable[[], float] = time.time,
) -> EdgeAgent:
    """Run the gateway until ``stop`` is set; returns its agent (stopped) for inspection (module docstring)."""
    gateway = Gateway(config, ingest=ingest, uplink=uplink, version=version, on_ready=on_ready,
                      ble_backend_factory=ble_backend_factory, clock=clock)
    async with gateway:
        await gateway.run_until(stop, tick_s=tick_s)
    return gateway.agent
