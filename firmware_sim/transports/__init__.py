"""How a virtual wearable's frames leave it: BLE (bumble), MQTT, or an in-process loopback.

Every transport implements :class:`firmware_sim.transports.base.DeviceTransport`;
import the one you need from its module (BLE pulls in bumble, MQTT aiomqtt).
"""
