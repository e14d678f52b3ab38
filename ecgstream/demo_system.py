"""``ecgstream demo``: the whole system in one process — simulated ward → edge gateway → broker → cloud
(ingest, store, alert service, escalation, model worker, dashboard).

One asyncio loop runs:

* the **broker**: the embedded one (amqtt, MQTT 3.1.1, on a free port) unless ``--broker`` names one;
* the **cloud**: :func:`cloud.service.run_service` with :class:`cloud.config.CloudSettings` built here
  (:func:`demo_cloud_settings`): SQLite under ``--out`` (kept between runs; ``--fresh`` starts
  empty), the API and dashboard on ``--port`` (default: a free port), ``[registry] auto_register`` on
  (the ward's devices register themselves as patients), the default escalation and model worker. The
  embedded broker has no MQTT 5 shared subscriptions, so the cloud's ingest is then **one worker with a
  plain subscription** over MQTT 3.1.1 (``[broker] shared_subscription = false``); on an MQTT 5 broker
  (Mosquitto) it joins the shared subscription as in production;
* the **edge gateway** and the virtual wearables: :func:`ecgstream.streaming.stream_to_edge` (the
  :class:`edge.gateway.Gateway` that ``ecgstream edge run`` runs), uplinking through its outbox with the
  cloud's end-to-end receipts;
* a **staff client**: it signs in with the login this demo created (``--out/login.txt``) and reads the
  dashboard's live feed; the ``--summary-json`` accounting is measured there (:mod:`ecgstream.demo_summary`).

Ctrl-C (SIGINT) or SIGTERM stops everything: the edge run is cancelled (the gateway's bounded clean stop),
the feed client closes, the cloud stops (live-feed streams end, uvicorn, ingest, escalation and the
model worker are cancelled, the store is closed), the broker stops; the process exits 0. A second
signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ecgstream.demo_feed import FeedWatcher
from ecgstream.demo_login import DemoLogin, demo_login, ensure_user
from ecgstream.demo_summary import DemoSummary, WindowCounts, alert_key, summarize
from ecgstream.edge_gateway import StopSignals
from ecgstream.streaming import (
    EdgeRun,
    EdgeSettings,
    Medium,
    OpenBroker,
    TransportFactory,
    log_to_file,
    open_broker,
    stream_to_edge,
)
from ecgstream.ward_runner import edge_report, scripted_now
from ecgstream.ward_view import EdgeWardView
from firmware_sim.device import VirtualDevice
from firmware_sim.scenario import Scenario
from firmware_sim.ward import WardBed, build_ward, ground_truth

if TYPE_CHECKING:
    from cloud.config import CloudSettings
    from cloud.service import ServiceInfo
    from protocol.messages import Alert
    from protocol.window_payload import EcgWindow

CLOUD_DB = "cloud.sqlite"
STOP_GRACE_S = 20.0
"""Seconds from the first Ctrl-C to a forced exit when the clean stop has not finished."""
FEED_SETTLE_S = 15.0
"""At the end, how long the feed may take to show every alert the edge sent."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    """What ``ecgstream demo`` was asked for."""

    out_dir: Path
    pace: float
    seconds: float | None = None
    fresh: bool = False
    http_port: int = 0
    summary_json: Path | None = None
    truth: Path | None = None
    live: bool | None = None
    serve_after: bool = False
    """Keep the cloud and dashboard up after the scenario ends, until Ctrl-C."""

    @property
    def ident(self) -> str:
        """A short id of this demo folder: the gateway's and the cloud's broker identities carry it, so that
        demos in other folders on one shared broker do not take each other's sessions."""
        return hashlib.sha256(str(self.out_dir.resolve()).encode()).hexdigest()[:8]

    @property
    def db_path(self) -> Path:
        return self.out_dir / CLOUD_DB

    @property
    def edge_dir(self) -> Path:
        return self.out_dir / "edge"


def demo_cloud_settings(options: DemoOptions, broker: OpenBroker, medium: Medium) -> CloudSettings:
    """The demo cloud's settings (module docstring), built in code."""
    from cloud.config import BrokerConfig, CloudSettings, DatabaseConfig, HttpConfig, RegistryConfig

    b = medium.broker
    ident = options.ident
    return CloudSettings(
        database=DatabaseConfig(url=f"sqlite:///{options.db_path.resolve()}"),
        broker=BrokerConfig(host=broker.host, port=broker.port, username=b.username, password=b.password,
                            tls=b.tls, cafile=Path(b.cafile) if b.cafile and b.tls else None,
                            client_id=f"ecgstream-demo-cloud-{ident}", group=f"ecgstream-demo-{ident}",
                            shared_subscription=broker.mqtt5),
        http=HttpConfig(host="127.0.0.1", port=options.http_port),
        registry=RegistryConfig(auto_register=True),
        source="ecgstream demo",
    )


