"""``ecgstream demo``: the whole system on one machine, no set-up."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ecgstream.commands.options import broker_address, broker_options, pace_option, transport_options


@click.command()
@click.argument("scenario_file", metavar="[SCENARIO.toml]", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@transport_options
@broker_options
@pace_option
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Stop early.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out/demo"),
              show_default=True,
              help="The demo's files: the cloud database (kept between runs), login.txt, logs, the edge's outbox.")
@click.option("--fresh", is_flag=True, help="Start with an empty cloud database (forget earlier runs).")
@click.option("--port", "http_port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="The dashboard's HTTP port on 127.0.0.1 (0: a free one).")
@click.option("--summary-json", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the end-to-end accounting, measured on the dashboard's live feed, here.")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path), default=Path("out/demo-truth.json"),
              show_default=True, help="Where the run's ground truth goes.")
@click.option("--live/--no-live", default=None, help="Live table (default: when stdout is a terminal).")
@click.option("--stay/--no-stay", default=None,
              help="Keep the dashboard up after the scenario until Ctrl-C (default: when stdin is a terminal).")
def demo(scenario_file: Path | None, transport: str, hci: str, broker: str, username: str | None,
         password: str | None, tls: bool, cafile: str | None, pace: float, seconds: float | None, out_dir: Path,
         fresh: bool, http_port: int, summary_json: Path | None, truth: Path, live: bool | None,
         stay: bool | None) -> None:
    """Run the whole system on a scenario (default: the built-in ward, eight patients, two minutes).

    Virtual wearables → edge gateway (the one ``ecgstream edge run`` runs: stream state, QRS, windows
    through the reconstruction VAE and classifier, alarm rules, SQLite outbox) → MQTT broker → cloud
    (ingest, store, alert service, escalation, model worker) → dashboard. It prints the dashboard's
    address and a login it created (an admin, password kept in OUT/login.txt). The cloud's database
    lives under --out and is kept between runs (--fresh starts empty); unknown devices register
    themselves as patients (auto-register is on in the demo).

    By default the broker is the embedded one (amqtt, MQTT 3.1.1, on a free port). It has no MQTT 5
    shared subscriptions, so the cloud's ingest is then a single worker with a plain subscription;
    with --broker HOST:PORT (Mosquitto, EMQX, …) it joins the shared subscription as in production.
    Ctrl-C stops everything cleanly.
    """
    from ecgstream.demo_system import DemoOptions, run_demo
    from ecgstream.streaming import Medium
    from firmware_sim.scenario import demo_ward, load_scenario

    scenario = load_scenario(scenario_file) if scenario_file is not None else demo_ward()
    medium = Medium(transport, broker_address(broker, username, password, tls, cafile), hci)
    options = DemoOptions(out_dir=out_dir, pace=pace, seconds=seconds, fresh=fresh, http_port=http_port,
                          summary_json=summary_json, truth=truth, live=live,
                          serve_after=sys.stdin.isatty() if stay is None else stay)
    run_demo(scenario, medium, options)
