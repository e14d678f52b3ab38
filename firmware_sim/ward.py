"""Run a scenario: one virtual wearable per patient, all in one fleet, with ground truth.

The scenario says what happens to each patient (rhythm timeline, noise,
device events, link faults); this module turns that into synthesised sources,
fault configurations and :class:`~firmware_sim.device.VirtualDevice` objects on
whatever transport the caller builds, runs them as one
:class:`~firmware_sim.fleet.Fleet`, and exports the ground truth of the run:
rhythm episodes and beats as synthesised, noise and device events as
scripted, and every fault actually injected (frame by frame).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from firmware_sim.device import VirtualDevice
from firmware_sim.faults import FaultConfig, GilbertElliott, Interval, LeadOff
from firmware_sim.fleet import Fleet, FleetStats
from firmware_sim.profiles import DeviceProfile, get_profile
from firmware_sim.scenario import PatientScript, Scenario, ScenarioError
from firmware_sim.synthesis import (
    NoiseEpisode,
    NoiseSpec,
    RhythmSegment,
    StreamSynthesizer,
    SynthesisError,
    SynthesisSource,
    random_patient,
    synthesize,
)
from firmware_sim.transports.base import DeviceTransport

TransportFactory = Callable[[str, DeviceProfile], DeviceTransport]
"""Builds the transport of one device, given its id and profile."""

BURST_MEAN_FRAMES = 4.0
"""Mean length of a loss burst for the scenario key ``burst_loss``."""


@dataclass
class WardBed:
    """One patient of a running scenario."""

    script: PatientScript
    profile: DeviceProfile
    source: SynthesisSource
    device: VirtualDevice


def fault_config(script: PatientScript, profile: DeviceProfile) -> FaultConfig:
    """The link and device faults a patient's script asks for."""
    f = script.faults
    burst = None
    if f.get("burst_loss"):
        burst = GilbertElliott(p_enter_bad=f["burst_loss"], p_leave_bad=1 / BURST_MEAN_FRAMES)
    drain = script.battery.drain_pct_per_hour
    speedup = 1.0 if drain is None else drain / (profile.battery.drain_pct_per_s * 3600)
    return FaultConfig(
        seed=script.seed,
        loss_p=f.get("loss", 0.0),
        burst=burst,
        jitter_mean_s=f.get("jitter_ms", 0.0) / 1000,
        reorder_p=f.get("reorder", 0.0),
        duplicate_p=f.get("duplicate", 0.0),
        clock_drift_ppm=f.get("drift_ppm", 0.0),
        disconnects=tuple(Interval(e.at_s, e.until_s) for e in script.events if e.kind == "disconnect"),
        lead_off=tuple(
            LeadOff(e.at_s, e.until_s, (e.electrode,)) for e in script.events if e.kind == "lead_off" and e.electrode
        ),
        battery_drain_speedup=speedup,
        battery_start_pct=script.battery.start_pct,
    )


def _noise_spec(kind: str, level_mv: float) -> NoiseSpec:
    level: dict[str, Any] = {f"{kind}_mv": level_mv}
    return NoiseSpec(**level)


def _check_rhythms(script: PatientScript, where: str) -> None:
    for change in script.rhythm:
        try:
            synthesize(change.rhythm, seconds=0.05, fs=250, params=dict(change.params))
        except SynthesisError as exc:
            raise ScenarioError(f"{where}: patient {script.patient_id!r} at {change.at_s:g} s: {exc}") from None


def build_ward(scenario: Scenario, transport: TransportFactory, *, duration_s: float | None = None) -> list[WardBed]:
    """A synthesised source, fault configuration and device for every patient."""
    duration = scenario.duration_s if duration_s is None else min(duration_s, scenario.duration_s)
    beds = []
    for script in scenario.patients:
        _check_rhythms(script, scenario.source)
        try:
            profile = get_profile(script.profile)
        except ValueError as exc:
            raise ScenarioError(f"{scenario.source}: patient {script.patient_id!r}: {exc}") from None
        patient = random_patient(script.seed)
        if script.heart_rate is not None:
            patient = replace(patient, heart_rate_bpm=script.heart_rate)
        stream = StreamSynthesizer(
            [RhythmSegment(c.at_s, c.rhythm, dict(c.params)) for c in script.rhythm if c.at_s < duration],
            seconds=duration, fs=profile.fs_hz, seed=script.seed, patient=patient,
            noise_episodes=[
                NoiseEpisode(n.at_s, min(n.until_s, duration), _noise_spec(n.kind, n.level_mv))
                for n in script.noise if n.at_s < duration
            ],
        )
        source = SynthesisSource(stream, profile.leads)
        device = VirtualDevice(
            script.device_id, profile, source, transport(script.device_id, profile), faults=fault_config(script, profile)
        )
        beds.append(WardBed(script, profile, source, device))
    return beds


def ground_truth(scenario: Scenario, beds: Sequence[WardBed]) -> dict[str, Any]:
    """JSON-ready ground truth of a run (times in stream seconds from each device's first sample)."""
    patients = {}
    for bed in beds:
        fs = bed.profile.fs_hz
        patients[bed.script.patient_id] = {
            "device_id": bed.script.device_id,
            "profile": bed.profile.name,
            "fs": fs,
            "events": [e.to_dict() for e in bed.source.events]
            + [
                {"onset_s": e.at_s, "offset_s": e.until_s, "kind": e.kind, "label": e.electrode or e.kind}
                for e in bed.script.events
            ],
            "beats": [
                {"t_s": round(int(s) / fs, 4), "label": lab}
                for s, lab in zip(bed.source.beats, bed.source.beat_labels, strict=True)
            ],
            "faults": [asdict(e) for e in bed.device.events],
            "fault_counts": asdict(bed.device.faults.stats),
            "device": asdict(bed.device.stats),
        }
    return {"scenario": scenario.name, "source": scenario.source, "duration_s": scenario.duration_s, "patients": patients}


async def run_ward(
    beds: Sequence[WardBed], *, pace: float = 1.0, duration_s: float | None = None, tick_s: float = 0.01
) -> FleetStats:
    """Stream every bed until the scenario ends (or ``duration_s``), at ``pace`` × real time."""
    if not (pace > 0 and (math.isfinite(pace) or pace == math.inf)):
        raise ValueError(f"pace must be > 0 (inf: as fast as possible), got {pace}")
    fleet = Fleet([bed.device for bed in beds], tick_s=tick_s)
    return await fleet.run(duration_s, pace)
