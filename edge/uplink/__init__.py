"""Store-and-forward uplink: a durable SQLite outbox drained to the cloud broker over MQTT 5, QoS 1.

:mod:`.outbox` (:class:`Outbox`) keeps alerts, status and windows on disk until they are delivered,
evicting only windows under a byte budget (counted), never alerts; :mod:`.uplink` (:class:`Uplink`)
publishes them in order over one persistent MQTT 5 session and deletes an alert or window only on
the cloud's end-to-end receipt (:mod:`protocol.receipts`), resending what is not receipted in time;
a broker refusal (PUBACK reason code) keeps the message and is counted and reported. :mod:`.live`
(:class:`LiveFeed`) is the display stream beside it: each patient's ECG and vitals every second at
QoS 0, never through the outbox.
"""

from edge.uplink.live import LiveFeed, LiveSettings, LiveTap
from edge.uplink.outbox import Kind, Outbox, OutboxError, OutboxMessage, ReceiptOutcome, State
from edge.uplink.uplink import Uplink, UplinkCounters, reason_name

__all__ = [
    "Kind", "LiveFeed", "LiveSettings", "LiveTap", "Outbox", "OutboxError", "OutboxMessage", "ReceiptOutcome", "State", "Uplink", "UplinkCounters",
    "reason_name",
]
