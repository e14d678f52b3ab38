"""MQTT payloads: binary samples and windows, JSON alerts and status."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    Alert,
    AlertCategory,
    DeviceStatus,
    EcgFrame,
    EcgWindow,
    FrameError,
    GatewayStatus,
    Priority,
    ProtocolError,
    SampleFormat,
    SchemaError,
    UnsupportedVersionError,
    decode_message,
    decode_samples_payload,
    decode_window,
    encode_message,
    encode_samples_payload,
    encode_window,
)
from protocol.leads import STANDARD_LEADS, WEARABLE_LEADS

# ---- samples -----------------------------------------------------------------------------------


@given(st.integers(1, 2000), st.sampled_from(list(SampleFormat)), st.integers(0, 2**32 - 1))
@settings(max_examples=50)
def test_samples_payload_round_trips_long_blocks(n: int, fmt: SampleFormat, seed: int) -> None:
    lo, hi = fmt.limits
    samples = np.random.default_rng(seed).integers(lo, hi + 1, (n, 3)).astype(np.int32)
    frame = EcgFrame(seq=seed, t0_us=seed * 7, fs_hz=500, leads=WEARABLE_LEADS, samples=samples, battery_pct=42,
                     sample_format=fmt, lead_off=("V1",))
    assert decode_samples_payload(encode_samples_payload(frame)) == frame


@given(st.binary(max_size=200))
@settings(max_examples=1000)
def test_samples_decoder_raises_only_protocol_errors(data: bytes) -> None:
    try:
        decode_samples_payload(b"ES\x01\x01" + data)
    except ProtocolError:
        pass


def test_unknown_samples_schema_version_is_rejected_clearly() -> None:
    frame = EcgFrame(seq=0, t0_us=0, fs_hz=250, leads=WEARABLE_LEADS, samples=np.zeros((5, 3), np.int32))
    data = bytearray(encode_samples_payload(frame))
    data[3] = 9
    with pytest.raises(UnsupportedVersionError, match="samples payload schema version 9 is not supported"):
        decode_samples_payload(bytes(data))


def test_a_window_is_not_mistaken_for_samples() -> None:
    with pytest.raises(FrameError, match="expected a samples payload, got window"):
        decode_samples_payload(encode_window(_window(np.random.default_rng(0))))


# ---- windows -----------------------------------------------------------------------------------


def _window(rng: np.random.Generator, n: int = 5000, with_unc: bool = True) -> EcgWindow:
    t = np.arange(n) / 500
    clean = (1000 * np.sin(2 * np.pi * 1.2 * t)[None, :] * rng.uniform(0.2, 1.5, (12, 1))).astype(np.int16)
    recon = tuple(lead for lead in STANDARD_LEADS if lead not in WEARABLE_LEADS)
    return EcgWindow(
        window_id=EcgWindow.new_id(), patient_id="bed-7", device_id="es-0007", t0_us=1_764_000_000_000_000,
        fs_hz=500, leads=STANDARD_LEADS, samples=clean, reconstructed=recon,
        uncertainty=rng.integers(0, 200, (len(recon), n)).astype(np.int16) if with_unc else None,
    )


@given(st.integers(0, 2**32 - 1), st.integers(1, 3000), st.booleans())
@settings(max_examples=40)
def test_window_round_trips_exactly(seed: int, n: int, with_unc: bool) -> None:
    window = _window(np.random.default_rng(seed), n, with_unc)
    assert decode_window(encode_window(window)) == window


def test_extreme_sample_values_survive_delta_coding() -> None:
    window = _window(np.random.default_rng(1), 8, with_unc=False)
    samples = np.tile(np.array([-32768, 32767, -32768, 0, 32767, -1, 1, -32768], np.int16), (12, 1))
    window = EcgWindow(**{**window.__dict__, "samples": samples})
    np.testing.assert_array_equal(decode_window(encode_window(window)).samples, samples)


def test_a_ten_second_twelve_lead_window_is_compact() -> None:
    data = encode_window(_window(np.random.default_rng(2), with_unc=False))
    raw = 12 * 5000 * 2
    assert len(data) < raw / 4


@given(st.binary(max_size=300))
@settings(max_examples=1000)
def test_window_decoder_raises_only_protocol_errors(data: bytes) -> None:
    try:
        decode_window(b"ES\x02\x01" + data)
    except ProtocolError:
        pass


def test_a_decompression_bomb_is_refused_without_inflating_it() -> None:
    window = _window(np.random.default_rng(3), 10, with_unc=False)
    good = encode_window(window)
    data_at = 4 + 37 + 1 + len(window.patient_id) + 1 + len(window.device_id)  # envelope, fixed, ids
    bomb = zlib.compress(bytes(50_000_000))
    data = good[:data_at] + len(bomb).to_bytes(4, "little") + bomb
    with pytest.raises(FrameError, match="header implies"):
        decode_window(data)


@st.composite
def _gap_lists(draw: st.DrawFn, n: int) -> tuple[tuple[int, int], ...]:
    cuts = sorted(set(draw(st.lists(st.integers(0, n), max_size=8))))
    pairs = [(a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=False) if a < b]
    return tuple(pairs)


@given(st.integers(0, 2**32 - 1), st.integers(1, 3000), st.booleans(), st.data())
@settings(max_examples=40)
def test_a_window_with_gaps_round_trips_as_v2(seed: int, n: int, with_unc: bool, data: st.DataObject) -> None:
    gaps = data.draw(_gap_lists(n))
    window = EcgWindow(**{**_window(np.random.default_rng(seed), n, with_unc).__dict__, "gaps": gaps})
    payload = encode_window(window)
    assert payload[3] == (2 if gaps else 1)   # without gaps: v1, byte for byte as before
    back = decode_window(payload)
    assert back == window and back.gaps == gaps
    assert back.masked_samples == int(back.gap_mask().sum()) == sum(b - a for a, b in gaps)


def test_a_v1_decoder_refuses_a_masked_window_clearly_and_v2_reads_v1() -> None:
    from protocol.envelope import PayloadKind, unwrap

    window = EcgWindow(**{**_window(np.random.default_rng(4), 100, False).__dict__, "gaps": ((10, 20), (50, 51))})
    payload = encode_window(window)
    with pytest.raises(UnsupportedVersionError, match="2"):
        unwrap(payload, PayloadKind.WINDOW, (1,))          # what a v1 decoder does
    plain = _window(np.random.default_rng(4), 100, False)
    v1 = encode_window(plain)
    assert v1[3] == 1 and decode_window(v1) == plain and decode_window(v1).gaps == ()


@pytest.mark.parametrize("gaps", [((5, 5),), ((10, 20), (15, 30)), ((0, 101),), ((20, 30), (0, 10)), ((-1, 3),)])
def test_bad_gap_ranges_are_refused(gaps: tuple[tuple[int, int], ...]) -> None:
    window = EcgWindow(**{**_window(np.random.default_rng(5), 100, False).__dict__, "gaps": gaps})
    with pytest.raises(SchemaError, match="gaps"):
        encode_window(window)


def test_a_gap_flag_in_a_v1_payload_is_refused() -> None:
    payload = bytearray(encode_window(_window(np.random.default_rng(6), 50, False)))
    payload[4 + 36] |= 0x02                       # flags byte of the fixed header
    with pytest.raises(FrameError, match="reserved window flag"):
        decode_window(bytes(payload))


# ---- JSON messages -----------------------------------------------------------------------------


def _alert(**over: object) -> Alert:
    fields: dict[str, object] = dict(
        alert_id=Alert.new_id(), patient_id="bed-7", device_id="es-0007", alert_type="vt",
        category=AlertCategory.CLINICAL, priority=Priority.HIGH, onset_gateway_us=1_764_000_000_000_000,
        onset_device_us=123_456, window_id=EcgWindow.new_id(), message="Ventricular tachycardia 180/min",
        model_versions={"classifier": "mamba-0.1"}, reconstructed_leads={"V2": 0.05}, details={"hr": 180},
    )
    fields.update(over)
    return Alert(**fields)  # type: ignore[arg-type]


def test_messages_round_trip() -> None:
    for message in (
        _alert(),
        DeviceStatus(device_id="es-1", t_device_us=5, battery_pct=80, lead_off=("V1",), profile="ecgstream-250"),
        GatewayStatus(gateway_id="gw-1", t_gateway_us=7, streams=3, outbox_depth=2),
    ):
        assert decode_message(encode_message(message), type(message)) == message  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"priority": "urgent"}, "Priority"),
        ({"alert_id": "not-a-uuid"}, "'alert_id' is not a UUID"),
        ({"onset_gateway_us": "soon"}, "'onset_gateway_us' has type str"),
        ({"onset_gateway_us": True}, "must not be a boolean"),
        ({"patient_id": "bed/7"}, "patient_id"),
        ({"reconstructed_leads": {"V9": 0.1}}, "standard leads"),
        ({"schema_version": 2}, "alert schema version 2 is not supported"),
    ],
)
def test_bad_alerts_name_the_offending_field(change: dict, message: str) -> None:
    obj = json.loads(encode_message(_alert()))
    obj.update(change)
    with pytest.raises(ProtocolError, match=message):
        decode_message(json.dumps(obj).encode(), Alert)


def test_missing_field_is_named() -> None:
    obj = json.loads(encode_message(_alert()))
    del obj["alert_type"]
    with pytest.raises(SchemaError, match="'alert_type' is required"):
        decode_message(json.dumps(obj), Alert)


@given(st.one_of(st.binary(max_size=200), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=20,
).map(lambda v: json.dumps(v).encode())))
@settings(max_examples=1000)
def test_message_decoder_raises_only_protocol_errors(data: bytes) -> None:
    for cls in (Alert, DeviceStatus, GatewayStatus):
        try:
            decode_message(data, cls)  # type: ignore[type-var]
        except ProtocolError:
            pass


@pytest.mark.parametrize(("over", "message"), [
    ({"message": "VT\x00"}, "NUL"),
    ({"details": {"rate": float("nan")}}, "finite"),
    ({"details": {"rate": [float("inf")]}}, "finite"),
    ({"details": {"event": "paused"}}, "details.event"),
    ({"onset_gateway_us": 2**63}, "out of range"),
    ({"patient_id": "bed-7\n"}, "patient_id"),
])
def test_the_encoder_refuses_what_a_receiver_would_refuse(over: dict, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        encode_message(_alert(**over))


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_json_numbers_beyond_finite_are_refused(text: str) -> None:
    data = encode_message(_alert(details={"hr": 180})).replace(b'"hr":180', b'"hr":' + text.encode())
    with pytest.raises(SchemaError, match="strict JSON"):
        decode_message(data, Alert)
