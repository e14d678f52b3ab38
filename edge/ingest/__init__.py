"""Ingest of the edge agent: one :class:`~edge.ingest.session.DeviceSession` per device, and MQTT ingest.

:mod:`.session` turns one device's decoded frames into alarm evidence, windows and alerts (stream
state, QRS analysis of lead II, windowing, the device's alarm engine); :mod:`.mqtt` subscribes to
the devices that publish over MQTT and feeds an :class:`edge.agent.EdgeAgent`. BLE devices come in
through :mod:`edge.ble`; in-process sources (tests, the demo, replays, :mod:`evaluation`) call
:meth:`edge.agent.EdgeAgent.feed` directly.
"""

from edge.ingest.session import DeviceSession, SessionConfig, SessionCounters, SessionOutput

__all__ = ["DeviceSession", "SessionConfig", "SessionCounters", "SessionOutput"]
