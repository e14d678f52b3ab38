"""What several benchmarks start: a private Mosquitto on a free port (so no other traffic is measured)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mosquitto(workdir: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """A private Mosquitto on 127.0.0.1 and a free port, with no per-client queue limit (the default
    1000-message queue drops QoS 1 messages a slower client has not taken yet). Stop it with ``kill()``."""
    binary = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)
    if binary is None:
        raise RuntimeError("no mosquitto binary (Debian: apt-get install mosquitto)")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if port_open("127.0.0.1", port):
            return port, proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")
