"""BLE ECG frame v1 of the ecgstream wearable.

One frame is one GATT notification and fits a 244-byte ATT payload (the
largest notification with a 247-byte ATT MTU). All fields are little-endian::

    offset size field
         0    1  version            (1)
         1    1  flags              bits 0-1: sample format (0 int16, 1 int24)
         2    4  seq                u32, +1 per frame, wraps
         6    8  t0_us              u64 device clock of the first sample, µs
        14    2  fs_hz              u16 sampling rate, Hz
        16    2  lead_mask          u16, bit i = protocol.leads.STANDARD_LEADS[i]
        18    2  lead_off           u16, bit i = protocol.leads.ELECTRODES[i] detached
        20    1  battery_pct        u8 0-100, 255 = unknown
        21    2  lsb_nv             u16 nanovolts per count (1000 = 1 µV)
        23    1  n_samples          u8 samples per lead in this frame
        24    …  samples            n_samples × n_leads, interleaved (sample-major)
       end    2  crc                CRC-16/CCITT-FALSE over every byte before it

With the wearable's three leads that is 36 samples per lead in int16 or 24 in
int24. Decoding checks every field; any bad input raises
:class:`~protocol.errors.ProtocolError` and nothing else.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from protocol.errors import FrameError, IntegrityError, ProtocolError, UnsupportedVersionError
from protocol.leads import ELECTRODES, electrodes_from_mask, lead_mask, leads_from_mask

FRAME_VERSION = 1
MAX_ATT_PAYLOAD = 244
"""Largest frame in bytes: one notification at ATT MTU 247."""

_HEADER = struct.Struct("<BBIQHHHBHB")
HEADER_SIZE = _HEADER.size  # 24
CRC_SIZE = 2
BATTERY_UNKNOWN = 255
_CRC_INIT = 0xFFFF


class SampleFormat(IntEnum):
    """How one sample is stored on the wire."""

    INT16 = 0
    INT24 = 1

    @property
    def width(self) -> int:
        """Bytes per sample."""
        return 2 if self is SampleFormat.INT16 else 3

    @property
    def limits(self) -> tuple[int, int]:
        """Smallest and largest count the format holds."""
        bits = 8 * self.width
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def max_samples_per_frame(n_leads: int, sample_format: SampleFormat, max_frame: int = MAX_ATT_PAYLOAD) -> int:
    """Most samples per lead that fit one frame of at most ``max_frame`` bytes."""
    if n_leads < 1:
        raise ProtocolError("a frame needs at least one lead")
    room = max_frame - HEADER_SIZE - CRC_SIZE
    return min(255, max(0, room // (n_leads * sample_format.width)))


@dataclass(frozen=True, eq=False)
class EcgFrame:
    """One decoded frame. ``samples`` are raw counts, shape ``(n_samples, n_leads)``, int32."""

    seq: int
    t0_us: int
    fs_hz: int
    leads: tuple[str, ...]
    samples: np.ndarray
    lead_off: tuple[str, ...] = ()
    battery_pct: int | None = None
    lsb_nv: int = 1000
    sample_format: SampleFormat = SampleFormat.INT16
    version: int = field(default=FRAME_VERSION)

    @property
    def n_samples(self) -> int:
        """Samples per lead."""
        return int(self.samples.shape[0])

    def millivolts(self) -> np.ndarray:
        """Samples in mV, float64, shape ``(n_samples, n_leads)``."""
        return self.samples * (self.lsb_nv * 1e-6)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EcgFrame):
            return NotImplemented
        return (
            (self.seq, self.t0_us, self.fs_hz, self.leads, self.lead_off, self.battery_pct, self.lsb_nv,
             self.sample_format, self.version)
            == (other.seq, other.t0_us, other.fs_hz, other.leads, other.lead_off, other.battery_pct,
                other.lsb_nv, other.sample_format, other.version)
            and np.array_equal(self.samples, other.samples)
        )

    __hash__ = None  # type: ignore[assignment]


def quantize(millivolts: np.ndarray, lsb_nv: int, sample_format: SampleFormat) -> np.ndarray:
    """mV to counts: rounded and clipped to the format's range (int32). NaN becomes 0."""
    lo, hi = sample_format.limits
    counts = np.rint(np.nan_to_num(np.asarray(millivolts, dtype=np.float64)) * (1e6 / lsb_nv))
    return np.clip(counts, lo, hi).astype(np.int32)


def pack_samples(samples: np.ndarray, sample_format: SampleFormat) -> bytes:
    """Counts (n, leads) to interleaved little-endian int16 or int24 bytes."""
    flat = np.ascontiguousarray(samples, dtype="<i4").reshape(-1)
    if sample_format is SampleFormat.INT16:
        return flat.astype("<i2").tobytes()
    return flat.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def unpack_samples(raw: memoryview | bytes, n: int, n_leads: int, sample_format: SampleFormat) -> np.ndarray:
    """Interleaved int16 or int24 bytes to counts, shape (n, n_leads), int32."""
    if sample_format is SampleFormat.INT16:
        return np.frombuffer(raw, dtype="<i2").astype(np.int32).reshape(n, n_leads)
    return int24_to_int32(np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)).reshape(n, n_leads)


