"""Prometheus metrics of one cloud process, on their own registry (``GET /metrics``).

Metrics this module owns (API refusals by reason, sign-ins by result, live-feed connections, events
sent) plus *sources*: callables returning flat or one-level-nested dicts of counts (the store's
counters, the ingest worker's, the escalator's, the model worker's). Every count a source reports
only goes up, so each is exported as a real Prometheus **counter**,
``ecgstream_cloud_<source>_<key>_total``, with a labelled family for a nested dict (the label is
named in :data:`SOURCE_METRICS`, ``reason`` by default). Each known key has a help text that says
what it counts (:data:`SOURCE_METRICS`); a key nobody described still gets a counter with a generic
help. Sums of other counters (the ingest worker's ``stored`` and ``rejected_total``) are left out:
Prometheus adds them up itself. The text passes ``promtool check metrics``
(``tests/cloud/test_metrics_promtool.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True)
class SourceMetric:
    """How one key of a source is exported: its help text, and the label of a nested dict."""

    help: str
    label: str = "reason"


SOURCE_METRICS: dict[str, dict[str, SourceMetric | None]] = {
    "store": {
        "alerts_stored": SourceMetric("Alert messages this process stored (new alert ids)."),
        "alerts_duplicate": SourceMetric("Alert messages skipped because their alert id was already stored."),
        "alerts_rejected": SourceMetric("Alert messages refused as invalid before storage."),
        "windows_stored": SourceMetric("ECG windows this process stored (new window ids)."),
        "windows_duplicate": SourceMetric("ECG windows skipped because their window id was already stored."),
        "windows_rejected": SourceMetric("ECG window payloads refused as invalid before storage."),
        "status_updated": SourceMetric("Device and gateway status messages that updated the stored status."),
        "status_stale": SourceMetric("Status messages ignored because a newer status was already stored."),
    },
    "ingest": {
        "received": SourceMetric("MQTT messages the ingest worker received."),
        "stored": None,           # the sum of the four *_stored counters
        "alerts_stored": SourceMetric("Alert messages the ingest worker stored."),
        "windows_stored": SourceMetric("ECG windows the ingest worker stored."),
        "gateway_status_stored": SourceMetric("Gateway status messages the ingest worker stored."),
        "device_status_stored": SourceMetric("Device status messages the ingest worker stored."),
        "duplicates": SourceMetric("Messages the ingest worker received again (already stored; acknowledged)."),
        "stale_status": SourceMetric("Status messages older than the stored status (acknowledged, not stored)."),
        "rejected": SourceMetric("Messages the ingest worker refused and acknowledged, by reason (bad topic, payload, "
                                 "schema, episode_owner, store_refused...)."),
        "rejected_total": None,   # the sum of ``rejected`` over its reasons
        "store_errors": SourceMetric("Attempts to store a batch of messages that failed (the batch is retried)."),
        "unacked": SourceMetric("Messages left unacknowledged after a storage failure (the broker redelivers)."),
        "auto_registered": SourceMetric("Unknown devices (with their patients) the ingest worker registered "
                                        "([registry] auto_register)."),
        "connects": SourceMetric("Successful connections of the ingest worker to the MQTT broker."),
        "connection_errors": SourceMetric("Failed or lost connections of the ingest worker to the MQTT broker."),
    },
    "escalation": {
        "checks": SourceMetric("Checks of the escalator for unacknowledged clinical episodes."),
        "escalations": SourceMetric("Escalations of unacknowledged episodes to the next level."),
        "errors": SourceMetric("Escalator checks that failed (the next check retries)."),
    },
    "models": {
        "alerts_seen": SourceMetric("Stored alerts the model worker looked at."),
        "alerts_without_window": SourceMetric("Alerts the model worker skipped because they name no window."),
        "windows_analysed": SourceMetric("ECG windows the cloud models ran on."),
        "results_stored": SourceMetric("Model results stored (one per model and window)."),
        "results_already_stored": SourceMetric("Model results skipped because another worker stored them first."),
        "windows_missing": SourceMetric("Alerts whose window never arrived within the model worker's wait."),
        "rejected": SourceMetric("Windows a cloud model could not take, by model.", label="model"),
        "errors": SourceMetric("Model worker runs that failed (logged; the alerts are retried)."),
    },
    "receipts": {
        "receipts": SourceMetric("Receipts published to gateways (one per gateway per stored batch)."),
        "items": SourceMetric("Alerts and windows answered in receipts, by status (stored, duplicate, rejected).",
                              label="status"),
        "without_gateway": SourceMetric("Alerts and windows that asked for no receipt (an edge without receipts)."),
        "bad_response_topic": SourceMetric("Messages whose response topic is not a gateway receipt topic (no "
                                           "receipt sent)."),
        "without_id": SourceMetric("Messages whose id could not be read (an unreadable payload): no receipt item."),
    },
    "deliveries": {
        "enqueued": SourceMetric("Escalation deliveries this process created, by channel.", label="channel"),
        "delivered": SourceMetric("Escalation deliveries sent successfully, by channel.", label="channel"),
        "retried": SourceMetric("Escalation delivery tries that failed and will be retried, by channel.",
                                label="channel"),
        "failed": SourceMetric("Escalation deliveries given up after their last try, by channel.", label="channel"),
        "cancelled": SourceMetric("Escalation deliveries not sent because the episode was acknowledged or ended "
                                  "first, by channel.", label="channel"),
        "lost_claims": SourceMetric("Delivery outcomes not recorded because another process had taken the "
                                    "delivery over."),
        "errors": SourceMetric("Rounds of the delivery loop that failed (the next round retries)."),
    },
    "downlink": {
        "queued": SourceMetric("Staff acknowledgements queued for the edge gateway that raised the episode."),
        "published": SourceMetric("Acknowledgements the broker accepted for delivery to their gateway."),
        "unroutable": SourceMetric("Acknowledgements not sent because no gateway is known for the episode."),
        "dropped": SourceMetric("Queued acknowledgements dropped because the queue was full (oldest first)."),
        "failed": SourceMetric("Publishes of an acknowledgement that failed (it stays queued and is retried)."),
        "refused": SourceMetric("Acknowledgements the broker refused, by MQTT 5 reason (e.g. not_authorized)."),
        "connects": SourceMetric("Successful connections of the acknowledgement publisher to the MQTT broker."),
        "connection_errors": SourceMetric("Failed or lost connections of the acknowledgement publisher."),
    },
}
"""Known source keys: their help text and label; None marks a key left out (a sum of others)."""


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class _Sources(Collector):
    """Exports each registered source's counts as counters (see the module docstring)."""

    def __init__(self) -> None:
        self.sources: dict[str, Callable[[], Mapping[str, Any]]] = {}

    def collect(self) -> Iterator[CounterMetricFamily]:
        for source, read in sorted(self.sources.items()):
            try:
                values = read()
            except Exception:  # noqa: BLE001 - a broken source must not break /metrics
                continue
            known = SOURCE_METRICS.get(source, {})
            for key, value in sorted(values.items()):
                if key in known and known[key] is None:
                    continue
                spec = known.get(key) or SourceMetric(f"{source} {key.replace('_', ' ')} since this process started "
                                                      "(no description registered).")
                name = _NAME.sub("_", f"ecgstream_cloud_{source}_{key}")
                if isinstance(value, Mapping):
                    family = CounterMetricFamily(name, spec.help, labels=[spec.label])
                    for label, v in sorted(value.items()):
                        if (number := _number(v)) is not None:
                            family.add_metric([str(label)], number)
                    yield family
                elif (number := _number(value)) is not None:
                    yield CounterMetricFamily(name, spec.help, value=number)


