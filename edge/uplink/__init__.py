"""Store-and-forward uplink: a durable SQLite outbox drained to the cloud broker over MQTT QoS 1."""

from edge.uplink.outbox import Kind, Outbox, OutboxError, OutboxMessage
from edge.uplink.uplink import Uplink, UplinkCounters

__all__ = ["Kind", "Outbox", "OutboxError", "OutboxMessage", "Uplink", "UplinkCounters"]
