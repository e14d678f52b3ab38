"""Streaming, stateful IIR filters for ECG packets: baseline removal, powerline notch, low-pass.

Every filter here is a cascade of second-order sections run by :func:`scipy.signal.sosfilt` with its
state carried from packet to packet, so filtering a stream packet by packet gives bit for bit what
one ``sosfilt`` call over the whole signal gives (same coefficients, same initial state). All leads
of a packet are filtered in one call. Units: samples in mV, frequencies in Hz.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

try:  # the kernel behind scipy.signal.sosfilt; its checks and axis juggling cost more than the filtering
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_kernel
except ImportError:  # pragma: no cover - another scipy layout: the public function does the same
    _sosfilt_kernel = None

NOTCH_Q = 30.0
"""Quality factor of the powerline notch: −3 dB width = f0 / Q (≈1.7 Hz at 50 Hz)."""


@dataclass(frozen=True)
class FilterSpec:
    """Which filters a chain applies (Hz; ``None`` leaves a stage out).

    ``baseline_hz``: cut-off of the causal Butterworth high-pass that removes baseline wander
    (order ``baseline_order``). ``notch_hz``: mains frequency (50 or 60) of an IIR notch (Q =
    :data:`NOTCH_Q`). ``lowpass_hz``: cut-off of an optional Butterworth low-pass (order
    ``lowpass_order``) against muscle noise. Each frequency must lie below the Nyquist frequency.
    """

    baseline_hz: float | None = 0.5
    notch_hz: float | None = 50.0
    lowpass_hz: float | None = None
    baseline_order: int = 2
    lowpass_order: int = 2

    def sos(self, fs: float) -> np.ndarray:
        """The whole chain as second-order sections, shape ``(sections, 6)``, at ``fs`` (Hz)."""
        if not np.isfinite(fs) or fs <= 0:
            raise ValueError(f"sampling rate must be a positive number of Hz, got {fs!r}")
        nyquist = fs / 2.0
        for name in ("baseline_hz", "notch_hz", "lowpass_hz"):
            f = getattr(self, name)
            if f is not None and not 0.0 < f < nyquist:
                raise ValueError(f"FilterSpec.{name}={f} Hz must lie in (0, {nyquist:g}) Hz at fs={fs:g} Hz "
                                 f"(use None to leave that stage out)")
        return _chain_sos(self, float(fs)).copy()


@functools.lru_cache(maxsize=64)
def _chain_sos(spec: FilterSpec, fs: float) -> np.ndarray:
    parts = [np.zeros((0, 6))]
    if spec.baseline_hz is not None:
        parts.append(_butter_sos(spec.baseline_order, spec.baseline_hz, "highpass", fs))
    if spec.notch_hz is not None:
        b, a = sps.iirnotch(spec.notch_hz, NOTCH_Q, fs=fs)
        parts.append(sps.tf2sos(b, a))
    if spec.lowpass_hz is not None:
        parts.append(_butter_sos(spec.lowpass_order, spec.lowpass_hz, "lowpass", fs))
    return np.concatenate(parts)


def butter_sos(order: int, wn: float | tuple[float, float], btype: str, fs: float) -> np.ndarray:
    """``scipy.signal.butter(order, wn, btype, fs=fs, output="sos")``, designed once per arguments (every
    new stream designs the same few filters, and a design costs more than a second of filtering); a
    copy of the cached design, so callers may own it."""
    return _butter_sos(order, wn, btype, fs).copy()


@functools.lru_cache(maxsize=64)
def _butter_sos(order: int, wn: float | tuple[float, float], btype: str, fs: float) -> np.ndarray:
    return sps.butter(order, wn, btype=btype, fs=fs, output="sos")


def sosfilt_axis0(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.sosfilt(sos, x, axis=0, zi=zi)`` for float64 ``sos``, ``x`` and ``zi``.

    The same kernel on the same copies (so the same numbers bit for bit), without the per-call input
    validation and array-namespace dispatch, which cost several times the filtering of one BLE frame
    or one beat. Anything else (another dtype, no kernel) goes to ``scipy.signal.sosfilt``.
    """
    if (_sosfilt_kernel is None or x.dtype != np.float64 or zi.dtype != np.float64 or sos.dtype != np.float64
            or x.ndim == 0 or sos.ndim != 2 or sos.shape[1] != 6 or zi.shape != (sos.shape[0], 2, *x.shape[1:])):
        return sps.sosfilt(sos, x, axis=0, zi=zi)  # type: ignore[no-any-return]
    n_sections = sos.shape[0]
    if x.ndim == 2:   # (n, leads): the kernel wants one C-contiguous row per lead
        y = np.array(x.T, dtype=np.float64, order="C")                            # copied: filtered in place
        z = np.array(zi.transpose(2, 0, 1), dtype=np.float64, order="C")          # copied: the caller keeps zi
        _sosfilt_kernel(sos if sos.flags.c_contiguous else np.ascontiguousarray(sos), y, z)
        return y.T, z.transpose(1, 2, 0)
    if x.ndim == 1:
        y = np.array(x[None, :], dtype=np.float64, order="C")
        z = np.array(zi[None], dtype=np.float64, order="C")
        _sosfilt_kernel(sos if sos.flags.c_contiguous else np.ascontiguousarray(sos), y, z)
        return y[0], z[0]
    xt = np.moveaxis(x, 0, -1)
    x_shape = xt.shape
    y = np.array(xt.reshape(-1, x_shape[-1]), dtype=np.float64, order="C")
    zt = np.moveaxis(zi, (0, 1), (-2, -1))
    z_shape = zt.shape
    z = np.array(zt.reshape(-1, n_sections, 2), dtype=np.float64, order="C")
    _sosfilt_kernel(np.ascontiguousarray(sos), y, z)
    return np.moveaxis(y.reshape(x_shape), -1, 0), np.moveaxis(z.reshape(z_shape), (-2, -1), (0, 1))


