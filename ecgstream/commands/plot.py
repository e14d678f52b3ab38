"""``ecgstream plot …``: draw a record, a synthetic strip or a stored alert's window on ECG paper."""

from __future__ import annotations

from pathlib import Path

import click

MAX_SECONDS = 120.0
"""Longest strip drawn at once (3 m of paper at 25 mm/s)."""


def _leads(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("names no lead", param_hint="--leads")
    return names


@click.command()
@click.argument("record", required=False, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG or PDF to write (default: RECORD's name, the rhythm or the id, .png in the current folder).")
@click.option("--start", "start_s", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="First second drawn.")
@click.option("--seconds", type=click.FloatRange(min=0, max=MAX_SECONDS, min_open=True), default=None,
              help="Length drawn [default: 10 s of a record or synthetic strip, a whole window].")
@click.option("--leads", "leads", metavar="LEAD,…", help="Leads to draw, in order (default: every channel in mV).")
@click.option("--fs", "fs", type=click.FloatRange(min=0, min_open=True), metavar="HZ",
              help="Rate of a CSV record that states none; with --rhythm, the synthesis rate [default: 500].")
@click.option("--rhythm", help="Draw a synthesised strip of this rhythm instead (see `ecgstream sim rhythms`).")
@click.option("--seed", type=int, default=0, show_default=True, help="Synthetic patient (with --rhythm).")
@click.option("--alert", "alert_id", metavar="ID", help="Draw the window of this stored alert (needs --db).")
@click.option("--window", "window_id", metavar="ID", help="Draw this stored window (needs --db).")
@click.option("--db", "db_url", metavar="URL", envvar="ECGSTREAM_CLOUD__DATABASE__URL",
              help="Cloud database URL (sqlite:///… or postgresql://…; env ECGSTREAM_CLOUD__DATABASE__URL).")
def plot(record: Path | None, out: Path | None, start_s: float, seconds: float | None, leads: str | None,
         fs: float | None, rhythm: str | None, seed: int, alert_id: str | None, window_id: str | None,
         db_url: str | None) -> None:
    """Draw ECG on paper (25 mm/s, 10 mm/mV) as PNG or PDF: a record, a synthetic strip or a stored window.

    RECORD is a WFDB record (its .atr/.qrs beat and rhythm annotations are drawn), an EDF or a
    CSV file. Or --rhythm afib --seed 1 for the simulator's strip with its true beat labels, or
    --alert ID / --window ID with --db for the window a stored alert rests on (reconstructed
    leads are marked).
    """
    from ecgstream.plotting import plot_strip, strip_from_record, strip_from_store, strip_from_synthesis

    chosen = [name for name, given in (("RECORD", record), ("--rhythm", rhythm), ("--alert", alert_id),
                                       ("--window", window_id)) if given is not None]
    if len(chosen) != 1:
        raise click.UsageError("give one of RECORD, --rhythm, --alert or --window"
                               + (f" (got {', '.join(chosen)})" if chosen else ""))
    names = _leads(leads)
    if record is not None:
        strip = strip_from_record(record, start_s=start_s, seconds=seconds or 10.0, leads=names, fs=fs)
        default = Path(f"{record.name.removesuffix(record.suffix) if record.suffix else record.name}.png")
    elif rhythm is not None:
        strip = strip_from_synthesis(rhythm, seed=seed, seconds=seconds or 10.0, start_s=start_s,
                                     fs=fs or 500.0, leads=names)
        default = Path(f"{rhythm}-seed{seed}.png")
    else:
        if db_url is None:
            raise click.UsageError("--alert and --window need --db URL (the cloud database)")
        strip = strip_from_store(db_url, alert_id=alert_id, window_id=window_id, start_s=start_s,
                                 seconds=seconds, leads=names)
        default = Path(f"{'alert' if alert_id else 'window'}-{alert_id or window_id}.png")
    written = plot_strip(strip, out or default)
    marked = f", {len(strip.reconstructed)} reconstructed" if strip.reconstructed else ""
    notes = f", {len(strip.beats)} beat labels" if strip.beats else ""
    click.echo(f"wrote {written} ({strip.duration_s:g} s, {len(strip.lead_names)} leads{marked}{notes})")
