"""``ecgstream demo``: the whole system on one machine, no set-up."""

from __future__ import annotations

from pathlib import Path

import click

from ecgstream.commands.options import broker_address, broker_options, pace_option, transport_options


@click.command()
@transport_options
@broker_options
@pace_option
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Stop early.")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path), default=Path("out/demo-truth.json"),
              show_default=True, help="Where the run's ground truth goes.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out/demo"),
              show_default=True, help="The edge gateway's outbox, status file and log.")
@click.option("--live/--no-live", default=None, help="Live table (default: when stdout is a terminal).")
def demo(transport: str, hci: str, broker: str, username: str | None, password: str | None, tls: bool,
         cafile: str | None, pace: float, seconds: float | None, truth: Path, out_dir: Path, live: bool | None) -> None:
    """Stream the built-in demo ward (eight patients, two minutes) through the edge gateway and watch it live.

    By default the wearables publish over MQTT to an embedded broker started on a
    free port; the edge agent ingests from that broker, runs its whole pipeline
    (stream state, QRS detection, windows through the reconstruction VAE, alarm
    rules) and uplinks alerts and windows to the same broker through its SQLite
    outbox. The live table shows, per patient, the scripted rhythm beside the
    measured heart rate, signal quality, frames and gaps, battery, lead-off and
    the active alerts by priority; at the end, the alerts raised are compared
    with the scripted events. ``--transport loopback`` feeds the agent in-process.
    """
    from ecgstream.streaming import Medium
    from ecgstream.ward_runner import run_scenario_on_edge
    from firmware_sim.scenario import demo_ward

    medium = Medium(transport, broker_address(broker, username, password, tls, cafile), hci)
    run_scenario_on_edge(demo_ward(), medium, pace=pace, seconds=seconds, truth=truth, live=live, out_dir=out_dir)