class SosStream:
    """One cascade of second-order sections applied packet by packet to ``n_leads`` leads.

    ``initial="steady"`` starts the state as if the first sample of each lead had been applied
    forever (no start-up step from a DC offset); ``"zero"`` starts from rest. Either way the output
    equals ``sosfilt(sos, whole, axis=0, zi=stream.initial_state(whole[0]))``.
    """

    def __init__(self, sos: np.ndarray, n_leads: int, *, initial: str = "steady") -> None:
        if initial not in ("steady", "zero"):
            raise ValueError(f"initial must be 'steady' or 'zero', not {initial!r}")
        if n_leads < 1:
            raise ValueError(f"n_leads must be ≥ 1, got {n_leads}")
        self.sos = np.asarray(sos, dtype=np.float64)
        self.n_leads = n_leads
        self.initial = initial
        self._zi: np.ndarray | None = None

    def initial_state(self, first: np.ndarray) -> np.ndarray:
        """The state, shape ``(sections, 2, n_leads)``, the stream starts from given its first samples."""
        first = np.asarray(first, dtype=np.float64).reshape(self.n_leads)
        if self.sos.shape[0] == 0 or self.initial == "zero":
            return np.zeros((self.sos.shape[0], 2, self.n_leads))
        return sps.sosfilt_zi(self.sos)[:, :, None] * first[None, None, :]

    def process(self, packet: np.ndarray) -> np.ndarray:
        """Filter one packet ``(n, n_leads)`` (or ``(n,)`` for one lead); returns the same shape, float64."""
        x = np.asarray(packet, dtype=np.float64)
        one_lead = x.ndim == 1
        if one_lead:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.n_leads:
            raise ValueError(f"packet must have shape (n, {self.n_leads}), got {np.shape(packet)}")
        if x.shape[0] == 0 or self.sos.shape[0] == 0:
            return x[:, 0].copy() if one_lead else x.copy()
        if self._zi is None:
            self._zi = self.initial_state(x[0])
        y, self._zi = sosfilt_axis0(self.sos, x, self._zi)
        return y[:, 0] if one_lead else y

    def reset(self) -> None:
        """Forget the state: the next packet starts a new stream."""
        self._zi = None


class EcgFilter(SosStream):
    """The edge's ECG filter chain (see :class:`FilterSpec`) for ``n_leads`` leads sampled at ``fs`` Hz."""

    def __init__(self, fs: float, n_leads: int, spec: FilterSpec | None = None, *, initial: str = "steady") -> None:
        self.fs = float(fs)
        self.spec = spec or FilterSpec()
        super().__init__(self.spec.sos(self.fs), n_leads, initial=initial)


class ZeroPhase:
    """``scipy.signal.sosfiltfilt(sos, x, axis=0)`` with the filter's initial-state vector computed once.

    ``sosfiltfilt`` solves for that vector (``sosfilt_zi``) on every call, which costs more than the
    filtering itself on the short segments the edge filters per beat or per quality window; here it
    is solved at construction. Same odd extension and default pad length, so the output equals
    ``sosfiltfilt``'s to rounding.
    """

    def __init__(self, sos: np.ndarray) -> None:
        self.sos = np.asarray(sos, dtype=np.float64)
        self._zi = sps.sosfilt_zi(self.sos)                      # (sections, 2)
        zeros = min(int((self.sos[:, 2] == 0).sum()), int((self.sos[:, 5] == 0).sum()))
        self.padlen = 3 * (2 * len(self.sos) + 1 - zeros)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Filter forward and backward along axis 0 of ``x`` (1-D, or 2-D with channels in columns)."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] <= self.padlen:
            raise ValueError(f"need more than {self.padlen} samples, got {x.shape[0]}")
        ext = np.concatenate([2 * x[:1] - x[self.padlen:0:-1], x, 2 * x[-1:] - x[-2:-self.padlen - 2:-1]])
        zi = self._zi.reshape(self._zi.shape + (1,) * (x.ndim - 1))
        y, _ = sosfilt_axis0(self.sos, ext, zi * ext[:1])
        y = y[::-1]
        y, _ = sosfilt_axis0(self.sos, y, zi * y[:1])
        return y[::-1][self.padlen:-self.padlen]
