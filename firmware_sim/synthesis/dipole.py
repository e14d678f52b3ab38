"""The cardiac dipole as a sum of 3-D Gaussian waves, and its fast rendering.

A complex (a P wave, or a QRS-T) is a :class:`WaveSet`: K Gaussian kernels in time, each with a
Frank-coordinate vector (X right→left, Y head→foot, Z front→back, in mV). A beat places a WaveSet at
a fiducial time; the repolarisation waves (ST, T) are stretched in time with the preceding RR
interval so that the QT interval follows Fridericia's law.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

KERNEL_HALF_WIDTH = 5.0
"""Each Gaussian is evaluated over ±5 standard deviations (truncation below 4e-6 of its peak)."""


@dataclass(frozen=True, eq=False)
class WaveSet:
    """Gaussian waves of one complex; times are relative to its fiducial point (s).

    ``centers_s``/``widths_s`` have shape (K,), ``vectors_mv`` (K, 3) in Frank X, Y, Z (mV).
    ``repolarisation`` marks the waves that stretch with the QT interval. ``qtc_s`` is the
    rate-corrected QT of this complex (0 when it has no repolarisation waves).
    """

    centers_s: np.ndarray
    widths_s: np.ndarray
    vectors_mv: np.ndarray
    repolarisation: np.ndarray
    qtc_s: float = 0.0

    @cached_property
    def onset_s(self) -> float:
        """Start of the depolarisation waves relative to the fiducial (s, ≤ 0 for a QRS)."""
        dep = ~self.repolarisation
        return float(np.min(self.centers_s[dep] - 2.5 * self.widths_s[dep]))

    @cached_property
    def t_end_s(self) -> float:
        """End of the repolarisation waves at a repolarisation scale of 1 (s after the fiducial)."""
        rep = self.repolarisation
        if not rep.any():
            return 0.0
        return float(np.max(self.centers_s[rep] + 2.5 * self.widths_s[rep]))

    def repolarisation_scale(self, rr_s: float) -> float:
        """Time stretch of the ST-T waves after an RR interval of ``rr_s`` seconds (QT = QTc·RR^⅓)."""
        if self.qtc_s <= 0.0:
            return 1.0
        rr = min(max(rr_s, 0.25), 2.5)
        qt = self.qtc_s * rr ** (1.0 / 3.0)
        return (qt + self.onset_s) / self.t_end_s

    def rotated(self, rotation: np.ndarray) -> WaveSet:
        """This WaveSet with its vectors rotated by a 3×3 matrix (Frank X, Y, Z)."""
        return WaveSet(self.centers_s, self.widths_s, self.vectors_mv @ rotation.T, self.repolarisation, self.qtc_s)


def waveset(rows: Sequence[tuple[float, float, tuple[float, float, float], bool]], qtc_s: float = 0.0) -> WaveSet:
    """Build a WaveSet from rows ``(center_s, width_s, (x, y, z) mV, is_repolarisation)``."""
    return WaveSet(
        centers_s=np.array([r[0] for r in rows], dtype=float),
        widths_s=np.array([r[1] for r in rows], dtype=float),
        vectors_mv=np.array([r[2] for r in rows], dtype=float).reshape(-1, 3),
        repolarisation=np.array([r[3] for r in rows], dtype=bool),
        qtc_s=qtc_s,
    )


@dataclass(slots=True)
class Placement:
    """One complex placed in time: fiducial ``time_s``, amplitude gain, ST-T time stretch."""

    time_s: float
    waves: WaveSet
    gain: float = 1.0
    repolarisation_scale: float = 1.0
    label: str = ""
    extent_s: tuple[float, float] = field(default=(0.0, 0.0))

    def __post_init__(self) -> None:
        w = self.waves
        stretch = np.where(w.repolarisation, self.repolarisation_scale, 1.0)
        lo = w.centers_s * stretch - KERNEL_HALF_WIDTH * w.widths_s * stretch
        hi = w.centers_s * stretch + KERNEL_HALF_WIDTH * w.widths_s * stretch
        self.extent_s = (self.time_s + float(lo.min()), self.time_s + float(hi.max()))


def render(placements: Sequence[Placement], n0: int, n: int, fs: float) -> np.ndarray:
    """Sum the placed complexes over samples ``n0 … n0+n-1`` at ``fs`` Hz → dipole (n, 3) in mV."""
    out = np.zeros((n, 3))
    if not placements:
        return out
    groups: dict[int, list[Placement]] = {}
    for p in placements:
        groups.setdefault(id(p.waves), []).append(p)
    centers, widths, vectors = [], [], []
    for members in groups.values():
        w = members[0].waves
        t = np.array([p.time_s for p in members])
        g = np.array([p.gain for p in members])
        s = np.array([p.repolarisation_scale for p in members])
        stretch = np.where(w.repolarisation[None, :], s[:, None], 1.0)
        centers.append((t[:, None] + w.centers_s[None, :] * stretch).ravel())
        widths.append((w.widths_s[None, :] * stretch).ravel())
        vectors.append((g[:, None, None] * w.vectors_mv[None, :, :]).reshape(-1, 3))
    order = np.argsort(np.concatenate(centers), kind="stable")   # chunk-independent summation order
    c = np.concatenate(centers)[order]
    wd = np.concatenate(widths)[order]
    v = np.concatenate(vectors)[order]
    # kernels are evaluated over a window sized to their width class (powers of two), not the widest
    half = np.ceil(KERNEL_HALF_WIDTH * wd * fs).astype(np.int64)
    width_class = np.ceil(np.log2(np.maximum(half, 1))).astype(np.int64)
    out = np.zeros((n, 3))
    if n == 0:
        return out
    for k in np.unique(width_class):
        sel = width_class == k
        h = 1 << int(k)
        first = np.rint(c[sel] * fs).astype(np.int64) - h - n0            # chunk-relative
        idx = first[:, None] + np.arange(2 * h + 1)[None, :]             # (W, L)
        z = ((idx + n0) / fs - c[sel, None]) / wd[sel, None]
        g = np.exp(-0.5 * z * z)
        g[(idx < 0) | (idx >= n) | (np.abs(z) > KERNEL_HALF_WIDTH)] = 0.0
        flat = np.clip(idx, 0, n - 1).ravel()
        for axis in range(3):
            out[:, axis] += np.bincount(flat, weights=(g * v[sel, axis, None]).ravel(), minlength=n)
    return out
