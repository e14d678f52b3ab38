"""The live display stream (edge.uplink.live): taps cut ~1 s chunks; the gateway publishes them and vitals.

The first tests drive a :class:`LiveTap` with stream output as a session hands it to its windower;
the last runs a gateway on a real Mosquitto with a simulated wearable and reads what a cloud would:
chunks on the patient's live topic (QoS 0) and the gateway status with the patient's vitals.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from edge.config import parse_config
from edge.gateway import Endpoint, Gateway
from edge.stream.records import Gap, GapReason, ModelBlock, StreamOutput
from edge.uplink.live import LiveSettings, LiveTap
from firmware_sim.scenario import parse_scenario
from firmware_sim.transports.mqtt import MqttDeviceTransport
from firmware_sim.ward import build_ward, run_ward
from protocol.live_payload import LiveChunk, decode_live_chunk
from protocol.messages import GatewayStatus, decode_message
from tests.conftest import MqttBroker

PACE = 4.0
WAIT_S = 60.0


def _block(segment: int, offset: int, n: int, fs: float = 125.0, t0: float = 100.0, leads: int = 3) -> StreamOutput:
    t = (offset + np.arange(n)) / fs
    x = np.stack([np.sin(2 * np.pi * t) * (k + 1) for k in range(leads)], axis=1).astype(np.float32)
    return StreamOutput(model_blocks=[ModelBlock(segment, offset, x, fs, t0 + offset / fs)])


def test_a_tap_cuts_one_second_chunks_that_join_without_a_gap() -> None:
    tap = LiveTap("bed-1", "dev-1", LiveSettings())
    tap.bind(("II", "V1", "V5"))
    for k in range(5):                                  # 2.5 s in half-second blocks
        tap.take(_block(0, 62 * k, 62))
    chunks = tap.chunks()
    assert [c.n_samples for c in chunks] == [155, 155]           # equal chunks of about a second
    assert chunks[0].gap_before and not chunks[1].gap_before
    assert chunks[1].t0_us - chunks[0].t0_us == 155 * 8000
    assert all(type(c.gap_before) is bool for c in chunks)
    assert chunks[0].leads == ("II", "V1", "V5") and chunks[0].fs_hz == 125.0
    np.testing.assert_allclose(np.concatenate([c.millivolts() for c in chunks], axis=1)[0],
                               np.sin(2 * np.pi * np.arange(310) / 125.0), atol=1e-3)
    tap.take(_block(0, 310, 10))                        # the next period goes on where the last ended
    (more,) = tap.chunks()
    assert not more.gap_before
    assert more.seq == chunks[-1].seq + 1
    assert more.t0_us == chunks[-1].t0_us + 155 * 8000


def test_a_gap_or_a_new_segment_starts_a_new_trace() -> None:
    tap = LiveTap("bed-1", "dev-1", LiveSettings())
    tap.bind(("II", "V1", "V5"))
    tap.take(_block(0, 0, 50))
    gap = Gap(start=100, length=40, reason=GapReason.LOST_FRAMES, interpolated=False, t_device_us=0.0,
              t_gateway_s=0.0)
    out = _block(500, 0, 50, t0=103.0)
    out.gaps.append(gap)
    tap.take(out)
    a, b = tap.chunks()
    assert a.gap_before and b.gap_before
    assert b.t0_us == 103_000_000


def test_only_the_configured_leads_the_device_has_and_a_higher_rate_is_decimated() -> None:
    tap = LiveTap("bed-1", "dev-1", LiveSettings(leads=("II", "V5")))
    tap.bind(("I", "II", "V1"))
    tap.take(_block(0, 0, 500, fs=250.0))
    (chunk,) = tap.chunks()[:1]
    assert chunk.leads == ("II",) and chunk.fs_hz == 125.0 and chunk.n_samples == 125
    assert np.abs(chunk.millivolts()[0]).max() < 2.1            # lead II of the stream (column 1: amplitude 2)
    assert np.abs(chunk.millivolts()[0]).max() > 1.9


def test_a_tap_keeps_only_the_last_seconds_while_nobody_takes_them() -> None:
    tap = LiveTap("bed-1", "dev-1", LiveSettings(max_buffer_s=2.0))
    tap.bind(("II", "V1", "V5"))
    for k in range(10):
        tap.take(_block(0, 125 * k, 125))
    chunks = tap.chunks()
    assert sum(c.n_samples for c in chunks) == 250
    assert chunks[0].gap_before and chunks[0].t0_us == 108_000_000
    assert tap.counters.samples_dropped == 1000


def _ward(device: str) -> str:
    return f"""
