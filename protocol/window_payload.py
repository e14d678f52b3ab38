"""ECG windows from the edge to the cloud (schema v2; v1 still read), compact and self-describing.

A window is a stretch (typically 10 s) of 12-lead ECG as the edge saw it:
measured leads and reconstructed leads, told apart by a mask, with the
reconstruction's per-sample uncertainty (the half-width of its 90 % band) for
each reconstructed lead. Samples are int16 counts of ``lsb_nv`` nanovolts,
first-differenced along time (exact in 16-bit wrap-around arithmetic) and
zlib-compressed, which shrinks a typical window to a few kB::

    16s window_id (UUID bytes) | u64 t0_us (gateway clock, Unix µs) | u16 fs_hz
    u16 lead_mask | u16 reconstructed_mask | u16 lsb_nv | u32 n_samples | u8 flags
    u8 len + patient_id | u8 len + device_id | u32 len + zlib(samples [, uncertainty])

flags bit 0: uncertainty block present. Samples are lead-major ``(leads, n)``.

**v2** adds flags bit 1, *gaps present*: then ``u16 count | count × (u32 start, u32 end)``
follows the device id, the ``[start, end)`` sample ranges where no data came (ascending,
disjoint, within ``0 … n_samples``); their samples carry no signal and are drawn as a gap. A
window without gaps is written as v1 (byte for byte as before), so decoders of v1 keep reading
every window they can represent and refuse a masked one clearly (unsupported schema version 2).
:data:`WINDOW_SCHEMA_VERSIONS` lists the versions this decoder accepts.

``leads`` is what the window carries, measured or reconstructed: a device with other leads (the
Polar H10: lead I only) sends the leads it has, with no reconstructed ones.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass

import numpy as np

from protocol.envelope import PayloadKind, unwrap, wrap
from protocol.errors import FrameError, SchemaError
from protocol.leads import lead_mask, leads_from_mask
from protocol.topics import validate_id

WINDOW_SCHEMA_VERSION = 2
"""The newest window schema (v2: gap mask)."""
WINDOW_SCHEMA_VERSIONS = (1, 2)
"""Versions :func:`decode_window` accepts."""
MAX_WINDOW_GAPS = 4096
MAX_WINDOW_SAMPLES = 12 * 500 * 60
"""Largest leads × samples a window may declare (one minute of 12 leads at 500 Hz)."""
_FIXED = struct.Struct("<16sQHHHHIB")
_FLAG_UNCERTAINTY = 0x01
_FLAG_GAPS = 0x02
_GAP = struct.Struct("<II")


@dataclass(frozen=True, eq=False)
class EcgWindow:
    """A window of ECG. ``samples``: int16 counts ``(len(leads), n)``; ``uncertainty``:
    int16 counts ``(len(reconstructed), n)`` or None; ``gaps``: ``[start, end)`` sample ranges
    with no data (ascending, disjoint; empty: the whole window was measured)."""

    window_id: str
    patient_id: str
    device_id: str
    t0_us: int
    fs_hz: int
    leads: tuple[str, ...]
    samples: np.ndarray
    reconstructed: tuple[str, ...] = ()
    uncertainty: np.ndarray | None = None
    lsb_nv: int = 1000
    gaps: tuple[tuple[int, int], ...] = ()

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[1])

    def millivolts(self) -> np.ndarray:
        """Samples in mV, ``(len(leads), n)``."""
        return self.samples * (self.lsb_nv * 1e-6)

    def uncertainty_mv(self) -> np.ndarray | None:
        return None if self.uncertainty is None else self.uncertainty * (self.lsb_nv * 1e-6)

    @property
    def masked_samples(self) -> int:
        """Samples (per lead) inside :attr:`gaps`."""
        return sum(b - a for a, b in self.gaps)

    def gap_mask(self) -> np.ndarray:
        """Boolean ``(n,)``: True where a sample lies in a gap."""
        mask = np.zeros(self.n_samples, dtype=bool)
        for a, b in self.gaps:
            mask[a:b] = True
        return mask

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EcgWindow):
            return NotImplemented
        same_unc = (self.uncertainty is None and other.uncertainty is None) or (
            self.uncertainty is not None and other.uncertainty is not None
            and np.array_equal(self.uncertainty, other.uncertainty)
        )
        return (
            (self.window_id, self.patient_id, self.device_id, self.t0_us, self.fs_hz, self.leads,
             self.reconstructed, self.lsb_nv, tuple(self.gaps))
            == (other.window_id, other.patient_id, other.device_id, other.t0_us, other.fs_hz, other.leads,
                other.reconstructed, other.lsb_nv, tuple(other.gaps))
            and np.array_equal(self.samples, other.samples) and same_unc
        )

    __hash__ = None  # type: ignore[assignment]


def _delta(counts: np.ndarray) -> np.ndarray:
    out = counts.astype(np.int16, copy=True)
    out[:, 1:] = np.diff(counts.astype(np.int16), axis=1)  # wraps mod 2**16: exact
    return out


def _undelta(deltas: np.ndarray) -> np.ndarray:
    return np.cumsum(deltas, axis=1, dtype=np.int16)


def encode_window(window: EcgWindow, *, level: int = 6) -> bytes:
    """Serialise a window; raises ProtocolError subclasses for inconsistent fields."""
    validate_id(window.patient_id, "patient id")
    validate_id(window.device_id, "device id")
    try:
        wid = uuid.UUID(window.window_id).bytes
    except (ValueError, AttributeError, TypeError):
        raise SchemaError(f"window_id {window.window_id!r} is not a UUID") from None
    samples = np.asarray(window.samples)
    if samples.ndim != 2 or samples.shape[0] != len(window.leads) or samples.shape[1] == 0:
        raise FrameError(f"samples must have shape ({len(window.leads)}, n>0), got {samples.shape}")
    if samples.size > MAX_WINDOW_SAMPLES:
        raise FrameError(f"window of {samples.size} samples exceeds {MAX_WINDOW_SAMPLES}")
    if samples.min() < -32768 or samples.max() > 32767:
        raise FrameError("window samples outside int16")
    mask = lead_mask(window.leads)
    if leads_from_mask(mask) != tuple(window.leads):
        raise FrameError(f"leads must be distinct and in standard order, got {window.leads}")
    rmask = lead_mask(window.reconstructed)
    if rmask & ~mask or leads_from_mask(rmask) != tuple(window.reconstructed):
        raise SchemaError("reconstructed leads must be a subset of the window's leads, in standard order")
    blocks = [_delta(samples)]
    flags = 0
    if window.uncertainty is not None:
        unc = np.asarray(window.uncertainty)
        if unc.shape != (len(window.reconstructed), samples.shape[1]):
            raise FrameError(f"uncertainty must have shape ({len(window.reconstructed)}, {samples.shape[1]})")
        if unc.size and (unc.min() < 0 or unc.max() > 32767):
            raise FrameError("uncertainty counts must be within 0..32767")
        blocks.append(_delta(unc))
        flags |= _FLAG_UNCERTAINTY
    gaps = _check_gaps(window.gaps, samples.shape[1])
    if gaps:
        flags |= _FLAG_GAPS
    try:
        fixed = _FIXED.pack(wid, window.t0_us, window.fs_hz, mask, rmask, window.lsb_nv, samples.shape[1], flags)
    except struct.error as exc:
        raise FrameError(f"header field out of range: {exc}") from None
    pid, did = window.patient_id.encode(), window.device_id.encode()
    packed = zlib.compress(b"".join(b.astype("<i2").tobytes() for b in blocks), level)
    gap_block = (struct.pack("<H", len(gaps)) + b"".join(_GAP.pack(a, b) for a, b in gaps)) if gaps else b""
    body = (fixed + bytes([len(pid)]) + pid + bytes([len(did)]) + did + gap_block + struct.pack("<I", len(packed))
            + packed)
    return wrap(PayloadKind.WINDOW, WINDOW_SCHEMA_VERSION if gaps else 1, body)


def _check_gaps(gaps: object, n: int) -> tuple[tuple[int, int], ...]:
    """Validated gap ranges: ints, ``0 <= start < end <= n``, ascending and disjoint."""
    try:
        out = tuple((int(a), int(b)) for a, b in gaps)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise SchemaError("window gaps must be (start, end) pairs of sample indices") from None
    if len(out) > MAX_WINDOW_GAPS:
        raise SchemaError(f"window declares {len(out)} gaps, more than {MAX_WINDOW_GAPS}")
    previous = 0
    for a, b in out:
        if not previous <= a < b <= n:
            raise SchemaError(f"window gaps must be ascending, disjoint [start, end) ranges within 0..{n}")
        previous = b
    return out


def decode_window(data: bytes | bytearray | memoryview) -> EcgWindow:
    """Parse a window payload. Raises only :class:`~protocol.errors.ProtocolError` subclasses."""
    version, view = unwrap(data, PayloadKind.WINDOW, WINDOW_SCHEMA_VERSIONS)
    body = bytes(view)
    if len(body) < _FIXED.size + 2:
        raise FrameError("window payload is truncated")
    wid, t0_us, fs_hz, mask, rmask, lsb_nv, n, flags = _FIXED.unpack_from(body)
    pos = _FIXED.size
    patient_id, pos = _read_id(body, pos, "patient id")
    device_id, pos = _read_id(body, pos, "device id")
    known = _FLAG_UNCERTAINTY | (_FLAG_GAPS if version >= 2 else 0)
    if flags & ~known:
        raise FrameError(f"reserved window flag bits set (0x{flags:02x}) for schema v{version}")
    raw_gaps: list[tuple[int, int]] = []
    if flags & _FLAG_GAPS:
        if len(body) < pos + 2:
            raise FrameError("window payload is truncated")
        (count,) = struct.unpack_from("<H", body, pos)
        pos += 2
        if count == 0 or len(body) < pos + count * _GAP.size:
            raise FrameError("window gap list is empty or truncated")
        raw_gaps = [_GAP.unpack_from(body, pos + i * _GAP.size) for i in range(count)]
        pos += count * _GAP.size
    if len(body) < pos + 4:
        raise FrameError("window payload is truncated")
    (packed_len,) = struct.unpack_from("<I", body, pos)
    pos += 4
    if len(body) != pos + packed_len:
        raise FrameError(f"window payload has {len(body) - pos} data bytes but declares {packed_len}")
    leads = leads_from_mask(mask)
    reconstructed = leads_from_mask(rmask)
    if not leads or fs_hz == 0 or lsb_nv == 0 or n == 0:
        raise FrameError("window declares no leads, or a zero rate, resolution or sample count")
    if rmask & ~mask:
        raise SchemaError("window marks leads as reconstructed that it does not carry")
    gaps = _check_gaps(raw_gaps, n)
    rows = len(leads) + (len(reconstructed) if flags & _FLAG_UNCERTAINTY else 0)
    if len(leads) * n > MAX_WINDOW_SAMPLES:
        raise FrameError(f"window declares {len(leads) * n} samples, more than the {MAX_WINDOW_SAMPLES} allowed")
    expected = rows * n * 2
    try:
        decomp = zlib.decompressobj()
        raw = decomp.decompress(body[pos:], expected + 1)
    except zlib.error as exc:
        raise FrameError(f"window data does not decompress: {exc}") from None
    if len(raw) != expected or not decomp.eof:
        raise FrameError(f"window data holds {len(raw)} bytes, header implies {expected}")
    values = _undelta(np.frombuffer(raw, dtype="<i2").reshape(rows, n))
    samples = values[: len(leads)]
    uncertainty = values[len(leads):] if flags & _FLAG_UNCERTAINTY else None
    if uncertainty is not None and uncertainty.size and uncertainty.min() < 0:
        raise SchemaError("window uncertainty is negative")
    return EcgWindow(
        window_id=str(uuid.UUID(bytes=wid)), patient_id=patient_id, device_id=device_id, t0_us=t0_us,
        fs_hz=fs_hz, leads=leads, samples=samples, reconstructed=reconstructed, uncertainty=uncertainty,
        lsb_nv=lsb_nv, gaps=gaps,
    )


def _read_id(body: bytes, pos: int, what: str) -> tuple[str, int]:
    if len(body) <= pos:
        raise FrameError("window payload is truncated")
    length = body[pos]
    raw = body[pos + 1 : pos + 1 + length]
    if len(raw) != length:
        raise FrameError("window payload is truncated")
    try:
        ident = raw.decode("ascii")
    except UnicodeDecodeError:
        raise SchemaError(f"{what} is not ASCII") from None
    return validate_id(ident, what), pos + 1 + length
