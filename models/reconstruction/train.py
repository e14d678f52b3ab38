"""Train the reconstruction VAE from a config: data, baseline, training, calibration, export, metrics.

One call (``ecgstream models train reconstruction --config …``) does everything and writes to ``out``:

* ``reconstruction_linear.json`` — the least-squares baseline (fitted on the training windows);
* ``reconstruction_vae.onnx`` — the calibrated model (ONNX, FP32);
* ``reconstruction_metrics.json`` — held-out synthetic metrics (baseline vs VAE), band coverage,
  training time, sizes, the config;
* ``checkpoints/last.pt`` — saved after every epoch by the shared loop (:mod:`models.training`);
  ``resume=True`` continues from it and gives the same weights as an uninterrupted run (per-epoch
  seeded shuffling, crops and latent noise).

Training data is synthetic (``models.data.synthetic``); nothing here reads real records.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.data.synthetic import SyntheticSpec, load_or_generate
from models.preprocessing import WINDOW_SAMPLES
from models.reconstruction import INPUT_INDEX, PREDICTED_INDEX, RECONSTRUCTED_LEADS, Z90
from models.reconstruction.calibration import NOMINAL, coverage, fit_band_scale
from models.reconstruction.config import ReconstructionConfig
from models.reconstruction.evaluate import evaluate_windows
from models.reconstruction.export import FP32_TOLERANCE_MV, export_onnx, max_difference
from models.reconstruction.linear import LinearBaseline
from models.reconstruction.vae import ReconstructionVAE
from models.training import (
    EpochContext,
    IndexedBatches,
    LoopSettings,
    StepOutput,
    run_training,
    warmup_cosine_scheduler,
)
from protocol.leads import STANDARD_LEADS

ONNX_NAME = "reconstruction_vae.onnx"
LINEAR_NAME = "reconstruction_linear.json"
METRICS_NAME = "reconstruction_metrics.json"
CHECKPOINT = Path("checkpoints") / "last.pt"
GRAD_CLIP = 5.0

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class TrainResult:
    onnx_path: Path
    linear_path: Path
    metrics_path: Path
    metrics: dict[str, Any]
    model: ReconstructionVAE


def _config_hash(cfg: ReconstructionConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _split(signals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.ascontiguousarray(signals[:, list(INPUT_INDEX)], dtype=np.float32)
    y = np.ascontiguousarray(signals[:, list(PREDICTED_INDEX)], dtype=np.float32)
    return x, y


def _epoch_batches(x: np.ndarray, y: np.ndarray, cfg: ReconstructionConfig,
                   steps: int) -> Callable[[int], IndexedBatches[Batch]]:
    """Epoch ``e``'s batches: a permutation and random crops drawn from ``default_rng([seed, e])``."""
    crop, bs = cfg.train.crop_samples, cfg.train.batch_size

    def plan(epoch: int) -> IndexedBatches[Batch]:
        rng = np.random.default_rng([cfg.train.seed, epoch])
        order = rng.permutation(len(x))
        starts = rng.integers(0, WINDOW_SAMPLES - crop + 1, len(x))

        def batch(b: int) -> Batch:
            idx = order[b * bs : (b + 1) * bs]
            cols = starts[idx][:, None] + np.arange(crop)[None, :]
            xb = torch.from_numpy(np.take_along_axis(x[idx], cols[:, None, :], axis=2))
            yb = torch.from_numpy(np.take_along_axis(y[idx], cols[:, None, :], axis=2))
            return xb, yb

        return IndexedBatches(steps, batch)

    return plan


def torch_reconstructor(model: ReconstructionVAE) -> Callable[[np.ndarray], np.ndarray]:
    def fn(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.as_tensor(x))[0].numpy()
    return fn


