"""Train a classifier (ECG-Mamba or the ResNet baseline) from a config, then export, quantize and measure.

One call (``ecgstream models train classifier --config … --arch mamba``) does everything and writes to ``out``:

* ``classifier_<arch>.onnx`` (FP32) and ``classifier_<arch>_int8.onnx`` (static QDQ INT8);
* ``classifier_<arch>.pt`` — the trained weights and model config (for PyTorch use and benchmarks);
* ``classifier_<arch>_metrics.json`` — held-out synthetic AUROC/AUPRC per class (true 12 leads and edge
  view; PyTorch, ONNX FP32, ONNX INT8), the INT8 change, sizes, training history and time, the config.

The loop is the shared one (:mod:`models.training`): checkpoints go to ``checkpoints/classifier_<arch>_last.pt``
(under ``checkpoint_dir``) after every epoch; ``resume=True`` continues from there and gives the same weights
as an uninterrupted run (per-epoch seeded shuffling, gains and dropout).

Training data: synthetic windows (:mod:`models.classifier.data`), all at once or — large sets — one
domain-randomised shard per epoch made by a background process (:mod:`models.classifier.shards`); real
labelled records mixed in or alone (``data.real_dir``, :mod:`models.classifier.real_data`). With
``data.calibration_dir`` the trained model is calibrated on real records before export (Platt + rhythm
terms, per-class thresholds by record-level cross-validation: :mod:`models.classifier.calibration`); a
finished run resumed with a calibration folder goes straight to calibration and export.
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
from models.classifier.data import WindowSet, default_reconstructor, load_split, test_views, with_features
from models.classifier.export import (
    FP32_TOLERANCE,
    export_onnx,
    max_difference,
    torch_logits,
    torch_probabilities,
)
from models.classifier.heads import FusionHead, rhythm_basis, upgrade_state_dict, widen_head
from models.classifier.mamba import ECGMamba, count_parameters
from models.classifier.metrics import multilabel_report
from models.classifier.real_data import RealWindows
from models.classifier.resnet import ResNet1D
from models.classifier.shards import ShardProducer, load_shard, shard_count, shard_path
from models.features import N_FEATURES
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
    nf = N_FEATURES if cfg.inputs.rhythm_features else 0
    if arch == "mamba":
        return ECGMamba(**asdict(cfg.mamba), n_features=nf, feature_hidden=cfg.inputs.feature_hidden)
    if arch == "resnet":
        return ResNet1D(**asdict(cfg.resnet), n_features=nf, feature_hidden=cfg.inputs.feature_hidden)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def load_trained(path: str | Path, device: str = "cpu") -> nn.Module:
    """A model saved by training (``classifier_<arch>.pt``), in eval mode on ``device``."""
    from models.classifier.config import config_from_dict

    state = torch.load(path, map_location=device, weights_only=False)
    model = build_model(state["architecture"], config_from_dict(state["config"]))
    weights = upgrade_state_dict(state["model"])
    if "fusion.rhythm.weight" in weights:          # calibrated with rhythm terms
        _fusion(model).add_rhythm_terms()
    model.load_state_dict(weights)
    return model.to(device).eval()


def _fusion(model: nn.Module) -> FusionHead:
    head = model.fusion
    assert isinstance(head, FusionHead)
    return head


def warm_start(model: nn.Module, path: str | Path) -> None:
    """Load ``path``'s weights into ``model``: the backbone as is; a plain head widened to the fused one
    (:func:`models.classifier.heads.widen_head`), so the model starts from the old one's logits."""
    state = upgrade_state_dict(torch.load(path, map_location="cpu", weights_only=False)["model"])
    head = _fusion(model)
    w, b = state["fusion.head.weight"], state["fusion.head.bias"]
    if w.shape != head.head.weight.shape:
        state = {k: v for k, v in state.items() if not k.startswith("fusion.")}
        model.load_state_dict(state, strict=False)
        widen_head(w, b, head)
    else:
        model.load_state_dict(state)


@dataclass(frozen=True)
class TrainingData:
    """Where each epoch's windows come from: ``fixed`` (every epoch; synthetic set and/or real windows) and,
    in shard mode, ``producer`` (epoch ``e`` adds shard ``e``)."""

    fixed: WindowSet | None
    producer: ShardProducer | None
    per_epoch: int
    description: str


def _concat(parts: list[WindowSet]) -> WindowSet:
    parts = [p for p in parts if len(p)]
    feats = [p.features for p in parts]
    return WindowSet(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                     np.concatenate([p.edge for p in parts]), tuple(r for p in parts for r in p.rhythms),
                     None if any(f is None for f in feats) else np.concatenate(feats))  # type: ignore[arg-type]


