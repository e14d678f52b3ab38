"""``ecgstream eval …``: score the edge's signal processing on annotated real records.

The work is :mod:`evaluation`; progress (records done / total, elapsed, stream time) goes to stderr.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click


@click.group("eval")
def eval_group() -> None:
    """Evaluate the edge's signal processing on annotated real records."""


@eval_group.command("qrs")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder searched recursively for WFDB records with .atr and CPSC 2019 data/ + ref/ pairs.")
@click.option("--json", "json_out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report here (JSON).")
@click.option("--packet", default=36, show_default=True, type=click.IntRange(min=1),
              help="Samples per packet fed to the streaming detector.")
@click.option("--skip-s", default=0.0, show_default=True, type=click.FloatRange(min=0.0),
              help="Leave the first seconds of each record out of the score (EC57 allows 300).")
def qrs(data: Path, json_out: Path, packet: int, skip_s: float) -> None:
    """Score the streaming QRS detector beat by beat (EC57 matching, 150 ms window)."""
    from evaluation.progress import progress_for
    from evaluation.qrs import evaluate

    report = evaluate(data, packet=packet, skip_s=skip_s, progress=progress_for("eval qrs"))
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(f"{'record':<28} {'Se %':>7} {'+P %':>7} {'TP':>6} {'FP':>5} {'FN':>5}")
    per_record: dict[str, dict[str, float]] = report["per_record"]  # type: ignore[assignment]
    for name, s in per_record.items():
        click.echo(f"{name:<28} {100 * s['se']:7.2f} {100 * s['ppv']:7.2f} {s['tp']:6d} {s['fp']:5d} {s['fn']:5d}")
    gross = f"gross ({report['records']} records)"
    click.echo(f"{gross:<28} {100 * float(report['se']):7.2f} {100 * float(report['ppv']):7.2f} "  # type: ignore[arg-type]
               f"{report['tp']:6d} {report['fp']:5d} {report['fn']:5d}")
    click.echo(f"report: {json_out}")


@eval_group.command("alarms")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder searched recursively for CPSC 2021 records (AF class in .hea, rhythm .atr) and "
                   "PhysioNet/CinC 2015 alarm records (e.g. ../shared/data, or its cpsc2021/ or challenge2015/).")
@click.option("--json", "json_out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report here (JSON).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Edge configuration (TOML) whose alarm thresholds and stream settings to use; default: built-in.")
@click.option("--fs", "fs_hz", default="250", show_default=True,
              help="Stream rate in Hz the records are resampled to, or 'native' to keep each record's rate.")
@click.option("--tolerance-s", default=0.0, show_default=True, type=click.FloatRange(min=0.0),
              help="An AF alarm onset this far outside a reference AF episode still counts for it.")
def alarms(data: Path, json_out: Path, config_path: Path | None, fs_hz: str, tolerance_s: float) -> None:
    """Replay records through the whole edge path and score its alarms against the references."""
    from edge.agent import AgentConfig
    from evaluation.alarms import evaluate, format_table
    from evaluation.progress import progress_for
    from evaluation.replay import ReplayConfig

    if fs_hz.strip().lower() == "native":
        fs: int | None = None
    else:
        try:
            fs = int(fs_hz)
        except ValueError:
            raise click.BadParameter(f"{fs_hz!r} is neither a rate in Hz nor 'native'", param_hint="--fs") from None
        if fs <= 0:
            raise click.BadParameter("the rate must be positive", param_hint="--fs")
    agent_config = None
    if config_path is not None:
        from edge.config import load_config

        agent_config = AgentConfig.from_edge_config(load_config(config_path))
    # every alert is in the report: keep the agent's per-alert warnings off the table (-v shows them)
    agent_log = logging.getLogger("edge.agent")
    level = agent_log.level
    if agent_log.getEffectiveLevel() >= logging.WARNING:
        agent_log.setLevel(logging.ERROR)
    try:
        report = evaluate(data, ReplayConfig(fs_hz=fs, tolerance_s=tolerance_s), agent_config,
                          progress=progress_for("eval alarms"))
    finally:
        agent_log.setLevel(level)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2) + "\n")
    for line in format_table(report):
        click.echo(line)
    click.echo(f"report: {json_out}")
