"""Live terminal views of a ward, for ``ecgstream sim`` and the demo.

:class:`WardView` is the simple receiver's (``ecgstream sim run/replay``): it receives what the wearables send
(MQTT samples payloads or BLE frames), decodes them with :mod:`protocol`, and
shows per device what arrives: frames, lost frames (sequence gaps), duplicates
and late frames, rejected payloads, battery, lead-off and a sparkline of the
first lead. Nothing is dropped silently: every gap and rejection is counted.

:class:`EdgeWardView` is the demo's: it shows what the edge agent made of each
patient's stream (heart rate, signal quality, gaps, active alerts by priority)
beside what the scenario scripted, and a log of the latest alerts.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from protocol.ble_frame import EcgFrame
from protocol.messages import Alert, DeviceStatus
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


# -- the demo's view of the edge gateway ---------------------------------------------------------------

_PRIORITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan"}
_PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}


@dataclass(frozen=True)
class AlertLogEntry:
    """One alert message as the demo logs it (stream time from the alert's ``details['at_s']``)."""

    at_s: float
    patient_id: str
    device_id: str
    event: str
    alert_type: str
    priority: str
    category: str
    message: str
    onset_s: float | None = None
    episode_id: str = ""


class EdgeWardView:
    """What the edge agent knows about each patient, as a live table, plus a log of its alerts.

    The demo attaches the running :class:`~edge.agent.EdgeAgent` (:meth:`attach`) and puts an
    :class:`AlertTap` in front of the agent's sink, so every alert it raises or clears is logged here.
    ``scripted(device_id, t_s)`` names what the scenario plays on that device at stream time ``t_s``
    (the ground truth shown beside what the agent measures).
    """

    def __init__(self, patients: Mapping[str, str], scripted: Callable[[str, float], str] | None = None,
                 *, log_lines: int = 8) -> None:
        self.patients = dict(patients)
        self.scripted = scripted
        self.log: deque[AlertLogEntry] = deque(maxlen=log_lines)
        self.alerts: list[AlertLogEntry] = []
        self.windows = 0
        self.agent: Any = None
        self.clock: Callable[[], float] | None = None
        self.uplinked: dict[str, int] = {"alert": 0, "window": 0}

    def attach(self, agent: Any, clock: Callable[[], float]) -> None:
        self.agent, self.clock = agent, clock

    def record(self, alert: Alert) -> None:
        d = alert.details
        entry = AlertLogEntry(float(d.get("at_s", 0.0)), alert.patient_id, alert.device_id, str(d.get("event", "")),
                              alert.alert_type, str(alert.priority), str(alert.category), alert.message,
                              None if d.get("onset_s") is None else float(d["onset_s"]),
                              str(d.get("episode_id", alert.alert_id)))
        self.alerts.append(entry)
        self.log.append(entry)

    def stream_s(self) -> float:
        """How far the agent has got in stream time (the furthest device)."""
        if self.agent is None or not self.agent.sessions:
            return 0.0
        return max(s.stream_now_s for s in self.agent.sessions.values())

    def _active(self, session: Any) -> tuple[Text, Text]:
        clinical, technical = Text(), Text()
        for a in sorted(session.engine.active.values(), key=lambda a: (_PRIORITY_RANK.get(str(a.priority), 3), a.alert_type)):
            target = clinical if str(a.category) == "clinical" else technical
            if target:
                target.append(" ")
            target.append(a.alert_type, style=_PRIORITY_STYLE.get(str(a.priority), ""))
        return clinical, technical

    def table(self, title: str = "ecgstream demo ward → edge gateway") -> RenderableType:
        table = Table(title=title, expand=False, box=box.SIMPLE_HEAD, padding=(0, 1))
        for column, justify in (("bed", "left"), ("device", "left"), ("scripted", "left"), ("HR", "right"),
                                ("SQI", "right"), ("frames", "right"), ("gaps", "right"), ("lost", "right"),
                                ("batt", "right"), ("off", "left"), ("clinical alerts", "left"),
                                ("technical alerts", "left")):
            table.add_column(column, no_wrap=True, justify=justify)  # type: ignore[arg-type]
        agent = self.agent
        if agent is not None:
            now = self.clock() if self.clock is not None else None
            snapshot = {s.device_id: s for s in agent.status(now).streams}
            stream_s = self.stream_s()
            for device_id in sorted(agent.sessions, key=lambda d: (self.patients.get(d, d), d)):
                session, st = agent.sessions[device_id], snapshot.get(device_id)
                c = session.stream.counters
                fs = session.stream.fs or 0.0
                hr = None if st is None else st.heart_rate_bpm
                sqi = None if st is None else st.sqi
                connected = st is not None and st.connected
                clinical, technical = self._active(session)
                table.add_row(
                    session.patient_id,
                    Text(device_id, style="green" if connected else "red"),
                    self.scripted(device_id, stream_s) if self.scripted is not None else "",
                    "–" if hr is None else f"{hr:.0f}",
                    Text("–" if sqi is None else f"{sqi:.2f}",
                         style="" if sqi is None else "green" if sqi >= 0.8 else "yellow" if sqi >= 0.5 else "red"),
                    str(c.frames),
                    Text(str(c.gaps), style="yellow" if c.gaps else ""),
                    Text(f"{c.samples_lost / fs:.1f} s" if fs else "0", style="yellow" if c.samples_lost else ""),
                    "?" if session.battery_pct is None else f"{session.battery_pct:.0f}%",
                    Text(",".join(session.leads_off), style="bold red") if session.leads_off else "",
                    clinical,
                    technical,
                )
        log = Table(box=None, show_header=False, padding=(0, 1), title="last alerts", title_justify="left")
        for _ in range(4):
            log.add_column(no_wrap=True)
        for e in self.log:
            style = _PRIORITY_STYLE.get(e.priority, "") if e.event != "cleared" else "dim"
            log.add_row(f"{e.at_s:6.1f} s", e.patient_id, Text(f"{e.event:9} {e.alert_type}", style=style),
                        Text(f"{e.priority}, {e.category}: {e.message}", style="dim" if e.event == "cleared" else ""))
        if not self.log:
            log.add_row("", "", Text("none yet", style="dim"), "")
        return Group(table, log)

    def summary_line(self) -> str:
        """One line for logs and pipes (no terminal)."""
        agent = self.agent
        if agent is None:
            return "edge gateway starting"
        frames = sum(s.stream.counters.frames for s in agent.sessions.values())
        gaps = sum(s.stream.counters.gaps for s in agent.sessions.values())
        active = [f"{s.patient_id}:{a.alert_type}" for s in agent.sessions.values() for a in s.engine.active.values()]
        return (f"t={self.stream_s():.0f} s: {len(agent.sessions)} streams, {frames} frames, {gaps} gaps; "
                f"{len(self.alerts)} alert messages, active: {', '.join(sorted(active)) or 'none'}; "
                f"{agent.counters.windows_done} windows; uplinked {self.uplinked['alert']} alerts, "
                f"{self.uplinked['window']} windows")


class AlertTap:
    """A sink in front of the agent's own: logs every alert in an :class:`EdgeWardView`, passes everything on."""

    def __init__(self, sink: Any, view: EdgeWardView) -> None:
        self.sink, self.view = sink, view
        self.outbox = getattr(sink, "outbox", None)  # the agent's status reads the outbox depth from its sink

    def put_alert(self, alert: Alert) -> None:
        self.sink.put_alert(alert)
        self.view.record(alert)

    def put_window(self, window: Any) -> None:
        self.sink.put_window(window)
        self.view.windows += 1

    def flush(self) -> None:
        self.sink.flush()