def _real_windows(cfg: ClassifierConfig, root: str, *, edge_fraction: float, progress: bool) -> RealWindows:
    from models.classifier.real_data import load_real_windows

    real = load_real_windows(root, reconstruct=default_reconstructor() if edge_fraction > 0 else None,
                             edge_fraction=edge_fraction, seed=cfg.data.train_seed, progress=progress)
    return real


def _load_training(cfg: ClassifierConfig, progress: bool, echo: Callable[[str], None]) -> TrainingData:
    d = cfg.data
    fixed: list[WindowSet] = []
    said: list[str] = []
    producer = None
    per_epoch = 0
    if d.real_dir:
        real = _real_windows(cfg, d.real_dir, edge_fraction=d.edge_fraction, progress=progress)
        rs: WindowSet = with_features(real) if cfg.inputs.rhythm_features else real
        fixed += [rs] * d.real_repeat
        said.append(f"{len(rs)} real windows from {d.real_dir} (× {d.real_repeat} per epoch)")
    if not d.real_only:
        if d.shard_windows:
            producer = ShardProducer(cfg, 0, shard_count(cfg))
            per_epoch += d.shard_windows
            said.append(f"{d.train_windows} synthetic domain-randomised windows in {shard_count(cfg)} shards of "
                        f"{d.shard_windows} (one shard per epoch, made in the background)")
        else:
            train = load_split(d.train_windows, d.train_seed, edge_fraction=d.edge_fraction,
                               noise_fraction=d.noise_fraction, cache_dir=d.cache_dir, progress=progress)
            fixed.append(with_features(train) if cfg.inputs.rhythm_features else train)
            said.append(f"{len(train)} synthetic windows ({train.edge.mean():.0%} via the VAE)")
    base = _concat(fixed) if fixed else None
    per_epoch += len(base) if base is not None else 0
    echo("training data: " + "; ".join(said))
    return TrainingData(base, producer, per_epoch, "; ".join(said))


def _test_sets(cfg: ClassifierConfig, progress: bool) -> tuple[WindowSet, WindowSet]:
    d = cfg.data
    true12, edge = test_views(d.test_windows, d.test_seed, noise_fraction=d.noise_fraction, cache_dir=d.cache_dir,
                              progress=progress)
    if cfg.inputs.rhythm_features:
        true12, edge = with_features(true12), with_features(edge)
    return true12, edge


Batch = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]


