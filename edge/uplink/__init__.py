"""Store-and-forward uplink: a durable SQLite outbox drained to the cloud broker over MQTT QoS 1.

:mod:`.outbox` (:class:`Outbox`) keeps alerts, status and windows on disk until the broker
acknowledges them, evicting only windows under a byte budget (counted), never alerts;
:mod:`.uplink` (:class:`Uplink`) publishes them in order over one persistent MQTT session and
deletes each on its PUBACK, so a gateway or broker restart loses nothing.
"""

from edge.uplink.outbox import Kind, Outbox, OutboxError, OutboxMessage
from edge.uplink.uplink import Uplink, UplinkCounters

__all__ = ["Kind", "Outbox", "OutboxError", "OutboxMessage", "Uplink", "UplinkCounters"]
