"""Train a classifier (ECG-Mamba or the ResNet baseline) from a config, then export, quantize and measure.

One call (``ecgstream models train classifier --config … --arch mamba``) does everything and writes to ``out``:

* ``classifier_<arch>.onnx`` (FP32) and ``classifier_<arch>_int8.onnx`` (static QDQ INT8);
* ``classifier_<arch>.pt`` — the trained weights and model config (for PyTorch use and benchmarks);
* ``classifier_<arch>_metrics.json`` — held-out synthetic AUROC/AUPRC per class (true 12 leads and edge
  view; PyTorch, ONNX FP32, ONNX INT8), the INT8 change, sizes, training history and time, the config.

The loop is the shared one (:mod:`models.training`): checkpoints go to ``checkpoints/classifier_<arch>_last.pt``
(under ``checkpoint_dir``) after every epoch; ``resume=True`` continues from there and gives the same weights
as an uninterrupted run (per-epoch seeded shuffling, gains and dropout). Training data is synthetic
(:mod:`models.classifier.data`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.classifier.config import ARCHITECTURES, ClassifierConfig
from models.classifier.data import WindowSet, load_split, test_views
from models.classifier.export import FP32_TOLERANCE, export_onnx, max_difference, torch_probabilities
from models.classifier.mamba import ECGMamba, count_parameters
from models.classifier.metrics import multilabel_report
from models.classifier.resnet import ResNet1D
from models.training import (
    EpochContext,
    IndexedBatches,
    LoopSettings,
    StepOutput,
    run_training,
    warmup_cosine_scheduler,
)

GRAD_CLIP = 2.0


def onnx_name(arch: str, int8: bool = False) -> str:
    return f"classifier_{arch}{'_int8' if int8 else ''}.onnx"


def weights_name(arch: str) -> str:
    return f"classifier_{arch}.pt"


def metrics_name(arch: str) -> str:
    return f"classifier_{arch}_metrics.json"


@dataclass(frozen=True)
class TrainResult:
    onnx_path: Path
    int8_path: Path
    metrics_path: Path
    metrics: dict[str, Any]
    model: nn.Module


def build_model(arch: str, cfg: ClassifierConfig) -> nn.Module:
    """A fresh model of architecture ``arch`` (``"mamba"`` or ``"resnet"``) as the config describes it."""
    if arch == "mamba":
        return ECGMamba(**asdict(cfg.mamba))
    if arch == "resnet":
        return ResNet1D(**asdict(cfg.resnet))
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def load_trained(path: str | Path, device: str = "cpu") -> nn.Module:
    """A model saved by training (``classifier_<arch>.pt``), in eval mode on ``device``."""
    from models.classifier.config import config_from_dict

    state = torch.load(path, map_location=device, weights_only=False)
    model = build_model(state["architecture"], config_from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def _load_data(cfg: ClassifierConfig, progress: bool) -> tuple[WindowSet, WindowSet, WindowSet]:
    d = cfg.data
    train = load_split(d.train_windows, d.train_seed, edge_fraction=d.edge_fraction,
                       noise_fraction=d.noise_fraction, cache_dir=d.cache_dir, progress=progress)
    true12, edge = test_views(d.test_windows, d.test_seed, noise_fraction=d.noise_fraction, cache_dir=d.cache_dir,
                              progress=progress)
    return train, true12, edge


def _epoch_batches(train: WindowSet, cfg: ClassifierConfig, steps: int,
                   device: str) -> Callable[[int], IndexedBatches[tuple[torch.Tensor, torch.Tensor]]]:
    """Epoch ``e``'s batches: a permutation and per-window gains drawn from ``default_rng([seed, e])``."""
    t = cfg.train

    def plan(epoch: int) -> IndexedBatches[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng([t.seed, epoch])
        order = rng.permutation(len(train))
        gains = rng.uniform(1 - t.amplitude_jitter, 1 + t.amplitude_jitter, len(train)).astype(np.float32)

        def batch(b: int) -> tuple[torch.Tensor, torch.Tensor]:
            idx = np.sort(order[b * t.batch_size : (b + 1) * t.batch_size])
            xb = torch.from_numpy(train.x[idx] * gains[idx, None, None]).to(device)
            return xb, torch.from_numpy(train.y[idx]).to(device)

        return IndexedBatches(steps, batch)

    return plan


def _onnx_probabilities(path: Path, x: np.ndarray) -> np.ndarray:
    from models.runtime.classifier import ClassifierModel

    return ClassifierModel.load(path, providers=["cpu"], max_batch=128).predict(x)


def train_classifier(
    cfg: ClassifierConfig,
    arch: str,
    out_dir: str | Path,
    *,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    device: str = "cpu",
    stop_after_epoch: int | None = None,
    echo: Callable[[str], None] = print,
) -> TrainResult | None:
    """Train, export (FP32 + INT8), evaluate on the held-out synthetic set and write the metrics.

    ``stop_after_epoch`` (tests) stops after saving that epoch's checkpoint and returns None, as an
    interrupted run would. ``device``: ``"cpu"`` or ``"cuda"`` (training only; export and ONNX
    evaluation run on the CPU).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    out = Path(out_dir)
    ckpt_path = Path(checkpoint_dir or out / "checkpoints") / f"classifier_{arch}_last.pt"
    torch.set_num_threads(cfg.train.threads)
    t_start = time.perf_counter()
    config_hash = cfg.hash(arch=arch)
    train, test12, test_edge = _load_data(cfg, progress)
    t_data = time.perf_counter() - t_start
    echo(f"data: {len(train)} training windows ({train.edge.mean():.0%} via the VAE, "
         f"{int(train.y[:, -1].sum())} unreadable), {len(test12)} held-out test windows, {t_data:.0f} s")

    torch.manual_seed(cfg.train.seed)
    model = build_model(arch, cfg).to(device)
    t = cfg.train
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    steps_per_epoch = math.ceil(len(train) / t.batch_size)
    sched = warmup_cosine_scheduler(opt, steps_per_epoch * t.epochs)
    loss_fn = nn.BCEWithLogitsLoss()

    def step(batch: tuple[torch.Tensor, torch.Tensor], _ctx: EpochContext) -> StepOutput:
        xb, yb = batch
        loss = loss_fn(model(xb), yb)
        return StepOutput(loss, {"loss": loss})

    settings = LoopSettings(
        epochs=t.epochs, seed=t.seed, clip_grad_norm=GRAD_CLIP, checkpoint_path=ckpt_path,
        identity={"config_hash": config_hash}, extra={"config": cfg.to_dict(), "architecture": arch},
        resume=resume, map_location=device, progress=progress, desc=f"{arch} epoch", stop_after_epoch=stop_after_epoch,
    )
    run = run_training(
        model, opt, sched, _epoch_batches(train, cfg, steps_per_epoch, device), step, settings,
        summarize=lambda m: {"train_loss": round(m["loss"], 5)},
        describe=lambda e: f"{arch} epoch {e['epoch']}: loss {e['train_loss']}, {e['seconds']} s",
        postfix=lambda m: {"loss": f"{m['loss']:.4f}"},
        echo=echo,
    )
    if not run.completed:
        return None
    history = run.history
    t_train = sum(h["seconds"] for h in history)
    model = model.cpu().eval()
    return finish(model, arch, cfg, out, train, test12, test_edge, history=history, t_data=t_data,
                  t_train=t_train, echo=echo)


def finish(model: nn.Module, arch: str, cfg: ClassifierConfig, out: Path, train: WindowSet, test12: WindowSet,
           test_edge: WindowSet, *, history: list[dict[str, Any]], t_data: float, t_train: float,
           echo: Callable[[str], None] = print) -> TrainResult:
    """Export FP32 and INT8, evaluate both (and PyTorch) on the held-out synthetic set, write the metrics."""
    from models.classifier.quantize import quantize_int8

    config_hash = cfg.hash(arch=arch)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"architecture": arch, "model": model.state_dict(), "config": cfg.to_dict(),
                "config_hash": config_hash}, out / weights_name(arch))
    info = {"architecture": arch, "config_hash": config_hash, "parameters": count_parameters(model)}
    onnx_path = export_onnx(model, out / onnx_name(arch), info)
    diff = max_difference(model, onnx_path, test_edge.x[:32])
    if diff > FP32_TOLERANCE:
        raise RuntimeError(f"ONNX export differs from PyTorch by {diff:.2e} (> {FP32_TOLERANCE:g})")
    pick = np.random.default_rng([cfg.train.seed, 99]).choice(len(train), min(cfg.data.calib_windows, len(train)),
                                                               replace=False)
    calib = train.x[np.sort(pick)]
    int8_path = quantize_int8(onnx_path, out / onnx_name(arch, int8=True), calib)

    views = {"true12": test12, "edge": test_edge}
    held_out: dict[str, Any] = {}
    for name, ws in views.items():
        held_out[name] = {
            "torch_fp32": multilabel_report(ws.y, torch_probabilities(model, ws.x)),
            "onnx_fp32": multilabel_report(ws.y, _onnx_probabilities(onnx_path, ws.x)),
            "onnx_int8": multilabel_report(ws.y, _onnx_probabilities(int8_path, ws.x)),
        }
    int8_change = {name: round(held_out[name]["onnx_int8"]["macro_auroc"] - held_out[name]["onnx_fp32"]["macro_auroc"], 4)
                   for name in views}
    result: dict[str, Any] = {
        "architecture": arch,
        "training_data": "SYNTHETIC windows from the ecgstream simulator (models.data.synthetic); "
                         f"{cfg.data.edge_fraction:.0%} seen through the VAE (II, V1, V5 -> 12 leads), "
                         f"{cfg.data.noise_fraction:.0%} made unreadable (NOISE)",
        "held_out_synthetic": {"windows": len(test12), **held_out},
        "int8_macro_auroc_change": int8_change,
        "onnx_vs_torch_max_abs": diff,
        "parameters": count_parameters(model),
        "onnx_fp32_bytes": onnx_path.stat().st_size,
        "onnx_int8_bytes": int8_path.stat().st_size,
        "history": history,
        "data_seconds": round(t_data, 1),
        "train_seconds": round(t_train, 1),
        "config": cfg.to_dict(),
        "config_hash": config_hash,
    }
    metrics_path = out / metrics_name(arch)
    metrics_path.write_text(json.dumps(result, indent=2) + "\n")
    h = held_out
    echo(f"{arch}: held-out synthetic macro AUROC true12 {h['true12']['onnx_fp32']['macro_auroc']}, "
         f"edge {h['edge']['onnx_fp32']['macro_auroc']} (FP32); INT8 change {int8_change}")
    echo(f"wrote {onnx_path} ({result['onnx_fp32_bytes'] / 1024:.0f} KiB), {int8_path} "
         f"({result['onnx_int8_bytes'] / 1024:.0f} KiB), {metrics_path}")
    return TrainResult(onnx_path, int8_path, metrics_path, result, model)
