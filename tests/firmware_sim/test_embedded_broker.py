"""The zero-setup amqtt broker relays aiomqtt publish/subscribe on a port picked at run time."""

from __future__ import annotations

import asyncio
import math

import aiomqtt
import numpy as np

from firmware_sim.device import VirtualDevice
from firmware_sim.embedded_broker import EmbeddedBroker
from firmware_sim.source import ArraySource
from firmware_sim.transports.mqtt import MqttDeviceTransport
from protocol.ble_frame import quantize
from protocol.leads import WEARABLE_LEADS
from protocol.samples_payload import decode_samples_payload
from protocol.topics import samples_topic


async def test_embedded_broker_relays_aiomqtt_publish_to_subscriber(unique_id):
    async with EmbeddedBroker() as broker, EmbeddedBroker() as other:
        assert broker.port > 0 and other.port != broker.port
        async with aiomqtt.Client(broker.host, broker.port, identifier=f"{unique_id}-rx") as rx:
            await rx.subscribe(f"{unique_id}/#", qos=1)
            async with aiomqtt.Client(broker.host, broker.port, identifier=f"{unique_id}-tx") as tx:
                for i in range(5):
                    await tx.publish(f"{unique_id}/n", str(i).encode(), qos=1)
            got = []
            async with asyncio.timeout(10):
                async for message in rx.messages:
                    got.append(message.payload)
                    if len(got) == 5:
                        break
    assert got == [b"0", b"1", b"2", b"3", b"4"]


async def test_a_device_streams_through_the_embedded_broker(unique_id):
    signal = np.random.default_rng(8).normal(0, 1, size=(500, 3))
    async with (
        EmbeddedBroker() as broker,
        aiomqtt.Client(broker.host, broker.port, identifier=f"{unique_id}-rx") as rx,
    ):
        await rx.subscribe(samples_topic(unique_id), qos=1)
        transport = MqttDeviceTransport(unique_id, hostname=broker.host, port=broker.port)
        device = VirtualDevice(unique_id, "ecgstream-250", ArraySource(signal, 250, WEARABLE_LEADS), transport)
        await device.run(None, pace=math.inf)
        frames = []
        async with asyncio.timeout(10):
            async for message in rx.messages:
                frames.append(decode_samples_payload(message.payload))
                if len(frames) == 10:
                    break
    assert [f.seq for f in frames] == list(range(10))
    np.testing.assert_array_equal(np.concatenate([f.samples for f in frames]), quantize(signal, 1000, frames[0].sample_format))
