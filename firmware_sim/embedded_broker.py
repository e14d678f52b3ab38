"""Zero-setup MQTT broker for demos: amqtt, in-process, on a free port of 127.0.0.1.

Production runs Mosquitto or EMQX; this exists so ``ecgstream demo`` works on a
laptop with nothing installed. The listening socket is opened here on port 0,
so the operating system picks a free port (1883 is never assumed free), and its
connections are handed to amqtt's broker through amqtt's *external listener*
interface. Anonymous clients are allowed; the broker speaks MQTT 3.1.1 only
(no MQTT 5 shared subscriptions — use a real broker for scaled-out cloud workers)::

    async with EmbeddedBroker() as broker:
        client = aiomqtt.Client(broker.host, broker.port)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Any

LISTENER = "ecgstream"


class BrokerUnavailableError(RuntimeError):
    """The embedded broker cannot run (amqtt missing or failing to start)."""


class EmbeddedBroker:
    """An amqtt broker serving ``host``:``port`` while the context is open."""

    def __init__(self, host: str = "127.0.0.1", *, quiet: bool = True) -> None:
        self.host = host
        self.port = 0
        self._quiet = quiet
        self._broker: Any = None
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> EmbeddedBroker:
        try:
            from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
            from amqtt.broker import Broker
        except ImportError as exc:
            raise BrokerUnavailableError(
                "the embedded MQTT broker needs amqtt: pip install 'ecgstream[sim]' "
                "(or point the demo at a Mosquitto broker instead)"
            ) from exc
        if self._quiet:
            for name in ("amqtt", "transitions"):
                logging.getLogger(name).setLevel(logging.WARNING)
        config = {
            "listeners": {"default": {"type": "external"}, LISTENER: {"type": "external"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        try:
            self._broker = Broker(config)
            await self._broker.start()
        except Exception as exc:
            raise BrokerUnavailableError(f"amqtt broker failed to start: {exc}") from exc

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._sessions.add(task)
            try:
                await self._broker.external_connected(StreamReaderAdapter(reader), StreamWriterAdapter(writer), LISTENER)
            finally:
                self._sessions.discard(task)
                writer.close()

        self._server = await asyncio.start_server(on_client, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        for task in list(self._sessions):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._broker is not None:
            await self._broker.shutdown()
        if self._server is not None:
            await self._server.wait_closed()
