"""The cloud ingest service: validate what the edge publishes and store it.

- :mod:`cloud.ingest.validation`: :func:`validate` maps ``(topic, payload)`` to Accepted or
  Rejected with a counted :class:`Reason`;
- :mod:`cloud.ingest.worker`: :class:`IngestWorker`, an MQTT 5 shared-subscription consumer that
  acknowledges each QoS 1 message only after it is stored (or de-duplicated, or rejected).
"""

from cloud.ingest.validation import Accepted, Kind, Reason, Rejected, check_payload, check_registry, validate
from cloud.ingest.worker import TOPIC_FILTERS, IngestCounters, IngestWorker, StoreFailure

__all__ = [
    "TOPIC_FILTERS", "Accepted", "IngestCounters", "IngestWorker", "Kind", "Reason", "Rejected", "StoreFailure",
    "check_payload", "check_registry", "validate",
]
