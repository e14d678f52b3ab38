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
@click.option("--live/--no-live", default=None, help="Live table (default: when stdout is a terminal).")
def demo(transport: str, hci: str, broker: str, username: str | None, password: str | None, tls: bool,
         cafile: str | None, pace: float, seconds: float | None, truth: Path, live: bool | None) -> None:
    """Stream the built-in demo ward (eight patients, two minutes) and watch it live.

    By default the wearables publish over MQTT to an embedded broker started on
    a free port, and a receiver decodes every stream into a live table: frames,
    losses, battery, lead-off and a trace of each patient's ECG. Later issues
    put the edge gateway and the cloud dashboard where that receiver is.
    """
    from ecgstream.streaming import Medium
    from ecgstream.ward_runner import run_scenario
    from firmware_sim.scenario import demo_ward

    medium = Medium(transport, broker_address(broker, username, password, tls, cafile), hci)
    run_scenario(demo_ward(), medium, pace=pace, seconds=seconds, truth=truth, live=live)
