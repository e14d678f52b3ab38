"""``ecgstream demo``: the demo ward through the edge gateway (embedded broker, MQTT ingest, outbox, uplink) and on
into the cloud (the whole system is tested in ``test_demo_system``); here, the edge's side of it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ecgstream.cli import main


@pytest.mark.slow
def test_demo_through_the_edge_gateway_raises_vt_for_bed_02_and_nothing_clinical_for_bed_01(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth, demo_out = tmp_path / "truth.json", tmp_path / "demo"
    assert main(["demo", "--pace", "0", "--seconds", "70", "--no-live", "--no-stay", "--truth", str(truth),
                 "--out", str(demo_out)]) == 0
    out = demo_out / "edge"
    captured = capsys.readouterr()
    text = captured.out
    assert "embedded MQTT broker on 127.0.0.1:" in captured.err
    assert "bed-02 VT scripted at 45 s → VT alert (high) after" in text, text
    latency = float(text.split("bed-02 VT scripted at 45 s → VT alert (high) after ")[1].split(" s")[0])
    assert 0.0 < latency <= 8.0
    assert "bed-01 (es-0001, sinus): nothing scripted, no clinical alert" in text, text
    assert "unscripted clinical alerts" not in "\n".join(line for line in text.splitlines() if "bed-01" in line)
    # the agent uplinked through its outbox to the same broker, and says where things are
    assert f"outbox: {out / 'outbox.sqlite'}" in text and "0 left in the outbox" in text
    uplinked = text.split("uplink to ")[1].split("\n")[0]
    assert " 0 alerts" not in uplinked and " 0 windows" not in uplinked, uplinked
    status = json.loads((out / "status.json").read_text())
    assert {s["patient_id"] for s in status["streams"]} >= {"bed-01", "bed-02"}
    with sqlite3.connect(out / "outbox.sqlite") as db:
        assert db.execute("select count(*) from sqlite_master").fetchone()[0] > 0
    assert json.loads(truth.read_text())["patients"]["bed-02"]["device"]["frames_sent"] > 0
