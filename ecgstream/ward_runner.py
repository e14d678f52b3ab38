"""Run a scenario or a recording end to end and report what arrived (CLI and demo)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from ecgstream.streaming import Medium, TransportFactory, stream
from ecgstream.ward_view import WardView
from firmware_sim.device import VirtualDevice
from firmware_sim.fleet import FleetStats
from firmware_sim.profiles import get_profile
from firmware_sim.replay import ReplaySource
from firmware_sim.scenario import Scenario
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
    _report(stats, view)
    return stats, view


def replay_record(record: Path, medium: Medium, *, profile: str, device_id: str, pace: float,
                  seconds: float | None, loop: bool, live: bool | None) -> tuple[FleetStats, WardView]:
    """Stream one recording as one wearable."""
    device_profile = get_profile(profile)
    source = ReplaySource(record, leads=device_profile.leads, fs=device_profile.fs_hz, loop=loop)
    if source.filled_samples:
        click.echo(f"{source.filled_samples} invalid (NaN) sample values were filled by interpolation", err=True)
    view = WardView({device_id: f"replay of {source.recording.name}"})

    def build(transport: TransportFactory) -> list[VirtualDevice]:
        return [VirtualDevice(device_id, device_profile, source, transport(device_id, device_profile))]

    stats = asyncio.run(stream(build, medium, pace=pace, duration_s=seconds, view=view, live=live,
                               title=f"replay over {medium.transport}"))
    _report(stats, view)
    return stats, view


def _report(stats: FleetStats, view: WardView) -> None:
    got = view.totals()
    click.echo(
        f"sent {stats.frames_sent} frames from {stats.devices or len(view.streams)} device(s) "
        f"({stats.frames_lost} lost to injected faults, {stats.frames_failed} refused by the link); "
        f"received {got['frames']} frames, {got['lost_frames']} missing by sequence number, "
        f"{got['duplicates_or_late']} duplicate/late, {got['rejected']} rejected"
    )
