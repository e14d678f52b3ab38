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


async def test_registry_not_enforced_accepts_unknown_devices() -> None:
    alert = make_alert(device_id="dev-x")
    assert isinstance(await validate(alert_topic("pat-1"), encode_message(alert), None), Accepted)
    # the topic check still applies without a registry
    got = await validate(alert_topic("pat-2"), encode_message(alert), None)
    assert isinstance(got, Rejected) and got.reason is Reason.TOPIC_MISMATCH
