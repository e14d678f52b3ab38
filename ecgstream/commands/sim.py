"""``ecgstream sim …``: virtual wearables (synthesis, replay, scenarios)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ecgstream.commands.options import broker_address, broker_options, pace_option, transport_options
from protocol.leads import STANDARD_LEADS


@click.group()
def sim() -> None:
    """Virtual wearables: synthesise, replay and stream ECG with no hardware."""


@sim.command()
def rhythms() -> None:
    """List the rhythm names `synth` and scenarios accept."""
    from firmware_sim.synthesis import rhythm_names

    names = rhythm_names()
    width = max(map(len, names))
    for name, description in names.items():
        click.echo(f"{name:<{width}}  {description}")


@sim.command()
@click.option("--rhythm", required=True, help="Rhythm name (see `ecgstream sim rhythms`).")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True)
@click.option("--fs", type=click.FloatRange(min=50, max=10_000), default=500.0, show_default=True, help="Hz.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--heart-rate", type=click.FloatRange(15, 300), default=None, help="bpm (default: the patient's).")
@click.option("--noise", "noise_kinds", multiple=True, type=click.Choice(["baseline", "emg", "motion", "powerline"]),
              help="Add noise of this kind (repeatable).")
@click.option("--snr-db", type=float, default=20.0, show_default=True, help="SNR of each --noise kind.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Record path without extension.")
def synth(rhythm: str, seconds: float, fs: float, seed: int, heart_rate: float | None,
          noise_kinds: tuple[str, ...], snr_db: float, out: Path) -> None:
    """Write a synthetic 12-lead WFDB record (I … V6, mV) and its ground truth (OUT.json)."""
    from firmware_sim.export import write_wfdb_with_truth
    from firmware_sim.synthesis import NoiseSpec, synthesize

    levels = {f"{k}_mv": getattr(NoiseSpec.from_snr(k, snr_db), f"{k}_mv") for k in noise_kinds}
    noise = NoiseSpec(**levels) if levels else None
    result = synthesize(rhythm, seconds=seconds, fs=fs, seed=seed, noise=noise, heart_rate=heart_rate)
    truth = {"rhythm": rhythm, "seed": seed, **result.to_dict()}
    header, truth_path = write_wfdb_with_truth(
        out, result.signals, fs, STANDARD_LEADS, truth,
        comments=[f"ecgstream synthetic: rhythm={rhythm} seed={seed}", "Not a real patient."],
    )
    click.echo(f"wrote {header} ({seconds:g} s, {len(STANDARD_LEADS)} leads, {fs:g} Hz) and {truth_path}")


@sim.command()
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of real 12-lead WFDB records with SNOMED '# Dx:' codes (e.g. cinc2021).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the report as JSON.")
def realism(data: Path, seed: int, json_out: Path | None) -> None:
    """Compare synthetic patients with real records: inter-lead correlation and amplitudes."""
    from firmware_sim.synthesis.realism import realism_report

    report = realism_report(data, seed=seed)
    click.echo(report.format())
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")


@sim.command()
@click.argument("scenario", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@transport_options
@broker_options
@pace_option
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Stop early (default: scenario length).")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path), help="Write the run's ground truth (JSON).")
@click.option("--live/--no-live", default=None, help="Live table (default: when stdout is a terminal).")
def run(scenario: Path | None, transport: str, hci: str, broker: str, username: str | None,
        password: str | None, tls: bool, cafile: str | None, pace: float, seconds: float | None,
        truth: Path | None, live: bool | None) -> None:
    """Run a scenario file (default: the built-in demo ward) on virtual wearables."""
    from ecgstream.streaming import Medium
    from ecgstream.ward_runner import run_scenario
    from firmware_sim.scenario import demo_ward, load_scenario

    loaded = load_scenario(scenario) if scenario else demo_ward()
    medium = Medium(transport, broker_address(broker, username, password, tls, cafile), hci)
    run_scenario(loaded, medium, pace=pace, seconds=seconds, truth=truth, live=live)


@sim.command()
@click.argument("record", type=click.Path(path_type=Path))
@transport_options
@broker_options
@click.option("--profile", default="ecgstream-250", show_default=True,
              help="Device profile: ecgstream-250, ecgstream-500 or polar-h10.")
@click.option("--device-id", default="replay-01", show_default=True)
@pace_option
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Stop after this much signal.")
@click.option("--loop/--no-loop", default=False, help="Start again at the end of the record.")
@click.option("--live/--no-live", default=None, help="Live table (default: when stdout is a terminal).")
def replay(record: Path, transport: str, hci: str, broker: str, username: str | None, password: str | None,
           tls: bool, cafile: str | None, profile: str, device_id: str, pace: float, seconds: float | None,
           loop: bool, live: bool | None) -> None:
    """Stream a recorded ECG (WFDB, EDF or CSV) as one virtual wearable.

    The record is resampled to the profile's rate and must have its leads
    (II, V1, V5 for the ecgstream wearable; I for the Polar H10).
    """
    from ecgstream.streaming import Medium
    from ecgstream.ward_runner import replay_record

    if seconds is None and loop:
        raise click.BadParameter("--loop needs --seconds (or it never ends)", param_hint="--loop")
    medium = Medium(transport, broker_address(broker, username, password, tls, cafile), hci)
    replay_record(record, medium, profile=profile, device_id=device_id, pace=pace, seconds=seconds,
                  loop=loop, live=live)

