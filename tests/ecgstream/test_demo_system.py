"""``ecgstream demo`` is the whole system (issue 14): ward → edge gateway → broker → cloud → dashboard.

Accelerated runs against the embedded broker (amqtt, MQTT 3.1.1: the cloud's ingest is one worker with a
plain subscription) and against Mosquitto (MQTT 5 shared subscription). Each checks what a user of the
demo notices: the summary's window accounting adds up (every window produced is stored, stored with a
gap mask, or dropped with its reason), the scripted alarms reach the dashboard's live feed, the login the
demo printed works, a second run into the same ``--out`` keeps the ward and ``--fresh`` empties it, and
Ctrl-C stops everything with exit status 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecgstream.cli import main
from ecgstream.demo_login import DemoLogin

pytestmark = pytest.mark.slow

TINY_WARD = """
name = "tiny-ward"
duration_s = {duration}
seed = 3
{patients}
"""
PATIENT = """
[[patient]]
id = "{pid}"
device = "{device}"
heart_rate = 70
rhythm = [ {{ at = 0, name = "sinus" }}, {{ at = 12, name = "vt", heart_rate = 185 }}, {{ at = 24, name = "sinus" }} ]
"""


def tiny_ward(path: Path, patients: dict[str, str], duration: int = 30) -> Path:  # (run shorter: --seconds)
    """A scenario file: each patient (id → device) in sinus with VT from 12 s to 24 s."""
    body = "".join(PATIENT.format(pid=pid, device=device) for pid, device in patients.items())
    path.write_text(TINY_WARD.format(duration=duration, patients=body), encoding="utf-8")
    return path


def run_demo(out: Path, *args: str) -> dict[str, Any]:
    summary = out.parent / f"{out.name}-summary.json"
    code = main(["demo", *args, "--no-live", "--no-stay", "--out", str(out), "--summary-json", str(summary),
                 "--truth", str(out.parent / f"{out.name}-truth.json")])
    assert code == 0
    data: dict[str, Any] = json.loads(summary.read_text())
    return data


def assert_accounting_adds_up(summary: dict[str, Any]) -> None:
    assert summary["windows_produced"] > 0
    assert summary["windows_produced"] == (summary["windows_stored"] + summary["windows_gapped"]
                                           + summary["windows_dropped"]), summary
    assert sum(summary["dropped_reasons"].values()) == summary["windows_dropped"]
    assert summary["windows_stored"] + summary["windows_gapped"] > 0.9 * summary["windows_produced"], summary
    assert summary["outbox_left"] == 0


def demo_ward_run(out: Path, *broker: str) -> dict[str, Any]:
    summary = run_demo(out, "--pace", "8", "--seconds", "60", *broker)
    assert_accounting_adds_up(summary)
    # VT on bed-02 (45 s) and AF on bed-03 (30 s) are the clinical events of the first minute; their
    # alarms reach the dashboard's live feed (whether in budget depends on this machine's load at --pace 8)
    assert summary["events"] == 2
    answered = {(e["patient_id"], e["alert_type"]) for e in summary["per_event"]}
    assert ("bed-02", "vt") in answered, summary["per_event"]
    assert summary["feed_alerts"] > 0 and summary["latency_s"]["p50"] is not None
    assert summary["ward_patients"] == 8      # auto-registered by the cloud's ingest
    return summary


def test_the_demo_ward_end_to_end_on_the_embedded_broker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo_ward_run(tmp_path / "demo")
    out = capsys.readouterr().out
    assert "plain MQTT 3.1.1 subscription" in out
    assert "dashboard: http://127.0.0.1:" in out and "user demo-admin" in out


def test_the_demo_ward_end_to_end_on_mosquitto(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               mqtt_broker: Any) -> None:
    demo_ward_run(tmp_path / "demo", "--broker", f"{mqtt_broker.host}:{mqtt_broker.port}")
    assert "an MQTT 5 shared subscription" in capsys.readouterr().out


def test_a_second_run_keeps_the_ward_and_fresh_empties_it(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = run_demo(out, str(tiny_ward(tmp_path / "two.toml", {"bed-a": "es-a001", "bed-b": "es-a002"})),
                     "--pace", "0")
    assert_accounting_adds_up(first)
    assert first["patients"] == 2
    assert first["alerts_in_budget"] == first["events"] == 2, first["per_event"]
    login = DemoLogin.read(out / "login.txt")
    assert login is not None and login.username == "demo-admin"

    one = str(tiny_ward(tmp_path / "one.toml", {"bed-c": "es-a003"}))
    second = run_demo(out, one, "--pace", "0", "--seconds", "16")
    assert second["patients"] == 3                       # bed-a and bed-b are still in the cloud
    assert DemoLogin.read(out / "login.txt") == login      # the same login, still valid (the run logged in)

    fresh = run_demo(out, one, "--pace", "0", "--seconds", "16", "--fresh")
    assert fresh["patients"] == 1                        # only the device of this run
    assert DemoLogin.read(out / "login.txt") == login


def test_the_printed_login_works_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    scenario = tiny_ward(tmp_path / "one.toml", {"bed-d": "es-a004"})
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecgstream", "demo", str(scenario), "--pace", "0", "--seconds", "16", "--no-live", "--stay",
         "--out", str(out), "--truth", str(tmp_path / "truth.json")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines: list[str] = []
        url = None
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("dashboard: "):
                url = line.split()[1].rstrip("/")
            if "the dashboard stays up" in line:
                break
        assert url is not None and "the dashboard stays up" in lines[-1], "".join(lines)
        login = DemoLogin.read(out / "login.txt")
        assert login is not None and login.password in "".join(lines)
        with httpx.Client(base_url=url, timeout=10) as client:
            r = client.post("/api/auth/login", json={"username": login.username, "password": login.password})
            assert r.status_code == 200, r.text
            headers = {"Authorization": f"Bearer {r.json()['token']}"}
            patients = client.get("/api/patients", headers=headers).json()["patients"]
            assert [p["patient_id"] for p in patients] == ["bed-d"], patients
            alerts = client.get("/api/alerts", headers=headers).json()
            assert any(a["alert_type"] == "vt" for a in alerts["alerts"]), alerts
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
