"""``ecgstream sim …``: virtual wearables (synthesis, replay, scenarios)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ecgstream.commands.options import broker_address, broker_options, pace_option, transport_options
from protocol.leads import STANDARD_LEADS

if TYPE_CHECKING:
    pass


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
    """Write a synthetic 12-lead WFDB record (I … V6, mV), its ground truth (OUT.json) and annotations (OUT.atr).

    OUT.atr has a beat annotation per synthesised beat (N, V, A … as the simulator made it) and a
    rhythm change ('+' with "(N", "(AFIB", "(VT" …) at each rhythm episode start, so any WFDB tool
    shows the labels.
    """
    from firmware_sim.export import write_wfdb_with_truth
    from firmware_sim.records import rhythm_aux, write_annotations
    from firmware_sim.synthesis import NoiseSpec, synthesize

    levels = {f"{k}_mv": getattr(NoiseSpec.from_snr(k, snr_db), f"{k}_mv") for k in noise_kinds}
    noise = NoiseSpec(**levels) if levels else None
    result = synthesize(rhythm, seconds=seconds, fs=fs, seed=seed, noise=noise, heart_rate=heart_rate)
    truth = {"rhythm": rhythm, "seed": seed, **result.to_dict()}
    header, truth_path = write_wfdb_with_truth(
        out, result.signals, fs, STANDARD_LEADS, truth,
        comments=[f"ecgstream synthetic: rhythm={rhythm} seed={seed}", "Not a real patient."],
    )
    changes = [(round(e.onset_s * fs), rhythm_aux(e.label)) for e in result.events if e.kind == "rhythm"]
    beats = list(zip((int(b) for b in result.beats), result.beat_labels, strict=True))
    annotations = write_annotations(header.with_suffix(""), fs, beats, changes)
    click.echo(f"wrote {header} ({seconds:g} s, {len(STANDARD_LEADS)} leads, {fs:g} Hz), {truth_path} "
               f"and {annotations}")


@sim.command()
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of real 12-lead WFDB records with SNOMED '# Dx:' codes (e.g. ../shared/tune/cinc2021).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--synthetic", "n_synthetic", type=click.IntRange(min=1), default=30, show_default=True,
              help="Synthetic patients per rhythm group.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the report as JSON.")
def realism(data: Path, seed: int, n_synthetic: int, json_out: Path | None) -> None:
    """Compare synthetic patients with real records, per rhythm (rate, RR, P/f-waves, QRS, QT, ST,
    amplitudes) and overall (inter-lead correlation and amplitudes)."""
    from evaluation.realism import compare_rhythms
    from firmware_sim.synthesis.realism import realism_report

    per_rhythm = compare_rhythms(data, n_synthetic=n_synthetic, seed=seed)
    overall = realism_report(data, seed=seed)
    click.echo(per_rhythm.format())
    click.echo("")
    click.echo(overall.format())
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        doc = {**per_rhythm.to_dict(), "overall": overall.to_dict()}
        json_out.write_text(json.dumps(doc, indent=2) + "\n")


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


def parse_lead_map(value: str | None) -> dict[str, str] | None:
    """``II=MLII,V5=V5`` (lead=channel, or a bare name for the same on both sides) to a dict."""
    if value is None:
        return None
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        lead, _, channel = item.partition("=")
        if not lead.strip() or (_ and not channel.strip()):
            raise click.BadParameter(f"{item!r} is not LEAD=CHANNEL", param_hint="--leads")
        mapping[lead.strip()] = channel.strip() or lead.strip()
    if not mapping:
        raise click.BadParameter("names no lead", param_hint="--leads")
    return mapping


def leads_option(func: Callable[..., object]) -> Callable[..., object]:
    """--leads LEAD=CHANNEL,…"""
    return click.option(
        "--leads", "lead_map", metavar="LEAD=CHANNEL,…",
        help="Stream the record's CHANNEL (a name, or #1, #2 … in header order) as the device's LEAD "
             "(II=MLII,V5=V5); the device's other leads are sent as lead-off.")(func)


def fs_option(func: Callable[..., object]) -> Callable[..., object]:
    """--fs for CSV records that state no rate."""
    return click.option("--fs", "record_fs", type=click.FloatRange(min=0, min_open=True), metavar="HZ",
                        help="Sampling rate of a CSV record that states none (WFDB and EDF: checked).")(func)


@sim.command()
@click.argument("record", type=click.Path(path_type=Path))
@transport_options
@broker_options
@click.option("--profile", default="ecgstream-250", show_default=True,
              help="Device profile: ecgstream-250, ecgstream-500 or polar-h10.")
@click.option("--device-id", default="replay-01", show_default=True)
@leads_option
@fs_option
@pace_option
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Stop after this much signal.")
@click.option("--loop/--no-loop", default=False, help="Start again at the end of the record.")
@click.option("--live/--no-live", default=None, help="Live table (default: when stdout is a terminal).")
def replay(record: Path, transport: str, hci: str, broker: str, username: str | None, password: str | None,
           tls: bool, cafile: str | None, profile: str, device_id: str, lead_map: str | None,
           record_fs: float | None, pace: float, seconds: float | None, loop: bool, live: bool | None) -> None:
    """Stream a recorded ECG (WFDB, EDF or CSV) as one virtual wearable.

    The record is resampled to the profile's rate and must have its leads
    (II, V1, V5 for the ecgstream wearable; I for the Polar H10), or name with
    --leads which of its channels stream as which lead (1- and 2-lead records
    such as MIT-BIH: --leads II=MLII,V5=V5). Progress goes to stderr.
    """
    from ecgstream.streaming import Medium
    from ecgstream.ward_runner import replay_source
    from firmware_sim.faults import FaultConfig
    from firmware_sim.profiles import get_profile
    from firmware_sim.records import MissingLeadError, ReplayError, read_record
    from firmware_sim.replay import ReplaySource, absent_lead_off

    if seconds is None and loop:
        raise click.BadParameter("--loop needs --seconds (or it never ends)", param_hint="--loop")
    channels = parse_lead_map(lead_map)
    medium = Medium(transport, broker_address(broker, username, password, tls, cafile), hci)
    device_profile = get_profile(profile)
    recording = read_record(record, fs=record_fs)
    try:
        source = ReplaySource(recording, leads=device_profile.leads, fs=device_profile.fs_hz, loop=loop,
                              channels=channels)
    except MissingLeadError as exc:
        if channels is not None:
            raise
        has = ",".join(f"{c}={c}" for c in exc.available if c in device_profile.leads)
        if not has and exc.available:
            first = exc.available[0]
            has = f"{device_profile.leads[0]}={first if exc.available.count(first) == 1 else '#1'}"
        raise ReplayError(f"{exc}: map its channels ({', '.join(exc.available)}) to the {device_profile.name} "
                          f"leads with --leads, e.g. --leads {has}") from None
    if source.filled_samples:
        click.echo(f"{source.filled_samples} invalid (NaN) sample values were filled by interpolation", err=True)
    faults = None
    if source.absent_leads:
        lead_off = absent_lead_off(source)
        flagged = f"flagged lead-off (electrodes {', '.join(lead_off.electrodes)})" if lead_off else "not flagged"
        click.echo(f"record {recording.name!r} has no channel for {', '.join(source.absent_leads)}: sent as flat, "
                   f"{flagged}", err=True)
        faults = FaultConfig(lead_off=(lead_off,)) if lead_off else None
    replay_source(source, medium, profile=profile, device_id=device_id, pace=pace, seconds=seconds, live=live,
                  faults=faults)


