"""Ingest of the edge agent: one :class:`~edge.ingest.session.DeviceSession` per device, and the media.

:mod:`.session` turns one device's decoded frames into alarm evidence, windows and alerts;
:mod:`.mqtt` subscribes to the devices that publish over MQTT and feeds an
:class:`edge.agent.EdgeAgent`. In-process sources (tests, the demo, replays) call
:meth:`edge.agent.EdgeAgent.feed` directly. BLE ingest (bleak for hardware, bumble for
emulated links) is still to come: the bumble central lives in ``firmware_sim`` for now.
"""

from edge.ingest.session import DeviceSession, SessionConfig, SessionCounters, SessionOutput

__all__ = ["DeviceSession", "SessionConfig", "SessionCounters", "SessionOutput"]
