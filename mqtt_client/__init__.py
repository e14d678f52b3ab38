"""The MQTT client every tier publishes with: aiomqtt's, plus the broker's answer to each publish.

aiomqtt 2.x drops the reason code of a PUBACK, and MQTT 5 is how a broker says it refused a
message (0x87 not authorised by the ACL, 0x97 quota exceeded, …) while still acknowledging it. The
edge's uplink and the cloud's ack publisher must both see that, so :class:`ReasonClient` keeps the
code of each PUBACK and :func:`reason_name` turns it into a metric label. A bottom-layer package
(it imports only aiomqtt and paho) because edge and cloud may not import each other.
"""

from mqtt_client.reasons import ReasonClient, reason_name

__all__ = ["ReasonClient", "reason_name"]
