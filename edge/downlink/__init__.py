"""The cloud → edge downlink: staff acknowledgements of alarm episodes reach the gateway's alarm engines.

:mod:`.listener` (:class:`DownlinkListener`) applies what arrives on the gateway's ack topic
(:func:`protocol.topics.gateway_ack_topic`): the gateway's uplink subscribes to it on its own connection
(QoS 1, persistent session, beside its receipt topic) and hands each message to
:meth:`DownlinkListener.take`, which decodes the :class:`protocol.downlink.AlarmAck` and hands its
episode id to :meth:`edge.agent.EdgeAgent.acknowledge`, which releases the latch (a latched episode
whose condition has ended clears and its ``cleared`` alert goes to the outbox). Malformed messages are
counted and ignored.
"""

from edge.downlink.listener import AckTarget, DownlinkCounters, DownlinkListener

__all__ = ["AckTarget", "DownlinkCounters", "DownlinkListener"]
