"""Live display chunks from the edge to the cloud's ward (schema v1): about 1 s of a few leads, compact.

The ward's tiles draw a scrolling ECG per bed; they need a continuous, low-rate, low-latency stream,
not the analysed 10 s windows. The gateway cuts each patient's signal, already resampled to the model
rate (125 Hz), into chunks of about a second and publishes them at QoS 0 on
``ecgstream/v1/patient/{patient_id}/live`` (:func:`protocol.topics.live_topic`): display data that is
never stored in the outbox, since a chunk that arrives late has no use. Samples are int16 counts of
``lsb_nv`` nanovolts (default 1000 nV = 1 µV: ±32.7 mV, far beyond any ECG), lead-major, uncompressed
(three leads × 125 samples are 750 bytes; the header is about 40)::

    u32 seq | u64 t0_us (gateway clock, Unix µs of the first sample) | u32 fs_mhz (rate in mHz)
    u16 lead_mask | u16 lsb_nv | u16 n_samples | u8 flags
    u8 len + patient_id | u8 len + device_id | int16 samples (leads, n), little-endian

``seq`` counts a device's chunks (it wraps at 2^32); flags bit 0, *gap before*: samples are missing
between the previous chunk and this one (a data gap, a restart), so a display breaks its trace
rather than joining across the hole. A chunk is contiguous in itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from protocol.envelope import PayloadKind, unwrap, wrap
from protocol.errors import FrameError, SchemaError, TopicError
from protocol.leads import lead_mask, leads_from_mask
from protocol.topics import validate_id

LIVE_SCHEMA_VERSION = 1
LIVE_SCHEMA_VERSIONS = (1,)
"""Versions :func:`decode_live_chunk` accepts."""
DEFAULT_LSB_NV = 1000
"""1 µV per count."""
MAX_LIVE_SAMPLES = 0xFFFF
"""Most samples per lead one chunk may hold."""
_FIXED = struct.Struct("<IQIHHHB")
_FLAG_GAP_BEFORE = 0x01

__all__ = ["DEFAULT_LSB_NV", "LIVE_SCHEMA_VERSION", "LiveChunk", "decode_live_chunk", "encode_live_chunk",
           "quantize_uv"]


@dataclass(frozen=True, eq=False)
class LiveChunk:
    """About a second of a few leads of one patient's ECG, for display.

    ``samples``: int16 counts of ``lsb_nv`` nV, shape ``(len(leads), n)``; ``leads`` in standard order;
    ``fs_hz`` the sample rate (exact to 1 mHz on the wire); ``gap_before``: samples are missing
    between the previous chunk of this device and this one.
    """

    patient_id: str
    device_id: str
    seq: int
    t0_us: int
    fs_hz: float
    leads: tuple[str, ...]
    samples: np.ndarray
    lsb_nv: int = DEFAULT_LSB_NV
    gap_before: bool = False
    version: int = LIVE_SCHEMA_VERSION

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs_hz

    def millivolts(self) -> np.ndarray:
        """The samples in mV, float32 ``(leads, n)``."""
        return self.samples.astype(np.float32) * np.float32(self.lsb_nv * 1e-6)

    def microvolts(self) -> np.ndarray:
        """The samples in whole µV, int32 ``(leads, n)`` (what the browser gets)."""
        if self.lsb_nv == 1000:
            return self.samples.astype(np.int32)
        return np.rint(self.samples.astype(np.float64) * (self.lsb_nv / 1000.0)).astype(np.int32)


def quantize_uv(samples_mv: np.ndarray, lsb_nv: int = DEFAULT_LSB_NV) -> np.ndarray:
    """mV → int16 counts of ``lsb_nv`` nV, clipped to the int16 range; NaN (no signal) → 0."""
    x = np.nan_to_num(np.asarray(samples_mv, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.rint(x * (1e6 / lsb_nv)), -32768, 32767).astype(np.int16)


def _id_bytes(value: str, what: str) -> bytes:
    try:
        raw = validate_id(value, what).encode("ascii")
    except TopicError as exc:
        raise SchemaError(str(exc)) from None
    return bytes([len(raw)]) + raw


def encode_live_chunk(chunk: LiveChunk) -> bytes:
    """Serialise a chunk (FrameError or SchemaError for one a receiver would refuse)."""
    samples = np.asarray(chunk.samples)
    if samples.dtype != np.int16:
        raise FrameError(f"live samples must be int16 counts, got {samples.dtype}")
    if samples.ndim != 2 or samples.shape[0] != len(chunk.leads) or not chunk.leads:
        raise FrameError(f"live samples must have shape ({len(chunk.leads)}, n) with at least one lead")
    if not 0 < samples.shape[1] <= MAX_LIVE_SAMPLES:
        raise FrameError(f"a live chunk holds 1-{MAX_LIVE_SAMPLES} samples per lead, got {samples.shape[1]}")
    mask = lead_mask(chunk.leads)
    if leads_from_mask(mask) != tuple(chunk.leads):
        raise FrameError(f"leads must be distinct and in standard order, got {chunk.leads}")
    fs_mhz = round(chunk.fs_hz * 1000)
    if not 0 < fs_mhz <= 0xFFFFFFFF:
        raise FrameError(f"sample rate {chunk.fs_hz!r} Hz out of range")
    try:
        head = _FIXED.pack(chunk.seq, chunk.t0_us, fs_mhz, mask, chunk.lsb_nv, samples.shape[1],
                           _FLAG_GAP_BEFORE if chunk.gap_before else 0)
    except struct.error as exc:
        raise FrameError(f"live chunk header field out of range: {exc}") from None
    if chunk.lsb_nv == 0:
        raise FrameError("lsb_nv must be positive")
    body = head + _id_bytes(chunk.patient_id, "patient id") + _id_bytes(chunk.device_id, "device id")
    return wrap(PayloadKind.LIVE, LIVE_SCHEMA_VERSION, body + samples.astype("<i2", copy=False).tobytes())


def _read_id(body: memoryview, at: int, what: str) -> tuple[str, int]:
    if at >= len(body):
        raise FrameError(f"live chunk ends before its {what}")
    n = body[at]
    raw = bytes(body[at + 1: at + 1 + n])
    if len(raw) != n:
        raise FrameError(f"live chunk ends inside its {what}")
    try:
        return validate_id(raw.decode("ascii"), what), at + 1 + n
    except (UnicodeDecodeError, TopicError):
        raise SchemaError(f"live chunk {what} {raw!r} is not a valid id") from None


def decode_live_chunk(data: bytes | bytearray | memoryview) -> LiveChunk:
    """Parse a live chunk. Raises only :class:`~protocol.errors.ProtocolError` subclasses."""
    version, body = unwrap(data, PayloadKind.LIVE, LIVE_SCHEMA_VERSIONS)
    if len(body) < _FIXED.size:
        raise FrameError(f"live chunk body of {len(body)} bytes is shorter than its {_FIXED.size}-byte header")
    seq, t0_us, fs_mhz, mask, lsb_nv, n, flags = _FIXED.unpack_from(body)
    leads = leads_from_mask(mask)
    if not leads or fs_mhz == 0 or lsb_nv == 0 or n == 0:
        raise FrameError("live chunk declares no leads, or a zero rate, resolution or sample count")
    if flags & ~_FLAG_GAP_BEFORE:
        raise FrameError(f"live chunk has unknown flags 0x{flags:02x}")
    patient_id, at = _read_id(body, _FIXED.size, "patient id")
    device_id, at = _read_id(body, at, "device id")
    expected = at + 2 * n * len(leads)
    if len(body) != expected:
        raise FrameError(f"live chunk body is {len(body)} bytes but its header implies {expected}")
    samples = np.frombuffer(body[at:], dtype="<i2").astype(np.int16).reshape(len(leads), n)
    return LiveChunk(patient_id=patient_id, device_id=device_id, seq=seq, t0_us=t0_us, fs_hz=fs_mhz / 1000.0,
                     leads=leads, samples=samples, lsb_nv=lsb_nv, gap_before=bool(flags & _FLAG_GAP_BEFORE),
                     version=version)
