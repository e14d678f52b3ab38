"""Virtual wearables into the edge agent, in stream time: scripted scenarios and tests, no wall clock.

:func:`step_in_stream_time` is the one stream-time stepper: it runs devices as fast as possible in
stream-time order and tells the caller when the gateway should take what was sent and when it
should tick. :func:`run_ward_into_agent` and the demo (:func:`ecgstream.streaming.stream_to_edge`,
``--pace 0``) both use it.

:func:`run_ward_into_agent` steps every device of a ward (``firmware_sim.ward.build_ward`` on a
:class:`~firmware_sim.transports.loopback.LoopbackHub`) in stream-time order, as fast as possible,
and feeds each message the hub delivers to :meth:`edge.agent.EdgeAgent.feed` with its arrival time
= ``t0_s`` + the stream time at which the device sent it (after the injected jitter, reordering,
duplicates, loss and disconnections). The agent ticks every ``tick_s`` of that time. The result
is what the live agent would do with the same bytes, deterministic and in seconds of CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from edge.agent import EdgeAgent
from firmware_sim.device import VirtualDevice, build_payloads
from firmware_sim.scenario import Scenario
from firmware_sim.transports.loopback import LoopbackHub, Subscription
from firmware_sim.ward import WardBed, build_ward

GATEWAY_T0_S = 1_700_000_000.0
"""Gateway time (Unix s) of stream time 0 in these runs."""


@dataclass
class FeedLog:
    """What was fed: messages per device, and the stream time reached."""

    messages: dict[str, int] = field(default_factory=dict)
    end_s: float = 0.0


Tamper = Callable[[str, bytes, str, float], list[tuple[str, bytes, str]]]
"""Optional hook: replace one hub message by zero or more messages (garbage injection in tests)."""


@dataclass(frozen=True)
class Stepped:
    """How a stream-time run went: ticks, the stream time reached, and its cost."""

    ticks: int
    end_s: float
    wall_s: float
    cpu_s: float


async def step_in_stream_time(
    devices: Sequence[VirtualDevice], *, duration_s: float | None, tick_s: float,
    take: Callable[[float], Awaitable[None]], tick: Callable[[float], None],
    advance: Callable[[float], None] = lambda t_s: None,
    sent: Callable[[float], Awaitable[None]] | None = None,
) -> Stepped:
    """Step ``devices`` in stream-time order, as fast as possible, ticking every ``tick_s`` of stream time.

    Stream time moves to each tick time and to each device event in turn (``advance(t)`` says so
    first, for a gateway clock that follows it); before each tick at ``t`` the gateway takes
    everything sent so far (``take(t)``) and then ticks (``tick(t)``); after the devices send at
    ``t``, ``sent(t)`` (default ``take``) hands on what is at hand without waiting for what is still
    on its way (the demo: the loopback hub, not the broker). At the end (every device done or
    stopped) it takes and ticks once more at the stream time reached.
    """
    after_send = take if sent is None else sent
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for d in devices:
        await d.start(duration_s)
    next_tick, ticks, end = tick_s, 0, 0.0
    try:
        while True:
            running = [d for d in devices if not d.done]
            if not running:
                break
            now = min(d.next_event_s() for d in running)
            if not math.isfinite(now):
                break
            while next_tick <= now:
                advance(next_tick)
                await take(next_tick)
                tick(next_tick)
                ticks += 1
                next_tick += tick_s
            advance(now)
            for d in running:
                if d.next_event_s() <= now:
                    blocks = d.prepare(now)
                    await d.complete(now, list(zip(blocks, build_payloads([(d, b) for b in blocks]), strict=True)))
            await after_send(now)
            end = now
    finally:
        for d in devices:
            await d.stop()
    await take(end)
    tick(end)
    return Stepped(ticks, end, time.perf_counter() - wall0, time.process_time() - cpu0)


async def run_ward_into_agent(
    beds: Sequence[WardBed], agent: EdgeAgent, sub: Subscription, *, duration_s: float,
    t0_s: float = GATEWAY_T0_S, tick_s: float = 0.5, tamper: Tamper | None = None, flush: bool = True,
) -> FeedLog:
    """Run ``beds`` (built on the hub that ``sub`` listens to) for ``duration_s`` into ``agent``."""
    fed = FeedLog()

    async def take(t_s: float) -> None:
        _drain(sub, agent, fed, t0_s, t_s, tamper)

    stepped = await step_in_stream_time([bed.device for bed in beds], duration_s=duration_s, tick_s=tick_s,
                                        take=take, tick=lambda t_s: agent.tick(t0_s + t_s))
    fed.end_s = stepped.end_s
    if flush:
        agent.flush()
    return fed


def _drain(sub: Subscription, agent: EdgeAgent, fed: FeedLog, t0_s: float, t_s: float, tamper: Tamper | None) -> None:
    for m in sub.drain():
        msgs = [(m.device_id, m.data, str(m.kind))] if tamper is None else tamper(m.device_id, m.data, str(m.kind), t_s)
        for device_id, data, kind in msgs:
            fed.messages[device_id] = fed.messages.get(device_id, 0) + 1
            agent.feed(device_id, data, kind, t0_s + t_s, transport="loopback")


async def run_scenario_into_agent(scenario: Scenario, agent: EdgeAgent, *, duration_s: float | None = None,
                                  tick_s: float = 0.5, tamper: Tamper | None = None) -> tuple[list[WardBed], FeedLog]:
    """Build ``scenario`` on a private loopback hub and feed it into ``agent`` (stream time only)."""
    hub = LoopbackHub()
    sub = hub.subscribe()
    duration = scenario.duration_s if duration_s is None else min(duration_s, scenario.duration_s)
    beds = build_ward(scenario, lambda device_id, profile: hub.transport(device_id, wire=profile.wire),
                      duration_s=duration)
    fed = await run_ward_into_agent(beds, agent, sub, duration_s=duration, tick_s=tick_s, tamper=tamper)
    return beds, fed
