"""``ecgstream eval …``: score the edge's signal processing on annotated real records."""

from __future__ import annotations

import json
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
    from edge.evaluation.qrs import evaluate

    report = evaluate(data, packet=packet, skip_s=skip_s)
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
