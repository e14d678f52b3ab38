"""Polar H10 ECG over the Polar Measurement Data (PMD) service.

The H10 streams single-lead ECG at 130 Hz. Each notification on the PMD data
characteristic is::

    byte 0      measurement type (0x00 = ECG)
    bytes 1-8   u64 timestamp in ns (sensor clock, of the last sample in the frame)
    byte 9      frame type (0x00 = uncompressed 24-bit samples)
    bytes 10-   samples, signed 24-bit little-endian, µV

Streaming is started by writing :data:`START_ECG_COMMAND` to the PMD control
point. :func:`decode_pmd_ecg` raises only :class:`~protocol.errors.ProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocol.ble_frame import int24_to_int32
from protocol.errors import FrameError

PMD_MEASUREMENT_ECG = 0x00
PMD_FRAME_TYPE_ECG_INT24 = 0x00
POLAR_ECG_FS_HZ = 130
POLAR_ECG_RESOLUTION_BITS = 14
_HEADER = 10

START_ECG_COMMAND = bytes([0x02, PMD_MEASUREMENT_ECG, 0x00, 0x01, 0x82, 0x00, 0x01, 0x01, 0x0E, 0x00])
"""PMD control point: start ECG, setting 0 (rate) = 130 Hz, setting 1 (resolution) = 14 bit."""
STOP_ECG_COMMAND = bytes([0x03, PMD_MEASUREMENT_ECG])


@dataclass(frozen=True, eq=False)
class PolarEcgFrame:
    """One PMD ECG notification: ``samples_uv`` int32 in µV, timestamp of the last sample in ns."""

    timestamp_ns: int
    samples_uv: np.ndarray

    @property
    def fs_hz(self) -> int:
        return POLAR_ECG_FS_HZ

    def first_sample_ns(self) -> int:
        """Sensor time of the first sample, from the last sample's stamp and the nominal rate."""
        return self.timestamp_ns - round((len(self.samples_uv) - 1) * 1e9 / POLAR_ECG_FS_HZ)

    def millivolts(self) -> np.ndarray:
        return self.samples_uv / 1000.0


def decode_pmd_ecg(data: bytes | bytearray | memoryview) -> PolarEcgFrame:
    """Parse one PMD ECG notification."""
    try:
        buf = bytes(data)
    except TypeError as exc:
        raise FrameError(f"PMD frame must be bytes-like, got {type(data).__name__}") from exc
    if len(buf) < _HEADER + 3:
        raise FrameError(f"PMD frame of {len(buf)} bytes is too short for one ECG sample")
    if buf[0] != PMD_MEASUREMENT_ECG:
        raise FrameError(f"PMD measurement type 0x{buf[0]:02x} is not ECG (0x00)")
    if buf[9] != PMD_FRAME_TYPE_ECG_INT24:
        raise FrameError(f"PMD ECG frame type 0x{buf[9]:02x} is not supported (only 0x00, 24-bit samples)")
    payload = len(buf) - _HEADER
    if payload % 3:
        raise FrameError(f"PMD ECG payload of {payload} bytes is not a whole number of 3-byte samples")
    samples = int24_to_int32(np.frombuffer(buf, dtype=np.uint8, offset=_HEADER).reshape(-1, 3))
    return PolarEcgFrame(timestamp_ns=int.from_bytes(buf[1:9], "little"), samples_uv=samples)


def encode_pmd_ecg(frame: PolarEcgFrame) -> bytes:
    """Serialise a PMD ECG notification (what the simulated H10 sends)."""
    samples = np.asarray(frame.samples_uv)
    if samples.ndim != 1 or samples.size == 0:
        raise FrameError("PMD ECG frame needs a 1-D, non-empty sample array")
    if samples.min() < -(1 << 23) or samples.max() >= 1 << 23:
        raise FrameError("PMD ECG samples outside the signed 24-bit range")
    if not 0 <= frame.timestamp_ns < 1 << 64:
        raise FrameError("PMD timestamp outside u64")
    body = samples.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    return bytes([PMD_MEASUREMENT_ECG]) + frame.timestamp_ns.to_bytes(8, "little") + bytes([0]) + body
