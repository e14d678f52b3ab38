"""The settings reader: a TOML file, environment overrides on top, typed values, one clear line per problem."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic.dataclasses import dataclass

from settings import BrokerConfig, SettingsError
from settings.broker import SECTION
from settings.fields import (
    INTERNAL,
    Bool,
    FilePath,
    Int,
    Number,
    PositiveNumber,
    TcpPort,
    Text,
    problem,
    rule,
)
from settings.reader import SettingsReader


class AppError(SettingsError):
    """A tier's own error type."""


@dataclass(frozen=True, config=SECTION)
class Server:
    host: Text = "localhost"
    port: TcpPort = 8000
    debug: Bool = False
    timeout_s: PositiveNumber = 2.5
    mode: Literal["fast", "safe"] = "safe"
    log_file: FilePath | None = None
    name: Text | None = None


@dataclass(frozen=True, config=SECTION)
class Worker:
    name: Text
    threads: Annotated[Int, rule(lambda v: 1 <= v <= 64, "must be 1-64")] = 1

    def __post_init__(self) -> None:
        if self.name == "forbidden":
            raise problem("name 'forbidden' is taken", "name")


@dataclass(frozen=True, config=SECTION)
class App:
    title: Text = "app"
    server: Server = dataclasses.field(default_factory=Server)
    broker: BrokerConfig = dataclasses.field(default_factory=BrokerConfig)
    workers: tuple[Worker, ...] = ()
    limits: Mapping[str, Number] = dataclasses.field(default_factory=dict)
    source: str = dataclasses.field(default="defaults", metadata=INTERNAL)


READER = SettingsReader(App, "APP__", AppError)


def parse(text: str, env: dict[str, str] | None = None) -> App:
    return READER.parse(text, source="app.toml", base_dir=Path("/etc/app"), env=env or {}).value


