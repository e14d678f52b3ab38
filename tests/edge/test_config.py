"""Gateway configuration: defaults, the example file, one clear error per bad value, environment overrides."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import (
    ARTIFACTS,
    AlarmsConfig,
    ConfigError,
    EdgeConfig,
    IngestConfig,
    MqttIngestConfig,
    UplinkConfig,
    check_alarm_thresholds,
    load_config,
    parse_config,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "edge.example.toml"


def parse(text: str, env: dict[str, str] | None = None) -> EdgeConfig:
    return parse_config(text, source="edge.toml", base_dir=Path("/etc/ecgstream"), env=env or {})


def test_defaults_load_with_no_file_and_need_no_broker() -> None:
    config = load_config(None, env={})
    assert config.source == "defaults"
    assert config.ingest.mqtt.embedded and config.uplink.embedded
    assert config.uplink.client_id == config.gateway_id
    assert config.processing.window_s == 10.0 and config.processing.hop_s <= config.processing.window_s
    assert config.processing.reconstruction_model == ARTIFACTS / "reconstruction_vae.onnx"
    assert config.processing.backend == "auto"
    assert config.uplink.qos == 1 and config.uplink.outbox_path == Path("out/edge/outbox.sqlite")
    assert config.observability.metrics_port == 0
    assert config.ingest.ble == () and dict(config.alarms.thresholds) == {}
    assert parse("") == config


def test_the_documented_example_loads_every_table() -> None:
    config = load_config(EXAMPLE, env={"ECGSTREAM_EDGE__UPLINK__PASSWORD": "s3cret"})
    assert config.gateway_id == "ward-3-gw"
    assert config.ingest.mqtt.tls and config.ingest.mqtt.cafile == EXAMPLE.parent / "certs" / "ward-ca.pem"
    first, polar = config.ingest.ble
    assert (first.device_id, first.patient, first.backend) == ("es-0001", "bed-01", "bleak")
    assert (polar.profile, polar.backend, polar.hci) == ("polar-h10", "bumble", "usb:0")
    assert config.processing.latency_deadline_ms == 200.0
    assert check_alarm_thresholds(config, ["pause_s", "brady_bpm"]) == {"pause_s": 3.0, "brady_bpm": 35.0}
    assert config.uplink.password == "s3cret" and "s3cret" not in repr(config)
    assert config.observability.log_format == "json" and config.observability.metrics_port == 9464


def test_tls_moves_the_default_port_and_relative_paths_follow_the_file() -> None:
    config = parse('[uplink]\nhost = "cloud"\ntls = true\noutbox_path = "var/outbox.sqlite"')
    assert config.uplink.port == 8883
    assert config.uplink.outbox_path == Path("/etc/ecgstream/var/outbox.sqlite")


def test_ble_device_id_defaults_to_the_address_or_name() -> None:
    config = parse('[[ingest.ble]]\naddress = "AA:BB:CC:00:11:22"\npatient = "p1"\n'
                   '[[ingest.ble]]\nname = "Polar_H10"\npatient = "p2"\nprofile = "polar-h10"')
    assert [d.device_id for d in config.ingest.ble] == ["aabbcc001122", "Polar_H10"]


BLE = '[[ingest.ble]]\npatient = "p1"\n'

BAD = [
    ("[uplink]\nport = 70000", "edge.toml: [uplink] port 70000 is not a TCP port"),
    ("[ingest.mqtt]\nport = 0", "edge.toml: [ingest.mqtt] port 0 is not a TCP port"),
    ("[observability]\nmetrics_port = -1", "edge.toml: [observability] metrics_port -1 is not a TCP port"),
    ('[uplink]\nport = "1883"', "edge.toml: [uplink] port must be an integer, got string"),
    ("[uplink]\nport = 1883.0", "edge.toml: [uplink] port must be an integer, got float"),
    ("[uplink]\ntls = 1", "edge.toml: [uplink] tls must be true or false, got integer"),
    ("[uplink]\nqos = 0", "edge.toml: [uplink] qos 0 must be 1 or 2"),
    ('[uplink]\nhost = "cloud"\npassword = "x"',
     "edge.toml: [uplink] password must not be in the file; set ECGSTREAM_EDGE__UPLINK__PASSWORD in the environment"),
    ("[uplink]\ntls = true", "edge.toml: [uplink] tls, username, password and cafile need a real broker"),
    ('[uplink]\nhost = "cloud"\ncafile = "ca.pem"', "edge.toml: [uplink] cafile needs tls = true"),
    ('[uplink]\nhost = ""', "edge.toml: [uplink] host must not be empty"),
    ("[uplink]\ndisk_budget_mb = 0", "edge.toml: [uplink] disk_budget_mb 0.0 must be > 0"),
    ("[uplink]\nprot = 1", "edge.toml: [uplink] unknown key 'prot' (allowed: cafile, client_id,"),
    ("[telemetry]\nx = 1", "edge.toml: unknown table [telemetry] (allowed: alarms, gateway_id, ingest,"),
    ("uplink = 3", "edge.toml: [uplink] must be a table, got integer"),
    ('gateway_id = "ward 3"', "edge.toml: gateway_id 'ward 3' must be 1-64 characters"),
    ("gateway_id = 1979-05-27", "edge.toml: gateway_id must be a string, got date"),
    ("[processing]\nhop_s = 20", "edge.toml: [processing] hop_s 20 must be at most window_s (10)"),
    ("[processing]\nwindow_s = nan", "edge.toml: [processing] window_s nan is not a finite number"),
    ("[processing]\nwindow_s = -10", "edge.toml: [processing] window_s -10.0 must be > 0"),
    ('[processing]\nbackend = "cuda"', "edge.toml: [processing] backend must be one of auto, onnxruntime-cpu,"),
    ("[processing]\nmax_batch = 0", "edge.toml: [processing] max_batch 0 must be 1-65536"),
    ('[processing]\nreconstruction_model = ""', "edge.toml: [processing] reconstruction_model must not be empty"),
    ("[ingest]\nreorder_window = 0", "edge.toml: [ingest] reorder_window 0 must be 1-4096 frames"),
    ("[ingest]\ninterpolation_limit_ms = 5000", "edge.toml: [ingest] interpolation_limit_ms 5000.0 must be 0-1000 ms"),
    ('[ingest]\nble = {patient = "p"}', "edge.toml: [ingest] ble must be an array of tables ([[ingest.ble]]), got table"),
    (BLE, "edge.toml: [[ingest.ble]] #1 needs exactly one of address or name"),
    (BLE + 'name = "a"\naddress = "AA:BB:CC:00:11:22"', "edge.toml: [[ingest.ble]] #1 needs exactly one of address or name"),
    (BLE + 'address = "AA:BB:CC"', "edge.toml: [[ingest.ble]] #1 address 'AA:BB:CC' is not a BLE address"),
    (BLE + 'name = "My Polar"', "edge.toml: [[ingest.ble]] #1 name 'My Polar' is not a valid device id; set device_id"),
    ('[[ingest.ble]]\nname = "a"', "edge.toml: [[ingest.ble]] #1 patient is required"),
    ('[[ingest.ble]]\nname = "a"\npatient = "bed 1"', "edge.toml: [[ingest.ble]] #1 patient 'bed 1' must be"),
    (BLE + 'name = "a"\nprofile = "polar"', "edge.toml: [[ingest.ble]] #1 profile must be one of ecgstream-250,"),
    (BLE + 'name = "a"\nbackend = "bluez"', "edge.toml: [[ingest.ble]] #1 backend must be one of bleak, bumble, got 'bluez'"),
    (BLE + 'name = "a"\n' + BLE + 'name = "A"', "edge.toml: [[ingest.ble]] #2 device_id 'A' is used twice"),
    ('[alarms.thresholds]\npause_s = "3"', "edge.toml: [alarms.thresholds] pause_s must be a number, got string"),
    ('[alarms.thresholds]\n"Pause S" = 3', "edge.toml: [alarms.thresholds] threshold name 'Pause S' must be lower_case"),
    ("[alarms]\npause_s = 3", "edge.toml: [alarms] unknown key 'pause_s' (allowed: thresholds)"),
    ('[observability]\nlog_format = "xml"', "edge.toml: [observability] log_format must be one of json, text, got 'xml'"),
    ('[observability]\nlog_level = "INFO"', "edge.toml: [observability] log_level must be one of debug,"),
    ("gateway_id = ", "edge.toml: not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split("] ")[-1][:40] for _, m in BAD])
def test_each_bad_value_gets_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value).split("not valid TOML")[0]


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config .*nope.toml: No such file"):
        load_config(tmp_path / "nope.toml", env={})


def test_unknown_alarm_thresholds_are_named_with_the_file() -> None:
    config = parse("[alarms.thresholds]\npause_sec = 3")
    with pytest.raises(ConfigError, match=r"edge.toml: \[alarms.thresholds\] unknown threshold 'pause_sec' \(known: pause_s\)"):
        check_alarm_thresholds(config, ["pause_s"])


def test_environment_overrides_each_type(tmp_path: Path) -> None:
    env = {
        "ECGSTREAM_EDGE__GATEWAY_ID": "gw-env",
        "ECGSTREAM_EDGE__UPLINK__HOST": "cloud.example",
        "ECGSTREAM_EDGE__UPLINK__PORT": "8884",
        "ecgstream_edge__uplink__tls": "yes",
        "ECGSTREAM_EDGE__UPLINK__PASSWORD": "pw",
        "ECGSTREAM_EDGE__UPLINK__OUTBOX_PATH": "rel/outbox.sqlite",
        "ECGSTREAM_EDGE__PROCESSING__HOP_S": "2.5",
        "ECGSTREAM_EDGE__INGEST__MQTT__ENABLED": "false",
        "ECGSTREAM_EDGE__ALARMS__THRESHOLDS__PAUSE_S": "4",
        "ECGSTREAM_EDGE__OBSERVABILITY__LOG_FORMAT": "json",
        "ECGSTREAM_EDGE__INGEST__MQTT__CAFILE": "",
        "OTHER_VARIABLE": "ignored",
    }
    config = parse("[uplink]\nport = 1883\n[ingest.mqtt]\nhost = 'b'\ntls = true\ncafile = 'ca.pem'", env)
    assert config.gateway_id == "gw-env" and config.uplink.client_id == "gw-env"
    assert (config.uplink.host, config.uplink.port, config.uplink.tls) == ("cloud.example", 8884, True)
    assert config.uplink.password == "pw" and "pw'" not in repr(config)
    assert config.uplink.outbox_path == Path("rel/outbox.sqlite")  # from the environment: relative to the cwd
    assert config.processing.hop_s == 2.5 and not config.ingest.mqtt.enabled
    assert config.ingest.mqtt.cafile is None
    assert dict(config.alarms.thresholds) == {"pause_s": 4.0}
    assert config.observability.log_format == "json"


def test_load_config_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECGSTREAM_EDGE__OBSERVABILITY__METRICS_PORT", "9100")
    assert load_config().observability.metrics_port == 9100


BAD_ENV = [
    ({"ECGSTREAM_EDGE__UPLINK__PROT": "1"}, "ECGSTREAM_EDGE__UPLINK__PROT: [uplink] unknown key 'prot' (allowed:"),
    ({"ECGSTREAM_EDGE__TELEMETRY__X": "1"}, "ECGSTREAM_EDGE__TELEMETRY__X: unknown key 'telemetry'"),
    ({"ECGSTREAM_EDGE__UPLINK__PORT": "abc"}, "ECGSTREAM_EDGE__UPLINK__PORT: [uplink] port must be an integer, got 'abc'"),
    ({"ECGSTREAM_EDGE__UPLINK__PORT": "70000"}, "ECGSTREAM_EDGE__UPLINK__PORT: [uplink] port 70000 is not a TCP port"),
    ({"ECGSTREAM_EDGE__UPLINK__TLS": "maybe"}, "ECGSTREAM_EDGE__UPLINK__TLS: [uplink] tls must be true or false"),
    ({"ECGSTREAM_EDGE__PROCESSING__HOP_S": "inf"}, "ECGSTREAM_EDGE__PROCESSING__HOP_S: [processing] hop_s inf is not"),
    ({"ECGSTREAM_EDGE__PROCESSING__BACKEND": "gpu"}, "ECGSTREAM_EDGE__PROCESSING__BACKEND: [processing] backend must be one of auto,"),
    ({"ECGSTREAM_EDGE__UPLINK": "x"}, "ECGSTREAM_EDGE__UPLINK: [uplink] is a table; set one of its keys"),
    ({"ECGSTREAM_EDGE__UPLINK__PORT__X": "1"}, "ECGSTREAM_EDGE__UPLINK__PORT__X: [uplink] port is not a table"),
    ({"ECGSTREAM_EDGE__INGEST__BLE": "[]"}, "ECGSTREAM_EDGE__INGEST__BLE: [ingest] ble is an array of tables"),
    ({"ECGSTREAM_EDGE__ALARMS__THRESHOLDS": "3"}, "ECGSTREAM_EDGE__ALARMS__THRESHOLDS: [alarms.thresholds] is set one"),
    ({"ECGSTREAM_EDGE__ALARMS__THRESHOLDS__PAUSE_S": "x"}, "ECGSTREAM_EDGE__ALARMS__THRESHOLDS__PAUSE_S: "
                                                          "[alarms.thresholds] pause_s must be a number, got 'x'"),
    ({"ECGSTREAM_EDGE__UPLINK__TLS": "true"}, "ECGSTREAM_EDGE__UPLINK__TLS: [uplink] tls, username, password"),
    ({"ECGSTREAM_EDGE__GATEWAY_ID": "a/b"}, "ECGSTREAM_EDGE__GATEWAY_ID: gateway_id 'a/b' must be"),
]


@pytest.mark.parametrize(("env", "message"), BAD_ENV, ids=[next(iter(e)) for e, _ in BAD_ENV])
def test_bad_environment_overrides_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse("", env)
    assert str(info.value).startswith(message)


# -- fuzz: any document either loads or raises ConfigError -----------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=12)
_scalars = (st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | _text
            | st.sampled_from(["embedded", "AA:BB:CC:DD:EE:FF", "bumble", "polar-h10", "json", "auto", "p1"]))
_anything = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                         max_leaves=8)


def _shaped(tp: Any) -> st.SearchStrategy[Any]:
    """Values shaped like the schema (right keys, mostly right types), sometimes anything at all."""
    tp = next((a for a in typing.get_args(tp) if a is not type(None)), tp) if typing.get_origin(tp) is types.UnionType else tp
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        optional = {f.name: _shaped(hints[f.name]) for f in dataclasses.fields(tp) if f.name != "source"}
        typed: st.SearchStrategy[Any] = st.fixed_dictionaries({}, optional=optional)
    elif origin is tuple:
        typed = st.lists(_shaped(typing.get_args(tp)[0]), max_size=3)
    elif origin is Mapping:
        typed = st.dictionaries(st.sampled_from(["pause_s", "brady_bpm"]) | _text, _scalars, max_size=3)
    elif origin is typing.Literal:
        typed = st.sampled_from(typing.get_args(tp))
    elif tp is int:
        typed = st.integers(-2, 70000)
    elif tp is float:
        typed = st.integers(-1, 30) | st.floats(-1, 3000)
    else:
        typed = st.booleans() if tp is bool else st.sampled_from(["embedded", "AA:BB:CC:DD:EE:FF", "p1", "Polar_1", "x y"])
    return st.one_of(typed, typed, typed, _anything)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return '"' + "".join(f"\\u{ord(c):04x}" if c in '"\\' or ord(c) < 0x20 or ord(c) == 0x7F else c
                             for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    return "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


_env_parts = st.sampled_from(sorted({f.name.upper() for cls in (EdgeConfig, IngestConfig, MqttIngestConfig, UplinkConfig,
                                                                  AlarmsConfig) for f in dataclasses.fields(cls)})) | _text


def _toml(doc: dict[str, Any]) -> str:
    return "".join(f"{_toml_value(k)} = {_toml_value(v)}\n" for k, v in doc.items())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_shaped(EdgeConfig).filter(lambda d: isinstance(d, dict)),
       env=st.dictionaries(st.lists(_env_parts, min_size=1, max_size=4).map(lambda p: "ECGSTREAM_EDGE__" + "__".join(p)),
                           _text | st.sampled_from(["1", "true", "", "2.5", "embedded"]), max_size=2))
def test_any_document_loads_or_raises_config_error(doc: dict[str, Any], env: dict[str, str]) -> None:
    try:
        config = parse(_toml(doc), env)
    except ConfigError as exc:
        assert str(exc).strip()
    else:
        assert isinstance(config, EdgeConfig)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_loads_or_raises_config_error(text: str) -> None:
    try:
        parse(text)
    except ConfigError:
        pass
