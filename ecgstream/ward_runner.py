"""Run a scenario or a recording end to end and report what arrived (``ecgstream sim``), and how the
demo reports what the edge gateway made of a scenario (``ecgstream demo``, :mod:`ecgstream.demo_system`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import click

from ecgstream.streaming import EdgeRun, Medium, TransportFactory, stream
from ecgstream.ward_view import AlertLogEntry, WardView
from firmware_sim.device import VirtualDevice
from firmware_sim.faults import FaultConfig
from firmware_sim.fleet import FleetStats
from firmware_sim.profiles import get_profile
from firmware_sim.replay import ReplaySource
from firmware_sim.scenario import PatientScript, Scenario
from firmware_sim.ward import WardBed, build_ward, ground_truth


def run_scenario(scenario: Scenario, medium: Medium, *, pace: float, seconds: float | None = None,
                 truth: Path | None = None, live: bool | None = None) -> tuple[FleetStats, WardView]:
    """Stream every patient of ``scenario``; write ground truth to ``truth`` if given."""
    beds: list[WardBed] = []
    labels = {p.device_id: f"{p.patient_id} " + "→".join(c.rhythm for c in p.rhythm) for p in scenario.patients}
    view = WardView(labels)

    def build(transport: TransportFactory) -> list[VirtualDevice]:
        beds.extend(build_ward(scenario, transport, duration_s=seconds))
        return [bed.device for bed in beds]

    duration = scenario.duration_s if seconds is None else min(seconds, scenario.duration_s)
    stats = asyncio.run(stream(build, medium, pace=pace, duration_s=duration, view=view, live=live,
                               title=f"{scenario.name} over {medium.transport}"))
    if truth is not None:
        truth.parent.mkdir(parents=True, exist_ok=True)
        truth.write_text(json.dumps(ground_truth(scenario, beds), indent=1) + "\n", encoding="utf-8")
        click.echo(f"ground truth written to {truth}")
    report_stream(stats, view)
    return stats, view


def replay_record(record: Path, medium: Medium, *, profile: str, device_id: str, pace: float,
                  seconds: float | None, loop: bool, live: bool | None) -> tuple[FleetStats, WardView]:
    """Stream one recording (which has the profile's leads) as one wearable."""
    device_profile = get_profile(profile)
    source = ReplaySource(record, leads=device_profile.leads, fs=device_profile.fs_hz, loop=loop)
    if source.filled_samples:
        click.echo(f"{source.filled_samples} invalid (NaN) sample values were filled by interpolation", err=True)
    return replay_source(source, medium, profile=profile, device_id=device_id, pace=pace, seconds=seconds,
                         live=live)


def replay_source(source: ReplaySource, medium: Medium, *, profile: str, device_id: str, pace: float,
                  seconds: float | None, live: bool | None, faults: FaultConfig | None = None
                  ) -> tuple[FleetStats, WardView]:
    """Stream ``source`` as one wearable over ``medium`` with progress on stderr, then report."""
    device_profile = get_profile(profile)
    view = WardView({device_id: f"replay of {source.recording.name}"})

    def build(transport: TransportFactory) -> list[VirtualDevice]:
        return [VirtualDevice(device_id, device_profile, source, transport(device_id, device_profile),
                              faults=faults)]

    total = seconds if seconds is not None else (math.inf if source.loop else source.duration_s)
    show_table = sys.stdout.isatty() if live is None else live

    async def run() -> FleetStats:
        async with replay_progress(lambda: source.position_s, total, f"replay of {source.recording.name}",
                                   bar=sys.stderr.isatty() and not show_table):
            return await stream(build, medium, pace=pace, duration_s=seconds, view=view, live=live,
                                title=f"replay over {medium.transport}")

    stats = asyncio.run(run())
    report_stream(stats, view)
    return stats, view


@contextlib.asynccontextmanager
async def replay_progress(position_s: Callable[[], float], total_s: float, label: str, *, bar: bool,
                          every_s: float = 5.0) -> AsyncIterator[None]:
    """Stream time sent and wall time elapsed on stderr: a rich bar (``bar``), else a line every ``every_s``."""
    started = time.monotonic()

    def line() -> str:
        done, elapsed = position_s(), time.monotonic() - started
        of = f" of {total_s:.1f} s ({100 * min(done / total_s, 1):.0f} %)" if math.isfinite(total_s) else " (looping)"
        return f"{label}: {done:.1f} s{of} of stream time sent, {elapsed:.1f} s elapsed"

    async def tick(update: Callable[[], None], period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            update()

    if bar:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(),
                            TextColumn("{task.completed:.1f}/{task.total:.1f} s of stream"), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=False)
        task_id = progress.add_task(label, total=total_s if math.isfinite(total_s) else None)
        with progress:
            task = asyncio.create_task(tick(lambda: progress.update(task_id, completed=position_s()), 0.25))
            try:
                yield
            finally:
                task.cancel()
                progress.update(task_id, completed=position_s())
    else:
        task = asyncio.create_task(tick(lambda: click.echo(line(), err=True), every_s))
        try:
            yield
        finally:
            task.cancel()
            click.echo(line(), err=True)


def report_stream(stats: FleetStats, view: WardView) -> None:
    got = view.totals()
    click.echo(
        f"sent {stats.frames_sent} frames from {stats.devices or len(view.streams)} device(s) "
        f"({stats.frames_lost} lost to injected faults, {stats.frames_failed} refused by the link); "
        f"received {got['frames']} frames, {got['lost_frames']} missing by sequence number, "
        f"{got['duplicates_or_late']} duplicate/late, {got['rejected']} rejected"
    )


# -- the demo: the scenario through the edge gateway ---------------------------------------------------

EXPECTED_ALERTS: dict[str, tuple[str, ...]] = {
    "vt": ("vt",), "vf": ("vf", "vt"), "afib": ("af",),
    "aflutter": ("aflutter", "af", "svt", "extreme_tachycardia"), "svt": ("svt", "extreme_tachycardia"), "asystole": ("asystole", "pause"), "pause": ("pause", "asystole"),
    "stemi_anterior": ("st_change",), "stemi_inferior": ("st_change",), "stemi_lateral": ("st_change",),
    "st_depression": ("st_change",),
}
"""Scripted rhythm → the alert families that should answer it (others are not alarm conditions)."""

EVENT_ALERTS: dict[str, tuple[str, ...]] = {
    "lead_off": ("lead_off",), "disconnect": ("device_disconnected", "data_gap"),
}
"""Scripted device event → the technical alert families that should answer it."""

LATE_S = 20.0
"""An alert counts as the answer to a scripted event if it comes at most this long after the event ends."""


def scripted_now(script: PatientScript, t_s: float) -> str:
    """What the scenario plays on this patient at stream time ``t_s``: rhythm, then any device event or noise."""
    rhythm = next((c.rhythm for c in reversed(script.rhythm) if c.at_s <= t_s), script.rhythm[0].rhythm)
    extra = [e.kind.replace("_", "-") + (f" {e.electrode}" if e.electrode else "")
             for e in script.events if e.at_s <= t_s < e.until_s]
    extra += [f"{n.kind} noise" for n in script.noise if n.at_s <= t_s < n.until_s and n.until_s - n.at_s < 60]
    return " + ".join([rhythm, *extra])


def edge_report(scenario: Scenario, alerts: list[AlertLogEntry], duration_s: float, run: EdgeRun) -> str:
    """Alerts raised per patient against what was scripted, then where everything went."""
    lines = [f"alerts against the script ({duration_s:g} s of {scenario.name}; alert times in stream seconds):"]
    for script in scenario.patients:
        raised = [a for a in alerts if a.device_id == script.device_id and a.event in ("raised", "escalated")]
        used: set[int] = set()
        scripted: list[tuple[float, float, str, tuple[str, ...]]] = []
        changes = list(script.rhythm)
        for i, c in enumerate(changes):
            if c.at_s > 0 and c.rhythm in EXPECTED_ALERTS:
                until = changes[i + 1].at_s if i + 1 < len(changes) else scenario.duration_s
                scripted.append((c.at_s, until, c.rhythm.upper() if len(c.rhythm) <= 4 else c.rhythm,
                                 EXPECTED_ALERTS[c.rhythm]))
        for e in script.events:
            if e.kind in EVENT_ALERTS:
                label = e.kind.replace("_", "-") + (f" {e.electrode}" if e.electrode else "")
                scripted.append((e.at_s, e.until_s, label, EVENT_ALERTS[e.kind]))
        if scripted or raised:
            lines.append(f"  {script.patient_id} ({script.device_id}, {' → '.join(c.rhythm for c in changes)}):")
        for at, until, label, families in sorted(scripted):
            if at >= duration_s:
                lines.append(f"    {script.patient_id} {label} scripted at {at:g} s → not reached (run ended at {duration_s:g} s)")
                continue
            hit = next((i for i, a in enumerate(raised) if i not in used and a.alert_type in families
                        and at - 1.0 <= a.at_s <= until + LATE_S), None)
            if hit is None:
                hit = next((i for i, a in enumerate(raised) if i not in used
                            and _family(a) in families and at - 1.0 <= a.at_s <= until + LATE_S), None)
            if hit is None:
                lines.append(f"    {script.patient_id} {label} scripted at {at:g} s → no alert (missed)")
                continue
            a = raised[hit]
            used.update(i for i, b in enumerate(raised) if b.episode_id == a.episode_id)  # its escalations
            name = a.alert_type.upper() if len(a.alert_type) <= 4 else a.alert_type
            lines.append(f"    {script.patient_id} {label} scripted at {at:g} s → {name} alert ({a.priority}) "
                         f"after {a.at_s - at:.1f} s")
        others = [a for i, a in enumerate(raised) if i not in used]
        clinical = [a for a in others if a.category == "clinical"]
        technical = [a for a in others if a.category != "clinical"]
        if clinical:
            lines.append(f"    {script.patient_id} unscripted clinical alerts: "
                         + ", ".join(f"{a.alert_type} ({a.priority}) at {a.at_s:.1f} s" for a in clinical))
        if technical:
            lines.append(f"    {script.patient_id} other technical alerts: "
                         + ", ".join(f"{a.alert_type} ({a.priority}) at {a.at_s:.1f} s" for a in technical))
        if not scripted and not raised:
            lines.append(f"  {script.patient_id} ({script.device_id}, {' → '.join(c.rhythm for c in changes)}): "
                         "nothing scripted, no clinical alert")
        elif not any(a.category == "clinical" for a in raised):
            lines.append(f"    {script.patient_id}: no clinical alert")
    agent, s = run.agent, run.stats
    dropped = sum(agent.counters.windows_dropped.values())
    lines += [
        f"devices sent {s.frames_sent} frames ({s.frames_lost} lost to injected faults); the edge agent took "
        f"{agent.counters.payloads} payloads ({sum(agent.counters.rejected.values())} rejected), "
        f"{agent.counters.windows_done} windows through "
        f"{'the reconstruction VAE' if agent.pipeline is not None else 'the rules only (no model)'}"
        + (f" ({dropped} dropped)" if dropped else "") + f", {agent.counters.alerts} alert messages",
        f"uplink to {run.broker}: {run.uplinked.get('alert', 0)} alerts and {run.uplinked.get('window', 0)} windows "
        f"delivered, {run.outbox_depth} left in the outbox",
        f"outbox: {run.settings.outbox_path}; status: {run.settings.status_path}; edge log: {run.settings.log_path}",
    ]
    return "\n".join(lines)


def _family(a: AlertLogEntry) -> str:
    return {"pause": "asystole"}.get(a.alert_type, a.alert_type)
