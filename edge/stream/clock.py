"""Device clock (µs) to gateway clock (s): online offset + drift fit on the lower envelope of delays.

Each frame gives one pair (device time of its last sample, gateway arrival
time). Arrival = gateway time of the sample + link delay, and the delay is
positive with a long tail (BLE connection events, retries, MQTT queues). The
fastest frames are the ones with a delay close to the fixed minimum, so the
estimator keeps, per *bucket* of ``bucket_s`` seconds of device time, only the
pair with the smallest apparent delay ``arrival - device time``, and fits a
line through those minima by least squares, with one pass that discards
minima more than 3 robust standard deviations above the line (a bucket in
which every frame was late, e.g. around a reconnect). Drift is fitted only
once the buckets span ``min_span_s`` (60 s; before, the offset alone), and
clamped to ``±max_drift_ppm`` (1000; quartz is within ±100), so a young or
wild fit never distorts gap sizing. The last ``max_buckets``
buckets are kept, so the fit follows slow changes of drift (temperature).

Model: ``gateway_s = a + (1 + k) · device_s``. The device drift reported is
``drift_ppm = (1 / (1 + k) − 1) · 1e6``: positive when the device clock runs
fast (the convention of the simulator's ``DeviceClock``). The gateway time
returned by :meth:`ClockEstimator.to_gateway` includes the minimum link
latency, which a one-way link cannot separate from the clock offset.

Accuracy: the slope error is about ``σ_min · √12 / (T · √n)`` for ``n`` buckets
over ``T`` seconds, where ``σ_min`` is the spread of the per-bucket minimum
delay (≈ mean jitter / frames per bucket); with 50 ms jitter tails and 10 s
buckets of 70 frames that is well under 10 ppm after 2 minutes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

_TRIM_SIGMAS = 3.0
_MIN_SIGMA_S = 1e-4


@dataclass
class _Bucket:
    """The pair with the least apparent delay in one bucket (x: device s after the reference)."""

    index: int
    x_s: float
    delay_s: float


class ClockEstimator:
    """Online device → gateway clock mapping. Times: device µs in, gateway seconds out."""

    def __init__(
        self, bucket_s: float = 10.0, max_buckets: int = 60, min_span_s: float = 60.0, max_drift_ppm: float = 1000.0
    ) -> None:
        if bucket_s <= 0 or max_buckets < 2 or min_span_s < 0 or max_drift_ppm <= 0:
            raise ValueError("bucket_s and max_drift_ppm must be > 0, max_buckets >= 2, min_span_s >= 0")
        self.bucket_s = bucket_s
        self.max_buckets = max_buckets
        self.min_span_s = min_span_s
        self.max_drift_ppm = max_drift_ppm
        self.reset()

    def reset(self) -> None:
        """Forget everything (device clock reset or restart)."""
        self._ref_us: float | None = None
        self._ref_gw_s = 0.0
        self._buckets: deque[_Bucket] = deque()
        self._a = 0.0
        self._k = 0.0
        self.n_pairs = 0

    @property
    def ready(self) -> bool:
        """True once the buckets span ``min_span_s`` of device time (before that, drift is 0: offset only)."""
        return len(self._buckets) >= 2 and self._buckets[-1].x_s - self._buckets[0].x_s >= self.min_span_s

    @property
    def drift_ppm(self) -> float:
        """Estimated device clock rate error relative to the gateway, ppm (positive: device fast)."""
        return (1.0 / (1.0 + self._k) - 1.0) * 1e6

    @property
    def offset_s(self) -> float:
        """Gateway time minus device time (s) at the first device timestamp seen (0 before any)."""
        return 0.0 if self._ref_us is None else self._ref_gw_s + self._a - self._ref_us * 1e-6

    def to_gateway(self, t_device_us: float) -> float:
        """Gateway time (s, the arrival clock's scale) of device time ``t_device_us`` (µs)."""
        if self._ref_us is None:
            raise ValueError("clock has no pairs yet: call update() first")
        x = (t_device_us - self._ref_us) * 1e-6
        return self._ref_gw_s + self._a + (1.0 + self._k) * x

    def update(self, t_device_us: float, arrival_s: float) -> None:
        """Add one (device time µs, gateway arrival s) pair and refit when a bucket improves."""
        if not (math.isfinite(t_device_us) and math.isfinite(arrival_s)):
            return
        if self._ref_us is None:
            self._ref_us, self._ref_gw_s = float(t_device_us), float(arrival_s)
        self.n_pairs += 1
        x = (t_device_us - self._ref_us) * 1e-6
        delay = (arrival_s - self._ref_gw_s) - x
        index = math.floor(x / self.bucket_s)
        newest = self._buckets[-1] if self._buckets else None     # nearly every pair lands in the newest bucket
        bucket = newest if newest is not None and newest.index == index else next(
            (b for b in reversed(self._buckets) if b.index == index), None)
        if bucket is None:
            if self._buckets and index < self._buckets[0].index:
                return
            self._buckets.append(_Bucket(index, x, delay))
            self._buckets = deque(sorted(self._buckets, key=lambda b: b.index))
            while len(self._buckets) > self.max_buckets:
                self._buckets.popleft()
        elif delay < bucket.delay_s:
            bucket.x_s, bucket.delay_s = x, delay
        else:
            return
        self._fit()

    def _fit(self) -> None:
        x = np.array([b.x_s for b in self._buckets])
        y = np.array([b.delay_s for b in self._buckets])
        if not self.ready:
            self._a, self._k = float(y.min()), 0.0
            return
        slope, intercept = np.polyfit(x, y, 1)
        resid = y - (intercept + slope * x)
        sigma = max(1.4826 * float(np.median(np.abs(resid - np.median(resid)))), _MIN_SIGMA_S)
        keep = resid <= _TRIM_SIGMAS * sigma
        if 2 <= keep.sum() < len(x) and np.ptp(x[keep]) >= self.min_span_s:
            slope, intercept = np.polyfit(x[keep], y[keep], 1)
        limit = self.max_drift_ppm * 1e-6
        if abs(slope) > limit:
            slope = float(np.clip(slope, -limit, limit))
            intercept = float(np.min(y - slope * x))
        self._a, self._k = float(intercept), float(slope)
