"""MQTT ingest: every device's samples and status topics (QoS 1) into a :class:`PayloadSink`.

One aiomqtt client subscribes to ``ecgstream/v1/device/+/samples`` and ``…/+/status`` and hands
each message to the sink (the :class:`edge.agent.EdgeAgent`, which stamps it with its own clock).
The sink is a small protocol, not the agent itself, as BLE ingest takes callbacks: the ingest only
needs somewhere to put payloads. A topic that does not parse is counted as rejected
(``invalid_topic``) and logged; payload errors are the sink's to count per device. The
connection is kept with capped exponential backoff and jitter; the session is persistent
(``clean_session=False``, client id ``{gateway_id}-ingest``), so QoS 1 messages published while
the gateway was briefly away are delivered when it returns. Any other failure of the loop is logged
with its traceback and retried the same way: the ingest never ends silently while the gateway runs.
``down_s()`` says how long it has been without a broker (the gateway's ``/health`` reads it).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from dataclasses import dataclass
from typing import Protocol

import aiomqtt

from protocol import ProtocolError
from protocol.topics import Channel, Scope, parse_topic, subscription

log = logging.getLogger(__name__)


class RejectCounter(Protocol):
    """Counts rejected payloads by reason."""

    def reject(self, reason: str) -> None: ...


class PayloadSink(Protocol):
    """Where ingest puts what devices send (:class:`edge.agent.EdgeAgent` is one).

    ``feed`` takes one payload (``kind``: ``frame``, ``pmd``, ``samples`` or ``status``; ``arrival_s``
    None means "now" on the sink's clock); ``link_down`` says a device's link dropped; ``counters``
    counts what was rejected before it could be fed (a topic that names no device).
    """

    @property
    def counters(self) -> RejectCounter: ...

    def feed(self, device_id: str, data: bytes, kind: str, arrival_s: float | None = None, *,
             transport: str = "loopback") -> None: ...

    def link_down(self, device_id: str, reason: str = "", at_s: float | None = None) -> None: ...


@dataclass
class MqttIngestCounters:
    messages: int = 0
    invalid_topics: int = 0
    connects: int = 0
    connect_failures: int = 0
    connected: bool = False


class MqttIngest:
    """Subscribe and feed until cancelled (:meth:`run`)."""

    def __init__(self, sink: PayloadSink, *, hostname: str, port: int = 1883, client_id: str,
                 username: str | None = None, password: str | None = None, tls_context: ssl.SSLContext | None = None,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0, keepalive_s: int = 30) -> None:
        self.sink = sink
        self._hostname, self._port = hostname, port
        self._client_id = client_id
        self._username, self._password, self._tls = username, password, tls_context
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._keepalive_s = keepalive_s
        self.counters = MqttIngestCounters()
        self.subscribed = asyncio.Event()
        self._down_since: float | None = time.monotonic()   # not subscribed since (monotonic s); None: subscribed

    def down_s(self, now: float | None = None) -> float:
        """Seconds since the ingest was last subscribed (since it started, before the first time); 0 while it is."""
        since = self._down_since
        return 0.0 if since is None else max(0.0, (time.monotonic() if now is None else now) - since)

    async def run(self) -> None:
        delay = self._backoff[0]
        while True:
            try:
                async with aiomqtt.Client(self._hostname, self._port, identifier=self._client_id,
                                          username=self._username, password=self._password, tls_context=self._tls,
                                          clean_session=False, keepalive=self._keepalive_s) as client:
                    self.counters.connects += 1
                    self.counters.connected = True
                    delay = self._backoff[0]
                    await client.subscribe(subscription(Scope.DEVICE, Channel.SAMPLES), qos=1)
                    await client.subscribe(subscription(Scope.DEVICE, Channel.STATUS), qos=1)
                    self.subscribed.set()
                    self._down_since = None
                    log.info("mqtt ingest connected to %s:%d", self._hostname, self._port)
                    async for message in client.messages:
                        self._take(str(message.topic), message.payload)
            except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
                if not self.counters.connected:
                    self.counters.connect_failures += 1
                log.warning("mqtt ingest lost the broker %s:%d: %s; retry in %.1f s", self._hostname, self._port,
                            exc, delay)
            except Exception:  # noqa: BLE001 - a bug must not end the ingest silently: log it, reconnect
                log.exception("mqtt ingest failed; retry in %.1f s", delay)
            finally:
                self.counters.connected = False
                self.subscribed.clear()
                if self._down_since is None:
                    self._down_since = time.monotonic()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._backoff[1])

    def _take(self, topic_name: str, payload: object) -> None:
        self.counters.messages += 1
        try:
            topic = parse_topic(topic_name)
        except ProtocolError as exc:
            self.counters.invalid_topics += 1
            self.sink.counters.reject("invalid_topic")
            log.warning("invalid_topic topic=%r: %s", topic_name, exc)
            return
        data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
        kind = "samples" if topic.channel is Channel.SAMPLES else "status"
        self.sink.feed(topic.ident, data, kind, transport="mqtt")