def error(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(AppError) as info:
        parse(text, env)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_no_file_gives_the_defaults(tmp_path: Path) -> None:
    loaded = READER.load(None, env={})
    assert loaded.value == App() and loaded.source == "defaults"
    assert loaded.value.broker.host == "embedded" and loaded.value.broker.port == 1883


def test_the_file_overrides_defaults_and_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    path.write_text('title = "from file"\n[server]\nport = 9000\nhost = "file-host"\nlog_file = "logs/app.log"\n')
    loaded = READER.load(path, env={"APP__SERVER__PORT": "9100", "OTHER__SERVER__PORT": "1"})
    app = loaded.value
    assert app.title == "from file" and app.server.host == "file-host"
    assert app.server.port == 9100  # the environment wins
    assert app.server.log_file == tmp_path / "logs" / "app.log"  # relative to the file's folder
    assert loaded.from_env("server", "port") and not loaded.from_env("server", "host")
    assert loaded.origin("server", "port") == "APP__SERVER__PORT" and loaded.origin("title") == str(path)


def test_environment_text_is_read_as_each_key_type() -> None:
    app = parse('[server]\nname = "x"\nlog_file = "a.log"', {
        "APP__SERVER__DEBUG": "Yes", "app__server__timeout_s": " 0.5 ", "APP__SERVER__MODE": "fast",
        "APP__SERVER__HOST": " spaced host ", "APP__SERVER__NAME": "", "APP__SERVER__LOG_FILE": "rel/b.log",
        "APP__LIMITS__DEPTH": "3", "APP__BROKER__HOST": "mq.example", "APP__BROKER__TLS": "on",
    })
    assert app.server.debug is True and app.server.timeout_s == 0.5 and app.server.mode == "fast"
    assert app.server.host == " spaced host "  # strings are taken as they are
    assert app.server.name is None  # an empty value resets an optional key
    assert app.server.log_file == Path("rel/b.log")  # from the environment: relative to the working directory
    assert dict(app.limits) == {"depth": 3.0}
    assert (app.broker.host, app.broker.port, app.broker.tls) == ("mq.example", 8883, True)


def test_a_secret_comes_only_from_the_environment_and_is_never_shown() -> None:
    message = error('[broker]\nhost = "mq"\npassword = "hunter2"')
    assert message.startswith("app.toml: [broker] password must not be in the file; set APP__BROKER__PASSWORD")
    app = parse('[broker]\nhost = "mq"', {"APP__BROKER__PASSWORD": "hunter2"})
    assert app.broker.password == "hunter2" and "hunter2" not in repr(app)


BAD = [
    ("[server]\nport = 70000", {}, "app.toml: [server] port 70000 is not a TCP port"),
    ('[server]\nport = "80"', {}, "app.toml: [server] port must be an integer, got string"),
    ("[server]\ndebug = 1", {}, "app.toml: [server] debug must be true or false, got integer"),
    ("[server]\ntimeout_s = 0", {}, "app.toml: [server] timeout_s 0.0 must be > 0"),
    ("[server]\ntimeout_s = inf", {}, "app.toml: [server] timeout_s inf is not a finite number"),
    ('[server]\nmode = "quick"', {}, "app.toml: [server] mode must be one of fast, safe, got 'quick'"),
    ('[server]\nhost = "  "', {}, "app.toml: [server] host must not be empty"),
    ("[server]\nprot = 1", {}, "app.toml: [server] unknown key 'prot' (allowed: debug, host, log_file,"),
    ("[nope]\nx = 1", {}, "app.toml: unknown table [nope] (allowed: broker, limits, server, title, workers)"),
    ('source = "x"', {}, "app.toml: unknown key 'source'"),
    ("server = 3", {}, "app.toml: [server] must be a table, got integer"),
    ("workers = 3", {}, "app.toml: workers must be an array of tables ([[workers]]), got integer"),
    ("[[workers]]\nthreads = 2", {}, "app.toml: [[workers]] #1 name is required"),
    ('[[workers]]\nname = "a"\n[[workers]]\nname = "b"\nthreads = 99', {}, "app.toml: [[workers]] #2 threads 99 must be 1-64"),
    ('[[workers]]\nname = "forbidden"', {}, "app.toml: [[workers]] #1 name 'forbidden' is taken"),
    ('[limits]\ndepth = "deep"', {}, "app.toml: [limits] depth must be a number, got string"),
    ("[broker]\ntls = true", {}, "app.toml: [broker] tls, username, password and cafile need a real broker"),
    ('[broker]\nhost = "mq"\ncafile = "ca.pem"', {}, "app.toml: [broker] cafile needs tls = true"),
    ("title = ", {}, "app.toml: not valid TOML"),
    ("", {"APP__SERVER__PORT": "eighty"}, "APP__SERVER__PORT: [server] port must be an integer, got 'eighty'"),
    ("", {"APP__SERVER__PORT": "0"}, "APP__SERVER__PORT: [server] port 0 is not a TCP port"),
    ("", {"APP__SERVER__DEBUG": "maybe"}, "APP__SERVER__DEBUG: [server] debug must be true or false, got 'maybe'"),
    ("", {"APP__SERVER__PROT": "1"}, "APP__SERVER__PROT: [server] unknown key 'prot' (allowed:"),
    ("", {"APP__SERVER": "x"}, "APP__SERVER: [server] is a table; set one of its keys (APP__SERVER__KEY)"),
    ("", {"APP__SERVER__PORT__X": "1"}, "APP__SERVER__PORT__X: [server] port is not a table"),
    ("", {"APP__WORKERS": "[]"}, "APP__WORKERS: workers is an array of tables and can only be set in the file"),
    ("", {"APP__LIMITS": "3"}, "APP__LIMITS: [limits] is set one entry at a time: APP__LIMITS__NAME=value"),
    ("", {"APP__BROKER__TLS": "true"}, "APP__BROKER__TLS: [broker] tls, username, password and cafile need a real"),
    ('[server]\nport = 80', {"APP__SERVER__MODE": "x"}, "APP__SERVER__MODE: [server] mode must be one of fast, safe"),
]


@pytest.mark.parametrize(("text", "env", "message"), BAD, ids=[m.split(": ", 1)[-1][:40] for *_, m in BAD])
def test_each_problem_is_one_line_naming_where_it_came_from(text: str, env: dict[str, str], message: str) -> None:
    assert error(text, env).startswith(message)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(AppError, match=r"cannot read config .*missing.toml: No such file"):
        READER.load(tmp_path / "missing.toml", env={})


def test_a_reader_without_a_prefix_ignores_the_environment() -> None:
    reader = SettingsReader(App)
    assert reader.parse("", env={"APP__TITLE": "x"}).value.title == "app"
    with pytest.raises(SettingsError):
        reader.parse("[server]\nport = 0")


@given(tls=st.booleans(), port=st.none() | st.integers(1, 65535))
def test_the_broker_port_is_the_given_one_else_8883_under_tls_else_1883(tls: bool, port: int | None) -> None:
    text = f'[broker]\nhost = "mq"\ntls = {str(tls).lower()}\n' + (f"port = {port}\n" if port else "")
    assert parse(text).broker.port == (port or (8883 if tls else 1883))
    env = {"APP__BROKER__HOST": "mq", "APP__BROKER__TLS": str(tls)} | ({"APP__BROKER__PORT": str(port)} if port else {})
    assert parse("", env).broker.port == (port or (8883 if tls else 1883))


@given(value=st.integers(-(2**70), 2**70), spaces=st.sampled_from(["", " ", "\t"]))
def test_any_integer_in_the_environment_is_the_integer_or_a_clear_error(value: int, spaces: str) -> None:
    env = {"APP__SERVER__PORT": f"{spaces}{value}{spaces}"}
    if 1 <= value <= 65535:
        assert parse("", env).server.port == value
    else:
        assert error("", env).startswith(f"APP__SERVER__PORT: [server] port {value} is not a TCP port")


@given(word=st.sampled_from(["true", "yes", "on", "1", "false", "no", "off", "0"]), data=st.data())
def test_booleans_in_the_environment_ignore_case(word: str, data: st.DataObject) -> None:
    text = "".join(c.upper() if data.draw(st.booleans()) else c for c in word)
    assert parse("", {"APP__SERVER__DEBUG": text}).server.debug is (word in ("true", "yes", "on", "1"))


_scalars = st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=8)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
_keys = st.sampled_from(["title", "server", "broker", "workers", "limits", "port", "host", "tls", "name", "x"])
_docs = st.dictionaries(_keys, _values | st.dictionaries(_keys, _values, max_size=4)
                        | st.lists(st.dictionaries(_keys, _values, max_size=3), max_size=2), max_size=5)


@given(doc=_docs, env=st.dictionaries(st.lists(_keys.map(str.upper), min_size=1, max_size=3).map(
    lambda p: "APP__" + "__".join(p)), st.text(max_size=6) | st.sampled_from(["1", "true", "", "mq"]), max_size=2))
def test_any_document_loads_or_raises_one_clear_line(doc: dict[str, object], env: dict[str, str]) -> None:
    try:
        app = READER.validate(doc, source="app.toml", env=env).value
    except AppError as exc:
        assert str(exc).startswith(("app.toml: ", "APP__")) and "\n" not in str(exc)
    else:
        assert isinstance(app, App)
