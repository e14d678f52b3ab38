"""Prometheus metrics of one edge agent, in a registry of its own.

Each :class:`EdgeMetrics` owns a :class:`prometheus_client.CollectorRegistry`
(not the process-global one), so tests and several agents in one process never
collide. Series carry no device or patient labels: with hundreds of patients
per gateway that would multiply the series, and per-stream detail is in the
status snapshot (:mod:`edge.observability.status`). Names start with
``ecgstream_edge_``; rates such as windows per second are ``rate()`` of the
counters. :meth:`EdgeMetrics.render` gives the text exposition;
:mod:`edge.observability.exporter` serves it over HTTP.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

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

    def render(self) -> str:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry).decode("utf-8")
