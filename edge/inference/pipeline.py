"""Windows in, uplink-ready 12-lead windows out: band-pass, 3→12 reconstruction, optional second stage.

:class:`InferencePipeline` puts each :class:`~edge.inference.windowing.Window`
through a :class:`~edge.inference.batcher.MicroBatcher`; one batch is, in the
worker thread: band-pass (:func:`~edge.inference.windowing.prepare_batch`, one
call), the reconstruction model on the chosen backend, then an optional second
stage (the arrhythmia classifier of issue 4, when it exists: anything that
implements :class:`SecondStage`, e.g. :class:`BackendStage` over its ONNX
backend), then one :class:`WindowResult` per window.

**What ships** (:attr:`WindowResult.ecg_window`, a :class:`protocol.window_payload.EcgWindow`):
the 12 leads in standard order at 125 Hz, **band-passed 0.5–40 Hz** (the domain
the model works in, so the 12 leads are mutually consistent: Einthoven holds),
as int16 counts of ``lsb_nv`` nV (default 1000: 1 µV per count, ±32.767 mV;
samples beyond are clipped and counted in :attr:`PipelineStats.clipped_samples`);
``reconstructed`` = the 9 leads the wearable does not measure, with the
model's uncertainty (half-width of its calibrated 90 % band) for each, in the
same counts. Where the patient has a calibration from their own 12-lead ECG
(``<calibration_dir>/<patient_id>.json``, :mod:`models.reconstruction.patient_calibration`), it corrects
the generic output and its band before the second stage, and the window's
model versions name it (``reconstruction_calibration``). The measured leads II, V1, V5 are the band-passed input,
quantised (the model passes them through unchanged). ``t0_us`` is the gateway
time (Unix µs) of the window's first sample. The float 12-lead array stays in
the result for the classifier and ST measurement.

**Masked windows** (:attr:`Window.gaps`, a short data gap spanned: see
:mod:`edge.inference.windowing`) ship with their gap ranges, the samples inside
them 0; the reconstruction runs over the linear fill (its output there is
masked too), and the second stage's output is withheld (``second_stage`` None,
counted in :attr:`PipelineStats.masked`): the classifier was trained on
contiguous windows and must not call a rhythm on a filled hole.

A window without the reconstruction's input leads (a device with other leads,
the Polar H10's lead I) is not for this pipeline (:meth:`InferencePipeline.takes`);
the agent ships its measured leads as they are.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.inference.backends import InferenceBackend
from edge.inference.batcher import BatcherStats, Completed, MicroBatcher
from edge.inference.windowing import Window, prepare_batch
from models.reconstruction.patient_calibration import CalibrationStore
from protocol.leads import STANDARD_LEADS, WEARABLE_LEADS
from protocol.window_payload import EcgWindow

INT16_MAX = 32767


class ReconstructionStage:
    """The 3→12 reconstruction model on a backend; lead names and version from the ONNX metadata."""

    def __init__(self, backend: InferenceBackend) -> None:
        self.backend = backend
        info: dict[str, Any] = {}
        raw = backend.metadata.get("ecgstream") if backend.metadata else None
        if raw:
            try:
                info = json.loads(raw)
            except ValueError:
                info = {}
        self.info = info
        self.inputs: tuple[str, ...] = tuple(info.get("inputs", WEARABLE_LEADS))
        self.outputs: tuple[str, ...] = tuple(info.get("outputs", STANDARD_LEADS))
        self.n_samples: int | None = int(info["samples"]) if "samples" in info else None
        self.fs: float | None = float(info["fs_hz"]) if "fs_hz" in info else None
        self.version = f"reconstruction_vae@{info.get('config_hash', 'unknown')}"
        self.input_name = backend.input_names[0]
        self.measured = tuple(lead for lead in self.outputs if lead in self.inputs)
        self.reconstructed = tuple(lead for lead in self.outputs if lead not in self.inputs)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x`` float32 ``(B, len(inputs), n)`` band-passed mV → ``leads12``, ``uncertainty`` ``(B, 12, n)``."""
        out = self.backend.run({self.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return out["leads12"], out["uncertainty"]


@dataclass(frozen=True, eq=False)
class StageBatch:
    """What a second stage sees for one batch (arrays batch first)."""

    windows: Sequence[Window]
    model_input: np.ndarray
    """``(B, 3, n)`` band-passed II, V1, V5, mV."""
    leads12: np.ndarray
    """``(B, 12, n)`` mV, :data:`lead_names` order."""
    uncertainty: np.ndarray
    lead_names: tuple[str, ...]


class SecondStage(Protocol):
    """A model stage after the reconstruction (the classifier of issue 4 plugs in here)."""

    name: str
    version: str

    def __call__(self, batch: StageBatch) -> Sequence[Mapping[str, Any]]:
        """One mapping of outputs per window, in batch order."""
        ...


class BackendStage:
    """A second stage that runs an :class:`~edge.inference.backends.InferenceBackend` on the 12 leads.

    ``leads``: which of the 12 leads the model takes, in order (its input
    ``(B, len(leads), n)``); each output's row ``i`` goes to window ``i``.
    """

    def __init__(self, backend: InferenceBackend, *, name: str = "classifier", version: str | None = None,
                 leads: Sequence[str] = STANDARD_LEADS, input_name: str | None = None) -> None:
        self.backend = backend
        self.name = name
        self.version = version or (backend.metadata or {}).get("version", "unknown")
        self.leads = tuple(leads)
        self.input_name = input_name or backend.input_names[0]

    def __call__(self, batch: StageBatch) -> list[dict[str, np.ndarray]]:
        idx = [batch.lead_names.index(lead) for lead in self.leads]
        out = self.backend.run({self.input_name: np.ascontiguousarray(batch.leads12[:, idx])})
        return [{k: v[i] for k, v in out.items()} for i in range(len(batch.windows))]


@dataclass(frozen=True, eq=False)
class WindowResult:
    """One window after inference: the uplink payload, the float arrays, and what it cost."""

    window: Window
    ecg_window: EcgWindow
    leads12: np.ndarray
    """float32 ``(12, n)`` mV in :attr:`lead_names` order (band-passed domain)."""
    uncertainty: np.ndarray
    """float32 ``(12, n)`` mV, 0 for measured leads."""
    lead_names: tuple[str, ...]
    reconstructed: tuple[str, ...]
    model_versions: Mapping[str, str]
    second_stage: Mapping[str, Any] | None = None
    """The second stage's outputs for this window (None without one)."""
    clipped_samples: int = 0
    queue_wait_s: float = 0.0
    inference_s: float = 0.0
    batch_size: int = 0

    @property
    def window_id(self) -> str:
        return self.window.window_id


@dataclass
class PipelineStats:
    """Pipeline counters (the batcher's are in :attr:`InferencePipeline.batcher`.stats)."""

    windows: int = 0
    clipped_samples: int = 0
    """Samples (12-lead, uncertainty included) beyond ±32767 counts, clipped."""
    rejected: int = 0
    """Windows refused at submit (wrong geometry, leads or non-finite samples)."""
    calibrated: int = 0
    """Windows reconstructed with their patient's own calibration (the rest: the generic model)."""
    masked: int = 0
    """Windows with masked gaps (shipped with their mask, no second-stage output)."""


class InferencePipeline:
    """Micro-batched reconstruction (+ optional second stage) of windows from many streams.

    ``backend``: the reconstruction model's backend (see :func:`~edge.inference.backends.select_backend`).
    ``max_batch``: default the backend's. Use ``async with`` or :meth:`start` / :meth:`close`.
    :meth:`run_batch` is the synchronous core (usable without asyncio, e.g. replay and evaluation).
    """

    def __init__(
        self, backend: InferenceBackend, *, second_stage: SecondStage | None = None, max_batch: int | None = None,
        deadline_ms: float = 50.0, max_queue: int = 1024, lsb_nv: int = 1000,
        calibration_dir: str | Path | None = None,
    ) -> None:
        if not 1 <= lsb_nv <= 65535:
            raise ValueError("lsb_nv must be in 1..65535")
        self.reconstruction = ReconstructionStage(backend)
        self.second_stage = second_stage
        self.lsb_nv = lsb_nv
        self.stats = PipelineStats()
        self.batcher: MicroBatcher[Window, WindowResult] = MicroBatcher(
            self.run_batch, max_batch=max_batch or backend.max_batch, deadline_ms=deadline_ms, max_queue=max_queue,
        )
        self.calibrations = None if calibration_dir is None else CalibrationStore(
            calibration_dir, model_version=str(self.reconstruction.info.get("config_hash", "unknown")))
        versions = {"reconstruction": self.reconstruction.version, "backend": backend.name}
        if second_stage is not None:
            versions[second_stage.name] = second_stage.version
        self.model_versions: Mapping[str, str] = versions

    @property
    def batcher_stats(self) -> BatcherStats:
        return self.batcher.stats

    async def start(self) -> None:
        await self.batcher.start()

    async def close(self, *, drain: bool = True) -> None:
        await self.batcher.close(drain=drain)

    async def __aenter__(self) -> InferencePipeline:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- submit -------------------------------------------------------------------------------------

    def takes(self, window: Window) -> bool:
        """Whether the window carries every lead the reconstruction needs (else: ship it as measured)."""
        return all(lead in window.leads for lead in self.reconstruction.inputs)

    def check(self, window: Window) -> None:
        """Raise ValueError if the model cannot take this window (checked at submit, not in the batch)."""
        rec = self.reconstruction
        missing = [lead for lead in rec.inputs if lead not in window.leads]
        if missing:
            raise ValueError(f"window of {window.patient_id} lacks leads {missing} the reconstruction needs")
        if rec.n_samples is not None and window.n_samples != rec.n_samples:
            raise ValueError(f"window of {window.n_samples} samples, the model takes {rec.n_samples}")
        if rec.fs is not None and abs(window.fs - rec.fs) > 1e-9:
            raise ValueError(f"window at {window.fs} Hz, the model takes {rec.fs} Hz")
        if not np.isfinite(window.context_mv).all():
            raise ValueError(f"window {window.window_id} contains NaN or infinite samples")

    def submit(self, window: Window, *, protected: bool | None = None) -> asyncio.Future[Completed[WindowResult]]:
        """Queue a window; the future gives :class:`Completed` (``.value`` is the :class:`WindowResult`)."""
        try:
            self.check(window)
        except ValueError:
            self.stats.rejected += 1
            raise
        return self.batcher.submit(window, protected=window.protected if protected is None else protected)

    async def process(self, window: Window, *, protected: bool | None = None) -> WindowResult:
        """Submit one window and wait for its result (timings filled in)."""
        done = await self.submit(window, protected=protected)
        return replace(done.value, queue_wait_s=done.queue_wait_s, inference_s=done.inference_s,
                       batch_size=done.batch_size)

    # -- the batch ----------------------------------------------------------------------------------

    def run_batch(self, windows: Sequence[Window]) -> list[WindowResult]:
        """Band-pass, reconstruct, second stage, quantise: one result per window, in order (worker thread)."""
        rec = self.reconstruction
        x = prepare_batch(windows, leads=rec.inputs)
        leads12, unc = rec(x)
        leads12 = np.array(leads12, dtype=np.float32)
        unc = np.array(unc, dtype=np.float32)
        versions = self._calibrate(windows, x, leads12, unc)
        second: Sequence[Mapping[str, Any] | None] = [None] * len(windows)
        if self.second_stage is not None:
            second = self.second_stage(StageBatch(windows, x, leads12, unc, rec.outputs))
            if len(second) != len(windows):
                raise RuntimeError(f"{self.second_stage.name} returned {len(second)} results for {len(windows)} windows")
        scale = 1e6 / self.lsb_nv
        counts = np.rint(leads12 * scale)
        ridx = [rec.outputs.index(lead) for lead in rec.reconstructed]
        ucounts = np.rint(unc[:, ridx] * scale)
        clipped = (np.abs(counts) > INT16_MAX).sum(axis=(1, 2)) + (ucounts > INT16_MAX).sum(axis=(1, 2))
        counts = np.clip(counts, -INT16_MAX - 1, INT16_MAX).astype(np.int16)
        ucounts = np.clip(ucounts, 0, INT16_MAX).astype(np.int16)
        out = []
        for i, w in enumerate(windows):
            if w.gaps:
                second = [*second[:i], None, *second[i + 1:]]
                self.stats.masked += 1
                for a, b in w.gaps:
                    counts[i][:, a:b] = 0
                    ucounts[i][:, a:b] = 0
            ecg = EcgWindow(
                window_id=w.window_id, patient_id=w.patient_id, device_id=w.device_id,
                t0_us=int(round(w.t_gateway_s * 1e6)), fs_hz=int(round(w.fs)), leads=rec.outputs,
                samples=counts[i], reconstructed=rec.reconstructed, uncertainty=ucounts[i], lsb_nv=self.lsb_nv,
                gaps=w.gaps,
            )
            out.append(WindowResult(
                window=w, ecg_window=ecg, leads12=leads12[i], uncertainty=unc[i], lead_names=rec.outputs,
                reconstructed=rec.reconstructed, model_versions=versions[i], second_stage=second[i],
                clipped_samples=int(clipped[i]),
            ))
        self.stats.windows += len(windows)
        self.stats.clipped_samples += int(clipped.sum())
        return out

    def _calibrate(self, windows: Sequence[Window], x: np.ndarray, leads12: np.ndarray,
                   unc: np.ndarray) -> list[Mapping[str, str]]:
        """Apply each patient's calibration in place (where one exists); each window's model versions."""
        versions: list[Mapping[str, str]] = [self.model_versions] * len(windows)
        if self.calibrations is None:
            return versions
        for i, w in enumerate(windows):
            cal = self.calibrations.get(w.patient_id)
            if cal is None:
                continue
            leads12[i], unc[i] = cal.apply(x[i], leads12[i], unc[i])
            versions[i] = {**self.model_versions, "reconstruction_calibration": cal.version}
            self.stats.calibrated += 1
        return versions
