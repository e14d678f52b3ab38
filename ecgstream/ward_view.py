"""A live terminal view of a ward's streams, for the demo.

It sits where the edge gateway will sit: it receives what the wearables send
(MQTT samples payloads or BLE frames), decodes them with :mod:`protocol`, and
shows per device what arrives: frames, lost frames (sequence gaps), duplicates
and late frames, rejected payloads, battery, lead-off and a sparkline of the
first lead. Nothing is dropped silently: every gap and rejection is counted.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from rich import box
from rich.table import Table
from rich.text import Text

from protocol.ble_frame import EcgFrame
from protocol.messages import DeviceStatus
from protocol.polar_pmd import PolarEcgFrame

_SPARK = "▁▂▃▄▅▆▇█"
_SEQ_MOD = 1 << 32


@dataclass
class StreamStats:
    """What one device's stream looked like on arrival."""

    device_id: str
    frames: int = 0
    samples: int = 0
    lost_frames: int = 0
    duplicates_or_late: int = 0
    rejected: int = 0
    last_error: str = ""
    battery_pct: int | None = None
    lead_off: tuple[str, ...] = ()
    fs_hz: int = 0
    leads: tuple[str, ...] = ()
    last_seen: float = 0.0
    connected: bool = True
    _next_seq: int | None = None
    _recent: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=64))

    def add(self, frame: EcgFrame, now: float | None = None) -> None:
        """Account for one decoded frame."""
        self.last_seen = time.monotonic() if now is None else now
        if self._next_seq is not None:
            ahead = (frame.seq - self._next_seq) % _SEQ_MOD
            if ahead >= _SEQ_MOD // 2:  # behind what we expected: a duplicate or a late frame
                self.duplicates_or_late += 1
                return
            self.lost_frames += ahead
        self._next_seq = (frame.seq + 1) % _SEQ_MOD
        self.frames += 1
        self.samples += frame.n_samples
        self.battery_pct = frame.battery_pct
        self.lead_off = frame.lead_off
        self.fs_hz = frame.fs_hz
        self.leads = frame.leads
        self._recent.append(frame.millivolts()[:, 0])

    def add_pmd(self, frame: PolarEcgFrame, now: float | None = None) -> None:
        """Account for one Polar PMD notification (no sequence number: gaps are not visible)."""
        self.last_seen = time.monotonic() if now is None else now
        self.frames += 1
        self.samples += len(frame.samples_uv)
        self.fs_hz = frame.fs_hz
        self.leads = ("I",)
        self._recent.append(frame.millivolts())

    def add_status(self, status: DeviceStatus, now: float | None = None) -> None:
        """Account for a status report (battery, lead-off, link state)."""
        self.last_seen = time.monotonic() if now is None else now
        self.battery_pct = status.battery_pct
        self.lead_off = status.lead_off
        self.connected = status.connected

    def reject(self, reason: str, now: float | None = None) -> None:
        """Account for a payload that did not decode."""
        self.last_seen = time.monotonic() if now is None else now
        self.rejected += 1
        self.last_error = reason

    def sparkline(self, width: int = 16) -> str:
        """The last couple of seconds of the first lead as block characters."""
        if not self._recent:
            return ""
        trace = np.concatenate(self._recent)
        trace = trace[-max(width, self.fs_hz * 3):]
        bins = np.array_split(trace, min(width, len(trace)))
        peaks = np.array([b[np.argmax(np.abs(b))] for b in bins])
        span = np.ptp(peaks) or 1.0
        levels = np.clip(((peaks - peaks.min()) / span * (len(_SPARK) - 1)).round().astype(int), 0, len(_SPARK) - 1)
        return "".join(_SPARK[i] for i in levels)


class WardView:
    """Stats for every device seen, and a rich table of them."""

    def __init__(self, labels: Mapping[str, str] | None = None, *, stale_after_s: float = 3.0) -> None:
        self.streams: dict[str, StreamStats] = {}
        self.labels = dict(labels or {})
        self.stale_after_s = stale_after_s

    def stats(self, device_id: str) -> StreamStats:
        if device_id not in self.streams:
            self.streams[device_id] = StreamStats(device_id)
        return self.streams[device_id]

    def table(self, title: str = "ecgstream demo ward", now: float | None = None) -> Table:
        now = time.monotonic() if now is None else now
        table = Table(title=title, expand=False, box=box.SIMPLE_HEAD, padding=(0, 1))
        widths = {"device": 10, "patient": 16, "lead 1, last 3 s": 16}
        for column in ("device", "patient", "Hz", "frames", "lost", "dup", "rej", "batt", "off", "lead 1, last 3 s"):
            table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=widths.get(column),
                             min_width=None if column in widths else max(3, len(column)))
        for device_id in sorted(self.streams):
            s = self.streams[device_id]
            stale = not s.connected or (s.last_seen and now - s.last_seen > self.stale_after_s)
            table.add_row(
                Text(device_id, style="red" if stale else "green"),
                self.labels.get(device_id, ""),
                str(s.fs_hz or ""),
                str(s.frames),
                Text(str(s.lost_frames), style="yellow" if s.lost_frames else ""),
                str(s.duplicates_or_late),
                Text(str(s.rejected), style="red" if s.rejected else ""),
                "?" if s.battery_pct is None else f"{s.battery_pct}%",
                Text(",".join(s.lead_off), style="bold red") if s.lead_off else "",
                Text("link down" if stale else s.sparkline(), style="red" if stale else "cyan"),
            )
        return table

    def totals(self) -> dict[str, int]:
        keys = ("frames", "samples", "lost_frames", "duplicates_or_late", "rejected")
        return {k: sum(getattr(s, k) for s in self.streams.values()) for k in keys}
