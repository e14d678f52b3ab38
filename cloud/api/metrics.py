"""Prometheus metrics of one cloud process, on their own registry (``GET /metrics``).

Counters this module owns (API refusals by reason, sign-ins by result, live-feed connections, events
sent) plus *sources*: callables returning flat or one-level-nested dicts of numbers (the store's
counters, the ingest worker's, the escalator's), exported as ``ecgstream_cloud_<source>_<name>``
gauges with a ``reason`` label for nested dicts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME = re.compile(r"[^a-zA-Z0-9_]")


class _Sources(Collector):
    def __init__(self) -> None:
        self.sources: dict[str, Callable[[], Mapping[str, Any]]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for source, read in sorted(self.sources.items()):
            try:
                values = read()
            except Exception:  # noqa: BLE001 - a broken source must not break /metrics
                continue
            for key, value in sorted(values.items()):
                name = _NAME.sub("_", f"ecgstream_cloud_{source}_{key}")
                if isinstance(value, Mapping):
                    family = GaugeMetricFamily(name, f"{source} {key} by reason", labels=["reason"])
                    for label, v in sorted(value.items()):
                        if isinstance(v, int | float) and not isinstance(v, bool):
                            family.add_metric([str(label)], float(v))
                    yield family
                elif isinstance(value, int | float):
                    yield GaugeMetricFamily(name, f"{source} {key}", value=float(value))


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._rejected = Counter("ecgstream_cloud_api_rejected", "API requests refused, by reason",
                                 ["reason"], registry=self.registry)
        self.logins = Counter("ecgstream_cloud_logins", "sign-in attempts by result", ["result"],
                              registry=self.registry)
        self.feed_clients = Gauge("ecgstream_cloud_feed_clients", "open live-feed connections",
                                  registry=self.registry)
        self.feed_events = Counter("ecgstream_cloud_feed_events", "live-feed events sent, by type", ["type"],
                                   registry=self.registry)
        self._sources = _Sources()
        self.registry.register(self._sources)
        self.rejections: dict[str, int] = {}
        """The same refusals as a plain dict (tests and status pages read it)."""

    def rejected(self, reason: str) -> None:
        self._rejected.labels(reason=reason).inc()
        self.rejections[reason] = self.rejections.get(reason, 0) + 1

    def add_source(self, name: str, read: Callable[[], Mapping[str, Any]]) -> None:
        self._sources.sources[name] = read

    def render(self) -> bytes:
        return generate_latest(self.registry)
