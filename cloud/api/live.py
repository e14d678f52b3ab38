"""The live ward relay: edge display chunks and vitals from the broker to the browsers' feeds, in memory.

The edge publishes each patient's ECG in ~1 s chunks on ``ecgstream/v1/patient/{id}/live`` and
every patient's vitals on its gateway status each second, both at QoS 0
(:mod:`protocol.live_payload`, :class:`protocol.messages.PatientVitals`). A ward tile needs them
within a second, and a chunk a minute old is of no use to anyone, so nothing here touches the
database: a :class:`LiveRelay` holds one plain (not shared) subscription per API process, so every
process sees every patient, keeps the last few seconds per patient (a browser that connects paints
at once) and hands each message to the feed connections subscribed to it (:mod:`cloud.api.feed`),
which filter by care team like every other event.

**Lifetime.** The relay is made and connected when the first feed connection of the process asks
for it (:func:`live_relay`) and disconnects when the last one leaves, so a process without
browsers holds no subscription and a test's app leaves no task behind.

**Broker account.** Without a broker username (the demo, a development broker) the relay connects
anonymously with client id ``<cloud client id>-live-<n>``. A broker with accounts binds each client id
to its username, so the relay must not reuse the ingest worker's account (the broker would hand it the
worker's session): it uses ``<broker username>-live`` with the password from
``ECGSTREAM_CLOUD__LIVE__PASSWORD``, and stays off (one warning) without that password. That account
needs to read ``ecgstream/v1/patient/+/live`` and ``ecgstream/v1/gateway/+/status``.

**MQTT version.** MQTT 5 first; a broker that does not answer it within ``CONNECT_TIMEOUT_S`` (the
demo's embedded broker speaks 3.1.1 only) is tried with 3.1.1 next (QoS 0 subscriptions need nothing
more).

**Events.** ``live`` (a chunk: ``patient_id``, ``device_id``, ``seq``, ``t0_us``, ``fs_hz``, ``leads``,
``gap_before``, ``uv``: whole microvolts per lead) and ``vitals`` (one patient's
:class:`~protocol.messages.PatientVitals` with ``gateway_id``, ``t_gateway_us`` and ``received_us``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from cloud.config import CloudSettings
from protocol.errors import ProtocolError
from protocol.live_payload import LiveChunk, decode_live_chunk
from protocol.messages import GatewayStatus, decode_message
from protocol.topics import Channel, Scope, parse_topic, subscription
from settings.broker import EMBEDDED
from settings.tls import client_tls_context

log = logging.getLogger(__name__)

LIVE_PASSWORD_ENV = "ECGSTREAM_CLOUD__LIVE__PASSWORD"
"""Where the relay's broker password comes from when the broker has accounts."""
CONNECT_TIMEOUT_S = 3.0
"""How long a CONNECT waits for its answer (then the relay tries the other MQTT version)."""
TOPICS = (subscription(Scope.PATIENT, Channel.LIVE), subscription(Scope.GATEWAY, Channel.STATUS))
_NUMBER = itertools.count(1)

LiveEvent = tuple[str, str, dict[str, Any]]
"""(event name, patient id, data) as the feed sends it."""


def chunk_event(chunk: LiveChunk) -> dict[str, Any]:
    """A chunk as the browser gets it (whole µV per lead)."""
    return {"patient_id": chunk.patient_id, "device_id": chunk.device_id, "seq": chunk.seq, "t0_us": chunk.t0_us,
            "fs_hz": chunk.fs_hz, "leads": list(chunk.leads), "gap_before": chunk.gap_before,
            "uv": chunk.microvolts().tolist()}


def vitals_events(status: GatewayStatus, received_us: int) -> list[dict[str, Any]]:
    """One ``vitals`` event per patient of a gateway status (none for a status without vitals)."""
    return [{**asdict(v), "lead_off": list(v.lead_off), "gateway_id": status.gateway_id,
             "t_gateway_us": status.t_gateway_us, "received_us": received_us} for v in status.patients]


class LiveSubscription:
    """One feed connection's queue of live events; the oldest are dropped when a slow client lags."""

    def __init__(self, maxlen: int = 4000) -> None:
        self.events: deque[LiveEvent] = deque(maxlen=maxlen)
        self.ready = asyncio.Event()
        self.dropped = 0

    def put(self, event: LiveEvent) -> None:
        if len(self.events) == self.events.maxlen:
            self.dropped += 1
        self.events.append(event)
        self.ready.set()

    def take(self) -> list[LiveEvent]:
        """Everything queued, oldest first."""
        out = list(self.events)
        self.events.clear()
        self.ready.clear()
        return out


