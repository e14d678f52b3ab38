"""The cloud → edge downlink: staff acknowledgements sent back to the gateway that raised the alarm.

:mod:`.publisher` (:class:`AckPublisher`) publishes a :class:`protocol.downlink.AlarmAck` on the
gateway's ack topic (``ecgstream/v1/gateway/{gateway_id}/ack``, MQTT 5, QoS 1) after each successful
acknowledgement in the API (``POST /api/alerts/{alert_id}/ack``), so the edge releases the episode's
latch. The gateway comes from the episode's alert messages (``details['gateway_id']``, stamped by the
edge agent). The acknowledgement is stored first; without a broker the publish waits in a queue and
is retried, every step counted (``ecgstream_cloud_downlink_*_total``).
"""

from cloud.downlink.publisher import AckPublisher, DownlinkCounters, gateway_of

__all__ = ["AckPublisher", "DownlinkCounters", "gateway_of"]
