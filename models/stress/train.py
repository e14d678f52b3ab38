"""Train the stress patch transformer and export it to ONNX (torch; training extras).

Training data: synthetic subjects from the simulator by default (:func:`models.stress.data.synthetic_set`),
or a WESAD folder (:func:`models.stress.data.wesad_set`). One thread (``torch.set_num_threads(1)``); the
shipped config trains in a few minutes on one CPU core.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.preprocessing import MODEL_FS, WINDOW_SAMPLES
from models.stress import CLASSES, LEAD
from models.stress.config import StressConfig
from models.stress.data import StressSet
from models.stress.hrv import N_FEATURES
from models.stress.model import StressTransformer, WithSoftmax

OPSET = 17
ONNX_NAME = "stress_transformer.onnx"
ECG_INPUT, FEATURES_INPUT, OUTPUT = "ecg", "features", "probabilities"
ARCH_VERSION = "1"
"""Bumped when the network or its inputs change."""
Echo = Callable[[str], None]


def fit(data: StressSet, cfg: StressConfig, echo: Echo | None = None) -> StressTransformer:
    """A network trained on ``data`` (class-balanced cross-entropy, AdamW, cosine schedule)."""
    torch.set_num_threads(1)
    torch.manual_seed(cfg.train.seed)
    net = StressTransformer(cfg.model)
    x = torch.from_numpy(np.ascontiguousarray(data.windows[:, None, :], dtype=np.float32))
    f = torch.from_numpy(np.ascontiguousarray(data.features, dtype=np.float32))
    y = torch.from_numpy(data.labels.astype(np.int64))
    counts = np.bincount(data.labels, minlength=len(CLASSES)).astype(np.float64)
    weight = torch.tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(CLASSES), 0.0),
                          dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    steps = cfg.train.epochs * max(1, -(-len(y) // cfg.train.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.train.lr, total_steps=max(1, steps))
    gen = torch.Generator().manual_seed(cfg.train.seed)
    for epoch in range(cfg.train.epochs):
        net.train()
        order = torch.randperm(len(y), generator=gen)
        total, n = 0.0, 0
        for s in range(0, len(y), cfg.train.batch):
            idx = order[s : s + cfg.train.batch]
            loss = loss_fn(net(x[idx], f[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        if echo is not None and (epoch + 1) % 5 == 0 or echo is not None and epoch + 1 == cfg.train.epochs:
            echo(f"epoch {epoch + 1}/{cfg.train.epochs}: loss {total / max(n, 1):.4f}")
    net.eval()
    return net


def predict(net: StressTransformer, windows: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Class probabilities (N, 3) of a trained network (torch, for evaluation during training)."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(windows[:, None, :], dtype=np.float32))
        f = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        return torch.softmax(net.eval()(x, f), dim=1).numpy()


def config_hash(cfg: StressConfig, source: str) -> str:
    """Short hash of what the model was trained from."""
    blob = json.dumps({"cfg": asdict(cfg), "source": source, "arch": ARCH_VERSION}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def export_onnx(net: StressTransformer, path: Path, info: dict[str, Any]) -> Path:
    """Write the network (softmax outputs) with its ``ecgstream`` metadata to ``path``."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = WithSoftmax(net).eval()
    dummy = (torch.zeros(2, 1, WINDOW_SAMPLES), torch.zeros(2, N_FEATURES))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")            # the legacy exporter's deprecation notice
        torch.onnx.export(wrapped, dummy, str(path), input_names=[ECG_INPUT, FEATURES_INPUT], output_names=[OUTPUT],
                          dynamic_axes={ECG_INPUT: {0: "batch"}, FEATURES_INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in (("ecgstream", json.dumps(info)), ("version", str(info["version"]))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "ecgstream"
    onnx.save(proto, str(path))
    return path


def model_info(cfg: StressConfig, data: StressSet) -> dict[str, Any]:
    """The artifact's ``ecgstream`` metadata."""
    from models.stress.hrv import N_FEATURES as n_features

    return {
        "model": "stress_transformer",
        "version": f"stress-transformer-{ARCH_VERSION}+{config_hash(cfg, data.source)}",
        "classes": list(CLASSES),
        "leads": [LEAD],
        "fs_hz": MODEL_FS,
        "samples": WINDOW_SAMPLES,
        "inputs": [ECG_INPUT, FEATURES_INPUT],
        "features": n_features,
        "features_version": "1",
        "output": OUTPUT,
        "trained_on": data.source,
        "subjects": len(data.subject_ids()),
        "windows": len(data),
    }


def train_stress(cfg: StressConfig, out: Path, data: StressSet, echo: Echo = print) -> dict[str, Any]:
    """Train on ``data``, export ``out/stress_transformer.onnx`` and ``out/stress_transformer_train.json``."""
    t0 = time.monotonic()
    echo(f"training on {len(data)} windows of {len(data.subject_ids())} {data.source} subjects")
    net = fit(data, cfg, echo)
    info = model_info(cfg, data)
    path = export_onnx(net, out / ONNX_NAME, info)
    summary = {**info, "train_seconds": round(time.monotonic() - t0, 1), "config": asdict(cfg), "onnx": str(path)}
    (out / "stress_transformer_train.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    echo(f"wrote {path} ({summary['train_seconds']} s)")
    return summary
