"""Scripted scenarios: a timeline of rhythm, noise and device events per patient.

A scenario is a TOML file (see ``firmware_sim/scenarios/demo_ward.toml``)::

    name = "demo-ward"
    duration_s = 120
    seed = 7

    [[patient]]
    id = "bed-01"                  # patient id (topic-safe)
    device = "es-0001"             # device id (topic-safe), defaults to "dev-" + patient id
    profile = "ecgstream-250"      # device profile
    heart_rate = 72                # optional baseline rate, bpm
    rhythm = [                     # rhythm timeline; the first entry must start at 0
      { at = 0, name = "sinus" },
      { at = 40, name = "vt", heart_rate = 180 },
      { at = 55, name = "sinus" },
    ]
    noise = [ { at = 20, until = 30, kind = "motion", level_mv = 0.5 } ]
    events = [                     # device events
      { at = 70, until = 80, kind = "disconnect" },
      { at = 90, until = 100, kind = "lead_off", electrode = "V1" },
    ]
    [patient.faults]               # link faults for the whole run (probabilities per frame)
    loss = 0.01                    # random loss
    burst_loss = 0.002             # chance per frame of entering a loss burst (mean 4 frames)
    jitter_ms = 20                 # mean delivery jitter
    reorder = 0.01
    duplicate = 0.01
    drift_ppm = 50                 # device clock runs 50 ppm fast
    [patient.battery]
    start_pct = 35
    drain_pct_per_hour = 120       # default: the profile's battery model

Parsing checks every field and raises :class:`ScenarioError` naming the file,
the patient and the field. Rhythm names are checked against the synthesis
catalogue by the runner, which knows it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from protocol.errors import TopicError
from protocol.leads import ELECTRODES
from protocol.topics import validate_id

NOISE_KINDS = ("baseline", "emg", "motion", "powerline")
DEVICE_EVENT_KINDS = ("disconnect", "lead_off")
FAULT_KEYS = ("loss", "burst_loss", "jitter_ms", "reorder", "duplicate", "drift_ppm")


class ScenarioError(ValueError):
    """A scenario file is missing, unreadable or breaks the format."""


@dataclass(frozen=True)
class RhythmChange:
    at_s: float
    rhythm: str
    params: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class NoiseEpisode:
    at_s: float
    until_s: float
    kind: str
    level_mv: float


@dataclass(frozen=True)
class DeviceEvent:
    at_s: float
    until_s: float
    kind: str
    electrode: str | None = None


@dataclass(frozen=True)
class BatterySpec:
    start_pct: float | None = None
    drain_pct_per_hour: float | None = None


@dataclass(frozen=True)
class PatientScript:
    patient_id: str
    device_id: str
    profile: str
    rhythm: tuple[RhythmChange, ...]
    noise: tuple[NoiseEpisode, ...] = ()
    events: tuple[DeviceEvent, ...] = ()
    faults: Mapping[str, float] = field(default_factory=dict)
    heart_rate: float | None = None
    battery: BatterySpec = BatterySpec()
    seed: int = 0


@dataclass(frozen=True)
class Scenario:
    name: str
    duration_s: float
    seed: int
    patients: tuple[PatientScript, ...]
    source: str = "<memory>"


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror or exc}") from None
    return parse_scenario(text, source=str(path))


def demo_ward() -> Scenario:
    """The built-in demo ward shipped with the package."""
    text = resources.files("firmware_sim.scenarios").joinpath("demo_ward.toml").read_text(encoding="utf-8")
    return parse_scenario(text, source="built-in demo_ward.toml")


def parse_scenario(text: str, *, source: str = "<memory>") -> Scenario:
    """Validate scenario TOML text."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    ctx = _Ctx(source)
    _only(doc, {"name", "duration_s", "seed", "patient"}, ctx)
    name = _typed(doc, "name", str, ctx, default=Path(source).stem)
    duration = _number(doc, "duration_s", ctx, minimum=0.0, exclusive=True)
    seed = _typed(doc, "seed", int, ctx, default=0)
    raw_patients = _typed(doc, "patient", list, ctx)
    if not raw_patients:
        raise ScenarioError(f"{source}: a scenario needs at least one [[patient]]")
    patients = tuple(_patient(p, duration, seed * 1000 + i, ctx.at(f"patient[{i}]")) for i, p in enumerate(raw_patients))
    for key in ("patient_id", "device_id"):
        seen: set[str] = set()
        for p in patients:
            value = getattr(p, key)
            if value in seen:
                raise ScenarioError(f"{source}: {key.replace('_', ' ')} {value!r} is used twice")
            seen.add(value)
    return Scenario(name=name, duration_s=duration, seed=seed, patients=patients, source=source)


