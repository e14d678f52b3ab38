"""Clock drift estimation from the simulator's drifting device clock and jittery link."""

from __future__ import annotations

import numpy as np
import pytest

from edge.stream import ClockEstimator
from firmware_sim.faults import FaultConfig, FaultInjector
from firmware_sim.packetizer import DeviceClock

FS, SPF = 250, 36


def pairs(drift_ppm: float, jitter_s: float, seconds: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(device µs of each frame's last sample, gateway arrival s, true s) after the injector's jitter."""
    k = int(seconds * FS / SPF)
    true_end = (np.arange(k) + 1) * SPF / FS
    clock = DeviceClock(offset_us=123_456_789, drift_ppm=drift_ppm)
    inj: FaultInjector = FaultInjector(FaultConfig(seed=seed, jitter_mean_s=jitter_s / 3, jitter_max_s=jitter_s),
                                       SPF / FS)
    release = np.array([d.release_s for d in inj.route(list(range(k)), true_end, np.arange(k), SPF)])
    return clock.stamp_us(true_end).astype(np.float64), 1.7e9 + 0.03 + release, true_end


@pytest.mark.parametrize(("drift", "jitter", "seed"), [(120.0, 0.05, 1), (-200.0, 0.05, 2), (50.0, 0.02, 3),
                                                       (200.0, 0.05, 4), (-75.0, 0.03, 5)])
def test_drift_within_10_ppm_after_3_minutes(drift: float, jitter: float, seed: int) -> None:
    t_dev, arrival, true_end = pairs(drift, jitter, 180.0, seed)
    est = ClockEstimator()
    for t, a in zip(t_dev, arrival, strict=True):
        est.update(t, a)
    assert est.ready
    assert abs(est.drift_ppm - drift) < 10.0
    mapped = np.array([est.to_gateway(t) for t in t_dev[-500:]])
    assert np.abs(mapped - (1.7e9 + 0.03 + true_end[-500:])).max() < 0.005  # 5 ms, includes min latency


def test_young_estimate_reports_no_drift_and_tracks_offset() -> None:
    t_dev, arrival, _ = pairs(150.0, 0.05, 20.0, 6)
    est = ClockEstimator()
    for t, a in zip(t_dev, arrival, strict=True):
        est.update(t, a)
    assert not est.ready and est.drift_ppm == 0.0
    assert abs(est.offset_s - (1.7e9 + 0.03 - 123.456789)) < 0.005


def test_reset_and_bad_input() -> None:
    est = ClockEstimator()
    with pytest.raises(ValueError):
        est.to_gateway(0.0)
    est.update(float("nan"), 1.0)
    assert est.n_pairs == 0
    est.update(1e6, 10.0)
    assert est.to_gateway(2e6) == pytest.approx(11.0)
    est.reset()
    assert est.n_pairs == 0
