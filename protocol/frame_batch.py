"""Vectorised encode/decode of many BLE ECG frames with the same layout.

A device emits frames of one layout (rate, leads, format, samples per frame),
so a recording, an archive or a replay can be packetised or parsed a whole
array at a time: headers through a structured dtype, samples through a view,
and only the CRC per frame (C speed, :func:`binascii.crc_hqx`). The bytes are
exactly those of :func:`protocol.ble_frame.encode_frame`.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from protocol.ble_frame import (
    BATTERY_UNKNOWN,
    CRC_SIZE,
    FRAME_VERSION,
    HEADER_SIZE,
    MAX_ATT_PAYLOAD,
    EcgFrame,
    SampleFormat,
    decode_frame,
    int24_to_int32,
)
from protocol.errors import FrameError, ProtocolError
from protocol.leads import electrode_mask, electrodes_from_mask, lead_mask, leads_from_mask

_HEADER_DTYPE = np.dtype(
    [
        ("version", "u1"), ("flags", "u1"), ("seq", "<u4"), ("t0_us", "<u8"), ("fs_hz", "<u2"),
        ("lead_mask", "<u2"), ("lead_off", "<u2"), ("battery", "u1"), ("lsb_nv", "<u2"), ("n", "u1"),
    ]
)
assert _HEADER_DTYPE.itemsize == HEADER_SIZE
_CRC_INIT = 0xFFFF


@dataclass(frozen=True, eq=False)
class FrameBatch:
    """N frames of one layout. ``samples`` has shape ``(N, n_samples, n_leads)`` (int32 counts).

    ``lead_off`` holds electrode masks (see :data:`protocol.leads.ELECTRODES`);
    ``battery_pct`` is -1 where unknown. ``ok`` is False for frames that failed
    to decode (their samples are zero); ``errors`` maps those frame indices to
    the :class:`ProtocolError` that :func:`decode_frame` gives for them.
    """

    seq: np.ndarray
    t0_us: np.ndarray
    lead_off: np.ndarray
    battery_pct: np.ndarray
    samples: np.ndarray
    fs_hz: int
    leads: tuple[str, ...]
    lsb_nv: int = 1000
    sample_format: SampleFormat = SampleFormat.INT16
    ok: np.ndarray | None = None
    errors: dict[int, ProtocolError] | None = None

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    def frame(self, i: int) -> EcgFrame:
        """Frame ``i`` as an :class:`EcgFrame`."""
        battery = int(self.battery_pct[i])
        return EcgFrame(
            seq=int(self.seq[i]), t0_us=int(self.t0_us[i]), fs_hz=self.fs_hz, leads=self.leads,
            samples=self.samples[i], lead_off=electrodes_from_mask(int(self.lead_off[i])),
            battery_pct=None if battery < 0 else battery, lsb_nv=self.lsb_nv, sample_format=self.sample_format,
        )


def encode_frames(batch: FrameBatch, *, max_size: int = MAX_ATT_PAYLOAD) -> list[bytes]:
    """Serialise every frame of a batch; same bytes as :func:`encode_frame` frame by frame."""
    samples = np.asarray(batch.samples)
    if samples.ndim != 3 or samples.shape[2] != len(batch.leads):
        raise FrameError(f"samples must have shape (N, n, {len(batch.leads)}), got {samples.shape}")
    count, n, n_leads = samples.shape
    if not 0 < n <= 255:
        raise FrameError(f"a frame holds 1-255 samples per lead, got {n}")
    fmt = batch.sample_format
    lo, hi = fmt.limits
    if samples.size and (samples.min() < lo or samples.max() > hi):
        raise FrameError(f"sample counts outside the {fmt.name} range {lo}..{hi}")
    size = HEADER_SIZE + n * n_leads * fmt.width + CRC_SIZE
    if size > max_size:
        raise FrameError(f"frame of {size} bytes exceeds the {max_size}-byte limit")
    mask = lead_mask(batch.leads)
    if leads_from_mask(mask) != tuple(batch.leads):
        raise FrameError(f"leads must be distinct and in standard order, got {batch.leads}")
    battery = np.asarray(batch.battery_pct)
    if np.any((battery > 100) | (battery < -1)):
        raise FrameError("battery_pct must be 0-100 or -1 (unknown)")
    header = np.zeros(count, dtype=_HEADER_DTYPE)
    header["version"] = FRAME_VERSION
    header["flags"] = int(fmt)
    header["seq"] = batch.seq
    header["t0_us"] = batch.t0_us
    header["fs_hz"] = batch.fs_hz
    header["lead_mask"] = mask
    header["lead_off"] = batch.lead_off
    header["battery"] = np.where(battery < 0, BATTERY_UNKNOWN, battery)
    header["lsb_nv"] = batch.lsb_nv
    header["n"] = n
    flat = np.ascontiguousarray(samples, dtype="<i4").reshape(count, n * n_leads)
    if fmt is SampleFormat.INT16:
        body = flat.astype("<i2").view(np.uint8)
    else:
        body = flat.view(np.uint8).reshape(count, -1, 4)[:, :, :3].reshape(count, -1)
    rows = np.concatenate([header.view(np.uint8).reshape(count, HEADER_SIZE), body], axis=1)
    view = memoryview(np.ascontiguousarray(rows).tobytes())
    width = size - CRC_SIZE
    out = []
    for i in range(count):
        row = view[i * width : (i + 1) * width]
        out.append(bytes(row) + binascii.crc_hqx(row, _CRC_INIT).to_bytes(2, "little"))
    return out


def decode_frames(frames: Sequence[bytes]) -> FrameBatch:
    """Parse frames of one layout at once.

    The layout is taken from the first frame that decodes. A frame that is
    corrupt or has another layout is marked in ``ok``/``errors`` and zeroed; the
    others are unaffected. Raises :class:`FrameError` only if no frame decodes.
    """
    if not frames:
        raise FrameError("no frames to decode")
    errors: dict[int, ProtocolError] = {}
    first: EcgFrame | None = None
    first_len = 0
    for i, data in enumerate(frames):
        try:
            first = decode_frame(data)
            first_len = len(data)
            break
        except ProtocolError as exc:
            errors[i] = exc
    if first is None:
        raise FrameError(f"none of the {len(frames)} frames decodes: {next(iter(errors.values()))}")
    count = len(frames)
    same_len = np.fromiter((len(f) == first_len for f in frames), dtype=bool, count=count)
    raw = np.zeros((count, first_len), dtype=np.uint8)
    if same_len.all():
        raw[:] = np.frombuffer(b"".join(frames), dtype=np.uint8).reshape(count, first_len)
    else:
        for row in np.flatnonzero(same_len).tolist():
            raw[row] = np.frombuffer(frames[row], dtype=np.uint8)
    header = raw[:, :HEADER_SIZE].copy().view(_HEADER_DTYPE).reshape(count)
    crc_given = raw[:, -2].astype(np.int64) | (raw[:, -1].astype(np.int64) << 8)
    crc_actual = np.fromiter(
        (binascii.crc_hqx(f[:-CRC_SIZE], _CRC_INIT) if ok else -1 for f, ok in zip(frames, same_len, strict=True)),
        dtype=np.int64, count=count,
    )
    ok = (
        same_len
        & (crc_given == crc_actual)
        & (header["version"] == FRAME_VERSION)
        & (header["flags"] == int(first.sample_format))
        & (header["fs_hz"] == first.fs_hz)
        & (header["lead_mask"] == lead_mask(first.leads))
        & (header["lsb_nv"] == first.lsb_nv)
        & (header["n"] == first.n_samples)
        & ((header["battery"] <= 100) | (header["battery"] == BATTERY_UNKNOWN))
        & (header["lead_off"] < (1 << 10))
    )
    for row in np.flatnonzero(~ok).tolist():
        if row not in errors:
            try:
                decode_frame(frames[row])
                errors[row] = FrameError("frame is valid but its layout differs from the batch's")
            except ProtocolError as exc:
                errors[row] = exc
    n, n_leads, fmt = first.n_samples, len(first.leads), first.sample_format
    body = raw[:, HEADER_SIZE:-CRC_SIZE]
    if fmt is SampleFormat.INT16:
        samples = np.ascontiguousarray(body).view("<i2").astype(np.int32)
    else:
        samples = int24_to_int32(body.reshape(count, -1, 3))
    samples = samples.reshape(count, n, n_leads)
    samples[~ok] = 0
    battery = header["battery"].astype(np.int16)
    battery[battery == BATTERY_UNKNOWN] = -1
    return FrameBatch(
        seq=header["seq"].copy(), t0_us=header["t0_us"].copy(), lead_off=header["lead_off"].copy(),
        battery_pct=battery, samples=samples, fs_hz=first.fs_hz, leads=first.leads, lsb_nv=first.lsb_nv,
        sample_format=fmt, ok=ok, errors=errors,
    )


def lead_off_mask(electrodes: Sequence[str]) -> int:
    """Electrode mask for :attr:`FrameBatch.lead_off` (re-exported convenience)."""
    return electrode_mask(electrodes)