name = "live-test"
duration_s = 12
seed = 3
[[patient]]
id = "{device}"
device = "{device}"
heart_rate = 72
rhythm = [ {{ at = 0, name = "sinus" }} ]
"""


@pytest.mark.mosquitto
async def test_the_gateway_publishes_live_chunks_and_vitals_to_the_broker(
    mqtt_broker: MqttBroker, unique_id: str, tmp_path: Path
) -> None:
    gateway_id = f"{unique_id}-gw"
    config = parse_config(f"""
gateway_id = "{gateway_id}"
[ingest.mqtt]
host = "{mqtt_broker.host}"
port = {mqtt_broker.port}
[uplink]
host = "{mqtt_broker.host}"
port = {mqtt_broker.port}
receipts = false
outbox_path = "{tmp_path / 'outbox.sqlite'}"
[observability]
status_file = "{tmp_path / 'status.json'}"
""")
    broker = Endpoint(mqtt_broker.host, mqtt_broker.port)
    m0, t0 = time.monotonic(), 1_700_000_000.0

    def paced() -> float:
        return t0 + PACE * (time.monotonic() - m0)

    chunks: list[LiveChunk] = []
    statuses: list[GatewayStatus] = []
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"{unique_id}-cloud") as cloud:
        await cloud.subscribe(f"ecgstream/v1/patient/{unique_id}/live", qos=0)
        await cloud.subscribe(f"ecgstream/v1/gateway/{gateway_id}/status", qos=0)

        async def enough() -> None:
            async for m in cloud.messages:
                assert isinstance(m.payload, bytes)
                if str(m.topic).endswith("/live"):
                    chunks.append(decode_live_chunk(m.payload))
                else:
                    statuses.append(decode_message(m.payload, GatewayStatus))
                seconds = sum(c.duration_s for c in chunks)
                if seconds >= 6 and any(v.heart_rate_bpm for s in statuses for v in s.patients):
                    return

        async with Gateway(config, ingest=broker, uplink=broker, clock=paced) as gateway:
            await gateway.ready()
            stop = asyncio.Event()
            ticking = asyncio.create_task(gateway.run_until(stop, tick_s=0.1 / PACE))
            beds = build_ward(parse_scenario(_ward(unique_id)),
                              lambda d, p: MqttDeviceTransport(d, hostname=mqtt_broker.host, port=mqtt_broker.port))
            wearable = asyncio.create_task(run_ward(beds, pace=PACE))
            try:
                await asyncio.wait_for(enough(), WAIT_S)
            finally:
                wearable.cancel()
                stop.set()
                await ticking
            assert gateway.outbox.total_depth == 0          # display data never goes through the outbox
            counters = gateway.uplink.counters if gateway.uplink else None

    assert counters is not None and counters.live_chunks >= 1 and counters.live_vitals >= 1
    assert counters.live_bytes > 100 * counters.live_chunks
    assert {(c.patient_id, c.device_id, c.leads, c.fs_hz) for c in chunks} == {(unique_id, unique_id,
                                                                               ("II", "V1", "V5"), 125.0)}
    assert all(c.n_samples <= 188 for c in chunks)             # about a second each (at most 1.5 s)
    assert chunks[0].gap_before
    seqs = [c.seq for c in chunks]
    assert seqs == sorted(seqs)
    for a, b in zip(chunks, chunks[1:], strict=False):      # a continuous trace: each chunk starts where the last ended
        if b.seq == a.seq + 1 and not b.gap_before:
            assert abs(b.t0_us - (a.t0_us + a.n_samples * 8000)) <= 8000
    assert max(np.abs(c.millivolts()[0]).max() for c in chunks) > 0.3    # R waves in lead II
    vitals = [v for s in statuses for v in s.patients if v.patient_id == unique_id]
    assert all(s.minor_version == 1 for s in statuses if s.patients)
    hr = [v.heart_rate_bpm for v in vitals if v.heart_rate_bpm]
    assert hr and 60 <= hr[-1] <= 85
    assert vitals[-1].connected and vitals[-1].device_id == unique_id and vitals[-1].analysis_lead == "II"
