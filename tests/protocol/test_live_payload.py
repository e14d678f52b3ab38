"""Live display chunks (protocol.live_payload), the live topic, and vitals on the gateway status."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from protocol import GatewayStatus, ProtocolError, decode_message, encode_message
from protocol.envelope import PayloadKind, wrap
from protocol.leads import STANDARD_LEADS
from protocol.live_payload import LiveChunk, decode_live_chunk, encode_live_chunk, quantize_uv
from protocol.messages import PatientVitals
from protocol.topics import Channel, Scope, live_topic, parse_topic, subscription

ids = st.from_regex(r"[A-Za-z0-9_.\-]{1,64}", fullmatch=True)
lead_sets = st.sets(st.sampled_from(STANDARD_LEADS), min_size=1).map(
    lambda s: tuple(x for x in STANDARD_LEADS if x in s))


@st.composite
def chunks(draw: st.DrawFn) -> LiveChunk:
    leads = draw(lead_sets)
    n = draw(st.integers(1, 400))
    samples = draw(hnp.arrays(np.int16, (len(leads), n)))
    return LiveChunk(
        patient_id=draw(ids), device_id=draw(ids), seq=draw(st.integers(0, 2**32 - 1)),
        t0_us=draw(st.integers(0, 2**63 - 1)), fs_hz=draw(st.integers(1, 4_000_000)) / 1000.0, leads=leads,
        samples=samples, lsb_nv=draw(st.integers(1, 0xFFFF)), gap_before=draw(st.booleans()))


@given(chunks())
@settings(max_examples=200)
def test_live_chunk_round_trips(chunk: LiveChunk) -> None:
    back = decode_live_chunk(encode_live_chunk(chunk))
    assert (back.patient_id, back.device_id, back.seq, back.t0_us, back.leads, back.lsb_nv, back.gap_before) == \
        (chunk.patient_id, chunk.device_id, chunk.seq, chunk.t0_us, chunk.leads, chunk.lsb_nv, chunk.gap_before)
    assert back.fs_hz == pytest.approx(chunk.fs_hz, abs=5e-4)
    np.testing.assert_array_equal(back.samples, chunk.samples)


@given(chunks(), st.data())
@settings(max_examples=200)
def test_a_damaged_chunk_is_refused_with_a_protocol_error_only(chunk: LiveChunk, data: st.DataObject) -> None:
    raw = bytearray(encode_live_chunk(chunk))
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(ProtocolError):
        decode_live_chunk(bytes(raw[:cut]))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    try:
        decode_live_chunk(bytes(raw))
    except ProtocolError:
        pass


def test_one_second_of_three_leads_at_125_hz_is_under_a_kilobyte() -> None:
    t = np.arange(125) / 125.0
    mv = np.stack([np.sin(2 * np.pi * t), 0.5 * np.cos(2 * np.pi * t), np.zeros_like(t)])
    chunk = LiveChunk("bed-1", "dev-1", 7, 1_700_000_000_000_000, 125.0, ("II", "V1", "V5"), quantize_uv(mv))
    raw = encode_live_chunk(chunk)
    assert len(raw) < 1000
    back = decode_live_chunk(raw)
    np.testing.assert_allclose(back.millivolts(), mv, atol=1e-3)
    assert back.microvolts()[0].max() == 1000


def test_quantize_clips_and_blanks_missing_samples() -> None:
    q = quantize_uv(np.array([[np.nan, 40.0, -40.0, 0.0015]]))
    assert q.tolist() == [[0, 32767, -32768, 2]]


def test_a_chunk_of_another_payload_kind_or_version_is_refused() -> None:
    raw = encode_live_chunk(LiveChunk("p", "d", 0, 0, 125.0, ("II",), np.zeros((1, 3), np.int16)))
    with pytest.raises(ProtocolError, match="expected a live payload"):
        decode_live_chunk(wrap(PayloadKind.WINDOW, 1, raw[4:]))
    with pytest.raises(ProtocolError, match="version"):
        decode_live_chunk(raw[:3] + bytes([9]) + raw[4:])


def test_encoder_refuses_what_a_receiver_would_refuse() -> None:
    with pytest.raises(ProtocolError):
        encode_live_chunk(LiveChunk("p", "d", 0, 0, 125.0, ("V1", "II"), np.zeros((2, 3), np.int16)))
    with pytest.raises(ProtocolError):
        encode_live_chunk(LiveChunk("p/x", "d", 0, 0, 125.0, ("II",), np.zeros((1, 3), np.int16)))
    with pytest.raises(ProtocolError):
        encode_live_chunk(LiveChunk("p", "d", 0, 0, 125.0, ("II",), np.zeros((1, 3), np.float32)))


def test_live_topic_is_a_patient_channel() -> None:
    assert live_topic("bed-4") == "ecgstream/v1/patient/bed-4/live"
    parsed = parse_topic("ecgstream/v1/patient/bed-4/live")
    assert (parsed.scope, parsed.ident, parsed.channel) == (Scope.PATIENT, "bed-4", Channel.LIVE)
    assert subscription(Scope.PATIENT, Channel.LIVE) == "ecgstream/v1/patient/+/live"
    with pytest.raises(ProtocolError):
        parse_topic("ecgstream/v1/device/x/live")


# ---- vitals on the gateway status (minor version 1) ---------------------------------------------

vitals = st.builds(
    PatientVitals, patient_id=ids, device_id=ids,
    heart_rate_bpm=st.none() | st.floats(0, 400), sqi=st.none() | st.floats(0, 1),
    analysis_lead=st.none() | st.sampled_from(STANDARD_LEADS), battery_pct=st.none() | st.integers(0, 100),
    connected=st.booleans(), last_data_age_s=st.none() | st.floats(0, 1e6),
    lead_off=st.lists(st.sampled_from(("RA", "LA", "LL", "V1")), unique=True, max_size=3).map(tuple))


@given(st.lists(vitals, max_size=20).map(tuple))
@settings(max_examples=100)
def test_gateway_status_with_vitals_round_trips(patients: tuple[PatientVitals, ...]) -> None:
    status = GatewayStatus("gw-1", 1_700_000_000_000_000, streams=len(patients), patients=patients, minor_version=1)
    assert decode_message(encode_message(status), GatewayStatus) == status


def test_an_old_status_reads_as_minor_version_0_without_vitals() -> None:
    old = b'{"gateway_id":"gw","outbox_depth":0,"schema_version":1,"software":"","streams":0,"t_gateway_us":5}'
    status = decode_message(old, GatewayStatus)
    assert status.minor_version == 0 and status.patients == ()


def test_an_old_reader_keeps_reading_a_status_with_vitals() -> None:
    """schema_version stays 1: what a v1 reader needs is all there, the rest it ignores by rule."""
    raw = encode_message(GatewayStatus("gw", 5, patients=(PatientVitals("p", "d", heart_rate_bpm=72.0),),
                                       minor_version=1))
    obj = json.loads(raw)
    assert obj["schema_version"] == 1
    assert {"gateway_id", "t_gateway_us", "streams", "outbox_depth", "software"} <= obj.keys()


@pytest.mark.parametrize("bad", [
    {"patient_id": "p"}, {"patient_id": "p", "device_id": "d", "sqi": 1.5},
    {"patient_id": "p", "device_id": "d", "battery_pct": 101}, {"patient_id": "p", "device_id": "d", "lead_off": ["X"]},
    {"patient_id": "p", "device_id": "d", "analysis_lead": "Z"}, "p",
])
def test_bad_vitals_are_refused(bad: object) -> None:
    obj = {"gateway_id": "gw", "t_gateway_us": 1, "schema_version": 1, "minor_version": 1, "patients": [bad]}
    with pytest.raises(ProtocolError):
        decode_message(json.dumps(obj), GatewayStatus)
