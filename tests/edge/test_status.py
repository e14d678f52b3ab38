"""The status snapshot: atomic file round trip, the exporter route, and ``ecgstream edge status``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ecgstream.cli import main
from edge.observability.exporter import Exporter
from edge.observability.metrics import EdgeMetrics
from edge.observability.status import (
    NoAgentError,
    StatusError,
    StatusSnapshot,
    StreamStatus,
    fetch_status,
    read_status,
    remove_status,
    write_status,
)


def snapshot(written_at: float | None = None) -> StatusSnapshot:
    now = time.time() if written_at is None else written_at
    return StatusSnapshot(
        gateway_id="ward-3-gw",
        started_at=now - 3725,
        written_at=now,
        interval_s=2.0,
        streams=(
            StreamStatus("es-0001", "bed-01", "ble", True, 0.2, 71.6, 0.93, (), 81.0),
            StreamStatus("polar-8a2b", "bed-02", "ble", False, 12.5, None, 0.4, ("V1", "V5"), 12.0),
        ),
        outbox_depth={"alert": 1, "window": 14},
        alerts_active=1,
        version="0.1.0",
    )


def test_round_trip_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "run" / "status.json"
    first, second = snapshot(1000.0), snapshot(1002.0)
    write_status(path, first)
    assert read_status(path) == first
    write_status(path, second)
    assert read_status(path) == second and second.uptime_s == 3725
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]
    remove_status(path)
    remove_status(path)
    with pytest.raises(NoAgentError, match=r"no running edge agent found \(no status file at .*status.json\)"):
        read_status(path)


@pytest.mark.parametrize("text", ["not json", "[]", '{"schema_version": 99}', '{"schema_version": 1, "gateway_id": "g"}',
                                  '{"schema_version": 1, "gateway_id": "g", "started_at": "x", "written_at": 1, '
                                  '"interval_s": 2}', '{"schema_version": 1, "gateway_id": "g", "started_at": 0, '
                                  '"written_at": 1, "interval_s": 2, "streams": [1]}'])
def test_a_file_that_is_not_a_snapshot_is_a_status_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "status.json"
    path.write_text(text)
    with pytest.raises(StatusError, match=str(path)):
        read_status(path)


def test_stale_after_three_missed_writes() -> None:
    s = snapshot(1000.0)
    assert not s.stale(1005.0) and s.stale(1007.0)


def test_cli_prints_a_table_from_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "status.json"
    write_status(path, snapshot())
    assert main(["edge", "status", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "gateway ward-3-gw 0.1.0 · up 1h02m · 1/2 streams connected · outbox: alert 1, window 14" in out
    assert "alerts active: 1" in out and "stale" not in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip().startswith(("es-", "polar"))}
    assert rows["es-0001"][1:] == ["bed-01", "ble", "up", "0.2", "s", "72", "0.93", "-", "81", "%"]
    assert rows["polar-8a2b"][1:] == ["bed-02", "ble", "down", "12.5", "s", "-", "0.40", "V1,", "V5", "12", "%"]


def test_cli_json_output_is_the_snapshot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "status.json"
    write_status(path, snapshot(1000.0))
    assert main(["edge", "status", "--file", str(path), "--json"]) == 0
    assert StatusSnapshot.from_dict(json.loads(capsys.readouterr().out)) == snapshot(1000.0)


def test_cli_warns_when_the_snapshot_is_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "status.json"
    write_status(path, snapshot(time.time() - 60))
    assert main(["edge", "status", "--file", str(path)]) == 0
    assert "the status is stale: the agent may have stopped" in capsys.readouterr().out


def test_cli_without_a_status_file_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.json"
    assert main(["edge", "status", "--file", str(missing)]) == 2
    assert capsys.readouterr().err == f"ecgstream: error: no running edge agent found (no status file at {missing})\n"


def test_cli_reads_the_status_file_named_in_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "edge.toml"
    config.write_text('[observability]\nstatus_file = "run/status.json"\n')
    write_status(tmp_path / "run" / "status.json", snapshot())
    assert main(["edge", "status", "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gateway_id"] == "ward-3-gw"


def test_cli_asks_the_agent_when_the_metrics_port_is_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = snapshot(1000.0)
    exporter = Exporter(EdgeMetrics("ward-3-gw"), 0, status=lambda: live)
    try:
        assert fetch_status("127.0.0.1", exporter.port) == live
        config = tmp_path / "edge.toml"
        config.write_text(f'[observability]\nmetrics_port = {exporter.port}\nstatus_file = "absent.json"\n')
        assert main(["edge", "status", "--config", str(config), "--json"]) == 0
        assert StatusSnapshot.from_dict(json.loads(capsys.readouterr().out)) == live
    finally:
        exporter.close()
    # agent gone: the file is the fallback, and its absence the answer
    assert main(["edge", "status", "--config", str(config)]) == 2
    assert "no running edge agent found (no status file at" in capsys.readouterr().err


def test_cli_rejects_both_sources_and_bad_configs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["edge", "status", "--config", "a.toml", "--file", "b.json"]) == 2
    assert "give --config or --file, not both" in capsys.readouterr().err
    config = tmp_path / "edge.toml"
    config.write_text("[observability]\nmetrics_port = 70000\n")
    assert main(["edge", "status", "--config", str(config)]) == 2
    assert capsys.readouterr().err == f"ecgstream: error: {config}: [observability] metrics_port 70000 is not a TCP port\n"
