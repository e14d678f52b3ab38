"""What each kind of virtual wearable is: rate, leads, sample encoding, frame size, battery.

Three profiles ship:

``ecgstream-250``
    The ecgstream wearable (leads II, V1, V5) at 250 Hz, int16 at 1 µV per count
    (±32.767 mV, ample for an AC-coupled ECG; a railed input saturates it as on a
    real front end). 36 samples per lead fit one 244-byte BLE frame.
``ecgstream-500``
    The same wearable at 500 Hz with a finer 0.25 µV LSB, so int24 (±2.1 V range);
    24 samples per lead per frame.
``polar-h10``
    Polar H10 chest strap: one channel at 130 Hz, int24 in µV, 73 samples per PMD
    notification (10-byte header + 219 bytes). The strap measures a modified
    chest lead between its two electrodes; it is labelled lead ``I`` here, the
    closest standard lead (roughly horizontal, left-positive). On BLE it speaks
    Polar's PMD format, which carries no sequence number, battery or lead-off
    flags: a receiver finds gaps from the PMD timestamps.

Battery drain is linear in time (constant streaming current), which is what a
wearable's coulomb counter reports to first order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from protocol.ble_frame import MAX_ATT_PAYLOAD, SampleFormat, max_samples_per_frame
from protocol.leads import STANDARD_LEADS, WEARABLE_LEADS

POLAR_PMD_SAMPLES_PER_FRAME = 73
"""Samples per Polar H10 PMD ECG notification (10-byte header + 73 × 3 bytes = 229 bytes)."""


class WireFormat(StrEnum):
    """What one BLE notification of a device carries."""

    ECGSTREAM = "ecgstream-ble-v1"
    """:mod:`protocol.ble_frame` frames (seq, timestamp, flags, CRC)."""
    POLAR_PMD = "polar-pmd"
    """:mod:`protocol.polar_pmd` ECG notifications (timestamp and µV samples only)."""


@dataclass(frozen=True)
class BatteryModel:
    """Linear drain: ``capacity_mah`` drained by a constant ``streaming_current_ma``."""

    capacity_mah: float
    streaming_current_ma: float
    start_pct: float = 100.0

    def __post_init__(self) -> None:
        if self.capacity_mah <= 0 or self.streaming_current_ma < 0:
            raise ValueError("battery capacity must be > 0 mAh and current >= 0 mA")
        if not 0 <= self.start_pct <= 100:
            raise ValueError(f"battery start_pct must be 0-100, got {self.start_pct}")

    @property
    def drain_pct_per_s(self) -> float:
        """Charge used per second of streaming, in percent of capacity."""
        return self.streaming_current_ma / self.capacity_mah / 3600.0 * 100.0

    def pct_at(self, t_s: float, speedup: float = 1.0) -> float:
        """Charge left (percent, 0-100) after ``t_s`` seconds of streaming, drain ``speedup``× faster."""
        return max(0.0, self.start_pct - self.drain_pct_per_s * speedup * t_s)

    def empty_at_s(self, speedup: float = 1.0) -> float:
        """Seconds of streaming until the battery is empty (``inf`` if it never drains)."""
        rate = self.drain_pct_per_s * speedup
        return float("inf") if rate <= 0 else self.start_pct / rate


@dataclass(frozen=True)
class DeviceProfile:
    """A kind of wearable. ``lsb_nv`` is nanovolts per count; ``samples_per_frame`` is per lead."""

    name: str
    fs_hz: int
    leads: tuple[str, ...]
    sample_format: SampleFormat
    lsb_nv: int
    samples_per_frame: int
    wire: WireFormat
    battery: BatteryModel
    status_interval_s: float = 5.0
    firmware: str = "ecgstream-sim 0.1"

    def __post_init__(self) -> None:
        if self.fs_hz <= 0:
            raise ValueError(f"profile {self.name!r}: fs_hz must be positive")
        if not self.leads or tuple(sorted(self.leads, key=STANDARD_LEADS.index)) != self.leads:
            raise ValueError(f"profile {self.name!r}: leads must be distinct standard leads in standard order")
        if not 0 < self.samples_per_frame <= 255:
            raise ValueError(f"profile {self.name!r}: samples_per_frame must be 1-255")
        if self.wire is WireFormat.ECGSTREAM and self.samples_per_frame > self.max_ble_samples_per_frame:
            raise ValueError(
                f"profile {self.name!r}: {self.samples_per_frame} samples per frame exceed the "
                f"{self.max_ble_samples_per_frame} that fit a {MAX_ATT_PAYLOAD}-byte BLE frame"
            )
        if self.status_interval_s <= 0:
            raise ValueError(f"profile {self.name!r}: status_interval_s must be positive")

    @property
    def n_leads(self) -> int:
        return len(self.leads)

    @property
    def max_ble_samples_per_frame(self) -> int:
        """Most samples per lead one ecgstream BLE frame holds for this lead count and format."""
        return max_samples_per_frame(self.n_leads, self.sample_format)

    @property
    def full_scale_mv(self) -> float:
        """Largest positive input the sample format represents, in mV (where a railed input sits)."""
        return self.sample_format.limits[1] * self.lsb_nv * 1e-6

    @property
    def frame_period_s(self) -> float:
        """Seconds of signal in one full frame."""
        return self.samples_per_frame / self.fs_hz


_WEARABLE_BATTERY = BatteryModel(capacity_mah=200.0, streaming_current_ma=2.5)
"""200 mAh Li-Po at 2.5 mA streaming: 80 h per charge."""
_POLAR_BATTERY = BatteryModel(capacity_mah=230.0, streaming_current_ma=0.6)
"""CR2025 coin cell at ~0.6 mA with ECG streaming: about 380 h."""

PROFILES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        DeviceProfile(
            name="ecgstream-250", fs_hz=250, leads=WEARABLE_LEADS, sample_format=SampleFormat.INT16,
            lsb_nv=1000, samples_per_frame=max_samples_per_frame(3, SampleFormat.INT16),
            wire=WireFormat.ECGSTREAM, battery=_WEARABLE_BATTERY,
        ),
        DeviceProfile(
            name="ecgstream-500", fs_hz=500, leads=WEARABLE_LEADS, sample_format=SampleFormat.INT24,
            lsb_nv=250, samples_per_frame=max_samples_per_frame(3, SampleFormat.INT24),
            wire=WireFormat.ECGSTREAM, battery=_WEARABLE_BATTERY,
        ),
        DeviceProfile(
            name="polar-h10", fs_hz=130, leads=("I",), sample_format=SampleFormat.INT24, lsb_nv=1000,
            samples_per_frame=POLAR_PMD_SAMPLES_PER_FRAME, wire=WireFormat.POLAR_PMD, battery=_POLAR_BATTERY,
            firmware="polar-h10-sim 3.0",
        ),
    )
}
"""Every shipped profile by name."""


def get_profile(name: str) -> DeviceProfile:
    """The profile called ``name``; raises ``ValueError`` naming the valid ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown device profile {name!r}; valid profiles: {', '.join(sorted(PROFILES))}") from None
