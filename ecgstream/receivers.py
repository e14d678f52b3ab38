"""What the demo and `ecgstream sim` listen with: decode every medium into a WardView.

These stand where the edge gateway will stand. Each receiver decodes with
:mod:`protocol` and counts a payload that does not decode as rejected for its
device, so one device's garbage never stops the others.
"""

from __future__ import annotations

import aiomqtt

from ecgstream.ward_view import WardView
from edge.ble.link import BleDisconnected, BleLink
from firmware_sim.transports.loopback import MessageKind, Subscription
from protocol import ProtocolError, decode_frame, decode_pmd_ecg, decode_samples_payload
from protocol.messages import DeviceStatus, decode_message
from protocol.topics import Channel, Scope, parse_topic, subscription


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
