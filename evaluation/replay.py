"""A real record turned into what a wearable would send, and replayed through a fresh edge agent.

Each WFDB record is fed to an :class:`~edge.agent.EdgeAgent` (``mode="sync"``, rules as
configured) in stream time, as :mod:`ecgstream.edge_sim` does for simulated wards:

1. **read** with :func:`firmware_sim.records.read_record` (``.dat`` and ``.mat``-based WFDB alike;
   mV, standard lead names: ``MLII`` is II);
2. **leads**: the channels that are standard leads (:data:`protocol.leads.STANDARD_LEADS`) in mV
   are kept, in standard order (:func:`firmware_sim.records.select_leads`) — CPSC 2021: I, II;
   PhysioNet 2015: II. Other channels (the 2015 records' unnamed precordial ``V``, ``PLETH``,
   ``RESP``) are ignored and listed in the report: a "V" of unknown position must not pose as V1.
   The alarm rules analyse lead II; the reconstruction VAE needs II, V1 and V5, so these streams
   give no model windows (the session counts ``windows_unsupported``), which is expected and
   reported, not an error;
3. **invalid samples** (WFDB NaN): runs of at most ``nan_fill_max_s`` inside the record are filled
   by linear interpolation (:func:`firmware_sim.records.fill_gaps`' values; counted); longer runs,
   and runs at either end, are not bridged: every frame touching one is withheld, so the edge
   sees lost sequence numbers, a gap, exactly as for lost BLE frames (counted);
4. **baseline**: each lead's median is subtracted (CPSC 2021 has DC offsets of 3–10 mV);
5. **rate**: resampled polyphase to ``fs_hz`` (:func:`firmware_sim.records.resample`; 250 Hz, the
   ``ecgstream-250`` wearable's rate; ``None`` keeps the record's rate — the stream state accepts
   any rate). Samples of the long invalid runs go through the filter as zeros and come out
   invalid again, with every output sample that draws on them;
6. **frames**: ecgstream BLE frames v1 (int16, 1 µV per count, as many samples per frame as fit
   244 bytes) cut by the simulator's :class:`firmware_sim.packetizer.Packetizer`: consecutive
   sequence numbers and device timestamps of the first sample; frame *k* arrives at gateway time
   ``T0 + end of its last sample + latency_s``, and the agent ticks every ``tick_s`` of arrival
   time (:meth:`EdgeAgent.feed_many`), then flushes at the end of the record.

Alert times come from the alert's ``details['onset_s']`` (stream seconds: record seconds, since
the stream starts at the record's first sample).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.agent import AgentConfig, EdgeAgent, MemorySink
from firmware_sim import records
from firmware_sim.packetizer import DeviceClock, Packetizer, quantize_blocks
from firmware_sim.profiles import BatteryModel, DeviceProfile, WireFormat
from models.data.records import header_comments
from protocol.ble_frame import SampleFormat, max_samples_per_frame
from protocol.frame_batch import encode_frames
from protocol.leads import STANDARD_LEADS
from protocol.messages import Alert

__all__ = [
    "DEVICE_T0_US",
    "GATEWAY_T0_S",
    "Recording",
    "ReplayConfig",
    "ReplayResult",
    "fill_short_gaps",
    "frames",
    "prepare",
    "read_record",
    "replay",
]

GATEWAY_T0_S = 1_700_000_000.0
"""Gateway time (Unix s) of stream time 0 in replays."""
DEVICE_T0_US = 1_000_000
"""Device clock (µs) of the first sample."""
LSB_NV = 1000
SAMPLE_FORMAT = SampleFormat.INT16
_BATTERY = BatteryModel(capacity_mah=200.0, streaming_current_ma=0.0)
"""Frames of a replay carry no battery level (``battery_pct`` unknown); the model is never asked."""


@dataclass(frozen=True)
class ReplayConfig:
    """How a record is turned into a stream (see the module docstring)."""

    fs_hz: int | None = 250
    """Stream rate (Hz); None keeps the record's own rate."""
    nan_fill_max_s: float = 0.05
    """Longest run of invalid (NaN) samples filled by interpolation; longer runs become gaps."""
    samples_per_frame: int | None = None
    """Samples per lead per frame; None: as many as fit one 244-byte frame."""
    tick_s: float = 0.5
    latency_s: float = 0.02
    """Gateway arrival after the frame's last sample (BLE connection interval and stack)."""
    tolerance_s: float = 0.0
    """An AF alarm onset this far outside a reference episode still counts for it."""

    def __post_init__(self) -> None:
        if self.fs_hz is not None and self.fs_hz <= 0:
            raise ValueError("fs_hz must be positive (or None)")
        if self.nan_fill_max_s < 0 or self.tick_s <= 0 or self.latency_s < 0 or self.tolerance_s < 0:
            raise ValueError("nan_fill_max_s, latency_s, tolerance_s must be >= 0 and tick_s > 0")


