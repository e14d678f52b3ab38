"""The cloud → edge downlink: staff acknowledgements of alarm episodes reach the gateway's alarm engines.

:mod:`.listener` (:class:`DownlinkListener`) subscribes to the gateway's ack topic
(:func:`protocol.topics.gateway_ack_topic`) over MQTT 5, QoS 1, in a persistent session, decodes each
:class:`protocol.downlink.AlarmAck` and hands its episode id to :meth:`edge.agent.EdgeAgent.acknowledge`,
which releases the latch (a latched episode whose condition has ended clears and its ``cleared`` alert
goes to the outbox). Malformed messages are counted and ignored.
"""

from edge.downlink.listener import AckTarget, DownlinkCounters, DownlinkListener

__all__ = ["AckTarget", "DownlinkCounters", "DownlinkListener"]
