"""Scenario files: the built-in ward parses, bad files say exactly what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim.scenario import ScenarioError, demo_ward, load_scenario, parse_scenario

GOOD = """
name = "t"
duration_s = 60
seed = 3
[[patient]]
id = "p1"
rhythm = [ { at = 0, name = "sinus" }, { at = 30, name = "vt", heart_rate = 180 } ]
noise = [ { at = 5, until = 9, kind = "emg", level_mv = 0.1 } ]
events = [ { at = 10, until = 20, kind = "lead_off", electrode = "LA" } ]
[patient.faults]
loss = 0.05
drift_ppm = -40
"""


def test_the_demo_ward_is_a_valid_scenario() -> None:
    ward = demo_ward()
    assert len(ward.patients) >= 6
    assert len({p.device_id for p in ward.patients}) == len(ward.patients)
    assert {"vt", "afib", "asystole"} <= {c.rhythm for p in ward.patients for c in p.rhythm}


def test_a_scenario_file_is_read_with_all_its_parts(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(GOOD)
    scenario = load_scenario(path)
    (p,) = scenario.patients
    assert p.device_id == "dev-p1" and p.profile == "ecgstream-250"
    assert [(c.at_s, c.rhythm, dict(c.params)) for c in p.rhythm] == [(0, "sinus", {}), (30, "vt", {"heart_rate": 180})]
    assert p.noise[0].kind == "emg" and p.events[0].electrode == "LA"
    assert p.faults == {"loss": 0.05, "drift_ppm": -40}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("duration_s = 60", "duration_s = -1"), "'duration_s' must be > 0.0"),
        (('{ at = 0, name = "sinus" }, ', ""), "must start with an entry at 0"),
        (('kind = "emg"', 'kind = "gremlins"'), "noise kind 'gremlins' is not one of"),
        (('electrode = "LA"', 'electrode = "LX"'), "lead_off needs 'electrode'"),
        (("loss = 0.05", "loss = 5"), "'loss' is a probability"),
        (('id = "p1"', 'id = "p 1"'), "patient\\[0\\]: id 'p 1' must be"),
        (("seed = 3", "seed = 3\ncolour = 1"), "unknown field 'colour'"),
        (("until = 9", "until = 2"), "'until' \\(2.0\\) must be after 'at' \\(5.0\\)"),
        (("at = 30", "at = 90"), "after the scenario ends"),
    ],
)
def test_bad_scenarios_name_the_patient_and_field(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(GOOD.replace(*edit, 1), source="s.toml")


def test_duplicate_devices_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    twice = GOOD + '[[patient]]\nid = "p2"\ndevice = "dev-p1"\nrhythm = [ { at = 0, name = "sinus" } ]\n'
    with pytest.raises(ScenarioError, match="device id 'dev-p1' is used twice"):
        parse_scenario(twice)
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "missing.toml")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        parse_scenario("name = ")
