"""The wire contract between ecgstream's tiers.

Everything a wearable, the edge gateway and the cloud say to each other is
defined here and only here: the BLE ECG frame and GATT UUIDs, the Polar H10
PMD decoder, MQTT topic names, and the payload schemas with their versions.
Every decoder raises only :class:`ProtocolError` (or a subclass) on bad input.
This package depends on numpy alone.
"""

from protocol.ble_frame import (
    FRAME_VERSION,
    MAX_ATT_PAYLOAD,
    EcgFrame,
    SampleFormat,
    decode_frame,
    encode_frame,
    max_samples_per_frame,
    quantize,
)
from protocol.downlink import AlarmAck, decode_alarm_ack, encode_alarm_ack
from protocol.errors import (
    FrameError,
    IntegrityError,
    OwnershipError,
    ProtocolError,
    SchemaError,
    TopicError,
    UnsupportedVersionError,
)
from protocol.frame_batch import FrameBatch, decode_frames, encode_frames
from protocol.leads import ELECTRODES, STANDARD_LEADS, WEARABLE_LEADS
from protocol.live_payload import LiveChunk, decode_live_chunk, encode_live_chunk
from protocol.messages import (
    Alert,
    AlertCategory,
    DeviceStatus,
    GatewayStatus,
    PatientVitals,
    Priority,
    decode_message,
    encode_message,
)
from protocol.polar_pmd import PolarEcgFrame, decode_pmd_ecg, encode_pmd_ecg
from protocol.receipts import Receipt, ReceiptItem, ReceiptStatus, decode_receipt, encode_receipt
from protocol.samples_payload import decode_samples_payload, encode_samples_payload
from protocol.window_payload import EcgWindow, decode_window, encode_window

__all__ = [
    "ELECTRODES", "FRAME_VERSION", "MAX_ATT_PAYLOAD", "STANDARD_LEADS", "WEARABLE_LEADS",
    "AlarmAck", "Alert", "AlertCategory", "DeviceStatus", "EcgFrame", "EcgWindow", "FrameBatch", "FrameError",
    "GatewayStatus", "IntegrityError", "LiveChunk", "OwnershipError", "PatientVitals", "PolarEcgFrame", "Priority", "ProtocolError", "Receipt",
    "ReceiptItem", "ReceiptStatus", "SampleFormat",
    "SchemaError", "TopicError", "UnsupportedVersionError",
    "decode_alarm_ack", "decode_frame", "decode_live_chunk", "encode_live_chunk", "decode_frames", "decode_message", "decode_pmd_ecg", "decode_receipt", "decode_samples_payload",
    "decode_window", "encode_alarm_ack", "encode_frame", "encode_frames", "encode_message", "encode_pmd_ecg",
    "encode_receipt", "encode_samples_payload", "encode_window", "max_samples_per_frame", "quantize",
]