class LiveRelay:
    """The process's subscription to the live topics (module docstring)."""

    def __init__(self, *, hostname: str, port: int, client_id: str, username: str | None = None,
                 password: str | None = None, tls_context: Any = None, backlog_s: float = 8.0,
                 backoff_max_s: float = 10.0) -> None:
        self.hostname, self.port, self.client_id = hostname, port, client_id
        self._username, self._password, self._tls = username, password, tls_context
        self.backlog_s = backlog_s
        self._backoff_max_s = backoff_max_s
        self.subscribers: set[LiveSubscription] = set()
        self.recent: dict[str, deque[LiveEvent]] = {}
        """Each patient's last ``backlog_s`` of chunks (a new feed connection paints them at once)."""
        self.vitals: dict[str, LiveEvent] = {}
        """Each patient's latest vitals."""
        self.received = {"live": 0, "vitals": 0, "bad": 0}
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- feed side ------------------------------------------------------------------------------------

    def subscribe(self) -> LiveSubscription:
        """A new subscriber; connects the relay if it is the first."""
        sub = LiveSubscription()
        self.subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="live-relay")
        return sub

    def unsubscribe(self, sub: LiveSubscription) -> None:
        """Forget ``sub``; the last one leaving disconnects the relay."""
        self.subscribers.discard(sub)
        if not self.subscribers and self._task is not None:
            self._task.cancel()
            self._task = None
            self.subscribed.clear()

    def snapshot(self, patients: Iterable[str] | None = None) -> list[LiveEvent]:
        """The latest vitals and recent chunks of ``patients`` (None: all), for a connection's first paint."""
        wanted = set(self.vitals) | set(self.recent) if patients is None else set(patients)
        out = [self.vitals[p] for p in sorted(wanted) if p in self.vitals]
        for p in sorted(wanted):
            out += list(self.recent.get(p, ()))
        return out

    # -- broker side ----------------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes, received_us: int | None = None) -> int:
        """One message from the broker; returns how many events it made (bad ones are counted, dropped)."""
        received_us = time.time_ns() // 1000 if received_us is None else received_us
        try:
            parsed = parse_topic(topic)
            if parsed.channel is Channel.LIVE:
                chunk = decode_live_chunk(payload)
                if chunk.patient_id != parsed.ident:
                    raise ProtocolError(f"a chunk of patient {chunk.patient_id} on {topic}")
                events: list[LiveEvent] = [("live", chunk.patient_id, chunk_event(chunk))]
                self._remember(chunk)
                self.received["live"] += 1
            else:
                status = decode_message(payload, GatewayStatus)
                events = [("vitals", v["patient_id"], v) for v in vitals_events(status, received_us)]
                for e in events:
                    self.vitals[e[1]] = e
                self.received["vitals"] += len(events)
        except ProtocolError as exc:
            self.received["bad"] += 1
            log.debug("live relay: dropped a message on %s: %s", topic, exc)
            return 0
        if events:
            if events[0][0] == "live":
                self.recent[events[0][1]].append(events[0])
            for sub in list(self.subscribers):
                for e in events:
                    sub.put(e)
        return len(events)

    def _remember(self, chunk: LiveChunk) -> None:
        keep = max(1, int(self.backlog_s / max(chunk.duration_s, 0.05)))
        d = self.recent.get(chunk.patient_id)
        if d is None or d.maxlen != keep:
            d = self.recent[chunk.patient_id] = deque(d or (), maxlen=keep)
        if chunk.gap_before:
            d.clear()

    async def run(self) -> None:
        """Subscribe and relay until cancelled, reconnecting with backoff. A broker that does not answer
        an MQTT 5 CONNECT (the embedded one speaks 3.1.1) is tried with MQTT 3.1.1 next, and so on in turn
        until one connects; nothing here needs MQTT 5."""
        delay = 0.5
        v5 = True
        while True:
            connected = False
            try:
                async with aiomqtt.Client(self.hostname, self.port, identifier=self.client_id,
                                          username=self._username, password=self._password,
                                          tls_context=self._tls, timeout=CONNECT_TIMEOUT_S,
                                          protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
                                          clean_start=True if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
                                          clean_session=None if v5 else True) as client:
                    connected = True
                    await client.subscribe([(t, 0) for t in TOPICS])
                    self.subscribed.set()
                    delay = 0.5
                    log.info("live relay %s subscribed to %s (MQTT %s)", self.client_id, ", ".join(TOPICS),
                             "5" if v5 else "3.1.1")
                    async for message in client.messages:
                        if isinstance(message.payload, bytes | bytearray):
                            self.handle(str(message.topic), bytes(message.payload))
            except aiomqtt.MqttError as exc:
                self.subscribed.clear()
                if not connected:
                    v5 = not v5
                log.warning("live relay %s: broker %s:%d unavailable (%s); retry in %.1f s", self.client_id,
                            self.hostname, self.port, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max_s)


def make_relay(settings: CloudSettings, env: dict[str, str] | None = None) -> LiveRelay | None:
    """The process's relay for ``settings``' broker, or None (no broker to reach, or no account: logged)."""
    b = settings.broker
    if b.host == EMBEDDED:
        return None
    live = settings.live
    if not live.relay:
        return None
    environ = os.environ if env is None else env
    username = password = None
    if b.username:
        username = f"{b.username}-live"
        password = live.password or environ.get(LIVE_PASSWORD_ENV)
        if not password:
            log.warning("live ward off: the broker has accounts and %s is not set (the relay's account is %s)",
                        LIVE_PASSWORD_ENV, username)
            return None
    client_id = username or f"{settings.client_id()}-live-{next(_NUMBER)}"
    return LiveRelay(hostname=b.host, port=b.port, client_id=client_id, username=username, password=password,
                     tls_context=client_tls_context(b))


def live_relay(extras: dict[str, Any], settings: CloudSettings) -> LiveRelay | None:
    """The process's relay, made at the first call (kept in the API context's ``extras``)."""
    if "live_relay" not in extras:
        extras["live_relay"] = make_relay(settings)
    relay = extras["live_relay"]
    return relay if isinstance(relay, LiveRelay) else None


async def stop_relay(relay: LiveRelay | None) -> None:
    """Disconnect a relay now (tests; the service's stop)."""
    if relay is not None and relay._task is not None:   # noqa: SLF001 - the relay's own task
        relay._task.cancel()                            # noqa: SLF001
        with contextlib.suppress(asyncio.CancelledError):
            await relay._task                           # noqa: SLF001
        relay._task = None                              # noqa: SLF001