def predict_all(model: ReconstructionVAE, x: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, L) → 12-lead reconstruction and uncertainty, (n, 12, L) each."""
    leads, unc = [], []
    with torch.no_grad():
        for s in range(0, len(x), batch):
            a, b = model(torch.as_tensor(x[s : s + batch]))
            leads.append(a.numpy())
            unc.append(b.numpy())
    return np.concatenate(leads), np.concatenate(unc)


def train_reconstruction(
    cfg: ReconstructionConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    echo: Callable[[str], None] = print,
) -> TrainResult | None:
    """Train, calibrate, export. ``stop_after_epoch`` (tests) stops after saving that epoch's checkpoint
    and returns None, as an interrupted run would."""
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    t_start = time.perf_counter()
    torch.manual_seed(cfg.train.seed)
    d = cfg.data
    sets = {}
    for name, n, seed in (("train", d.train_windows, d.train_seed), ("calib", d.calib_windows, d.calib_seed),
                          ("test", d.test_windows, d.test_seed)):
        sets[name] = load_or_generate(SyntheticSpec(n_windows=n, seed=seed), d.cache_dir, progress=progress).signals
    if len({d.train_seed, d.calib_seed, d.test_seed}) < 3:
        raise ValueError("config [data]: train, calibration and test seeds must differ (held-out splits)")
    t_data = time.perf_counter() - t_start
    baseline = LinearBaseline.fit(sets["train"])
    x_train, y_train = _split(sets["train"])
    del sets["train"]

    model = ReconstructionVAE(cfg.model.width, cfg.model.latent_channels)
    model.init_mix(baseline.weights, baseline.bias)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / cfg.train.batch_size)
    sched = warmup_cosine_scheduler(opt, steps_per_epoch * cfg.train.epochs)

    def step(batch: Batch, ctx: EpochContext) -> StepOutput:
        xb, yb = batch
        mean, logvar, kl = model.forward_train(xb, ctx.generator)
        mse = (mean - yb).pow(2).mean()
        nll = 0.5 * (logvar + (yb - mean.detach()).pow(2) * torch.exp(-logvar)).mean()
        loss = mse + nll + cfg.train.kl_weight * kl
        return StepOutput(loss, {"mse": mse, "nll": nll, "kl": kl})

    settings = LoopSettings(
        epochs=cfg.train.epochs, seed=cfg.train.seed, clip_grad_norm=GRAD_CLIP, checkpoint_path=ckpt_path,
        identity={"config_hash": _config_hash(cfg)}, extra={"config": cfg.to_dict()}, resume=resume,
        progress=progress, desc="epoch", stop_after_epoch=stop_after_epoch,
    )
    run = run_training(
        model, opt, sched, _epoch_batches(x_train, y_train, cfg, steps_per_epoch), step, settings,
        summarize=lambda m: {"train_rmse_uv": round(math.sqrt(m["mse"]) * 1000, 2),
                             "train_nll": round(float(m["nll"]), 4), "kl": round(float(m["kl"]), 4)},
        describe=lambda e: (f"epoch {e['epoch']}: train RMSE {e['train_rmse_uv']} µV, NLL {e['train_nll']}, "
                            f"{e['seconds']} s"),
        postfix=lambda m: {"rmse_uv": f"{math.sqrt(m['mse']) * 1000:.1f}", "nll": f"{m['nll']:.2f}"},
        echo=echo,
    )
    if not run.completed:
        return None
    history = run.history
    t_train = sum(h["seconds"] for h in history)

    model.eval()
    # calibration of the 90 % band on its own held-out split
    x_cal, y_cal = _split(sets["calib"])
    model.band_scale.fill_(1.0)
    with torch.no_grad():
        mean, half = model.predict(torch.as_tensor(x_cal))
    sigma = half.numpy() / Z90
    scale = fit_band_scale(y_cal - mean.numpy(), sigma)
    model.band_scale.copy_(torch.as_tensor(scale))

    test = sets["test"]
    x_test = np.ascontiguousarray(test[:, list(INPUT_INDEX)])
    metrics = evaluate_windows(test, {"baseline": baseline.reconstruct, "vae": torch_reconstructor(model)})
    leads12, unc = predict_all(model, x_test)
    err = test - leads12
    cov = coverage(err, unc)
    model.band_scale.fill_(1.0)
    cov_raw = coverage(err, predict_all(model, x_test)[1])
    model.band_scale.copy_(torch.as_tensor(scale))
    rec_idx = [STANDARD_LEADS.index(lead) for lead in RECONSTRUCTED_LEADS]

    out.mkdir(parents=True, exist_ok=True)
    linear_path = baseline.save(out / LINEAR_NAME)
    onnx_path = export_onnx(model, out / ONNX_NAME, {"config_hash": _config_hash(cfg)})
    diff = max_difference(model, onnx_path, x_test[:16])
    if diff > FP32_TOLERANCE_MV:
        raise RuntimeError(f"ONNX export differs from PyTorch by {diff:.2e} mV (> {FP32_TOLERANCE_MV:g})")
    result = {
        "training_data": "SYNTHETIC windows from the ecgstream simulator (models.data.synthetic)",
        "held_out_synthetic": metrics,
        "band_nominal": NOMINAL,
        "band_scale": {lead: round(float(s), 4) for lead, s in zip(("I", "V2", "V3", "V4", "V6"), scale, strict=True)},
        "coverage_synthetic_test": {STANDARD_LEADS[i]: round(float(cov[i]), 4) for i in rec_idx},
        "coverage_synthetic_test_uncalibrated": {STANDARD_LEADS[i]: round(float(cov_raw[i]), 4) for i in rec_idx},
        "onnx_vs_torch_max_abs_mv": diff,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "onnx_bytes": onnx_path.stat().st_size,
        "history": history,
        "data_seconds": round(t_data, 1),
        "train_seconds": round(t_train, 1),
        "config": cfg.to_dict(),
        "config_hash": _config_hash(cfg),
    }
    metrics_path = out / METRICS_NAME
    metrics_path.write_text(json.dumps(result, indent=2) + "\n")
    echo(f"held-out synthetic ({metrics['windows']} windows): baseline mean r {metrics['baseline']['mean_r']}, "
         f"RMSE {metrics['baseline']['mean_rmse_uv']} µV; VAE mean r {metrics['vae']['mean_r']}, "
         f"RMSE {metrics['vae']['mean_rmse_uv']} µV; 90 % band coverage "
         + ", ".join(f"{k} {v:.2f}" for k, v in result["coverage_synthetic_test"].items()))
    echo(f"wrote {onnx_path} ({result['onnx_bytes'] / 1024:.0f} KiB), {linear_path}, {metrics_path}")
    return TrainResult(onnx_path, linear_path, metrics_path, result, model)