def forget_cloud(db_path: Path) -> None:
    """``--fresh``: the demo cloud's database removed (users, patients, alerts, windows)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)


def run_demo(scenario: Scenario, medium: Medium, options: DemoOptions) -> DemoSummary | None:
    """Run the whole system on ``scenario`` (module docstring); the summary (None when stopped early)."""
    return asyncio.run(_run(scenario, medium, options))


async def _run(scenario: Scenario, medium: Medium, options: DemoOptions) -> DemoSummary | None:
    stop = asyncio.Event()
    signals = StopSignals(asyncio.get_running_loop(), stop, grace_s=STOP_GRACE_S)
    signals.install()
    try:
        with _cloud_log(options.out_dir / "cloud.log"):
            async with contextlib.AsyncExitStack() as stack:
                return await _whole_system(scenario, medium, options, stop, stack)
    finally:
        signals.uninstall()


async def _whole_system(scenario: Scenario, medium: Medium, options: DemoOptions, stop: asyncio.Event,
                        stack: contextlib.AsyncExitStack) -> DemoSummary | None:
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    if options.fresh:
        forget_cloud(options.db_path)
    broker = await open_broker(medium.broker, stack)
    info = await _start_cloud(demo_cloud_settings(options, broker, medium), stack)
    assert info.http_url is not None
    login = demo_login(out)
    await ensure_user(info.app.state.ctx.accounts, login)
    _announce(info.http_url, login, out, broker)
    feed = FeedWatcher(info.http_url, login.username, login.password)
    stack.push_async_callback(feed.close)
    await feed.start()
    emitted: dict[str, float] = {}
    sent_windows: dict[str, bool] = {}      # window id → sent with a gap mask

    def on_alert(alert: Alert) -> None:
        emitted.setdefault(alert_key(alert.alert_id), time.monotonic())

    def on_window(window: EcgWindow) -> None:
        sent_windows[alert_key(window.window_id)] = bool(window.gaps)

    beds: list[WardBed] = []
    scripts = {p.device_id: p for p in scenario.patients}
    view = EdgeWardView({p.device_id: p.patient_id for p in scenario.patients},
                        lambda device_id, t_s: scripted_now(scripts[device_id], t_s) if device_id in scripts else "")

    def build(transport: TransportFactory) -> list[VirtualDevice]:
        beds.extend(build_ward(scenario, transport, duration_s=options.seconds))
        return [bed.device for bed in beds]

    duration = scenario.duration_s if options.seconds is None else min(options.seconds, scenario.duration_s)
    settings = EdgeSettings(out_dir=options.edge_dir, gateway_id=f"demo-edge-{options.ident}",
                            patients=dict(view.patients))
    edge = asyncio.create_task(stream_to_edge(
        build, medium, pace=options.pace, duration_s=duration, view=view, settings=settings, live=options.live,
        title=f"{scenario.name} over {medium.transport} → edge gateway → cloud", broker_at=broker, receipts=True,
        gateway_t0=time.time(), on_alert=on_alert, on_window=on_window,
        deliver_timeout_s=30.0), name="demo-edge")
    if not await _until_done_or_stopped(edge, stop):
        click.echo("stopped before the scenario ended; no summary", err=True)
        return None
    run = edge.result()
    click.echo(edge_report(scenario, view.alerts, duration, run))
    late = run.stats.max_lateness_s * options.pace if math.isfinite(options.pace) else 0.0
    if late > 5.0:
        click.echo(f"note: this machine could not keep up with --pace {options.pace:g} (frames up to {late:.0f} s of "
                   "stream time late); gateway-side timing (disconnection alarms, latencies) suffers: try a lower "
                   "pace or --pace 0", err=True)
    await _feed_settles(feed, emitted, stop)
    windows = await _window_counts(run, sent_windows, info, scenario)
    summary = summarize(scenario, duration, feed.alerts, emitted, windows)
    summary.extra.update({"outbox_left": run.outbox_depth, "feed_events": dict(feed.events),
                          **await _patients(feed, scenario),
                          "dashboard": info.http_url})
    _report(summary, options)
    if options.truth is not None:
        options.truth.parent.mkdir(parents=True, exist_ok=True)
        options.truth.write_text(json.dumps(ground_truth(scenario, beds), indent=1) + "\n", encoding="utf-8")
        click.echo(f"ground truth written to {options.truth}")
    if options.serve_after and not stop.is_set():
        click.echo(f"the dashboard stays up at {info.http_url} (Ctrl-C stops everything)")
        await stop.wait()
    return summary


async def _start_cloud(settings: CloudSettings, stack: contextlib.AsyncExitStack) -> ServiceInfo:
    """The cloud service as a task on this loop (stopped with ``stack``); its info once it serves."""
    from cloud.service import run_service

    ready: asyncio.Future[ServiceInfo] = asyncio.get_running_loop().create_future()
    cloud_stop = asyncio.Event()
    def on_ready(info: ServiceInfo) -> None:
        if not ready.done():
            ready.set_result(info)

    task = asyncio.create_task(run_service(settings, stop=cloud_stop, handle_signals=False, on_ready=on_ready),
                               name="demo-cloud")

    async def stop_cloud() -> None:
        cloud_stop.set()
        try:
            await asyncio.wait_for(task, 15.0)
        except TimeoutError:
            log.warning("the demo cloud took over 15 s to stop")
        except Exception as exc:  # noqa: BLE001 - reported, the rest still stops
            click.echo(f"the demo cloud stopped with an error: {exc}", err=True)

    stack.push_async_callback(stop_cloud)
    await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
    if not ready.done():
        ready.cancel()
        task.result()      # its start-up error
        raise RuntimeError("the demo cloud ended before it served")
    return ready.result()


async def _until_done_or_stopped(task: asyncio.Task[EdgeRun], stop: asyncio.Event) -> bool:
    """Wait for ``task``; on ``stop``, cancel it and wait for its clean stop. Whether it finished."""
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


async def _feed_settles(feed: FeedWatcher, emitted: dict[str, float], stop: asyncio.Event) -> None:
    """Wait until the feed has shown every alert the edge sent (at most :data:`FEED_SETTLE_S`)."""
    deadline = time.monotonic() + FEED_SETTLE_S
    while time.monotonic() < deadline and not stop.is_set():
        seen = {alert_key(str(a.alert.get("alert_id"))) for a in feed.alerts}
        if set(emitted) <= seen:
            return
        await asyncio.sleep(0.2)
    missing = len(set(emitted) - {alert_key(str(a.alert.get("alert_id"))) for a in feed.alerts})
    if missing:
        click.echo(f"note: {missing} alert(s) the edge sent did not reach the live feed", err=True)


async def _patients(feed: FeedWatcher, scenario: Scenario) -> dict[str, int]:
    """Patients the cloud knows: all of them, and the scenario's (as the dashboard lists them)."""
    known = {p["patient_id"] for p in (await feed.get("/api/patients"))["patients"]}
    return {"patients": len(known), "ward_patients": len(known & {p.patient_id for p in scenario.patients})}