class ApiMetrics:
    """The metrics registry of one cloud process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._rejected = Counter("ecgstream_cloud_api_rejected",
                                 "HTTP API requests refused, by error code (unauthenticated, not_found, ...).",
                                 ["reason"], registry=self.registry)
        self.logins = Counter("ecgstream_cloud_logins", "Sign-in attempts, by result (ok, bad_credentials, "
                              "rate_limited).", ["result"], registry=self.registry)
        self.feed_clients = Gauge("ecgstream_cloud_feed_clients", "Live-feed (Server-Sent Events) connections "
                                  "open now.", registry=self.registry)
        self.feed_events = Counter("ecgstream_cloud_feed_events", "Live-feed events sent to clients, by event "
                                   "type (alert, ack, escalation, status).", ["type"], registry=self.registry)
        self._sources = _Sources()
        self.registry.register(self._sources)
        self.rejections: dict[str, int] = {}
        """The same refusals as a plain dict (tests and status pages read it)."""

    def rejected(self, reason: str) -> None:
        self._rejected.labels(reason=reason).inc()
        self.rejections[reason] = self.rejections.get(reason, 0) + 1

    def add_source(self, name: str, read: Callable[[], Mapping[str, Any]]) -> None:
        """Export ``read()``'s counts as ``ecgstream_cloud_<name>_<key>_total`` counters."""
        self._sources.sources[name] = read

    def render(self) -> bytes:
        return generate_latest(self.registry)
