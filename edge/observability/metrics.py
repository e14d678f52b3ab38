"""Prometheus metrics of one edge agent, in a registry of its own.

Each :class:`EdgeMetrics` owns a :class:`prometheus_client.CollectorRegistry`
(not the process-global one), so tests and several agents in one process never
collide. Series carry no device or patient labels: with hundreds of patients
per gateway that would multiply the series, and per-stream detail is in the
status snapshot (:mod:`edge.observability.status`). Names start with
``ecgstream_edge_``; rates such as windows per second are ``rate()`` of the
counters. :meth:`EdgeMetrics.render` gives the text exposition;
:mod:`edge.observability.exporter` serves it over HTTP.

The outbox and uplink series are read from the outbox and the uplink at each scrape
(:meth:`EdgeMetrics.watch_uplink`), so they match the outbox exactly: evictions per kind (from the
outbox's persistent counter; alerts are never evicted, so theirs stays 0), messages waiting for the
cloud's receipt and dead ones (rejected by the cloud) per kind, broker refusals by reason, resends,
receipt items by status and the cloud's rejections by reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

PREFIX = "ecgstream_edge"
LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
"""Inference latency buckets: 1 ms to 500 ms, plus one beyond the usual deadline."""
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class EdgeMetrics:
    """Every series the edge agent exports. Components update the attributes directly.

    Labels: ``transport`` (``ble``, ``mqtt``, ``replay``), ``reason`` (free text
    from a small fixed set per caller, e.g. ``crc``, ``format``; gap reasons
    from :class:`edge.stream.records.GapReason`), ``model``, ``kind`` (outbox:
    ``alert``, ``status``, ``window``), alert ``type``/``priority``/``category``
    (``clinical`` or ``technical``).
    """

    def __init__(self, gateway_id: str, *, version: str = "") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Info(f"{PREFIX}_gateway", "This edge gateway.", registry=r).info({"gateway_id": gateway_id, "version": version})
        self.streams_connected = Gauge(
            f"{PREFIX}_streams_connected", "Device streams connected now.", ["transport"], registry=r)
        self.frames_received = Counter(
            f"{PREFIX}_frames_received", "Frames (notifications or messages) received.", ["transport"], registry=r)
        self.frames_decoded = Counter(
            f"{PREFIX}_frames_decoded", "Frames decoded and accepted into a stream.", ["transport"], registry=r)
        self.frames_rejected = Counter(
            f"{PREFIX}_frames_rejected", "Frames rejected (bad CRC, format, unknown device, ...).", ["reason"],
            registry=r)
        self.duplicate_frames = Counter(f"{PREFIX}_duplicate_frames", "Duplicate frames dropped.", registry=r)
        self.late_frames = Counter(
            f"{PREFIX}_late_frames", "Frames too late for the reorder window, dropped.", registry=r)
        self.gaps = Counter(f"{PREFIX}_gaps", "Sample gaps marked in streams.", ["reason"], registry=r)
        self.samples_lost = Counter(f"{PREFIX}_samples_lost", "Samples missing from streams (per lead set).", registry=r)
        self.samples_interpolated = Counter(
            f"{PREFIX}_samples_interpolated", "Samples filled by interpolation across short gaps.", registry=r)
        self.windows_processed = Counter(
            f"{PREFIX}_windows_processed", "Windows through the models and rules (rate() = windows/s).", registry=r)
        self.inference_latency = Histogram(
            f"{PREFIX}_inference_latency_seconds", "Wall time of one inference batch.", ["model"],
            buckets=LATENCY_BUCKETS_S, registry=r)
        self.batch_size = Histogram(
            f"{PREFIX}_inference_batch_size", "Windows per inference batch.", ["model"], buckets=BATCH_BUCKETS,
            registry=r)
        self.outbox_depth = Gauge(f"{PREFIX}_outbox_depth", "Messages waiting in the outbox.", ["kind"], registry=r)
        self.evicted_windows = Counter(
            f"{PREFIX}_outbox_evicted_windows", "Windows evicted from the outbox over its disk budget.", registry=r)
        self.alerts = Counter(
            f"{PREFIX}_alerts", "Alerts raised.", ["type", "priority", "category"], registry=r)
        self.alerts_active = Gauge(
            f"{PREFIX}_alerts_active", "Alerts active (latched or ongoing) now.", ["priority"], registry=r)
        self.uplink_reconnects = Counter(
            f"{PREFIX}_uplink_reconnects", "Reconnections to the cloud broker.", registry=r)

    def watch_uplink(self, outbox: Any, uplink: Callable[[], Any] | None = None) -> None:
        """Export the outbox's (``evicted()``, ``states()``) and the uplink's (``uplink()`` gives the
        running :class:`~edge.uplink.Uplink` or None) figures, read at each scrape. The hand-set
        ``evicted_windows`` and ``uplink_reconnects`` series give way to the ones read here."""
        for legacy in (self.evicted_windows, self.uplink_reconnects):
            try:
                self.registry.unregister(legacy)
            except KeyError:
                pass
        self.registry.register(_UplinkCollector(outbox, uplink or (lambda: None)))

    def render(self) -> str:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry).decode("utf-8")


class _UplinkCollector(Collector):
    """The outbox and uplink series, read from them at each scrape (see :meth:`EdgeMetrics.watch_uplink`)."""

    def __init__(self, outbox: Any, uplink: Callable[[], Any]) -> None:
        self._outbox, self._uplink = outbox, uplink

    def describe(self) -> list[Metric]:
        return []              # not known before the first collect: no duplicate-name check at register

    def collect(self) -> Iterator[Metric]:
        try:
            evicted = self._outbox.evicted()
            evicted_after_send = self._outbox.evicted_after_send()
            states = self._outbox.states()
        except Exception as exc:  # noqa: BLE001 - a closed outbox (the gateway stopped): no series, no error
            log.debug("outbox metrics unavailable: %s", exc)
            return
        ev = CounterMetricFamily(f"{PREFIX}_outbox_evicted", "Outbox messages evicted unsent over the disk budget, "
                                 "by kind: lost (alerts and status are never evicted).", labels=["kind"])
        for kind, n in evicted.items():
            ev.add_metric([str(kind)], n)
        yield ev
        yield CounterMetricFamily(f"{PREFIX}_outbox_evicted_windows", "Windows evicted unsent from the outbox over "
                                  "its disk budget (lost).", value=evicted.get("window", 0))
        yield CounterMetricFamily(f"{PREFIX}_outbox_evicted_after_send", "Windows evicted over the disk budget after "
                                  "they were published (awaiting a receipt, so the cloud may hold them) or kept "
                                  "dead.", value=evicted_after_send)
        for state, help_text in (("published", "Outbox messages the broker took that wait for the cloud's receipt."),
                                 ("dead", "Outbox messages the cloud rejected, kept and never resent.")):
            name = "awaiting_receipt" if state == "published" else state
            g = GaugeMetricFamily(f"{PREFIX}_outbox_{name}", help_text, labels=["kind"])
            for kind, n in states.get(state, {}).items():
                g.add_metric([str(kind)], n)
            yield g
        uplink = self._uplink()
        if uplink is None:
            return
        c = uplink.counters
        yield CounterMetricFamily(f"{PREFIX}_uplink_reconnects", "Reconnections to the cloud broker.",
                                  value=c.reconnects)
        yield CounterMetricFamily(f"{PREFIX}_uplink_resends", "Messages sent again because the cloud's receipt did "
                                  "not come in time.", value=c.resends)
        yield CounterMetricFamily(f"{PREFIX}_uplink_receipt_subscription_refused", "Connections on which the broker "
                                  "refused the gateway's receipt subscription (its ACL).",
                                  value=c.receipt_subscription_refused)
        yield GaugeMetricFamily(f"{PREFIX}_uplink_connected", "Whether the uplink is connected to the cloud broker "
                                "now (1 or 0).", value=int(c.connected))
        for name, help_text, label, counts in (
                ("uplink_refused", "Publishes the broker refused (MQTT 5 reason code), by reason; the message "
                 "stays in the outbox.", "reason", c.refused),
                ("uplink_receipts", "Receipt items received from the cloud, by status.", "status", c.receipts),
                ("uplink_rejected", "Messages the cloud rejected (dead in the outbox), by the cloud's reason.",
                 "reason", c.rejected)):
            family = CounterMetricFamily(f"{PREFIX}_{name}", help_text, labels=[label])
            for key, n in sorted(counts.items()):
                family.add_metric([key], n)
            yield family