def int24_to_int32(triplets: np.ndarray) -> np.ndarray:
    """Little-endian signed 24-bit values, shape ``(..., 3)`` uint8, to int32 of shape ``(...)``."""
    wide = np.empty(triplets.shape[:-1] + (4,), dtype=np.uint8)
    wide[..., :3] = triplets
    wide[..., 3] = (triplets[..., 2] >> 7) * 0xFF
    return wide.view("<i4")[..., 0]


def encode_frame(frame: EcgFrame, *, max_size: int = MAX_ATT_PAYLOAD) -> bytes:
    """Serialise a frame; raises ProtocolError if a field is out of range or it exceeds ``max_size``."""
    samples = np.asarray(frame.samples)
    n_leads = len(frame.leads)
    if n_leads == 0:
        raise FrameError("a frame needs at least one lead")
    if samples.ndim != 2 or samples.shape[1] != n_leads:
        raise FrameError(f"samples must have shape (n, {n_leads}), got {samples.shape}")
    if not 0 < samples.shape[0] <= 255:
        raise FrameError(f"a frame holds 1-255 samples per lead, got {samples.shape[0]}")
    lo, hi = frame.sample_format.limits
    if samples.size and (samples.min() < lo or samples.max() > hi):
        raise FrameError(f"sample counts outside the {frame.sample_format.name} range {lo}..{hi}")
    _check_range("seq", frame.seq, 0, 0xFFFFFFFF)
    _check_range("t0_us", frame.t0_us, 0, 0xFFFFFFFFFFFFFFFF)
    _check_range("fs_hz", frame.fs_hz, 1, 0xFFFF)
    _check_range("lsb_nv", frame.lsb_nv, 1, 0xFFFF)
    battery = BATTERY_UNKNOWN if frame.battery_pct is None else frame.battery_pct
    _check_range("battery_pct", battery, 0, 100) if battery != BATTERY_UNKNOWN else None
    mask = lead_mask(frame.leads)
    if leads_from_mask(mask) != tuple(frame.leads):
        raise FrameError(f"leads must be distinct and in standard order, got {frame.leads}")
    off_mask = 0
    for name in frame.lead_off:
        if name not in ELECTRODES:
            raise FrameError(f"{name!r} is not an electrode name")
        off_mask |= 1 << ELECTRODES.index(name)
    header = _HEADER.pack(
        frame.version, int(frame.sample_format), frame.seq, frame.t0_us, frame.fs_hz, mask, off_mask,
        battery, frame.lsb_nv, samples.shape[0],
    )
    body = header + pack_samples(samples, frame.sample_format)
    if len(body) + CRC_SIZE > max_size:
        raise FrameError(f"frame of {len(body) + CRC_SIZE} bytes exceeds the {max_size}-byte limit")
    return body + binascii.crc_hqx(body, _CRC_INIT).to_bytes(2, "little")


def decode_frame(data: bytes | bytearray | memoryview) -> EcgFrame:
    """Parse and check one frame. Raises only :class:`ProtocolError` subclasses."""
    try:
        buf = memoryview(data).cast("B")
    except TypeError as exc:
        raise FrameError(f"frame must be bytes-like, got {type(data).__name__}") from exc
    if len(buf) < HEADER_SIZE + CRC_SIZE:
        raise FrameError(f"frame of {len(buf)} bytes is shorter than the {HEADER_SIZE + CRC_SIZE}-byte minimum")
    version = buf[0]
    if version != FRAME_VERSION:
        raise UnsupportedVersionError("BLE ECG frame", version, (FRAME_VERSION,))
    crc_given = int.from_bytes(buf[-CRC_SIZE:], "little")
    crc_actual = binascii.crc_hqx(buf[:-CRC_SIZE], _CRC_INIT)
    if crc_given != crc_actual:
        raise IntegrityError(f"frame CRC mismatch (got 0x{crc_given:04x}, computed 0x{crc_actual:04x})")
    (_, flags, seq, t0_us, fs_hz, mask, off_mask, battery, lsb_nv, n) = _HEADER.unpack_from(buf)
    fmt_code = flags & 0x03
    if flags & ~0x03:
        raise FrameError(f"reserved flag bits set (flags 0x{flags:02x})")
    if fmt_code > SampleFormat.INT24:
        raise FrameError(f"unknown sample format {fmt_code}")
    fmt = SampleFormat(fmt_code)
    leads = leads_from_mask(mask)
    if not leads:
        raise FrameError("frame declares no leads")
    if fs_hz == 0 or lsb_nv == 0 or n == 0:
        raise FrameError("frame declares a zero sampling rate, resolution or sample count")
    if battery > 100 and battery != BATTERY_UNKNOWN:
        raise FrameError(f"battery {battery}% out of range")
    expected = HEADER_SIZE + n * len(leads) * fmt.width + CRC_SIZE
    if len(buf) != expected:
        raise FrameError(f"frame is {len(buf)} bytes but its header implies {expected}")
    samples = unpack_samples(buf[HEADER_SIZE:-CRC_SIZE], n, len(leads), fmt)
    return EcgFrame(
        seq=seq, t0_us=t0_us, fs_hz=fs_hz, leads=leads, samples=samples,
        lead_off=electrodes_from_mask(off_mask), lsb_nv=lsb_nv, sample_format=fmt,
        battery_pct=None if battery == BATTERY_UNKNOWN else battery, version=version,
    )


def _check_range(name: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, int | np.integer) or not lo <= value <= hi:
        raise FrameError(f"{name}={value!r} outside {lo}..{hi}")