@dataclass
class Recording:
    """The standard-lead channels of one record, in mV, ready to stream."""

    name: str
    fs: float
    """Rate of ``signal`` (Hz), after resampling."""
    native_fs: float
    leads: tuple[str, ...]
    signal: np.ndarray
    """(n, leads) mV, baseline removed, short NaN runs filled; long NaN runs still NaN."""
    duration_s: float
    comments: tuple[str, ...]
    ignored_channels: tuple[str, ...]
    nan_filled: int = 0
    """Invalid samples (all leads) filled by interpolation, at the record's rate."""
    nan_unfilled: int = 0
    """Invalid samples in runs too long to fill (sent as gaps), at the record's rate."""


@dataclass
class ReplayResult:
    """What the agent did with one record."""

    name: str
    alerts: list[Alert]
    stream: dict[str, Any]


def _short_runs(bad: np.ndarray, max_len: int) -> np.ndarray:
    """Which NaN samples of one column lie in a run of at most ``max_len`` with valid samples on both sides."""
    edges = np.diff(np.r_[0, bad.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    short = (stops - starts <= max_len) & (starts > 0) & (stops < bad.size)
    marks = np.zeros(bad.size + 1, dtype=np.int64)
    np.add.at(marks, starts[short], 1)
    np.add.at(marks, stops[short], -1)
    return np.cumsum(marks[:-1]) > 0


def fill_short_gaps(recording: records.Recording, max_len: int) -> tuple[records.Recording, int, int]:
    """Interpolate the NaN runs of at most ``max_len`` samples inside the record; keep the others.

    The values are :func:`firmware_sim.records.fill_gaps`' (linear between the nearest valid
    samples of the lead). Returns the recording, the samples filled and the samples left NaN (a
    lead without any valid sample stays NaN throughout).
    """
    bad = np.isnan(recording.signals)
    if not bad.any():
        return recording, 0, 0
    usable = [lead for lead, col in zip(recording.lead_names, bad.T, strict=True) if not col.all()]
    fill = np.zeros_like(bad)
    x = np.array(recording.signals)
    if usable:
        filled, _ = records.fill_gaps(records.select_leads(recording, usable))
        for lead in usable:
            c = recording.lead_names.index(lead)
            fill[:, c] = _short_runs(bad[:, c], max_len)
            x[fill[:, c], c] = filled.signals[fill[:, c], usable.index(lead)]
    return dataclasses.replace(recording, signals=x), int(fill.sum()), int(bad.sum() - fill.sum())


def _stream_leads(recording: records.Recording) -> tuple[list[str], list[str]]:
    """The standard leads in mV (first of each, in standard order) and the channels left out."""
    leads: list[str] = []
    ignored: list[str] = []
    for name, unit in zip(recording.lead_names, recording.units, strict=True):
        if name in STANDARD_LEADS and unit == "mV" and name not in leads:
            leads.append(name)
        else:
            ignored.append(name)
    return sorted(leads, key=STANDARD_LEADS.index), ignored


def prepare(recording: records.Recording, config: ReplayConfig | None = None, *,
            name: str | None = None, comments: tuple[str, ...] = ()) -> Recording:
    """Steps 2–5 of the module docstring on a record read by :func:`firmware_sim.records.read_record`."""
    c = config or ReplayConfig()
    leads, ignored = _stream_leads(recording)
    if not leads:
        raise ValueError(f"{recording.name}: no standard ECG lead among channels {list(recording.lead_names)}")
    native = records.select_leads(recording, leads)
    fs = native.fs
    native, filled, unfilled = fill_short_gaps(native, int(math.floor(c.nan_fill_max_s * fs + 1e-9)))
    x = native.signals - np.nanmedian(native.signals, axis=0)
    invalid: np.ndarray = np.asarray(np.isnan(x).any(axis=1), dtype=bool)
    out_fs = fs
    if c.fs_hz is not None and c.fs_hz != fs:
        up, down = records.rational_ratio(fs, c.fs_hz)
        y = np.array(records.resample(dataclasses.replace(native, signals=np.nan_to_num(x)), c.fs_hz).signals)
        if invalid.any():
            j = np.arange(y.shape[0])
            lo = np.minimum((j * down) // up, len(invalid) - 1)
            hi = np.minimum(-((-j * down) // up), len(invalid) - 1)
            y[invalid[lo] | invalid[hi]] = np.nan
        x, out_fs = y, float(c.fs_hz)
    return Recording(name or recording.name, out_fs, fs, tuple(leads), x, recording.duration_s,
                     tuple(comments), tuple(ignored), filled, unfilled)


def read_record(base: str | os.PathLike[str], config: ReplayConfig | None = None, *,
                name: str | None = None) -> Recording:
    """Read one WFDB record (path without extension) and prepare its standard leads for streaming."""
    header = Path(f"{base}.hea")
    return prepare(records.read_record(header), config, name=name or Path(base).name,
                   comments=tuple(header_comments(header)))


def _profile(rec: Recording, per: int) -> DeviceProfile:
    return DeviceProfile(name=f"replay-{rec.name}", fs_hz=int(round(rec.fs)), leads=rec.leads,
                         sample_format=SAMPLE_FORMAT, lsb_nv=LSB_NV, samples_per_frame=per,
                         wire=WireFormat.ECGSTREAM, battery=_BATTERY)


def frames(rec: Recording, config: ReplayConfig | None = None) -> tuple[list[tuple[bytes, float]], int]:
    """The record as encoded frames with their stream end times (s); and the frames withheld (gaps)."""
    c = config or ReplayConfig()
    most = max_samples_per_frame(len(rec.leads), SAMPLE_FORMAT)
    per = min(c.samples_per_frame or most, most)
    n = rec.signal.shape[0]
    profile = _profile(rec, per)
    packetizer = Packetizer(profile, clock=DeviceClock(offset_us=DEVICE_T0_US))
    invalid = np.isnan(rec.signal).any(axis=1)
    encoded: list[bytes] = []
    for block in packetizer.frame_blocks(rec.signal):
        encoded.extend(encode_frames(quantize_blocks(profile, [block])))
    out, withheld = [], 0
    for k, data in enumerate(encoded):
        a, b = k * per, min(n, (k + 1) * per)
        if invalid[a:b].any():
            withheld += 1
            continue
        out.append((data, b / rec.fs))
    return out, withheld


def _reporting(items: Iterator[tuple[str, bytes, str, float]], on_stream: Callable[[float], None] | None,
               every: int = 500) -> Iterator[tuple[str, bytes, str, float]]:
    """``items`` unchanged; every ``every`` frames, the stream time reached goes to ``on_stream``."""
    for k, item in enumerate(items):
        if on_stream is not None and k % every == 0:
            on_stream(item[3] - GATEWAY_T0_S)
        yield item


def replay(rec: Recording, config: ReplayConfig | None = None, agent_config: AgentConfig | None = None, *,
           on_stream: Callable[[float], None] | None = None) -> ReplayResult:
    """Stream one prepared record through a fresh :class:`EdgeAgent` (sync mode, rules as configured).

    ``on_stream`` hears the stream seconds reached, now and then (for progress displays).
    """
    c = config or ReplayConfig()
    sink = MemorySink(keep_windows=False)
    agent = EdgeAgent(agent_config, sink, mode="sync", clock=lambda: GATEWAY_T0_S)
    device = _device_id(rec.name)
    fed, withheld = frames(rec, c)
    items = ((device, data, "frame", GATEWAY_T0_S + end + c.latency_s) for data, end in fed)
    agent.feed_many(_reporting(items, on_stream), tick_s=c.tick_s, transport="replay")
    if fed:
        agent.tick(GATEWAY_T0_S + fed[-1][1] + c.latency_s)
    agent.flush()
    s = agent.sessions.get(device)
    stream: dict[str, Any] = {
        "fs_hz": rec.fs, "native_fs_hz": rec.native_fs, "leads": list(rec.leads),
        "ignored_channels": list(rec.ignored_channels), "frames_sent": len(fed), "frames_withheld": withheld,
        "nan_samples_filled": rec.nan_filled, "nan_samples_as_gaps": rec.nan_unfilled,
        "rejected_payloads": dict(agent.counters.rejected),
    }
    if s is not None:
        stream.update({
            "gaps": dict(s.counters.gaps), "samples_lost": s.stream.counters.samples_lost,
            "samples_interpolated": s.stream.counters.samples_interpolated,
            "analysis_skipped_samples": s.counters.analysis_skipped_samples,
            "detector_resets": s.counters.detector_resets, "windows": s.counters.windows,
            "windows_unsupported": s.counters.windows_unsupported, "internal_errors": s.counters.internal_errors,
            "paced_beats": s.counters.paced_beats,
        })
    return ReplayResult(rec.name, list(sink.alerts), stream)


def _device_id(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in name)
    return cleaned[-64:] or "record"
