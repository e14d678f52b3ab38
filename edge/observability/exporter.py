"""HTTP exporter of one agent: ``/metrics`` (Prometheus text), ``/status`` (the status snapshot, JSON) and
``/health`` (200 when ingest is alive, 503 when it has stalled; JSON body saying why: :class:`HealthReport`).

A threaded WSGI server from the standard library on a daemon thread, the same
design as :func:`prometheus_client.start_http_server`, with the status route
added so ``ecgstream edge status`` can ask a running agent directly.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from edge.observability.metrics import EdgeMetrics
from edge.observability.status import HealthReport, StatusSnapshot

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Scrapes are not worth a log line each."""


class Exporter:
    """A running exporter; :meth:`close` stops it. ``port`` is the bound port."""

    def __init__(
        self, metrics: EdgeMetrics, port: int, host: str = "127.0.0.1",
        status: Callable[[], StatusSnapshot | None] | None = None,
        health: Callable[[], HealthReport] | None = None,
    ) -> None:
        self._metrics_app = make_wsgi_app(metrics.registry)
        self._status = status
        self._health = health
        self._server = make_server(host, port, self._app, server_class=_Server, handler_class=_QuietHandler)
        self.port: int = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="edge-exporter", daemon=True)
        self._thread.start()

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/").rstrip("/")
        if path == "/health":
            return self._health_app(start_response)
        if path != "/status":
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        snapshot = self._status() if self._status is not None else None
        if snapshot is None:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"no status yet\n"]
        body = json.dumps(snapshot.to_dict()).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def _health_app(self, start_response: StartResponse) -> Iterable[bytes]:
        try:
            report = self._health() if self._health is not None else HealthReport(True, (), {"checked": False})
        except Exception as exc:  # noqa: BLE001 - a failing check is an unhealthy answer, not a 500
            report = HealthReport(False, (f"health check failed: {exc}",))
        body = json.dumps(report.to_dict()).encode()
        start_response("200 OK" if report.healthy else "503 Service Unavailable",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_exporter(
    metrics: EdgeMetrics, port: int, host: str = "127.0.0.1",
    status: Callable[[], StatusSnapshot | None] | None = None, health: Callable[[], HealthReport] | None = None,
) -> Exporter | None:
    """Serve ``metrics`` (``status()`` on ``/status``, ``health()`` on ``/health``) on ``host:port``; port 0 means
    off (``None``)."""
    return Exporter(metrics, port, host, status, health) if port else None
