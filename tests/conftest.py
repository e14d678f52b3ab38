"""Fixtures shared by every test package: unique ids and a real Mosquitto broker.

Broker fixtures use the system Mosquitto on 127.0.0.1:1883 when it answers,
else start the ``mosquitto`` binary on a free port. Without either the tests
skip, except under ``CI=true`` where a missing broker is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

SYSTEM_BROKER = ("127.0.0.1", 1883)


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str | None:
    """Path of the mosquitto binary (often in /usr/sbin, outside a user's PATH), or None."""
    found = shutil.which("mosquitto")
    return found or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test, or fail it when ``CI=true`` (CI must not silently skip broker tests)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: not skipping)")
    pytest.skip(reason)


@dataclass
class MqttBroker:
    host: str
    port: int


class MosquittoProcess:
    """A private ``mosquitto`` on a free port of 127.0.0.1 that a test may stop and start again."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self._binary = binary
        self._conf = workdir / "mosquitto.conf"
        self._conf.write_text(f"listener {self.port} {self.host}\nallow_anonymous true\npersistence false\n")
        self._log = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start and wait until the port accepts connections."""
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen([self._binary, "-c", str(self._conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while not _port_open(self.host, self.port, 0.2):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not start on port {self.port}: {self._log.read_text()[-500:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the broker (as a crash would: no clean goodbye to clients)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None


@pytest.fixture
def unique_id() -> str:
    """A fresh id usable as a device/patient/gateway id and MQTT client id."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mosquitto_process(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A private, restartable Mosquitto (needs the binary)."""
    binary = mosquitto_binary()
    if binary is None:
        skip_or_fail("the mosquitto binary is not installed")
    broker = MosquittoProcess(binary, tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[MqttBroker]:
    """A running Mosquitto: the system one on 127.0.0.1:1883, else a private one for the session."""
    if _port_open(*SYSTEM_BROKER):
        yield MqttBroker(*SYSTEM_BROKER)
        return
    binary = mosquitto_binary()
    if binary is None:
        skip_or_fail("no MQTT broker: nothing on 127.0.0.1:1883 and the mosquitto binary is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoProcess(binary, Path(tmp))
        broker.start()
        try:
            yield MqttBroker(broker.host, broker.port)
        finally:
            broker.stop()


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
"""The real PhysioNet records (``../shared/data``): for tests and evaluation only."""


@pytest.fixture(scope="session")
def data() -> Path:
    """The real records folder; skips without it, but fails under CI=true."""
    if not SHARED_DATA.is_dir():
        skip_or_fail(f"real records not found at {SHARED_DATA} (see ../shared/data/SOURCES.md)")
    return SHARED_DATA
