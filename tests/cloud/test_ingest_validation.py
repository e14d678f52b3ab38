"""cloud.ingest.validation: every way a message can be wrong maps to one counted reason (no broker)."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

from cloud.ingest import Accepted, Kind, Reason, Rejected, validate
from protocol.messages import DeviceStatus, GatewayStatus, encode_message
from protocol.topics import alert_topic, device_status_topic, gateway_status_topic, window_topic
from protocol.window_payload import encode_window
from tests.cloud.conftest import make_alert, make_window


class FakeRegistry:
    def __init__(self, **devices: tuple[str | None, bool]) -> None:
        self.devices = {d: SimpleNamespace(patient_id=p, active=a) for d, (p, a) in devices.items()}

    async def get_device(self, device_id: str):
        return self.devices.get(device_id)


REG = FakeRegistry(**{"dev-1": ("pat-1", True), "dev-2": ("pat-2", True), "dev-off": ("pat-1", False)})


def corrupt_window() -> bytes:
    data = bytearray(encode_window(make_window()))
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
    return bytes(data)


async def test_good_alert_window_and_gateway_status_are_accepted() -> None:
    alert = make_alert()
    got = await validate(alert_topic("pat-1"), encode_message(alert), REG)
    assert isinstance(got, Accepted) and got.kind is Kind.ALERT and got.message == alert
    window = make_window()
    got = await validate(window_topic("pat-1"), encode_window(window), REG)
    assert isinstance(got, Accepted) and got.kind is Kind.WINDOW and got.message == window
    status = GatewayStatus(gateway_id="gw-1", t_gateway_us=5, streams=3)
    got = await validate(gateway_status_topic("gw-1"), encode_message(status), REG)
    assert isinstance(got, Accepted) and got.message == status
    device = DeviceStatus(device_id="dev-1", t_device_us=9, battery_pct=41, connected=True, lead_off=("V1",))
    got = await validate(device_status_topic("dev-1"), encode_message(device), REG)
    assert isinstance(got, Accepted) and got.kind is Kind.DEVICE_STATUS and got.message == device


def _alert_json(**changes) -> bytes:
    obj = json.loads(encode_message(make_alert()))
    obj.update(changes)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(("topic", "payload", "reason", "kwargs"), [
    ("ecgstream/v1/patient/pat 1/alert", b"{}", Reason.BAD_TOPIC, {}),
    ("ecgstream/v1/device/dev-1/samples", b"{}", Reason.BAD_TOPIC, {}),
    ("ecgstream/v2/patient/pat-1/alert", b"{}", Reason.BAD_TOPIC, {}),
    (alert_topic("pat-1"), b"{not json", Reason.MALFORMED, {}),
    (alert_topic("pat-1"), b"\xff\xfe", Reason.MALFORMED, {}),
    (alert_topic("pat-1"), b"[]", Reason.MALFORMED, {}),
    (alert_topic("pat-1"), _alert_json(priority="urgent"), Reason.MALFORMED, {}),
    (alert_topic("pat-1"), _alert_json(alert_id="nope"), Reason.MALFORMED, {}),
    (window_topic("pat-1"), corrupt_window(), Reason.MALFORMED, {}),
    (window_topic("pat-1"), encode_window(make_window())[:100], Reason.MALFORMED, {}),
    (window_topic("pat-1"), encode_message(make_alert()), Reason.MALFORMED, {}),  # JSON on the window topic
    (gateway_status_topic("gw-1"), b"{}", Reason.MALFORMED, {}),
    (alert_topic("pat-1"), _alert_json(schema_version=2), Reason.UNSUPPORTED_VERSION, {}),
    (window_topic("pat-1"), encode_window(make_window())[:3] + b"\x09" + encode_window(make_window())[4:],
     Reason.UNSUPPORTED_VERSION, {}),
    (alert_topic("pat-1"), encode_message(dataclasses.replace(make_alert(), message="x" * 70_000)),
     Reason.OVERSIZED, {}),
    (window_topic("pat-1"), encode_window(make_window()), Reason.OVERSIZED, {"max_bytes": 1000}),
    (alert_topic("pat-2"), encode_message(make_alert("pat-1")), Reason.TOPIC_MISMATCH, {}),
    (window_topic("pat-2"), encode_window(make_window("pat-1")), Reason.TOPIC_MISMATCH, {}),
    (gateway_status_topic("gw-2"), encode_message(GatewayStatus(gateway_id="gw-1", t_gateway_us=1)),
     Reason.TOPIC_MISMATCH, {}),
    (device_status_topic("dev-2"), encode_message(DeviceStatus(device_id="dev-1", t_device_us=1)),
     Reason.TOPIC_MISMATCH, {}),
    (device_status_topic("dev-x"), encode_message(DeviceStatus(device_id="dev-x", t_device_us=1)),
     Reason.UNKNOWN_DEVICE, {}),
    (device_status_topic("dev-off"), encode_message(DeviceStatus(device_id="dev-off", t_device_us=1)),
     Reason.INACTIVE_DEVICE, {}),
    (alert_topic("pat-1"), encode_message(make_alert(device_id="dev-x")), Reason.UNKNOWN_DEVICE, {}),
    (window_topic("pat-1"), encode_window(make_window(device_id="dev-x")), Reason.UNKNOWN_DEVICE, {}),
    (alert_topic("pat-1"), encode_message(make_alert(device_id="dev-off")), Reason.INACTIVE_DEVICE, {}),
    # dev-2 is worn by pat-2 but sends for pat-1, under pat-1's topic
    (alert_topic("pat-1"), encode_message(make_alert("pat-1", device_id="dev-2")), Reason.WRONG_PATIENT, {}),
])
async def test_bad_input_is_rejected_with_its_reason(topic, payload, reason, kwargs) -> None:
    got = await validate(topic, payload, REG, **kwargs)
    assert isinstance(got, Rejected), got
    assert got.reason is reason, got.detail
    assert got.detail


def _raw_alert(**replace: str) -> bytes:
    """An alert's JSON with ``"field": <value>`` pairs swapped for raw JSON text (what json.dumps won't write)."""
    text = encode_message(make_alert()).decode()
    for key, raw in replace.items():
        obj = json.loads(text)
        text = text.replace(f'"{key}":{json.dumps(obj[key], separators=(",", ":"))}', f'"{key}":{raw}')
        assert raw in text, key
    return text.encode()


_DETAILS = json.dumps(make_alert().details, separators=(",", ":"))


@pytest.mark.parametrize(("topic", "payload"), [
    pytest.param(alert_topic("pat-1"), _alert_json(message="VT\x00 180/min"), id="nul-in-message"),
    pytest.param(alert_topic("pat-1"), _alert_json(alert_type="vt\x00"), id="nul-in-alert-type"),
    pytest.param(alert_topic("pat-1"), _alert_json(details={"event": "raised", "note\x00": 1}), id="nul-in-details-key"),
    pytest.param(alert_topic("pat-1"), _alert_json(details={"event": "raised", "rate": ["a\x00"]}),
                 id="nul-deep-in-details"),
    pytest.param(alert_topic("pat-1"), _alert_json(model_versions={"clf": "1\x00"}), id="nul-in-model-version"),
    pytest.param(alert_topic("pat-1"), _raw_alert(message='"\\ud800"'), id="lone-surrogate"),
    pytest.param(alert_topic("pat-1"), _raw_alert(details=_DETAILS.replace("182.0", "NaN")), id="nan-in-details"),
    pytest.param(alert_topic("pat-1"), _raw_alert(details=_DETAILS.replace("182.0", "Infinity")), id="infinity"),
    pytest.param(alert_topic("pat-1"), _raw_alert(details=_DETAILS.replace("182.0", "-Infinity")), id="-infinity"),
    pytest.param(alert_topic("pat-1"), _raw_alert(details=_DETAILS.replace("182.0", "1e999")), id="overflow-to-inf"),
    pytest.param(alert_topic("pat-1"), _raw_alert(reconstructed_leads='{"V2":NaN}'), id="nan-uncertainty"),
    pytest.param(alert_topic("pat-1"), _alert_json(patient_id="pat-1\n"), id="patient-id-with-newline"),
    pytest.param(alert_topic("pat-1"), _alert_json(device_id="dev-1\n"), id="device-id-with-newline"),
    pytest.param(alert_topic("pat-1"), _alert_json(details={"event": "paused"}), id="unknown-event"),
    pytest.param(alert_topic("pat-1"), _alert_json(details={"event": ["cleared"]}), id="event-not-a-string"),
    pytest.param(alert_topic("pat-1"), _alert_json(details={"event": "cleared", "episode_id": "nope"}),
                 id="episode-id-not-a-uuid"),
    pytest.param(alert_topic("pat-1"), _alert_json(details={"event": "raised", "family": "f" * 65}),
                 id="family-longer-than-its-column"),
    pytest.param(alert_topic("pat-1"), _alert_json(onset_gateway_us=2**63), id="onset-2^63"),
    pytest.param(alert_topic("pat-1"), _alert_json(onset_device_us=2**64 - 1), id="device-onset-2^64-1"),
    pytest.param(alert_topic("pat-1"), _alert_json(onset_gateway_us=-1), id="negative-onset"),
    pytest.param(alert_topic("pat-1"), _raw_alert(message='"a","message":"b"'), id="duplicate-key"),
    pytest.param(gateway_status_topic("gw-1"), b'{"schema_version":1,"gateway_id":"gw-1","t_gateway_us":9223372036854775808}',
                 id="gateway-time-2^63"),
    pytest.param(gateway_status_topic("gw-1"), b'{"schema_version":1,"gateway_id":"gw-1","t_gateway_us":1,'
                 b'"streams":2147483648}', id="streams-beyond-int32"),
    pytest.param(gateway_status_topic("gw-1"), b'{"schema_version":1,"gateway_id":"gw-1","t_gateway_us":1,'
                 b'"software":"a\\u0000"}', id="nul-in-software"),
    pytest.param(device_status_topic("dev-1"), b'{"schema_version":1,"device_id":"dev-1","t_device_us":1,'
                 b'"firmware":"' + b"x" * 65 + b'"}', id="firmware-longer-than-its-column"),
    pytest.param(device_status_topic("dev-1"), b'{"schema_version":1,"device_id":"dev-1","t_device_us":NaN}',
                 id="nan-time"),
])
async def test_json_a_database_could_not_hold_is_refused_as_malformed(topic: str, payload: bytes) -> None:
    """NUL, lone surrogates, NaN/Infinity, ids with a trailing newline, unknown events, 64-bit times:
    refused by validation on every database (PostgreSQL would refuse them at storage and stall ingest)."""
    got = await validate(topic, payload, REG)
    assert isinstance(got, Rejected), got
    assert got.reason is Reason.MALFORMED, got.detail
    assert got.detail


@pytest.mark.parametrize("topic", ["ecgstream/v1/patient/pat-1\n/alert", "ecgstream/v1/gateway/gw-1\n/status"])
async def test_an_id_with_a_trailing_newline_in_the_topic_is_a_bad_topic(topic: str) -> None:
    got = await validate(topic, _alert_json(patient_id="pat-1\n"), REG)
    assert isinstance(got, Rejected) and got.reason is Reason.BAD_TOPIC, got


async def test_registry_not_enforced_accepts_unknown_devices() -> None:
    alert = make_alert(device_id="dev-x")
    assert isinstance(await validate(alert_topic("pat-1"), encode_message(alert), None), Accepted)
    # the topic check still applies without a registry
    got = await validate(alert_topic("pat-2"), encode_message(alert), None)
    assert isinstance(got, Rejected) and got.reason is Reason.TOPIC_MISMATCH
