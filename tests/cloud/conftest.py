"""Database fixtures for the cloud tests: every storage test runs on SQLite and on PostgreSQL.

``database_url`` gives each test an empty database: a temporary SQLite file, or a fresh PostgreSQL
database on 127.0.0.1:5432 (user ``postgres``, trust auth; override with ``ECGSTREAM_TEST_PG``, a
libpq conninfo for the maintenance database) created for the test and dropped after it (creating
one costs ~50 ms). Without a reachable PostgreSQL the PostgreSQL half skips with the reason, except
under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cloud.store import Store, upgrade_database
from tests.conftest import skip_or_fail

PG_ADMIN = os.environ.get("ECGSTREAM_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
_RUN = uuid.uuid4().hex[:8]
_pg_state: dict[str, object] = {}


def _pg_admin():  # -> psycopg.Connection | None, with the reason remembered
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the cloud extra installs it
        _pg_state["error"] = f"psycopg is not installed ({exc})"
        return None
    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        _pg_state["error"] = f"PostgreSQL unreachable at {PG_ADMIN!r}: {str(exc).strip().splitlines()[0]}"
        return None


def _pg_url(dbname: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(PG_ADMIN)
    user = info.get("user", "postgres")
    auth = f"{user}:{info['password']}@" if info.get("password") else f"{user}@"
    return f"postgresql://{auth}{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{dbname}"


@pytest.fixture(scope="session")
def _pg_databases() -> Iterator[list[str]]:
    """Names of the PostgreSQL databases this run made; any a crashed test left are dropped at the end."""
    made: list[str] = []
    yield made
    if made and (admin := _pg_admin()) is not None:
        with admin:
            for name in made:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, _pg_databases: list[str]) -> Iterator[str]:
    """The URL of an empty database of each backend (not migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cloud.db'}"
        return
    if "error" in _pg_state:
        skip_or_fail(str(_pg_state["error"]))
    admin = _pg_admin()
    if admin is None:
        skip_or_fail(str(_pg_state["error"]))
    name = f"ecgstream_test_{_RUN}_{len(_pg_databases)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        _pg_databases.append(name)
        try:
            yield _pg_url(name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _pg_databases.remove(name)


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """``database_url`` with the schema migrated to head."""
    upgrade_database(database_url)
    return database_url


@pytest.fixture
async def store(migrated_url: str) -> AsyncIterator[Store]:
    """A Store on a migrated, empty database of each backend."""
    async with Store(migrated_url) as s:
        yield s


# -- builders shared by the storage tests ------------------------------------------------------

T0_US = 1_760_000_000_000_000  # a gateway Unix time in µs (2025)


def make_alert(patient_id: str = "pat-1", *, event: str | None = "raised", episode_id: str | None = None,
               alert_type: str = "vt", priority: str = "high", onset_us: int = T0_US, family: str = "vt",
               category: str = "clinical", alert_id: str | None = None, window_id: str | None = None,
               device_id: str = "dev-1"):
    """An Alert message as the edge's alarm engine sends it (``event=None``: no episode details)."""
    from protocol.messages import Alert, AlertCategory, Priority

    alert_id = alert_id or Alert.new_id()
    details: dict = {"rate_bpm": 182.0}
    if event is not None:
        details |= {"event": event, "episode_id": episode_id or alert_id, "family": family}
    return Alert(alert_id=alert_id, patient_id=patient_id, device_id=device_id, alert_type=alert_type,
                 category=AlertCategory(category), priority=Priority(priority), onset_gateway_us=onset_us,
                 onset_device_us=onset_us - T0_US + 5_000_000, window_id=window_id, message=f"{alert_type} {event}",
                 model_versions={"alarm_rules": "1", "classifier": "mamba-0.3"},
                 reconstructed_leads={"V2": 0.05, "aVF": 0.02}, details=details)


def make_window(patient_id: str = "pat-1", *, t0_us: int = T0_US, fs_hz: int = 500, seconds: float = 10.0,
                seed: int = 0, device_id: str = "dev-1", window_id: str | None = None, realistic: bool = False):
    """A 12-lead window with II, V1, V5 measured and nine leads reconstructed, with uncertainty."""
    import numpy as np

    from protocol.leads import STANDARD_LEADS
    from protocol.window_payload import EcgWindow

    n = int(round(seconds * fs_hz))
    rng = np.random.default_rng(seed)
    if realistic:
        from firmware_sim.synthesis.engine import synthesize

        mv = synthesize("sinus", seconds=seconds, fs=fs_hz, seed=seed).signals.T[:, :n]
    else:
        t = np.arange(n) / fs_hz
        mv = np.sin(2 * np.pi * 1.2 * t)[None, :] * rng.uniform(0.2, 1.5, (12, 1)) + rng.normal(0, 0.01, (12, n))
    samples = np.clip(np.rint(mv * 1000), -32768, 32767).astype(np.int16)  # lsb 1 µV
    reconstructed = tuple(lead for lead in STANDARD_LEADS if lead not in ("II", "V1", "V5"))
    base = rng.uniform(20, 80, (len(reconstructed), 1))
    unc = np.rint(base + 10 * np.abs(np.sin(np.arange(n) / fs_hz * 2 * np.pi * 1.2))[None, :]).astype(np.int16)
    return EcgWindow(window_id=window_id or EcgWindow.new_id(), patient_id=patient_id, device_id=device_id,
                     t0_us=t0_us, fs_hz=fs_hz, leads=STANDARD_LEADS, samples=samples, reconstructed=reconstructed,
                     uncertainty=unc, lsb_nv=1000)
