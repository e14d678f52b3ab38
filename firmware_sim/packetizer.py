"""Turn blocks of mV samples into frames: quantisation, sequence numbers, device timestamps, flags.

A :class:`Packetizer` holds one device's stream position: the next sequence
number (u32, wrapping) and the index of the next sample. It cuts each block into
:class:`FrameBlock` s (mV samples plus per-frame header fields), which
:func:`quantize_blocks` turns into a :class:`~protocol.frame_batch.FrameBatch`,
one vectorised :func:`protocol.quantize` for any number of frames — and of
devices, which is how a fleet packetises a thousand devices per tick.

Timestamps come from a :class:`DeviceClock`. The sample clock is the reference
(true time: sample *i* is taken at ``i / fs`` seconds); the device's timestamp
clock reads ``offset_us`` at the first sample and runs ``drift_ppm`` fast, so a
receiver measuring ``Δt0_us / (Δsamples / fs)`` finds ``1 + drift_ppm·1e-6``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from firmware_sim.profiles import DeviceProfile, WireFormat
from protocol.ble_frame import EcgFrame, encode_frame, quantize
from protocol.frame_batch import FrameBatch, encode_frames
from protocol.polar_pmd import PolarEcgFrame, encode_pmd_ecg

_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class DeviceClock:
    """A device's timestamp clock: ``offset_us`` at the first sample, running ``drift_ppm`` fast."""

    offset_us: int = 0
    drift_ppm: float = 0.0

    def __post_init__(self) -> None:
        if self.offset_us < 0:
            raise ValueError(f"clock offset must be >= 0 µs (timestamps are u64), got {self.offset_us}")
        if not -1e5 < self.drift_ppm < 1e5:
            raise ValueError(f"clock drift of {self.drift_ppm} ppm is not a clock")

    def stamp_us(self, t_s: np.ndarray | float) -> np.ndarray:
        """Device clock readings (u64 µs) at true times ``t_s`` seconds after the first sample."""
        ticks = np.rint(np.multiply(t_s, 1e6 * (1.0 + self.drift_ppm * 1e-6)))
        ticks += self.offset_us
        return ticks.astype(np.uint64)


@dataclass(frozen=True, eq=False)
class FrameBlock:
    """Frames of one device before quantisation.

    ``samples_mv`` has shape ``(n_frames, samples_per_frame, n_leads)`` (mV);
    ``seq``, ``t0_us``, ``lead_off`` (electrode masks) and ``battery_pct``
    (-1 = unknown) have one entry per frame; ``first_sample`` is the stream
    index of the block's first sample.
    """

    samples_mv: np.ndarray
    seq: np.ndarray
    t0_us: np.ndarray
    lead_off: np.ndarray
    battery_pct: np.ndarray
    first_sample: int

    @property
    def n_frames(self) -> int:
        return int(self.samples_mv.shape[0])

    @property
    def samples_per_frame(self) -> int:
        return int(self.samples_mv.shape[1])


