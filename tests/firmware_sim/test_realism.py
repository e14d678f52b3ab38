"""Synthetic 12-lead ECGs look like real ones: inter-lead correlation and lead amplitudes.

Compares a synthetic population with the rhythm mix of the CinC 2021 sample records
(``../shared/data/cinc2021``). The records are only measured; nothing is fitted to them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim.synthesis.realism import RealismReport, realism_report
from protocol.leads import STANDARD_LEADS

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


@pytest.fixture(scope="module")
def report(data: Path) -> RealismReport:
    return realism_report(data / "cinc2021", seed=0)


def test_inter_lead_correlation_close_to_real(report: RealismReport) -> None:
    assert report.real.n_records >= 30 and report.synthetic.n_records == report.real.n_records
    assert report.frobenius_distance <= 3.0, report.format()


def test_lead_amplitudes_close_to_real(report: RealismReport) -> None:
    ratios = report.amplitude_ratio
    assert set(ratios) == set(STANDARD_LEADS)
    assert all(0.7 <= r <= 1.4 for r in ratios.values()), report.format()


def test_report_is_readable_and_serialisable(report: RealismReport) -> None:
    import json

    text = report.format()
    assert "Frobenius" in text and all(lead in text for lead in STANDARD_LEADS)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["frobenius_distance"] == pytest.approx(report.frobenius_distance)
    assert sum(d["rhythm_mix"].values()) == report.real.n_records