async def _window_counts(run: EdgeRun, sent: dict[str, bool], info: ServiceInfo, scenario: Scenario) -> WindowCounts:
    """The edge's counts, and which of the windows it sent the cloud's store holds (by window id)."""
    held: set[str] = set()
    for p in scenario.patients:
        held.update(alert_key(w.window_id) for w in await info.store.windows_for_patient(p.patient_id))
    stored = [gaps for window_id, gaps in sent.items() if window_id in held]
    c = run.agent.counters
    return WindowCounts(done=c.windows_done, masked=c.windows_masked, dropped=dict(c.windows_dropped),
                        sent=len(sent), stored=stored.count(False), stored_gapped=stored.count(True))


def _announce(url: str, login: DemoLogin, out: Path, broker: OpenBroker) -> None:
    ingest = "an MQTT 5 shared subscription" if broker.mqtt5 else \
        "one worker with a plain MQTT 3.1.1 subscription (the embedded broker has no shared subscriptions)"
    click.echo(f"dashboard: {url}/  (user {login.username}, password {login.password}; kept in {out / 'login.txt'})")
    click.echo(f"broker {broker.host}:{broker.port}; cloud ingest: {ingest}; cloud database {out / CLOUD_DB}; "
               f"cloud log {out / 'cloud.log'}")


def _report(summary: DemoSummary, options: DemoOptions) -> None:
    data = summary.as_json()
    lat = data["latency_s"]
    p = (f"latency p50 {lat['p50']:.1f} s, p95 {lat['p95']:.1f} s" if lat["p50"] is not None
         else "no latency (no event answered)")
    click.echo(f"end to end, on the dashboard's live feed: {data['alerts_in_budget']} of {data['events']} scripted "
               f"events alarmed within budget ({p}), {data['false_alarms']} false alarm(s); windows: "
               f"{data['windows_produced']} produced = {data['windows_stored']} stored + {data['windows_gapped']} "
               f"stored with gaps + {data['windows_dropped']} dropped"
               + (f" ({', '.join(f'{k} {v}' for k, v in data['dropped_reasons'].items())})"
                  if data["dropped_reasons"] else ""))
    if options.summary_json is not None:
        options.summary_json.parent.mkdir(parents=True, exist_ok=True)
        options.summary_json.write_text(json.dumps(data, indent=1, default=_json_default) + "\n", encoding="utf-8")
        click.echo(f"summary written to {options.summary_json}")


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(type(value).__name__)


def _cloud_log(path: Path) -> contextlib.AbstractContextManager[None]:
    """The cloud's, uvicorn's and the broker's log lines go to a file, not over the live table."""
    return log_to_file(path, ("cloud", "uvicorn", "amqtt", "transitions", "httpx"), append=True)
