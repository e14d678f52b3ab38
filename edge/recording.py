"""Record what a live device sends as a WFDB record, gaps included, so it can be replayed forever.

:class:`StreamRecorder` takes one device's decoded frames (``protocol`` frames, as the ingest
decodes them) through its own :class:`~edge.stream.state.StreamState` (order, duplicates, gaps),
keeps every received sample at its stream index, and writes a WFDB record in mV where **every lost
sample is NaN** (the WFDB invalid value): nothing is interpolated, and the header says how many
samples were lost, in which gaps. Replaying the record (``ecgstream sim replay``) gives the stream
the device sent, in stream time from its first sample.

:func:`record_from_broker` subscribes to one device's samples topic on an MQTT broker and feeds a
recorder until enough stream time has arrived or it is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import numpy as np
import wfdb

from edge.stream.records import Gap, StreamOutput
from edge.stream.state import StreamConfig, StreamFormatError, StreamState
from protocol import ProtocolError
from protocol.ble_frame import EcgFrame
from protocol.polar_pmd import PolarEcgFrame
from protocol.samples_payload import decode_samples_payload
from protocol.topics import samples_topic

log = logging.getLogger(__name__)

ADC_GAIN_PER_MV = 1000.0
"""Counts per mV in the written record: 1 µV resolution, ±32.767 mV range (format 16)."""
_INVALID = -32768  # WFDB's invalid sample in format 16: read back as NaN
_GAPS_LISTED = 20


@dataclass
class RecorderCounters:
    """What the recorder saw (frames unless said otherwise)."""

    frames: int = 0
    format_changes: int = 0
    """Frames of another rate or lead set than the first (not recorded: a record has one format)."""
    decode_errors: int = 0
    gaps: list[Gap] = field(default_factory=list)


class StreamRecorder:
    """One device's frames in; its samples at their stream indices out (see the module docstring).

    Not thread-safe. ``config``: the stream layer's tuning; interpolation is always off (a
    recording keeps lost samples lost).
    """

    def __init__(self, device_id: str, config: StreamConfig | None = None) -> None:
        base = config or StreamConfig()
        self.device_id = device_id
        self.stream = StreamState(
            StreamConfig(
                reorder_window=base.reorder_window, max_hold_s=base.max_hold_s, interpolate_max_s=0.0,
                disconnect_s=base.disconnect_s, timestamp_tolerance_s=base.timestamp_tolerance_s,
                quality_window_s=base.quality_window_s, clock_bucket_s=base.clock_bucket_s, model_fs=base.model_fs,
            )
        )
        self.counters = RecorderCounters()
        self._chunks: list[tuple[int, np.ndarray]] = []
        self._stop = 0
        self._first_arrival_s: float | None = None

    # -- input ------------------------------------------------------------------------------------

    def push(self, frame: EcgFrame | PolarEcgFrame, arrival_s: float) -> None:
        """Take one decoded frame that arrived at ``arrival_s`` (any monotonic clock, s)."""
        self.counters.frames += 1
        if self._first_arrival_s is None:
            self._first_arrival_s = arrival_s
        try:
            out = self.stream.push(frame, arrival_s)
        except StreamFormatError as exc:
            self.counters.format_changes += 1
            log.warning("recording %s: frame not recorded: %s", self.device_id, exc)
            return
        self._take(out)

    def push_payload(self, data: bytes, arrival_s: float) -> None:
        """Decode an MQTT samples payload and :meth:`push` it (a bad payload is counted, not raised)."""
        try:
            frame = decode_samples_payload(data)
        except ProtocolError as exc:
            self.counters.decode_errors += 1
            self.stream.decode_error()
            log.warning("recording %s: undecodable payload: %s", self.device_id, exc)
            return
        self.push(frame, arrival_s)

    def poll(self, now_s: float) -> None:
        """Release frames held for a missing predecessor longer than the hold time."""
        self._take(self.stream.poll(now_s))

    def flush(self) -> None:
        """End of the recording: release everything held."""
        self._take(self.stream.flush())

    def _take(self, out: StreamOutput) -> None:
        for block in out.blocks:
            if not block.interpolated:
                self._chunks.append((block.start, np.asarray(block.samples_mv, dtype=np.float64)))
                self._stop = max(self._stop, block.stop)
        for gap in out.gaps:
            self.counters.gaps.append(gap)
            self._stop = max(self._stop, gap.stop)

    # -- output -----------------------------------------------------------------------------------

    @property
    def fs(self) -> float | None:
        """The device rate (Hz), once a frame has come."""
        return self.stream.fs

    @property
    def lead_names(self) -> tuple[str, ...]:
        return self.stream.leads

    @property
    def n_samples(self) -> int:
        """Samples per lead so far (received and lost), up to the last one released."""
        return self._stop

    @property
    def duration_s(self) -> float:
        """Stream time recorded so far (s)."""
        return self._stop / self.stream.fs if self.stream.fs else 0.0

    @property
    def lost_samples(self) -> int:
        """Samples per lead missing (NaN in the record)."""
        return int(np.isnan(self.signals()[:, 0]).sum()) if self._stop and self.lead_names else 0

    def signals(self) -> np.ndarray:
        """``(n_samples, leads)`` mV, NaN where no sample was received."""
        out = np.full((self._stop, len(self.lead_names)), np.nan)
        for start, samples in self._chunks:
            out[start:start + samples.shape[0]] = samples
        return out

    def notes(self) -> list[str]:
        """The header comments: what was recorded and every gap (the first few listed)."""
        signals = self.signals()
        fs = self.fs or 1.0
        lost = int(np.isnan(signals[:, 0]).sum()) if signals.size else 0
        gaps = [g for g in self.counters.gaps if not g.interpolated]
        lines = [
            f"ecgstream edge record: device {self.device_id}, {self.counters.frames} frames",
            f"lost samples are NaN (WFDB invalid): {lost} per lead in {len(gaps)} gaps ({lost / fs:.3f} s)",
        ]
        lines += [f"gap at {g.start / fs:.3f} s for {g.length / fs:.3f} s ({g.reason})" for g in gaps[:_GAPS_LISTED]]
        if len(gaps) > _GAPS_LISTED:
            lines.append(f"... and {len(gaps) - _GAPS_LISTED} more gaps")
        if self.counters.format_changes:
            lines.append(f"{self.counters.format_changes} frames of another rate or lead set were not recorded")
        if self.counters.decode_errors:
            lines.append(f"{self.counters.decode_errors} payloads could not be decoded")
        return lines

    def write(self, record: str | Path, *, comments: Sequence[str] = ()) -> Path:
        """Write ``record.hea``/``record.dat`` (``record``: path without extension); returns the header.

        Raises :class:`ValueError` when nothing was recorded.
        """
        if self.fs is None or self._stop == 0:
            raise ValueError(f"nothing recorded from device {self.device_id}: no samples arrived")
        record = Path(record)
        if record.suffix in (".hea", ".dat"):
            record = record.with_suffix("")
        record.parent.mkdir(parents=True, exist_ok=True)
        signals = self.signals()
        limit = 32767 / ADC_GAIN_PER_MV
        missing = np.isnan(signals)
        digital = np.rint(np.clip(np.nan_to_num(signals), -limit, limit) * ADC_GAIN_PER_MV).astype(np.int64)
        digital[missing] = _INVALID
        n = len(self.lead_names)
        wfdb.wrsamp(
            record_name=record.name,
            fs=float(self.fs),
            units=["mV"] * n,
            sig_name=list(self.lead_names),
            d_signal=digital,
            fmt=["16"] * n,
            adc_gain=[ADC_GAIN_PER_MV] * n,
            baseline=[0] * n,
            comments=[*self.notes(), *comments],
            write_dir=str(record.parent),
        )
        return record.with_suffix(".hea")


async def record_from_broker(
    recorder: StreamRecorder,
    *,
    hostname: str,
    port: int = 1883,
    username: str | None = None,
    password: str | None = None,
    tls_context: ssl.SSLContext | None = None,
    seconds: float | None = None,
    subscribed: asyncio.Event | None = None,
    idle_timeout_s: float | None = None,
) -> None:
    """Feed ``recorder`` with the device's samples from the broker until ``seconds`` of stream time
    have arrived, ``idle_timeout_s`` passes with no message, or the task is cancelled; then flush it.

    ``subscribed`` is set once the subscription is in place. Raises :class:`ConnectionError` when
    the broker cannot be reached.
    """
    topic = samples_topic(recorder.device_id)
    try:
        async with aiomqtt.Client(hostname, port, identifier=f"ecgstream-record-{uuid.uuid4().hex[:8]}",
                                  username=username, password=password, tls_context=tls_context) as client:
            await client.subscribe(topic, qos=1)
            if subscribed is not None:
                subscribed.set()
            messages = aiter(client.messages)
            while seconds is None or recorder.duration_s < seconds:
                try:
                    message = await asyncio.wait_for(anext(messages), idle_timeout_s)
                except TimeoutError:
                    break
                payload = message.payload
                recorder.push_payload(bytes(payload) if isinstance(payload, bytes | bytearray) else b"",
                                      time.monotonic())
                recorder.poll(time.monotonic())
    except aiomqtt.MqttError as exc:
        raise ConnectionError(f"cannot record from the MQTT broker at {hostname}:{port}: {exc}") from None
    finally:
        recorder.flush()
