"""What the demo and `ecgstream sim` listen with.

``watch_*`` decode every medium into a :class:`WardView` (``ecgstream sim``: a simple receiver
that counts what arrives). Each receiver decodes with
:mod:`protocol` and counts a payload that does not decode as rejected for its
device, so one device's garbage never stops the others.

``feed_*`` hand the same media to the edge agent instead (``ecgstream demo``: they are the
:class:`edge.gateway.Gateway`'s in-process feeds; MQTT goes through the gateway's own
:class:`edge.ingest.mqtt.MqttIngest`), and :func:`watch_uplink` counts what the
agent's uplink delivers to the broker.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import aiomqtt

from ecgstream.ward_view import WardView
from edge.ble.link import BleDisconnected, BleLink
from firmware_sim.transports.loopback import MessageKind, Subscription
from protocol import ProtocolError, decode_frame, decode_pmd_ecg, decode_samples_payload
from protocol.messages import DeviceStatus, decode_message
from protocol.topics import Channel, Scope, parse_topic, subscription

if TYPE_CHECKING:
    from edge.ingest.mqtt import PayloadSink


def _take(view: WardView, device_id: str, kind: MessageKind, data: bytes) -> None:
    stats = view.stats(device_id)
    try:
        if kind is MessageKind.FRAME:
            stats.add(decode_frame(data))
        elif kind is MessageKind.PMD:
            stats.add_pmd(decode_pmd_ecg(data))
        else:
            stats.add_status(decode_message(data, DeviceStatus))
    except ProtocolError as exc:
        stats.reject(str(exc))


async def watch_loopback(sub: Subscription, view: WardView) -> None:
    """Consume a loopback subscription until cancelled."""
    async for message in sub:
        _take(view, message.device_id, message.kind, message.data)


async def watch_mqtt(client: aiomqtt.Client, view: WardView) -> None:
    """Subscribe to every device's samples and status and consume until cancelled."""
    await client.subscribe(subscription(Scope.DEVICE, Channel.SAMPLES), qos=1)
    await client.subscribe(subscription(Scope.DEVICE, Channel.STATUS), qos=1)
    async for message in client.messages:
        try:
            topic = parse_topic(str(message.topic))
        except ProtocolError as exc:
            view.stats("?unknown-topic").reject(str(exc))
            continue
        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
        stats = view.stats(topic.ident)
        try:
            if topic.channel is Channel.SAMPLES:
                stats.add(decode_samples_payload(payload))
            else:
                stats.add_status(decode_message(payload, DeviceStatus))
        except ProtocolError as exc:
            stats.reject(str(exc))


async def watch_ble(link: BleLink, device_id: str, kind: MessageKind, view: WardView) -> None:
    """Consume one BLE link's notifications until it ends."""
    try:
        async for payload in link:
            _take(view, device_id, kind, payload)
    except BleDisconnected:
        view.stats(device_id).connected = False


# -- the demo's edge gateway: the same media into the edge agent ------------------------------------------


async def feed_loopback(sub: Subscription, agent: PayloadSink) -> None:
    """Hand a loopback subscription to ``agent`` (arrival: the agent's clock) until cancelled."""
    async for message in sub:
        agent.feed(message.device_id, message.data, str(message.kind), transport="loopback")


async def feed_ble(link: BleLink, device_id: str, kind: MessageKind, agent: PayloadSink) -> None:
    """Hand one BLE link's notifications to ``agent`` until the link ends (then: link down)."""
    try:
        async for payload in link:
            agent.feed(device_id, payload, str(kind), transport="ble")
    except BleDisconnected as exc:
        agent.link_down(device_id, str(exc))


async def watch_uplink(client: aiomqtt.Client, counts: dict[str, int]) -> None:
    """Count what the edge uplink delivered to the broker (patient alerts and windows), as a cloud would."""
    await client.subscribe(subscription(Scope.PATIENT, Channel.ALERT), qos=1)
    await client.subscribe(subscription(Scope.PATIENT, Channel.WINDOW), qos=1)
    async for message in client.messages:
        with contextlib.suppress(ProtocolError):
            channel = str(parse_topic(str(message.topic)).channel)
            counts[channel] = counts.get(channel, 0) + 1
