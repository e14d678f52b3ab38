"""The edge agent: bytes from devices in; alerts and 12-lead windows out to the outbox.

:class:`EdgeAgent` is the gateway's core. Every medium calls :meth:`EdgeAgent.feed` with
``(device_id, data, kind, arrival_s)``:

========== ==================================================== ===========================
kind       payload                                              from
========== ==================================================== ===========================
``frame``  ecgstream BLE frame (:func:`protocol.decode_frame`)   BLE, loopback, file replay
``pmd``    Polar H10 PMD ECG notification                       BLE, loopback
``samples`` MQTT samples payload                                MQTT (:mod:`edge.ingest.mqtt`)
``status`` device status JSON (:class:`protocol.DeviceStatus`)  MQTT, loopback
========== ==================================================== ===========================

A payload that does not decode (any :class:`protocol.ProtocolError`) is counted for that device
and logged, never raised; any other exception while processing one device's data is caught,
logged with its traceback and counted (``internal_errors``), so one device's garbage or one bug
never stops the other patients. Each device gets a :class:`~edge.ingest.session.DeviceSession`
(stream state, QRS analysis of lead II, windows, alarm engine); the patient comes from the
configured map (``[ingest.patients]`` and the BLE device list), else the device id stands for the
patient. A new device gets its session with its first payload, and only within bounds: the
allow-list (when configured), ``max_sessions`` and a rate of new devices per transport; refusals are
counted by reason (``unknown_device``, ``too_many_devices``, ``new_device_rate``), so a flood of fake
device ids costs a counter, not a session each.

**Windows** go through an :class:`~edge.inference.pipeline.InferencePipeline` (3→12 lead VAE),
micro-batched across patients: in ``async`` mode through its :class:`MicroBatcher` (call
:meth:`start` in the event loop), in ``sync`` mode (replays, evaluation) in batches at each
:meth:`tick`. Without a pipeline (no model artifact) the agent runs rules only and uploads the
band-passed measured leads. Each result goes to the sink (uplink outbox) and, as
:class:`~edge.alarms.evidence.WindowEvidence`, to the patient's alarm engine, with the ST deviation of
each of its leads (:mod:`edge.signal.st`, measured at the R peaks the session found in the window;
reconstructed leads carry their uncertainty, which the ST rule takes into account).

**Links.** A transport that knows its link dropped (BLE) calls :meth:`link_down`: the stream shows
as disconnected at once, and the technical ``device_disconnected`` alarm follows after the usual
silence (``AlarmConfig.disconnect_s``).

**Alerts** go to the sink at once (:class:`OutboxSink` writes them durably before returning:
alerts are never dropped); windows are buffered and written in one transaction per tick.

**Tick** (:meth:`tick`, every 0.5 s live): releases frames held for reordering, lets each engine
see silence (disconnection), runs queued inference (sync mode), flushes windows to the outbox and
updates metrics. Time is explicit everywhere (``arrival_s``, ``now_s``: gateway seconds), so a
replay at any pace gives the alerts of the live run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from edge.alarms import AlarmConfig
from edge.alarms.evidence import with_evidence
from edge.ble.manager import device_id_of
from edge.config.schema import EdgeConfig
from edge.inference.batcher import Completed, WindowDropped
from edge.inference.pipeline import InferencePipeline, WindowResult
from edge.inference.windowing import Window, WindowConfig, prepare_batch
from edge.ingest.session import DeviceSession, SessionConfig, SessionOutput, finite_or_none
from edge.observability.logging import log_event
from edge.observability.status import StatusSnapshot, StreamStatus
from edge.stream.resampling import model_fs_from_metadata
from edge.stream.state import StreamConfig
from edge.uplink.outbox import Kind, Outbox, SessionStateRow
from protocol import ProtocolError, decode_frame, decode_pmd_ecg, decode_samples_payload
from protocol.errors import TopicError
from protocol.messages import Alert, AlertCategory, DeviceStatus, Priority, decode_message, encode_message
from protocol.topics import alert_topic, parse_topic, validate_id, window_topic
from protocol.window_payload import EcgWindow, encode_window

log = logging.getLogger(__name__)

SHED_KEPT = 64
"""Windows shed under overload that the agent keeps, newest, in case an alert then names them as evidence."""

INVALID_DEVICE = "?invalid"
"""Key under which payloads with an invalid device id are counted."""


class PayloadKind(StrEnum):
    """What :meth:`EdgeAgent.feed` is given (the loopback hub's kinds are the same strings)."""

    FRAME = "frame"
    PMD = "pmd"
    SAMPLES = "samples"
    STATUS = "status"


class Sink(Protocol):
    """Where the agent's output goes (the outbox, or memory in tests and evaluation)."""

    def put_alert(self, alert: Alert) -> None: ...

    def put_window(self, window: EcgWindow) -> None: ...

    def flush(self) -> None: ...


@dataclass
class MemorySink:
    """Keeps everything in lists (tests, evaluation)."""

    alerts: list[Alert] = field(default_factory=list)
    windows: list[EcgWindow] = field(default_factory=list)
    keep_windows: bool = True

    def put_alert(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def put_window(self, window: EcgWindow) -> None:
        if self.keep_windows:
            self.windows.append(window)

    def flush(self) -> None:
        pass


class OutboxSink:
    """Writes to an :class:`~edge.uplink.outbox.Outbox`: alerts at once (durable), windows per flush.

    ``on_stored`` (e.g. :meth:`edge.uplink.Uplink.notify`) is called after each write, so the uplink
    sends an alert at once instead of at its next look into the outbox.

    Windows are encoded (int16 deltas, zlib at ``compression_level``: 1 by default, which on the
    edge's windows costs a fifth of zlib's default level 6 in CPU for 5 % more bytes) by
    ``encode_workers`` threads while the agent goes on
    (zlib releases the GIL, so on a two-core gateway the compression of a tick's windows overlaps
    the ST measurement and alarm work of the main thread); :meth:`flush` waits for them and writes
    them in the order they were put, in one transaction, as before. ``encode_workers=0`` encodes
    in the caller's thread.
    """

    def __init__(self, outbox: Outbox, *, encode_workers: int = 2, compression_level: int = 1,
                 on_stored: Callable[[], None] | None = None) -> None:
        if not 0 <= compression_level <= 9:
            raise ValueError(f"compression_level must be 0..9, got {compression_level}")
        self.outbox = outbox
        self._encode = functools.partial(encode_window, level=compression_level)
        self.on_stored = on_stored
        self._windows: list[tuple[str, str, Future[bytes] | bytes]] = []
        self._workers = max(0, encode_workers)
        self._pool: ThreadPoolExecutor | None = None
        self.encode_errors = 0
        self.states: Callable[[], list[SessionStateRow]] | None = None
        """Session states to write with each alert and flush (restart safety: :mod:`edge.persistence`)."""

    def put_alert(self, alert: Alert) -> None:
        item = (Kind.ALERT, alert_topic(alert.patient_id), encode_message(alert))
        if self.states is None:
            self.outbox.put(*item)
        else:   # the windows handed over so far go with it: the saved grid counts them as uplinked
            self.outbox.put_many([item, *self._take_windows()], states=self.states())
        if self.on_stored is not None:
            self.on_stored()

    def put_window(self, window: EcgWindow) -> None:
        try:
            topic = window_topic(window.patient_id)
        except ProtocolError as exc:
            self._encode_error(window.window_id, exc)
            return
        if self._workers == 0:
            try:
                self._windows.append((window.window_id, topic, self._encode(window)))
            except ProtocolError as exc:
                self._encode_error(window.window_id, exc)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="window-encode")
        self._windows.append((window.window_id, topic, self._pool.submit(self._encode, window)))

    def flush(self) -> None:
        items = self._take_windows()
        states = self.states() if self.states is not None else []
        if items or states:
            self.outbox.put_many(items, states=states)
        if items and self.on_stored is not None:
            self.on_stored()

    def _take_windows(self) -> list[tuple[Kind, str, bytes]]:
        """The windows put so far, encoded, in order (the pending list emptied)."""
        pending, self._windows = self._windows, []
        items: list[tuple[Kind, str, bytes]] = []
        for window_id, topic, payload in pending:
            try:
                data = payload if isinstance(payload, bytes) else payload.result()
            except ProtocolError as exc:
                self._encode_error(window_id, exc)
                continue
            items.append((Kind.WINDOW, topic, data))
        return items

    def close(self) -> None:
        """Write what is pending and stop the encoding threads."""
        self.flush()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _encode_error(self, window_id: str, exc: ProtocolError) -> None:
        self.encode_errors += 1
        log.error("window_not_encodable window_id=%s: %s", window_id, exc)


@dataclass(frozen=True)
class AgentConfig:
    """What the agent needs from the gateway configuration."""

    gateway_id: str = "edge"
    session: SessionConfig = field(default_factory=SessionConfig)
    patients: Mapping[str, str] = field(default_factory=dict)
    """Device id → patient id (``[ingest.patients]`` and the BLE device list); other devices are their own patient."""
    allowed_devices: frozenset[str] | None = None
    """Only these devices get a session (None: any device, within the limits below)."""
    max_sessions: int = 1000
    """Most device sessions at once; a new device beyond it is refused (``too_many_devices``)."""
    new_devices_per_s: float = 10.0
    """New devices accepted per second per transport (burst ``max(1, 5 × rate)``); more: ``new_device_rate``."""
    stale_s: float = 5.0
    """A stream without frames for this long shows as disconnected in the status."""
    status_interval_s: float = 2.0
    max_batch: int = 64

    @classmethod
    def from_edge_config(cls, config: EdgeConfig) -> AgentConfig:
        """The agent's part of an :class:`~edge.config.schema.EdgeConfig` (thresholds applied)."""
        from edge.config import check_alarm_thresholds

        names = [f for f in AlarmConfig.__dataclass_fields__ if f not in ("analysis_lead", "latching")]
        overrides = check_alarm_thresholds(config, names)
        whole = {f.name for f in dataclasses.fields(AlarmConfig) if f.type in (int, "int")}
        alarms = AlarmConfig(**{k: (int(v) if k in whole else float(v))  # type: ignore[arg-type]
                                for k, v in overrides.items()})
        stream = StreamConfig(reorder_window=config.ingest.reorder_window,
                              interpolate_max_s=config.ingest.interpolation_limit_ms / 1000.0)
        p = config.processing
        window = WindowConfig(window_s=p.window_s, hop_s=p.hop_s)
        patients = {**config.ingest.patients,
                    **{device_id_of(d): d.patient for d in config.ingest.ble}}   # the ids BleIngest reports
        return cls(gateway_id=config.gateway_id, session=SessionConfig(stream=stream, window=window, alarms=alarms),
                   patients=patients, status_interval_s=config.observability.status_interval_s,
                   max_batch=p.max_batch, allowed_devices=config.ingest.allowed_device_ids(),
                   max_sessions=config.ingest.max_sessions, new_devices_per_s=config.ingest.new_devices_per_s)


@dataclass
class AgentCounters:
    """Agent-wide counts (per-device ones are in each session)."""

    payloads: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    """Payloads rejected, by reason (``decode``, ``invalid_device``, ``device_mismatch``, ``internal``, and for a
    device without a session: ``unknown_device`` (not on the allow-list), ``too_many_devices`` (at
    ``max_sessions``), ``new_device_rate`` (over ``new_devices_per_s``))."""
    windows_submitted: int = 0
    windows_done: int = 0
    windows_masked: int = 0
    """Of the windows done, those sent with a gap mask (frames lost that interpolation could not bridge)."""
    windows_dropped: dict[str, int] = field(default_factory=dict)
    """Windows that never got a result, by reason (``overload``, ``rejected``, ``failed``, ``closed``)."""
    alerts: int = 0

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def drop(self, reason: str, n: int = 1) -> None:
        self.windows_dropped[reason] = self.windows_dropped.get(reason, 0) + n


def _at_model_rate(config: AgentConfig, pipeline: InferencePipeline | None) -> AgentConfig:
    """``config`` with the stream layer's output rate and the window grid at the rate the model artifact
    states (``fs_hz`` in its metadata), when it states one; the configured rate otherwise."""
    fs = model_fs_from_metadata(pipeline.reconstruction.backend.metadata) if pipeline is not None else None
    session = config.session
    if fs is None or (fs == session.stream.model_fs and fs == session.window.fs):
        return config
    session = replace(session, stream=replace(session.stream, model_fs=fs), window=replace(session.window, fs=fs))
    return replace(config, session=session)


class EdgeAgent:
    """See the module docstring. One event loop (or one thread); not thread-safe."""

    def __init__(self, config: AgentConfig | None = None, sink: Sink | None = None, *,
                 pipeline: InferencePipeline | None = None, metrics: Any = None, mode: str = "sync",
                 clock: Callable[[], float] = time.time, version: str = "") -> None:
        if mode not in ("sync", "async"):
            raise ValueError(f"mode must be 'sync' or 'async', not {mode!r}")
        self.config = _at_model_rate(config or AgentConfig(), pipeline)
        self.sink: Sink = sink if sink is not None else MemorySink()
        self.pipeline = pipeline
        self.metrics = metrics
        self.mode = mode
        self.clock = clock
        self.version = version
        self.sessions: dict[str, DeviceSession] = {}
        self.counters = AgentCounters()
        self.started_at = clock()
        self._queued: list[Window] = []
        self._inflight: set[asyncio.Future[Any]] = set()
        self._seen: dict[str, dict[str, Any]] = {}
        self._rules_versions = {"reconstruction": "none (rules only)"}
        self._evidence: dict[str, None] = {}   # window ids alerts named, oldest first (protected when cut)
        self._window_of: dict[asyncio.Future[Any], Window] = {}   # async mode: the window of each in-flight future
        self._shed: dict[str, tuple[Window, str]] = {}   # the latest windows the batcher shed (an alert may name them)
        self._metric_children: dict[tuple[str, str], Any] = {}
        self._new_device_tokens: dict[str, tuple[float, float]] = {}   # transport → (tokens, gateway time)
        self._refused: dict[str, int] = {}
        self.uplink_refusals: dict[str, tuple[str, str, str, str]] = {}
        """Topics the cloud broker refuses now → (episode id, patient, device, reason) of their alarm."""
        self.ble: Any = None
        """The :class:`~edge.ble.BleIngest` feeding this agent, when its :class:`edge.gateway.Gateway` runs one."""
        self.restore_session: Callable[[DeviceSession], object] | None = None
        """Called with each new session before its first frame (:meth:`edge.persistence.SessionPersistence.restore`)."""

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the micro-batcher (async mode)."""
        if self.mode == "async" and self.pipeline is not None:
            await self.pipeline.start()

    async def close(self, *, flush_sessions: bool = False) -> None:
        """Stop inference (drained), deliver what it finished, flush the sink."""
        if flush_sessions:
            self.flush()
        if self.mode == "async" and self.pipeline is not None:
            for _ in range(2):        # let the callbacks of windows already shed run (evidence is submitted again)
                await asyncio.sleep(0)
            await self.pipeline.close(drain=True)
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
        self._run_queued()
        self.sink.flush()

    # -- input --------------------------------------------------------------------------------------

    def feed(self, device_id: str, data: bytes, kind: PayloadKind | str, arrival_s: float | None = None, *,
             transport: str = "loopback") -> None:
        """Take one payload of one device; never raises for bad input (see the module docstring)."""
        arrival = self.clock() if arrival_s is None else arrival_s
        self.counters.payloads += 1
        self._metric("frames_received", transport)
        session = self.sessions.get(device_id)         # a known device's id was validated when it first came
        if session is None:
            try:
                validate_id(device_id, "device id")
            except TopicError:
                self._reject(INVALID_DEVICE, "invalid_device", f"invalid device id {device_id!r}")
                return
            if (session := self._admit(device_id, transport, arrival)) is None:
                return
        try:
            k = PayloadKind(kind)
            if k is PayloadKind.STATUS:
                status = decode_message(data, DeviceStatus)
                if status.device_id != device_id:
                    self._reject(device_id, "device_mismatch", f"status of {status.device_id} on {device_id}'s link")
                    return
                self._handle(session, session.push_status(status))
                return
            frame = (decode_frame(data) if k is PayloadKind.FRAME else decode_pmd_ecg(data) if k is PayloadKind.PMD
                     else decode_samples_payload(data))
        except (ProtocolError, ValueError) as exc:
            session.decode_error()
            self._reject(device_id, "decode", str(exc))
            return
        self._metric("frames_decoded", transport)
        try:
            self._handle(session, session.push_frame(frame, arrival))
        except Exception:  # noqa: BLE001 - one device's failure must not stop the others
            session.counters.internal_errors += 1
            self.counters.reject("internal")
            log.exception("internal_error device_id=%s", device_id)

    def link_down(self, device_id: str, reason: str = "", at_s: float | None = None) -> None:
        """The device's link dropped (BLE disconnection): its stream shows as disconnected at once; the
        technical ``device_disconnected`` alarm follows if no data comes for ``AlarmConfig.disconnect_s``
        (a link that is back within that time, as BleIngest reconnects, raises nothing). The next payload
        marks the link up again."""
        session = self.sessions.get(device_id)
        if session is None:
            return
        session.link_up = False
        session.counters.link_drops += 1
        log_event(log, "link_down", level=logging.WARNING, device_id=device_id, patient_id=session.patient_id,
                  reason=reason, at_s=round(self.clock() if at_s is None else at_s, 3))

    def acknowledge(self, episode_id: str) -> bool:
        """Staff acknowledged alarm episode ``episode_id`` (the cloud's ack downlink,
        :mod:`edge.downlink`): its engine releases the latch, and a latched episode whose condition has
        ended clears now (its ``cleared`` message goes to the sink like any alert). Whether an episode
        of that id was shown here; an unknown or already cleared one changes nothing (acks may repeat)."""
        for s in list(self.sessions.values()):
            if not s.engine.has_episode(episode_id):
                continue
            for alert in s.engine.acknowledge(episode_id):
                self._alert(alert)
            log_event(log, "alarm_acknowledged", device_id=s.device_id, patient_id=s.patient_id,
                      episode_id=episode_id)
            return True
        return False

    def session(self, device_id: str, transport: str = "loopback") -> DeviceSession:
        """The device's session (created on first contact)."""
        s = self.sessions.get(device_id)
        if s is None:
            patient = self.config.patients.get(device_id, device_id)
            s = DeviceSession(device_id, patient, transport=transport, config=self.config.session)
            if self.restore_session is not None:   # a restarted gateway goes on with the device's saved state
                self.restore_session(s)
            self.sessions[device_id] = s
            log_event(log, "stream_opened", device_id=device_id, patient_id=patient, transport=transport)
        return s

    def _admit(self, device_id: str, transport: str, arrival_s: float) -> DeviceSession | None:
        """A session for a new device, or None (its payload refused and counted): the
        allow-list, ``max_sessions`` and the per-transport rate of new devices (a token bucket on the
        gateway clock) bound what unknown or fake device ids can cost."""
        c = self.config
        reason = None
        if c.allowed_devices is not None and device_id not in c.allowed_devices and device_id not in c.patients:
            reason = "unknown_device"
        elif len(self.sessions) >= c.max_sessions:
            reason = "too_many_devices"
        else:
            burst = max(1.0, 5.0 * c.new_devices_per_s)
            tokens, last = self._new_device_tokens.get(transport, (burst, arrival_s))
            tokens = min(burst, tokens + max(0.0, arrival_s - last) * c.new_devices_per_s)
            if tokens < 1.0:
                reason = "new_device_rate"
                self._new_device_tokens[transport] = (tokens, max(last, arrival_s))
            else:
                self._new_device_tokens[transport] = (tokens - 1.0, max(last, arrival_s))
        if reason is None:
            return self.session(device_id, transport)
        self.counters.reject(reason)
        if self.metrics is not None:
            self.metrics.frames_rejected.labels(reason).inc()
        refused = self._refused.get(reason, 0) + 1     # a flood of fake ids: log the 1st, 2nd, 4th, 8th … and every 1000th
        self._refused[reason] = refused
        if refused & (refused - 1) == 0 or refused % 1000 == 0:
            log_event(log, "device_refused", level=logging.WARNING, device_id=device_id, transport=transport,
                      reason=reason, refused=refused, sessions=len(self.sessions))
        return None

    def tick(self, now_s: float | None = None) -> None:
        """Periodic work at gateway time ``now_s`` (default: the clock)."""
        now = self.clock() if now_s is None else now_s
        for s in list(self.sessions.values()):
            try:
                self._handle(s, s.poll(now))
            except Exception:  # noqa: BLE001
                s.counters.internal_errors += 1
                log.exception("internal_error device_id=%s (tick)", s.device_id)
        self._run_queued()
        self.sink.flush()
        self._update_metrics(now)

    def flush(self) -> None:
        """End of every stream (replay end): release and analyse everything held."""
        for s in self.sessions.values():
            try:
                self._handle(s, s.flush())
            except Exception:  # noqa: BLE001 - one device's failure must not stop the others
                s.counters.internal_errors += 1
                log.exception("internal_error device_id=%s (flush)", s.device_id)
        self._run_queued()
        self.sink.flush()

    # -- output -------------------------------------------------------------------------------------

    def _handle(self, session: DeviceSession, out: SessionOutput) -> None:
        for alert in out.alerts:
            self._alert(alert, session)
        for w in out.windows:
            self._submit(session, w)

    def _alert(self, alert: Alert, session: DeviceSession | None = None) -> None:
        if session is not None:   # the windows covering its deciding samples, by id (edge.alarms.evidence)
            reconstructed = self.pipeline is not None and not session.counters.windows_unsupported
            versions = self.pipeline.model_versions if reconstructed and self.pipeline else self._rules_versions
            alert = with_evidence(alert, session.evidence_window_ids, model_versions=versions)
            self._evidence.update(dict.fromkeys(alert.details.get("evidence_window_ids", ())))
            while len(self._evidence) > 4096:    # ids of windows cut long ago (or never): forget the oldest
                del self._evidence[next(iter(self._evidence))]
            for wid in alert.details.get("evidence_window_ids", ()):
                if wid in self._shed:            # shed under overload before this alert named it: infer it after all
                    window, reason = self._shed.pop(wid)
                    self.counters.windows_dropped[reason] -= 1
                    self.counters.windows_submitted -= 1
                    self._submit(session, window)
        if "gateway_id" not in alert.details:   # the cloud sends staff acknowledgements back to this gateway
            alert = replace(alert, details={**alert.details, "gateway_id": self.config.gateway_id})
        self.sink.put_alert(alert)
        self.counters.alerts += 1
        event = alert.details.get("event", "")
        if self.metrics is not None and event != "cleared":
            self.metrics.alerts.labels(alert.alert_type, str(alert.priority), str(alert.category)).inc()
        log_event(log, "alert", level=logging.WARNING if event != "cleared" else logging.INFO,
                  alert_type=alert.alert_type, alert_event=event, priority=str(alert.priority),
                  patient_id=alert.patient_id, device_id=alert.device_id, alert_id=alert.alert_id,
                  onset_s=alert.details.get("onset_s"))

    def _submit(self, session: DeviceSession, window: Window) -> None:
        self.counters.windows_submitted += 1
        if self.pipeline is None or not self.pipeline.takes(window):   # no model, or other leads: as measured
            self._deliver_rules_only(session, window)
            return
        if self.mode == "sync":
            self._queued.append(window)
            if len(self._queued) >= self.config.max_batch:
                self._run_queued()
            return
        if window.window_id in self._evidence:     # named by an alert: the batcher must not shed it
            del self._evidence[window.window_id]
            window = replace(window, protected=True)
        try:
            fut = self.pipeline.submit(window)
        except (ValueError, RuntimeError) as exc:
            self.counters.drop("rejected")
            log.warning("window_rejected window_id=%s: %s", window.window_id, exc)
            return
        self._inflight.add(fut)
        self._window_of[fut] = window
        fut.add_done_callback(self._done)

    def _done(self, fut: asyncio.Future[Completed[WindowResult]]) -> None:
        self._inflight.discard(fut)
        window = self._window_of.pop(fut, None)
        if fut.cancelled():
            self.counters.drop("cancelled")
            return
        exc = fut.exception()
        if isinstance(exc, WindowDropped):
            session = None if window is None else self.sessions.get(window.device_id)
            if window is not None and session is not None and window.window_id in self._evidence:
                self.counters.windows_submitted -= 1     # shed before an alert named it: again, protected
                self._submit(session, window)
                return
            self.counters.drop(exc.reason)
            if window is not None and exc.reason.startswith("overload"):
                self._shed[window.window_id] = (window, exc.reason)
                while len(self._shed) > SHED_KEPT:
                    del self._shed[next(iter(self._shed))]
            return
        if exc is not None:
            self.counters.drop("failed")
            log.error("inference_failed: %s", exc)
            return
        done = fut.result()
        if self.metrics is not None:
            self.metrics.inference_latency.labels("reconstruction").observe(done.inference_s)
            self.metrics.batch_size.labels("reconstruction").observe(done.batch_size)
        self._deliver(done.value)

    def _run_queued(self) -> None:
        """Sync mode: run the queued windows in batches of ``max_batch``."""
        while self._queued and self.pipeline is not None:
            batch, self._queued = self._queued[: self.config.max_batch], self._queued[self.config.max_batch :]
            ok = []
            for w in batch:
                try:
                    self.pipeline.check(w)
                    ok.append(w)
                except ValueError as exc:
                    self.counters.drop("rejected")
                    log.warning("window_rejected window_id=%s: %s", w.window_id, exc)
            if not ok:
                continue
            t0 = time.perf_counter()
            try:
                results = self.pipeline.run_batch(ok)
            except Exception:  # noqa: BLE001 - one bad batch must not stop the agent
                self.counters.drop("failed", len(ok))
                log.exception("inference_failed batch=%d", len(ok))
                continue
            if self.metrics is not None:
                self.metrics.inference_latency.labels("reconstruction").observe(time.perf_counter() - t0)
                self.metrics.batch_size.labels("reconstruction").observe(len(ok))
            for r in results:
                self._deliver(r)

    def _deliver(self, result: WindowResult) -> None:
        self.counters.windows_done += 1
        self.counters.windows_masked += bool(result.window.gaps)
        self.sink.put_window(result.ecg_window)
        if self.metrics is not None:
            self.metrics.windows_processed.inc()
        session = self.sessions.get(result.window.device_id)
        if session is not None:
            second = result.second_stage or {}
            alerts = session.add_window(result.window, dict(result.model_versions), leads=result.leads12,
                                        lead_names=result.lead_names, uncertainty=result.uncertainty,
                                        reconstructed=result.reconstructed, probabilities=second.get("probabilities"),
                                        thresholds=second.get("thresholds"))
            for alert in alerts:
                self._alert(alert, session)

    def _deliver_rules_only(self, session: DeviceSession, window: Window) -> None:
        """No model (or leads it cannot take): upload the band-passed measured leads, gaps masked (0 counts);
        the window is still alarm evidence."""
        self.counters.windows_done += 1
        self.counters.windows_masked += bool(window.gaps)
        measured = prepare_batch([window])[0]
        counts = np.clip(np.rint(measured * 1000.0), -32768, 32767).astype(np.int16)
        for a, b in window.gaps:
            counts[:, a:b] = 0
        self.sink.put_window(EcgWindow(window.window_id, window.patient_id, window.device_id,
                                       int(round(window.t_gateway_s * 1e6)), int(round(window.fs)),
                                       window.leads, counts, gaps=window.gaps))
        if self.metrics is not None:
            self.metrics.windows_processed.inc()
        for alert in session.add_window(window, dict(self._rules_versions), leads=measured, lead_names=window.leads):
            self._alert(alert, session)

    # -- observation --------------------------------------------------------------------------------

    def _reject(self, device_id: str, reason: str, detail: str) -> None:
        self.counters.reject(reason)
        if self.metrics is not None:
            self.metrics.frames_rejected.labels(reason).inc()
        log_event(log, "payload_rejected", level=logging.WARNING, device_id=device_id, reason=reason, detail=detail)

    def _metric(self, name: str, transport: str) -> None:
        if self.metrics is not None:
            child = self._metric_children.get((name, transport))
            if child is None:         # labels() looks the child up under a lock: once per (metric, transport)
                child = self._metric_children[(name, transport)] = getattr(self.metrics, name).labels(transport)
            child.inc()

    def active_alerts(self) -> int:
        """Episodes shown now (live or latched), over every device."""
        return sum(len(s.engine.shown) for s in self.sessions.values())

    def connected(self, s: DeviceSession, now_s: float) -> bool:
        return (s.link_up and s.last_arrival_s is not None and now_s - s.last_arrival_s <= self.config.stale_s)

    def device_statuses(self, now_s: float | None = None) -> list[DeviceStatus]:
        """Each device's status as the cloud's ward shows it (battery, connection, leads off), for the
        uplink to publish on the device's status topic on its behalf. ``t_device_us`` is the device
        clock extrapolated to now, so every report is newer than the last (a disconnection too)."""
        now = self.clock() if now_s is None else now_s
        out = []
        for s in self.sessions.values():
            t_device = s.status_device_us(now)     # newer than the last report even after a device reboot
            if t_device is None:
                continue
            battery = None if s.battery_pct is None else int(round(min(100.0, max(0.0, s.battery_pct))))
            out.append(DeviceStatus(device_id=s.device_id, t_device_us=t_device, battery_pct=battery,
                                    connected=self.connected(s, now), lead_off=tuple(s.leads_off)))
        return out

    def status(self, now_s: float | None = None) -> StatusSnapshot:
        """The status snapshot (``ecgstream edge status``)."""
        now = self.clock() if now_s is None else now_s
        streams = tuple(
            StreamStatus(
                device_id=s.device_id, patient_id=s.patient_id, transport=s.transport, connected=self.connected(s, now),
                last_frame_age_s=None if s.last_arrival_s is None else round(max(0.0, now - s.last_arrival_s), 3),
                heart_rate_bpm=finite_or_none(s.heart_rate_bpm), sqi=finite_or_none(s.sqi),
                leads_off=tuple(s.leads_off), battery_pct=s.battery_pct,
            ) for s in self.sessions.values()
        )
        outbox = getattr(self.sink, "outbox", None)
        depth = {str(k): int(v) for k, v in outbox.depth().items()} if outbox is not None else {}
        return StatusSnapshot(gateway_id=self.config.gateway_id, started_at=self.started_at, written_at=now,
                              interval_s=self.config.status_interval_s, streams=streams, outbox_depth=depth,
                              alerts_active=self.active_alerts(), version=self.version)

    def _update_metrics(self, now: float) -> None:
        m = self.metrics
        if m is None:
            return
        by_transport: dict[str, int] = {}
        for s in self.sessions.values():
            by_transport[s.transport] = by_transport.get(s.transport, 0) + int(self.connected(s, now))
            c, sc = s.stream.counters, s.counters
            current = {"dup": c.duplicates, "late": c.late, "lost": c.samples_lost, "interp": c.samples_interpolated,
                       **{f"gap:{k}": v for k, v in sc.gaps.items()}}
            key = f"{s.device_id}:{id(s.stream)}"
            before = self._seen.get(key, {})
            delta = {k: v - before.get(k, 0) for k, v in current.items()}
            self._seen[key] = current
            if delta["dup"] > 0:
                m.duplicate_frames.inc(delta["dup"])
            if delta["late"] > 0:
                m.late_frames.inc(delta["late"])
            if delta["lost"] > 0:
                m.samples_lost.inc(delta["lost"])
            if delta["interp"] > 0:
                m.samples_interpolated.inc(delta["interp"])
            for k, v in delta.items():
                if k.startswith("gap:") and v > 0:
                    m.gaps.labels(k[4:]).inc(v)
        for transport, n in by_transport.items():
            m.streams_connected.labels(transport).set(n)
        outbox = getattr(self.sink, "outbox", None)
        if outbox is not None:
            for kind, n in outbox.depth().items():
                m.outbox_depth.labels(str(kind)).set(n)
        active: dict[str, int] = {"high": 0, "medium": 0, "low": 0}
        for s in self.sessions.values():
            for a in s.engine.shown:
                active[str(a.priority)] = active.get(str(a.priority), 0) + 1
        for p, n in active.items():
            m.alerts_active.labels(p).set(n)

    # -- uplink refusals ----------------------------------------------------------------------------

    def uplink_refused(self, topic: str, reason: str) -> None:
        """The uplink's hook (``on_refused``) when the cloud broker starts refusing a topic (an MQTT 5 PUBACK
        reason code such as ``not_authorized``): raises the technical alarm ``uplink_refused`` with the
        reason for the topic's patient. The refused data stays in the outbox and is retried."""
        try:
            patient = parse_topic(topic).ident
        except ProtocolError:
            patient = self.config.gateway_id
        device = next((s.device_id for s in self.sessions.values() if s.patient_id == patient), self.config.gateway_id)
        episode = str(uuid.uuid4())
        self.uplink_refusals[topic] = (episode, patient, device, reason)
        self._alert(Alert(
            alert_id=Alert.new_id(), patient_id=patient, device_id=device, alert_type="uplink_refused",
            category=AlertCategory.TECHNICAL, priority=Priority.MEDIUM, onset_gateway_us=int(self.clock() * 1e6),
            message=f"the cloud broker refused this patient's data ({reason}); it is kept in the outbox and retried",
            details={"event": "raised", "episode_id": episode, "reason": reason, "topic": topic,
                     "gateway_id": self.config.gateway_id}))

    def uplink_accepted(self, topic: str) -> None:
        """The uplink's hook (``on_accepted``) when a refused topic is accepted again: clears the alarm."""
        refusal = self.uplink_refusals.pop(topic, None)
        if refusal is None:
            return
        episode, patient, device, reason = refusal
        self._alert(Alert(
            alert_id=Alert.new_id(), patient_id=patient, device_id=device, alert_type="uplink_refused",
            category=AlertCategory.TECHNICAL, priority=Priority.MEDIUM, onset_gateway_us=int(self.clock() * 1e6),
            message="the cloud broker accepts this patient's data again",
            details={"event": "cleared", "episode_id": episode, "reason": reason, "topic": topic,
                     "gateway_id": self.config.gateway_id}))

    # -- replay helper ------------------------------------------------------------------------------

    def feed_many(self, messages: Iterable[tuple[str, bytes, str, float]], *, tick_s: float = 0.5,
                  transport: str = "replay") -> None:
        """Feed time-ordered ``(device_id, data, kind, arrival_s)`` and tick every ``tick_s`` of arrival time."""
        next_tick = -math.inf
        for device_id, data, kind, arrival in messages:
            if arrival >= next_tick:
                if math.isfinite(next_tick):
                    self.tick(arrival)
                next_tick = arrival + tick_s
            self.feed(device_id, data, kind, arrival, transport=transport)
