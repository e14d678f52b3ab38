"""Issue 13: the edge's device allow-list and patient map come from the cloud's registry.

``ecgstream cloud registry export-devices`` reads a real :class:`~cloud.store.Store` (SQLite) and the
broker accounts file; the edge loads what it wrote through its own config reader and a real agent
refuses an unlisted device as ``unknown_device`` and maps a listed one to its patient.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cloud.store import Store, upgrade_database
from ecgstream.cli import cli
from ecgstream.edge_sim import GATEWAY_T0_S
from edge.agent import AgentConfig, EdgeAgent, MemorySink
from edge.config import parse_config
from protocol.ble_frame import EcgFrame, encode_frame


def _frame(seq: int) -> bytes:
    counts = np.rint(np.sin(np.arange(36) / 5.0)[:, None].repeat(3, axis=1) * 400).astype(np.int16)
    return encode_frame(EcgFrame(seq, seq * 144_000, 250, ("II", "V1", "V5"), counts, lsb_nv=2500))


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cloud database with two gateways' patients, their devices, and an unassigned device."""
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_database(url)

    async def register() -> None:
        async with Store(url) as store:
            for patient in ("pat-a", "pat-b", "pat-c"):
                await store.add_patient(patient)
            await store.add_device("dev-a1", "pat-a")
            await store.add_device("dev-a2", "pat-a")
            await store.add_device("dev-b1", "pat-b")
            await store.add_device("dev-c1", "pat-c")             # another gateway's patient
            await store.add_device("dev-spare")                   # worn by nobody

    asyncio.run(register())
    monkeypatch.setenv("ECGSTREAM_CLOUD__DATABASE__URL", url)
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('services = ["cloud-ingest"]\n[gateways.gw-1]\npatients = ["pat-a", "pat-b"]\n'
                        '[gateways.gw-2]\npatients = ["pat-c"]\n')
    return accounts


def test_the_exported_registry_admits_the_gateways_devices_as_their_patients_and_refuses_others(
        tmp_path: Path, registry: Path) -> None:
    allowed, patients = tmp_path / "allowed.txt", tmp_path / "patients.toml"
    run = CliRunner().invoke(cli, ["cloud", "registry", "export-devices", "--gateway", "gw-1", "--accounts",
                                   str(registry), "--out", str(allowed), "--patients-out", str(patients)])
    assert run.exit_code == 0, run.output
    assert "3 device(s)" in run.output

    config = parse_config(f'[ingest]\nallowed_devices_file = "{allowed}"\n' + patients.read_text())
    assert config.ingest.allowed_device_ids() == {"dev-a1", "dev-a2", "dev-b1"}
    agent = EdgeAgent(AgentConfig.from_edge_config(config), MemorySink())
    for i in range(20):
        for device in ("dev-a1", "dev-b1", "dev-c1", "dev-spare", "stranger"):
            agent.feed(device, _frame(i), "frame", GATEWAY_T0_S + (i + 1) * 36 / 250, transport="mqtt")
    assert {d: s.patient_id for d, s in agent.sessions.items()} == {"dev-a1": "pat-a", "dev-b1": "pat-b"}
    assert agent.counters.rejected == {"unknown_device": 3 * 20}


def test_a_gateway_without_a_patient_list_gets_every_assigned_device_and_an_unknown_gateway_is_an_error(
        tmp_path: Path, registry: Path) -> None:
    allowed = tmp_path / "allowed.txt"
    run = CliRunner().invoke(cli, ["cloud", "registry", "export-devices", "--gateway", "gw-all",
                                   "--out", str(allowed)])
    assert run.exit_code == 0, run.output
    config = parse_config(f'[ingest]\nallowed_devices_file = "{allowed}"\n')
    assert config.ingest.allowed_device_ids() == {"dev-a1", "dev-a2", "dev-b1", "dev-c1"}

    unknown = CliRunner().invoke(cli, ["cloud", "registry", "export-devices", "--gateway", "gw-9", "--accounts",
                                       str(registry), "--out", str(tmp_path / "x.txt")])
    assert unknown.exit_code == 1 and "gw-9" in unknown.output and not (tmp_path / "x.txt").exists()