class Packetizer:
    """One device's framing state. ``samples_per_frame`` defaults to the profile's."""

    def __init__(
        self,
        profile: DeviceProfile,
        *,
        samples_per_frame: int | None = None,
        clock: DeviceClock | None = None,
        first_seq: int = 0,
    ) -> None:
        spf = profile.samples_per_frame if samples_per_frame is None else samples_per_frame
        if not 0 < spf <= 0xFFFF:
            raise ValueError(f"samples_per_frame must be 1-65535, got {spf}")
        if not 0 <= first_seq <= _U32:
            raise ValueError(f"first_seq must be a u32, got {first_seq}")
        self.profile = profile
        self.samples_per_frame = spf
        self.clock = clock or DeviceClock()
        self._next_seq = first_seq
        self._next_sample = 0
        self._s_per_sample = 1.0 / profile.fs_hz

    @property
    def next_seq(self) -> int:
        """Sequence number of the next frame (u32)."""
        return self._next_seq

    @property
    def next_sample(self) -> int:
        """Stream index of the next sample to be framed."""
        return self._next_sample

    def frame_blocks(
        self, block_mv: np.ndarray, *, lead_off: np.ndarray | int = 0, battery_pct: int | None = None
    ) -> list[FrameBlock]:
        """Cut ``block_mv`` (shape ``(n, n_leads)``, mV) into frames and advance the stream.

        Whole frames come back as one :class:`FrameBlock`; a trailing remainder
        shorter than a frame (a source that ended) as a second one-frame block.
        ``lead_off`` is an electrode mask, per sample (shape ``(n,)``) or for
        the whole block; a frame is flagged if any of its samples is.
        """
        block = np.asarray(block_mv, dtype=np.float64)
        if block.ndim != 2 or block.shape[1] != self.profile.n_leads:
            raise ValueError(f"block must have shape (n, {self.profile.n_leads}), got {block.shape}")
        if isinstance(lead_off, int | np.integer):
            lead_off = int(lead_off)
        elif np.shape(lead_off) != (block.shape[0],):
            raise ValueError(f"per-sample lead_off must have shape ({block.shape[0]},), got {np.shape(lead_off)}")
        battery = -1 if battery_pct is None else int(battery_pct)
        spf = self.samples_per_frame
        n_whole = block.shape[0] // spf
        tail = block.shape[0] - n_whole * spf
        blocks = []
        if n_whole:
            cut = n_whole * spf
            masks = lead_off if isinstance(lead_off, int) else np.asarray(lead_off)[:cut].reshape(n_whole, spf)
            blocks.append(self._block(block[:cut].reshape(n_whole, spf, -1), masks, battery))
        if tail:
            masks = lead_off if isinstance(lead_off, int) else np.asarray(lead_off)[-tail:][None]
            blocks.append(self._block(block[-tail:][None], masks, battery))
        return blocks

    def packetize(
        self, block_mv: np.ndarray, *, lead_off: np.ndarray | int = 0, battery_pct: int | None = None
    ) -> list[FrameBatch]:
        """:meth:`frame_blocks` then :func:`quantize_blocks`: quantised frames of ``block_mv``."""
        return [
            quantize_blocks(self.profile, [b])
            for b in self.frame_blocks(block_mv, lead_off=lead_off, battery_pct=battery_pct)
        ]

    def _block(self, samples: np.ndarray, masks: np.ndarray | int, battery: int) -> FrameBlock:
        """Frames of shape (k, spf, leads) with per-sample masks (k, spf) or one mask for all."""
        k, spf = samples.shape[0], samples.shape[1]
        seq0 = self._next_seq
        if seq0 + k <= _U32 + 1:
            seq = np.arange(seq0, seq0 + k, dtype=np.uint32)
        else:
            seq = ((seq0 + np.arange(k, dtype=np.int64)) & _U32).astype(np.uint32)
        if isinstance(masks, int):
            lead_off = np.full(k, masks, dtype=np.uint16)
        else:
            lead_off = np.bitwise_or.reduce(masks, axis=1).astype(np.uint16)
        out = FrameBlock(
            samples_mv=samples,
            seq=seq,
            t0_us=self.clock.stamp_us(np.arange(self._next_sample, self._next_sample + k * spf, spf) * self._s_per_sample),
            lead_off=lead_off,
            battery_pct=np.full(k, battery, dtype=np.int16),
            first_sample=self._next_sample,
        )
        self._next_seq = (seq0 + k) & _U32
        self._next_sample += k * spf
        return out


def quantize_blocks(profile: DeviceProfile, blocks: Sequence[FrameBlock]) -> FrameBatch:
    """Quantise frame blocks (any number of devices of one profile and frame length) in one call."""
    if not blocks:
        raise ValueError("no frame blocks to quantise")
    spf = {b.samples_per_frame for b in blocks}
    if len(spf) != 1:
        raise ValueError(f"frame blocks of one batch must share a frame length, got {sorted(spf)}")
    if len(blocks) == 1:
        (b,) = blocks
        mv, seq, t0, off, bat = b.samples_mv, b.seq, b.t0_us, b.lead_off, b.battery_pct
    else:
        mv = np.concatenate([b.samples_mv for b in blocks])
        seq = np.concatenate([b.seq for b in blocks])
        t0 = np.concatenate([b.t0_us for b in blocks])
        off = np.concatenate([b.lead_off for b in blocks])
        bat = np.concatenate([b.battery_pct for b in blocks])
    return FrameBatch(
        seq=seq, t0_us=t0, lead_off=off, battery_pct=bat,
        samples=quantize(mv, profile.lsb_nv, profile.sample_format),
        fs_hz=profile.fs_hz, leads=profile.leads, lsb_nv=profile.lsb_nv, sample_format=profile.sample_format,
    )


def encode_for_wire(batch: FrameBatch, wire: WireFormat) -> list[bytes]:
    """Each frame of ``batch`` as one BLE notification in ``wire`` format (see :func:`encode_frame_for_wire`)."""
    if wire is WireFormat.ECGSTREAM:
        return encode_frames(batch)
    return [encode_frame_for_wire(batch.frame(i), wire) for i in range(len(batch))]


def encode_frame_for_wire(frame: EcgFrame, wire: WireFormat) -> bytes:
    """One frame as one BLE notification in ``wire`` format.

    Polar PMD carries one lead in µV, stamped (ns) at the frame's last sample as
    the H10 does; the seq, battery and lead-off fields have no place in it.
    """
    if wire is WireFormat.ECGSTREAM:
        return encode_frame(frame)
    if len(frame.leads) != 1 or frame.lsb_nv != 1000:
        raise ValueError(f"Polar PMD carries one lead in µV, got leads {frame.leads} at {frame.lsb_nv} nV/count")
    last_ns = frame.t0_us * 1000 + round((frame.n_samples - 1) * 1e9 / frame.fs_hz)
    return encode_pmd_ecg(PolarEcgFrame(timestamp_ns=last_ns, samples_uv=frame.samples[:, 0]))