@dataclass(frozen=True)
class _Ctx:
    source: str
    where: str = ""

    def at(self, where: str) -> _Ctx:
        return _Ctx(self.source, f"{self.where}.{where}" if self.where else where)

    def fail(self, message: str) -> ScenarioError:
        place = f"{self.source}: {self.where}" if self.where else self.source
        return ScenarioError(f"{place}: {message}")


def _only(obj: Mapping[str, Any], allowed: set[str], ctx: _Ctx) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise ctx.fail(f"unknown field {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _typed(obj: Mapping[str, Any], key: str, kind: type, ctx: _Ctx, default: Any = ...) -> Any:
    if key not in obj:
        if default is ...:
            raise ctx.fail(f"field {key!r} is required")
        return default
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ctx.fail(f"field {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _number(
    obj: Mapping[str, Any], key: str, ctx: _Ctx, *, default: Any = ..., minimum: float | None = None,
    exclusive: bool = False,
) -> Any:
    if key not in obj and default is not ...:
        return default
    value = _typed(obj, key, (int, float), ctx)  # type: ignore[arg-type]
    if minimum is not None and (value < minimum or exclusive and value == minimum):
        raise ctx.fail(f"field {key!r} must be {'>' if exclusive else '>='} {minimum}, got {value}")
    return float(value)


def _ident(obj: Mapping[str, Any], key: str, ctx: _Ctx, default: str | None = None) -> str:
    value = _typed(obj, key, str, ctx, default=default if default is not None else ...)
    try:
        return validate_id(value, key)
    except TopicError as exc:
        raise ctx.fail(str(exc)) from None


def _window(obj: Mapping[str, Any], duration: float, ctx: _Ctx, *, until_required: bool) -> tuple[float, float | None]:
    at = _number(obj, "at", ctx, minimum=0.0)
    until = _number(obj, "until", ctx, default=None) if not until_required else _number(obj, "until", ctx)
    if at > duration:
        raise ctx.fail(f"starts at {at} s, after the scenario ends ({duration} s)")
    if until is not None and until <= at:
        raise ctx.fail(f"'until' ({until}) must be after 'at' ({at})")
    return at, until


def _patient(obj: Any, duration: float, seed: int, ctx: _Ctx) -> PatientScript:
    if not isinstance(obj, dict):
        raise ctx.fail("must be a table")
    _only(obj, {"id", "device", "profile", "heart_rate", "rhythm", "noise", "events", "faults", "battery", "seed"}, ctx)
    pid = _ident(obj, "id", ctx)
    ctx = _Ctx(ctx.source, f"patient {pid!r}")
    device = _ident(obj, "device", ctx, default=f"dev-{pid}"[:64])
    profile = _typed(obj, "profile", str, ctx, default="ecgstream-250")
    heart_rate = _number(obj, "heart_rate", ctx, default=None)
    if heart_rate is not None and not 15 <= heart_rate <= 300:
        raise ctx.fail(f"heart_rate {heart_rate} outside 15-300 bpm")
    rhythm = tuple(_rhythm(r, duration, ctx.at(f"rhythm[{i}]")) for i, r in enumerate(_typed(obj, "rhythm", list, ctx)))
    if not rhythm or rhythm[0].at_s != 0:
        raise ctx.fail("the rhythm timeline must start with an entry at 0")
    if any(b.at_s <= a.at_s for a, b in zip(rhythm, rhythm[1:], strict=False)):
        raise ctx.fail("rhythm entries must be in strictly increasing time order")
    noise = tuple(_noise(n, duration, ctx.at(f"noise[{i}]")) for i, n in enumerate(_typed(obj, "noise", list, ctx, default=[])))
    events = tuple(_event(e, duration, ctx.at(f"events[{i}]")) for i, e in enumerate(_typed(obj, "events", list, ctx, default=[])))
    faults = _typed(obj, "faults", dict, ctx, default={})
    _only(faults, set(FAULT_KEYS), ctx.at("faults"))
    fault_values = {k: _number(faults, k, ctx.at("faults"), minimum=0.0) for k in faults if k != "drift_ppm"}
    if "drift_ppm" in faults:
        fault_values["drift_ppm"] = _number(faults, "drift_ppm", ctx.at("faults"))
    for key in ("loss", "burst_loss", "reorder", "duplicate"):
        if fault_values.get(key, 0.0) > 1:
            raise ctx.at("faults").fail(f"{key!r} is a probability (0-1), got {fault_values[key]}")
    raw_battery = _typed(obj, "battery", dict, ctx, default={})
    bctx = ctx.at("battery")
    _only(raw_battery, {"start_pct", "drain_pct_per_hour"}, bctx)
    battery = BatterySpec(
        start_pct=_number(raw_battery, "start_pct", bctx, default=None, minimum=0.0),
        drain_pct_per_hour=_number(raw_battery, "drain_pct_per_hour", bctx, default=None, minimum=0.0),
    )
    if battery.start_pct is not None and battery.start_pct > 100:
        raise bctx.fail(f"'start_pct' must be 0-100, got {battery.start_pct}")
    return PatientScript(
        patient_id=pid, device_id=device, profile=profile, rhythm=rhythm, noise=noise, events=events,
        faults=fault_values, heart_rate=heart_rate, battery=battery, seed=_typed(obj, "seed", int, ctx, default=seed),
    )


def _rhythm(obj: Any, duration: float, ctx: _Ctx) -> RhythmChange:
    if not isinstance(obj, dict):
        raise ctx.fail("must be a table like { at = 0, name = \"sinus\" }")
    at, _ = _window(obj, duration, ctx, until_required=False)
    name = _typed(obj, "name", str, ctx)
    params = {k: _number(obj, k, ctx) for k in obj if k not in ("at", "name")}
    return RhythmChange(at_s=at, rhythm=name, params=params)


def _noise(obj: Any, duration: float, ctx: _Ctx) -> NoiseEpisode:
    if not isinstance(obj, dict):
        raise ctx.fail("must be a table")
    _only(obj, {"at", "until", "kind", "level_mv"}, ctx)
    at, until = _window(obj, duration, ctx, until_required=True)
    kind = _typed(obj, "kind", str, ctx)
    if kind not in NOISE_KINDS:
        raise ctx.fail(f"noise kind {kind!r} is not one of {', '.join(NOISE_KINDS)}")
    level = _number(obj, "level_mv", ctx, minimum=0.0)
    assert until is not None
    return NoiseEpisode(at_s=at, until_s=until, kind=kind, level_mv=level)


def _event(obj: Any, duration: float, ctx: _Ctx) -> DeviceEvent:
    if not isinstance(obj, dict):
        raise ctx.fail("must be a table")
    _only(obj, {"at", "until", "kind", "electrode"}, ctx)
    kind = _typed(obj, "kind", str, ctx)
    if kind not in DEVICE_EVENT_KINDS:
        raise ctx.fail(f"device event kind {kind!r} is not one of {', '.join(DEVICE_EVENT_KINDS)}")
    at, until = _window(obj, duration, ctx, until_required=True)
    electrode = _typed(obj, "electrode", str, ctx, default=None) if "electrode" in obj else None
    if kind == "lead_off":
        if electrode not in ELECTRODES:
            raise ctx.fail(f"lead_off needs 'electrode', one of {', '.join(ELECTRODES)}")
    elif electrode is not None:
        raise ctx.fail(f"'electrode' only applies to lead_off events, not {kind}")
    assert until is not None
    return DeviceEvent(at_s=at, until_s=until, kind=kind, electrode=electrode)
