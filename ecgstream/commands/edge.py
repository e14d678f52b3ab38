"""``ecgstream edge …``: the edge gateway agent."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ecgstream.commands.edge_record import record

if TYPE_CHECKING:
    from edge.observability.status import StatusSnapshot


@click.group()
def edge() -> None:
    """Run and inspect the edge gateway agent (one TOML config: docs/edge.example.toml)."""


edge.add_command(record)


@edge.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Gateway config (TOML; docs/edge.example.toml). Default: the defaults plus ECGSTREAM_EDGE__* "
                   "overrides (embedded broker, shipped models).")
def run(config_path: Path | None) -> None:
    """Run the edge agent until Ctrl-C: MQTT ingest, alarms, inference, outbox and uplink."""
    import asyncio

    from ecgstream.edge_gateway import serve
    from edge.config import load_config

    config = load_config(config_path)
    asyncio.run(serve(config))


@edge.command("status")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The agent's config: its metrics port (when set) or status file is read. Default: the defaults "
                   "plus ECGSTREAM_EDGE__* overrides.")
@click.option("--file", "status_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read this status file instead.")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
def status(config_path: Path | None, status_file: Path | None, as_json: bool) -> None:
    """Show a running agent's streams, outbox and alerts."""
    from edge.observability.status import read_status

    if config_path is not None and status_file is not None:
        raise click.UsageError("give --config or --file, not both")
    snapshot = read_status(status_file) if status_file is not None else _from_config(config_path)
    if as_json:
        click.echo(json.dumps(snapshot.to_dict(), indent=2))
        return
    _print_table(snapshot)


def _from_config(config_path: Path | None) -> StatusSnapshot:
    """The snapshot from the configured exporter when it answers, else from the configured status file."""
    from edge.config import load_config
    from edge.observability.status import fetch_status, read_status

    obs = load_config(config_path).observability
    if obs.metrics_port:
        host = "127.0.0.1" if obs.metrics_host in ("0.0.0.0", "::", "") else obs.metrics_host
        try:
            return fetch_status(host, obs.metrics_port)
        except OSError:
            pass  # not answering: the status file says whether an agent ran, and when
    return read_status(obs.status_file)


def _print_table(snapshot: StatusSnapshot) -> None:
    """A header line (gateway, uptime, outbox, alerts) and one row per stream."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = 120
    now = time.time()
    connected = sum(s.connected for s in snapshot.streams)
    outbox = ", ".join(f"{k} {v}" for k, v in sorted(snapshot.outbox_depth.items())) or "empty"
    console.print(f"gateway [bold]{snapshot.gateway_id}[/] {snapshot.version} · up {_duration(snapshot.uptime_s)} · "
                  f"{connected}/{len(snapshot.streams)} streams connected · outbox: {outbox} · "
                  f"alerts active: {snapshot.alerts_active} · updated {snapshot.age_s(now):.0f} s ago", soft_wrap=True)
    if snapshot.stale(now):
        console.print("[yellow]the status is stale: the agent may have stopped[/]")
    table = Table(box=None, header_style="bold")
    for column in ("device", "patient", "via", "link", "last frame", "HR", "SQI", "lead off", "battery"):
        table.add_column(column, justify="right" if column in ("last frame", "HR", "SQI", "battery") else "left")
    for s in snapshot.streams:
        table.add_row(
            s.device_id, s.patient_id, s.transport, "up" if s.connected else "[red]down[/]",
            _fmt(s.last_frame_age_s, "{:.1f} s"), _fmt(s.heart_rate_bpm, "{:.0f}"), _fmt(s.sqi, "{:.2f}"),
            ", ".join(s.leads_off) or "-", _fmt(s.battery_pct, "{:.0f} %"),
        )
    console.print(table)


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
