"""Observability of the edge agent: Prometheus metrics, structured logs and the status snapshot.

Modules: :mod:`.metrics` (:class:`~.metrics.EdgeMetrics`, its own registry),
:mod:`.exporter` (HTTP ``/metrics`` and ``/status``), :mod:`.logging`
(:func:`~.logging.configure_logging`, :func:`~.logging.log_event`),
:mod:`.status` (:class:`~.status.StatusSnapshot`, written atomically, read by
``ecgstream edge status``). Nothing is re-exported here, so reading a status
file does not import prometheus_client.
"""
