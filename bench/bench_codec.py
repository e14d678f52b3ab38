"""BLE frame codec throughput, in M samples/s, for int16 and int24.

Four codecs produce and parse the same bytes:

* ``naive``: struct per sample, the obvious pure-Python codec (the baseline);
* ``per-frame``: :func:`protocol.encode_frame` / :func:`protocol.decode_frame`;
* ``batch``: :func:`protocol.encode_frames` / :func:`protocol.decode_frames`.

Each figure is the best of ``--repeat`` runs, and its ratio is against the naive
codec measured in the same run. Run: ``python -m bench.bench_codec``.
"""

from __future__ import annotations

import argparse
import binascii
import struct
import sys
from collections.abc import Sequence

import numpy as np

from bench.timing import best_time
from protocol.ble_frame import (
    HEADER_SIZE,
    EcgFrame,
    SampleFormat,
    decode_frame,
    encode_frame,
    max_samples_per_frame,
)
from protocol.frame_batch import FrameBatch, decode_frames, encode_frames
from protocol.leads import WEARABLE_LEADS, lead_mask

_HEADER = struct.Struct("<BBIQHHHBHB")


def naive_encode(frame: EcgFrame) -> bytes:
    """One frame, one struct call per sample."""
    n, n_leads = frame.samples.shape
    out = bytearray(_HEADER.pack(1, int(frame.sample_format), frame.seq, frame.t0_us, frame.fs_hz,
                                 lead_mask(frame.leads), 0, frame.battery_pct, frame.lsb_nv, n))
    for value in frame.samples.reshape(-1).tolist():
        out += struct.pack("<h", value) if frame.sample_format is SampleFormat.INT16 else struct.pack("<i", value)[:3]
    return bytes(out) + binascii.crc_hqx(bytes(out), 0xFFFF).to_bytes(2, "little")


def naive_decode(data: bytes) -> list[int]:
    """Samples of one frame, one struct call per sample."""
    fmt = _HEADER.unpack_from(data)[1]
    body = data[HEADER_SIZE:-2]
    if binascii.crc_hqx(data[:-2], 0xFFFF) != int.from_bytes(data[-2:], "little"):
        raise ValueError("crc")
    if fmt == SampleFormat.INT16:
        return [struct.unpack_from("<h", body, 2 * i)[0] for i in range(len(body) // 2)]
    return [int.from_bytes(body[3 * i : 3 * i + 3], "little", signed=True) for i in range(len(body) // 3)]


def bench_format(fmt: SampleFormat, n_frames: int, repeat: int) -> None:
    n = max_samples_per_frame(3, fmt)
    rng = np.random.default_rng(0)
    lo, hi = fmt.limits
    samples = rng.integers(max(lo, -40_000), min(hi, 40_000), size=(n_frames, n, 3), dtype=np.int32)
    batch = FrameBatch(
        seq=np.arange(n_frames, dtype=np.uint32), t0_us=np.arange(n_frames, dtype=np.uint64) * 144_000,
        lead_off=np.zeros(n_frames, dtype=np.uint16), battery_pct=np.full(n_frames, 90), samples=samples,
        fs_hz=250, leads=WEARABLE_LEADS, sample_format=fmt,
    )
    frames = [batch.frame(i) for i in range(n_frames)]
    encoded = encode_frames(batch)
    naive_n = max(1, n_frames // 10)
    assert [naive_encode(f) for f in frames[:naive_n]] == encoded[:naive_n], "naive codec disagrees with protocol"
    assert [encode_frame(f) for f in frames[:naive_n]] == encoded[:naive_n]
    total = n_frames * n * 3

    def msps(seconds: float, count: int = total) -> float:
        return count / seconds / 1e6

    naive_enc = msps(best_time(lambda: [naive_encode(f) for f in frames[:naive_n]], repeat), naive_n * n * 3)
    naive_dec = msps(best_time(lambda: [naive_decode(b) for b in encoded[:naive_n]], repeat), naive_n * n * 3)
    rows = [
        ("encode", "naive struct", naive_enc, naive_enc),
        ("encode", "per-frame", msps(best_time(lambda: [encode_frame(f) for f in frames], repeat)), naive_enc),
        ("encode", "batch", msps(best_time(lambda: encode_frames(batch), repeat)), naive_enc),
        ("decode", "naive struct", naive_dec, naive_dec),
        ("decode", "per-frame", msps(best_time(lambda: [decode_frame(b) for b in encoded], repeat)), naive_dec),
        ("decode", "batch", msps(best_time(lambda: decode_frames(encoded), repeat)), naive_dec),
    ]
    print(f"\n{fmt.name}: {n} samples x 3 leads per frame, {n_frames} frames ({total / 1e6:.2f} M samples)")
    for op, codec, rate, base in rows:
        print(f"  {op:6s} {codec:12s} {rate:8.2f} M samples/s   x{rate / base:7.1f} vs naive")


def main(argv: Sequence[str] | None = None) -> None:
    """Run with ``argv`` options (defaults when None, as ``python -m bench`` calls it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(list(argv or []))
    print("BLE frame codec throughput (goal: >= 20 M samples/s for batch encode/decode)")
    for fmt in SampleFormat:
        bench_format(fmt, args.frames, args.repeat)


if __name__ == "__main__":
    main(sys.argv[1:])
