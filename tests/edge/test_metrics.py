"""Metrics in their own registry, the HTTP exporter, and structured logs."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from edge.observability.exporter import Exporter, start_exporter
from edge.observability.logging import configure_logging, log_event
from edge.observability.metrics import EdgeMetrics
from edge.observability.status import StatusSnapshot, StreamStatus


def _update(m: EdgeMetrics) -> None:
    m.streams_connected.labels("ble").set(3)
    m.frames_received.labels("ble").inc(100)
    m.frames_decoded.labels("ble").inc(97)
    m.frames_rejected.labels("crc").inc(3)
    m.duplicate_frames.inc(2)
    m.late_frames.inc()
    m.gaps.labels("lost_frames").inc()
    m.samples_lost.inc(72)
    m.samples_interpolated.inc(12)
    m.windows_processed.inc(8)
    m.inference_latency.labels("reconstruction").observe(0.004)
    m.inference_latency.labels("reconstruction").observe(0.3)
    m.batch_size.labels("reconstruction").observe(8)
    m.outbox_depth.labels("window").set(5)
    m.evicted_windows.inc(4)
    m.alerts.labels("vt", "high", "clinical").inc()
    m.alerts_active.labels("high").set(1)
    m.uplink_reconnects.inc()


EXPECTED = [
    'ecgstream_edge_gateway_info{gateway_id="gw-1",version="0.1"} 1.0',
    'ecgstream_edge_streams_connected{transport="ble"} 3.0',
    'ecgstream_edge_frames_received_total{transport="ble"} 100.0',
    'ecgstream_edge_frames_decoded_total{transport="ble"} 97.0',
    'ecgstream_edge_frames_rejected_total{reason="crc"} 3.0',
    "ecgstream_edge_duplicate_frames_total 2.0",
    "ecgstream_edge_late_frames_total 1.0",
    'ecgstream_edge_gaps_total{reason="lost_frames"} 1.0',
    "ecgstream_edge_samples_lost_total 72.0",
    "ecgstream_edge_samples_interpolated_total 12.0",
    "ecgstream_edge_windows_processed_total 8.0",
    'ecgstream_edge_inference_latency_seconds_bucket{le="0.005",model="reconstruction"} 1.0',
    'ecgstream_edge_inference_latency_seconds_bucket{le="0.5",model="reconstruction"} 2.0',
    'ecgstream_edge_inference_latency_seconds_count{model="reconstruction"} 2.0',
    'ecgstream_edge_inference_batch_size_bucket{le="8.0",model="reconstruction"} 1.0',
    'ecgstream_edge_outbox_depth{kind="window"} 5.0',
    "ecgstream_edge_outbox_evicted_windows_total 4.0",
    'ecgstream_edge_alerts_total{category="clinical",priority="high",type="vt"} 1.0',
    'ecgstream_edge_alerts_active{priority="high"} 1.0',
    "ecgstream_edge_uplink_reconnects_total 1.0",
]


def test_render_has_every_series_after_updates() -> None:
    m = EdgeMetrics("gw-1", version="0.1")
    _update(m)
    lines = m.render().splitlines()
    for line in EXPECTED:
        assert line in lines


def test_agents_in_one_process_have_separate_registries() -> None:
    a, b = EdgeMetrics("gw-a"), EdgeMetrics("gw-b")
    a.windows_processed.inc(5)
    assert "ecgstream_edge_windows_processed_total 5.0" in a.render()
    assert "ecgstream_edge_windows_processed_total 0.0" in b.render()


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


@pytest.fixture
def metrics() -> EdgeMetrics:
    m = EdgeMetrics("gw-1", version="0.1")
    _update(m)
    return m


def test_exporter_serves_metrics_and_status_on_a_free_port(metrics: EdgeMetrics) -> None:
    snapshot = StatusSnapshot("gw-1", 100.0, 160.0, 2.0, (StreamStatus("es-1", "bed-1", "ble", True),))
    exporter = Exporter(metrics, 0, status=lambda: snapshot)
    try:
        base = f"http://127.0.0.1:{exporter.port}"
        status, ctype, body = _get(f"{base}/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        assert all(line in body.splitlines() for line in EXPECTED)
        status, ctype, body = _get(f"{base}/status")
        assert ctype == "application/json" and StatusSnapshot.from_dict(json.loads(body)) == snapshot
    finally:
        exporter.close()
    with pytest.raises(urllib.error.URLError):
        _get(f"{base}/metrics")


def test_status_route_is_404_before_the_first_snapshot(metrics: EdgeMetrics) -> None:
    exporter = Exporter(metrics, 0, status=lambda: None)
    try:
        with pytest.raises(urllib.error.HTTPError) as info:
            _get(f"http://127.0.0.1:{exporter.port}/status")
        assert info.value.code == 404
    finally:
        exporter.close()


def test_port_zero_in_the_config_means_no_exporter(metrics: EdgeMetrics) -> None:
    assert start_exporter(metrics, 0) is None


# -- structured logs -----------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_json_logs_carry_event_fields_and_hide_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    configure_logging("debug", "json")  # replaces, does not add, its handler
    log = logging.getLogger("edge.test")
    log_event(log, "stream_connected", device_id="es-1", patient_id="bed-1", password="hunter2", rssi=-60)
    log.debug("plain %s", "message", extra={"device_id": "es-2"})
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["level"] == "info" and first["logger"] == "edge.test" and first["message"] == "stream_connected"
    assert first["event"] == "stream_connected" and first["device_id"] == "es-1" and first["rssi"] == -60
    assert first["password"] == "***" and first["ts"].endswith("Z")
    assert second["message"] == "plain message" and second["device_id"] == "es-2"


@pytest.mark.usefixtures("restore_logging")
def test_text_logs_append_fields_and_respect_the_level(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", "text")
    log = logging.getLogger("edge.test")
    log_event(log, "ignored_at_info", device_id="es-1")
    log_event(log, "data_gap", level=logging.WARNING, device_id="es-1", samples=36)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith("WARNING edge.test: data_gap event=data_gap device_id=es-1 samples=36")


def test_bad_log_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="log level must be one of debug, info"):
        configure_logging("verbose", "text")
