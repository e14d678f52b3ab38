"""Raw samples from a device that publishes over MQTT directly (schema v1).

The body carries the same fields as a BLE frame (see :mod:`protocol.ble_frame`)
with a 16-bit sample count, so one payload may hold seconds of signal; TCP
already guards integrity, so there is no CRC::

    u32 seq, u64 t0_us, u16 fs_hz, u16 lead_mask, u16 lead_off, u8 battery_pct,
    u16 lsb_nv, u8 sample_format, u16 n_samples, samples (interleaved)
"""

from __future__ import annotations

import struct

import numpy as np

from protocol.ble_frame import BATTERY_UNKNOWN, EcgFrame, SampleFormat, pack_samples, quantize, unpack_samples
from protocol.envelope import PayloadKind, unwrap, wrap
from protocol.errors import FrameError
from protocol.leads import electrode_mask, electrodes_from_mask, lead_mask, leads_from_mask

SAMPLES_SCHEMA_VERSION = 1
_BODY = struct.Struct("<IQHHHBHBH")

__all__ = ["SAMPLES_SCHEMA_VERSION", "encode_samples_payload", "decode_samples_payload", "quantize"]


def encode_samples_payload(frame: EcgFrame) -> bytes:
    """Serialise samples (an :class:`EcgFrame` with up to 65535 samples per lead)."""
    samples = np.asarray(frame.samples)
    n_leads = len(frame.leads)
    if n_leads == 0 or samples.ndim != 2 or samples.shape[1] != n_leads:
        raise FrameError(f"samples must have shape (n, {n_leads}) with at least one lead")
    if not 0 < samples.shape[0] <= 0xFFFF:
        raise FrameError(f"a samples payload holds 1-65535 samples per lead, got {samples.shape[0]}")
    lo, hi = frame.sample_format.limits
    if samples.min() < lo or samples.max() > hi:
        raise FrameError(f"sample counts outside the {frame.sample_format.name} range")
    mask = lead_mask(frame.leads)
    if leads_from_mask(mask) != tuple(frame.leads):
        raise FrameError(f"leads must be distinct and in standard order, got {frame.leads}")
    battery = BATTERY_UNKNOWN if frame.battery_pct is None else frame.battery_pct
    if not (0 <= battery <= 100 or battery == BATTERY_UNKNOWN):
        raise FrameError(f"battery {battery}% out of range")
    try:
        body = _BODY.pack(
            frame.seq, frame.t0_us, frame.fs_hz, mask, electrode_mask(frame.lead_off), battery,
            frame.lsb_nv, int(frame.sample_format), samples.shape[0],
        )
    except struct.error as exc:
        raise FrameError(f"header field out of range: {exc}") from None
    return wrap(PayloadKind.SAMPLES, SAMPLES_SCHEMA_VERSION, body + pack_samples(samples, frame.sample_format))


def decode_samples_payload(data: bytes | bytearray | memoryview) -> EcgFrame:
    """Parse a samples payload. Raises only :class:`~protocol.errors.ProtocolError` subclasses."""
    version, body = unwrap(data, PayloadKind.SAMPLES, (SAMPLES_SCHEMA_VERSION,))
    if len(body) < _BODY.size:
        raise FrameError(f"samples payload body of {len(body)} bytes is shorter than its {_BODY.size}-byte header")
    seq, t0_us, fs_hz, mask, off_mask, battery, lsb_nv, fmt_code, n = _BODY.unpack_from(body)
    if fmt_code > SampleFormat.INT24:
        raise FrameError(f"unknown sample format {fmt_code}")
    fmt = SampleFormat(fmt_code)
    leads = leads_from_mask(mask)
    if not leads or fs_hz == 0 or lsb_nv == 0 or n == 0:
        raise FrameError("samples payload declares no leads, or a zero rate, resolution or sample count")
    if battery > 100 and battery != BATTERY_UNKNOWN:
        raise FrameError(f"battery {battery}% out of range")
    expected = _BODY.size + n * len(leads) * fmt.width
    if len(body) != expected:
        raise FrameError(f"samples payload body is {len(body)} bytes but its header implies {expected}")
    return EcgFrame(
        seq=seq, t0_us=t0_us, fs_hz=fs_hz, leads=leads, samples=unpack_samples(body[_BODY.size:], n, len(leads), fmt),
        lead_off=electrodes_from_mask(off_mask), battery_pct=None if battery == BATTERY_UNKNOWN else battery,
        lsb_nv=lsb_nv, sample_format=fmt, version=version,
    )
