"""The agent's status snapshot: what ``ecgstream edge status`` shows.

The running agent builds a :class:`StatusSnapshot` every few seconds and writes
it with :func:`write_status` (a temporary file in the same folder, then an
atomic rename, so a reader never sees half a file) and serves it on the
exporter's ``/status`` route. :func:`read_status` and :func:`fetch_status`
read it back; a missing file raises :class:`NoAgentError`.

:class:`HealthReport` is the answer of the exporter's ``/health`` route: healthy or not, and why.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import EdgeError

SCHEMA_VERSION = 1


class StatusError(EdgeError, ValueError):
    """A status file or response is unreadable or not a status snapshot."""


class NoAgentError(StatusError):
    """No status file: no agent is running with this configuration."""


@dataclass(frozen=True)
class StreamStatus:
    """One device stream as the agent sees it now. ``None``: not known yet."""

    device_id: str
    patient_id: str
    transport: str
    connected: bool
    last_frame_age_s: float | None = None
    heart_rate_bpm: float | None = None
    sqi: float | None = None
    """Signal-quality index, 0 (unusable) to 1 (clean)."""
    leads_off: tuple[str, ...] = ()
    battery_pct: float | None = None


@dataclass(frozen=True)
class StatusSnapshot:
    """The whole agent: identity, uptime, streams, outbox and alerts. Times are Unix seconds."""

    gateway_id: str
    started_at: float
    written_at: float
    interval_s: float
    """How often the agent writes a snapshot; one older than a few intervals is stale."""
    streams: tuple[StreamStatus, ...] = ()
    outbox_depth: dict[str, int] = field(default_factory=dict)
    """Messages waiting per kind (alert, status, window)."""
    alerts_active: int = 0
    version: str = ""

    @property
    def uptime_s(self) -> float:
        """Seconds the agent had run when it wrote this snapshot."""
        return self.written_at - self.started_at

    def age_s(self, now: float) -> float:
        """Seconds since the snapshot was written."""
        return max(0.0, now - self.written_at)

    def stale(self, now: float) -> bool:
        """Whether the agent has missed three writes (it has probably stopped)."""
        return self.age_s(now) > 3 * self.interval_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with ``schema_version``."""
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, doc: Any) -> StatusSnapshot:
        """Inverse of :meth:`to_dict`; raises :class:`StatusError` on anything else."""
        if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
            raise StatusError(f"not a status snapshot of schema version {SCHEMA_VERSION}")
        try:
            fields = {k: v for k, v in doc.items() if k != "schema_version"}
            streams = tuple(StreamStatus(**{**s, "leads_off": tuple(s.get("leads_off", ()))}) for s in fields.pop("streams", ()))
            snapshot = cls(**fields, streams=streams)
        except (TypeError, AttributeError) as exc:
            raise StatusError(f"malformed status snapshot: {exc}") from None
        if not all(isinstance(x, int | float) and math.isfinite(x) for x in
                   (snapshot.started_at, snapshot.written_at, snapshot.interval_s)):
            raise StatusError("malformed status snapshot: times must be numbers")
        if not isinstance(snapshot.outbox_depth, dict) or not all(
                isinstance(v, int) for v in snapshot.outbox_depth.values()):
            raise StatusError("malformed status snapshot: outbox_depth must map kinds to counts")
        return snapshot


@dataclass(frozen=True)
class HealthReport:
    """Whether the gateway takes data now (``/health``: 200 when ``healthy``, else 503), with the reasons
    it does not (``problems``: one line each) and what was checked (``checks``: JSON-ready values)."""

    healthy: bool
    problems: tuple[str, ...] = ()
    checks: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"status": "ok" if self.healthy else "unhealthy", "problems": list(self.problems), "checks": self.checks}


def write_status(path: str | Path, snapshot: StatusSnapshot) -> None:
    """Write ``snapshot`` as JSON to ``path`` atomically (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(snapshot.to_dict(), f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_status(path: str | Path) -> None:
    """Remove the status file on a clean shutdown (a stopped agent leaves none)."""
    Path(path).unlink(missing_ok=True)


def read_status(path: str | Path) -> StatusSnapshot:
    """Read a status file; :class:`NoAgentError` if there is none, :class:`StatusError` if it is not one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NoAgentError(f"no running edge agent found (no status file at {path})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StatusError(f"cannot read status file {path}: {exc}") from None
    return _parse(text, str(path))


def fetch_status(host: str, port: int, timeout_s: float = 2.0) -> StatusSnapshot:
    """Ask a running agent's exporter (``http://host:port/status``); ``OSError`` if it does not answer."""
    url = f"http://{host}:{port}/status"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - http to a configured host
        return _parse(response.read().decode("utf-8", errors="replace"), url)


def _parse(text: str, source: str) -> StatusSnapshot:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StatusError(f"{source}: not JSON: {exc}") from None
    try:
        return StatusSnapshot.from_dict(doc)
    except StatusError as exc:
        raise StatusError(f"{source}: {exc}") from None