def _epoch_batches(data: TrainingData, cfg: ClassifierConfig, steps: int,
                   device: str) -> Callable[[int], IndexedBatches[Batch]]:
    """Epoch ``e``'s batches: its windows (the fixed set, plus shard ``e`` in shard mode), a permutation and
    per-window gains drawn from ``default_rng([seed, e])``."""
    t = cfg.train

    def plan(epoch: int) -> IndexedBatches[Batch]:
        parts = [] if data.fixed is None else [data.fixed]
        if data.producer is not None:
            parts.append(data.producer.wait_for(epoch))
        ws = _concat(parts) if len(parts) > 1 else parts[0]
        rng = np.random.default_rng([t.seed, epoch])
        order = rng.permutation(len(ws))
        gains = rng.uniform(1 - t.amplitude_jitter, 1 + t.amplitude_jitter, len(ws)).astype(np.float32)

        def batch(b: int) -> Batch:
            idx = np.sort(order[b * t.batch_size : (b + 1) * t.batch_size])
            xb = torch.from_numpy(ws.x[idx] * gains[idx, None, None]).to(device)
            fb = None if ws.features is None else torch.from_numpy(ws.features[idx]).to(device)
            return xb, fb, torch.from_numpy(ws.y[idx]).to(device)

        return IndexedBatches(min(steps, math.ceil(len(ws) / t.batch_size)), batch)

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
    """Train, calibrate on real records (when the config names them), export (FP32 + INT8), evaluate on the
    held-out synthetic set and write the metrics.

    ``stop_after_epoch`` (tests) stops after saving that epoch's checkpoint and returns None, as an
    interrupted run would. ``device``: ``"cpu"`` or ``"cuda"`` (training only; export and ONNX
    evaluation run on the CPU). A resumed run whose checkpoint has every epoch goes straight to
    calibration and export (how a finished model is re-calibrated).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    out = Path(out_dir)
    ckpt_path = Path(checkpoint_dir or out / "checkpoints") / f"classifier_{arch}_last.pt"
    torch.set_num_threads(cfg.train.threads)
    t_start = time.perf_counter()
    config_hash = cfg.hash(arch=arch)
    finished = resume and ckpt_path.exists() and _checkpoint_complete(ckpt_path, cfg.train.epochs)
    data = None if finished else _load_training(cfg, progress, echo)
    test12, test_edge = _test_sets(cfg, progress)
    t_data = time.perf_counter() - t_start
    echo(f"data ready: {len(test12)} held-out synthetic test windows, {t_data:.0f} s")

    torch.manual_seed(cfg.train.seed)
    model = build_model(arch, cfg).to(device)
    if cfg.inputs.warm_start and not resume:
        warm_start(model, cfg.inputs.warm_start)
        echo(f"warm start from {cfg.inputs.warm_start}")
    t = cfg.train
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    steps_per_epoch = math.ceil((data.per_epoch if data else cfg.data.shard_windows or 1) / t.batch_size)
    sched = warmup_cosine_scheduler(opt, steps_per_epoch * t.epochs)
    loss_fn = nn.BCEWithLogitsLoss()

    def step(batch: Batch, _ctx: EpochContext) -> StepOutput:
        xb, fb, yb = batch
        loss = loss_fn(model(xb, fb), yb)
        return StepOutput(loss, {"loss": loss})

    settings = LoopSettings(
        epochs=t.epochs, seed=t.seed, clip_grad_norm=GRAD_CLIP, checkpoint_path=ckpt_path,
        identity={"config_hash": config_hash}, extra={"config": cfg.to_dict(), "architecture": arch},
        resume=resume, map_location=device, progress=progress, desc=f"{arch} epoch", stop_after_epoch=stop_after_epoch,
    )
    empty = TrainingData(None, None, 0, "")
    try:
        run = run_training(
            model, opt, sched, _epoch_batches(data or empty, cfg, steps_per_epoch, device), step, settings,
            summarize=lambda m: {"train_loss": round(m["loss"], 5)},
            describe=lambda e: f"{arch} epoch {e['epoch']}: loss {e['train_loss']}, {e['seconds']} s",
            postfix=lambda m: {"loss": f"{m['loss']:.4f}"},
            echo=echo,
        )
    finally:
        if data is not None and data.producer is not None:
            data.producer.close()
    if not run.completed:
        return None
    history = run.history
    t_train = sum(h["seconds"] for h in history)
    model = model.cpu().eval()
    calib_source = data.fixed if data is not None and data.fixed is not None else test_edge
    if data is None and cfg.data.shard_windows and shard_path(cfg, 0).exists():
        calib_source = load_shard(shard_path(cfg, 0))         # INT8 ranges from training windows, as trained
    return finish(model, arch, cfg, out, calib_source, test12, test_edge, history=history, t_data=t_data,
                  t_train=t_train, echo=echo, progress=progress)


def _checkpoint_complete(path: Path, epochs: int) -> bool:
    state = torch.load(path, map_location="cpu", weights_only=False)
    return int(state.get("epoch", -1)) + 1 >= epochs and int(state.get("batch_in_epoch", 0)) == 0


def training_data_text(cfg: ClassifierConfig) -> str:
    """What the model learned from, in words (the card and the metadata say it)."""
    d = cfg.data
    parts = []
    if not d.real_only:
        parts.append(f"{d.train_windows} SYNTHETIC windows from the ecgstream simulator"
                     + (" (domain-randomised: amplitude, axis, electrode position, noise, baseline, filtering, "
                        "device rate)" if cfg.augment.enabled else "")
                     + f"; {d.edge_fraction:.0%} seen through the VAE (II, V1, V5 -> 12 leads), "
                     f"{d.noise_fraction:.0%} made unreadable (NOISE)")
    if d.real_dir:
        parts.append(f"real records from {d.real_dir} (x{d.real_repeat} per epoch)")
    if d.calibration_dir:
        parts.append(f"logits calibrated and per-class thresholds chosen on real records from {d.calibration_dir} "
                     f"({d.calibration_folds}-fold record-level cross-validation)")
    return "; ".join(parts)


def calibrate(model: nn.Module, cfg: ClassifierConfig, *, progress: bool,
              echo: Callable[[str], None]) -> tuple[dict[str, float], dict[str, Any]]:
    """Calibrate ``model``'s logits on ``cfg.data.calibration_dir`` (edge view, as deployed) and choose each
    class's threshold by record-level cross-validation; the affine is folded into the head in place.
    Returns (thresholds by class, the cross-validation report)."""
    from models.classifier.calibration import cross_validate

    d = cfg.data
    assert d.calibration_dir is not None
    real = _real_windows(cfg, d.calibration_dir, edge_fraction=1.0, progress=progress)
    feats = with_features(real).features if cfg.inputs.rhythm_features else None
    fusion = _fusion(model)
    if fusion.rhythm is not None:
        raise ValueError("this model is calibrated already: calibrate the trained checkpoint (--resume --calibrate)")
    logits = torch_logits(model, real.x, feats)
    basis = None if feats is None else rhythm_basis(feats)
    groups = np.asarray(real.record_ids)
    report = cross_validate(logits, real.y, groups, k=d.calibration_folds, seed=cfg.train.seed, basis=basis)
    calibration = report.calibration           # fitted on all the records (the folds' are in the report)
    head = fusion.head
    w, b = calibration.fold_into(head.weight.detach().numpy(), head.bias.detach().numpy())
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(np.asarray(w, dtype=np.float32)))
        head.bias.copy_(torch.from_numpy(np.asarray(b, dtype=np.float32)))
    if calibration.w is not None:
        fusion.add_rhythm_terms(calibration.w)
    thresholds = {str(c): float(v) for c, v in report.thresholds.as_mapping().items()}
    summary = report.to_dict()
    echo(f"calibrated on {len(set(real.record_ids))} real records ({d.calibration_folds}-fold record-level CV): "
         f"out-of-fold macro F1 {summary.get('macro_f1')}")
    return thresholds, summary


def finish(model: nn.Module, arch: str, cfg: ClassifierConfig, out: Path, train: WindowSet, test12: WindowSet,
           test_edge: WindowSet, *, history: list[dict[str, Any]], t_data: float, t_train: float,
           echo: Callable[[str], None] = print, progress: bool = False) -> TrainResult:
    """Calibrate (if configured), export FP32 and INT8, evaluate both (and PyTorch) on the held-out synthetic
    set, write the metrics."""
    from models.classifier.quantize import quantize_int8

    config_hash = cfg.hash(arch=arch)
    out.mkdir(parents=True, exist_ok=True)
    thresholds: dict[str, float] = {}
    cv: dict[str, Any] | None = None
    if cfg.data.calibration_dir:
        thresholds, cv = calibrate(model, cfg, progress=progress, echo=echo)
    torch.save({"architecture": arch, "model": model.state_dict(), "config": cfg.to_dict(),
                "config_hash": config_hash, "thresholds": thresholds}, out / weights_name(arch))
    info: dict[str, Any] = {"architecture": arch, "config_hash": config_hash, "parameters": count_parameters(model),
                            "training_data": training_data_text(cfg)}
    if thresholds:
        info.update(thresholds=thresholds, thresholds_source=f"record-level {cfg.data.calibration_folds}-fold CV on "
                    f"{cfg.data.calibration_dir}")
    onnx_path = export_onnx(model, out / onnx_name(arch), info)
    diff = max_difference(model, onnx_path, test_edge.x[:32])
    if diff > FP32_TOLERANCE:
        raise RuntimeError(f"ONNX export differs from PyTorch by {diff:.2e} (> {FP32_TOLERANCE:g})")
    pick = np.sort(np.random.default_rng([cfg.train.seed, 99]).choice(
        len(train), min(cfg.data.calib_windows, len(train)), replace=False))
    int8_path = quantize_int8(onnx_path, out / onnx_name(arch, int8=True), train.x[pick],
                              None if train.features is None else train.features[pick])

    views = {"true12": test12, "edge": test_edge}
    held_out: dict[str, Any] = {}
    for name, ws in views.items():
        held_out[name] = {
            "torch_fp32": multilabel_report(ws.y, torch_probabilities(model, ws.x, ws.features)),
            "onnx_fp32": multilabel_report(ws.y, _onnx_probabilities(onnx_path, ws.x)),
            "onnx_int8": multilabel_report(ws.y, _onnx_probabilities(int8_path, ws.x)),
        }
    int8_change = {name: round(held_out[name]["onnx_int8"]["macro_auroc"] - held_out[name]["onnx_fp32"]["macro_auroc"], 4)
                   for name in views}
    result: dict[str, Any] = {
        "architecture": arch,
        "training_data": training_data_text(cfg),
        "held_out_synthetic": {"windows": len(test12), **held_out},
        "int8_macro_auroc_change": int8_change,
        "onnx_vs_torch_max_abs": diff,
        "parameters": count_parameters(model),
        "onnx_fp32_bytes": onnx_path.stat().st_size,
        "onnx_int8_bytes": int8_path.stat().st_size,
        "thresholds": thresholds or None,
        "calibration_cv": cv,
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
