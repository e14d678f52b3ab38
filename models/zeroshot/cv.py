"""Record-level cross-validation on ``../shared/tune`` for choices in the zero-shot training
(``python -m models.zeroshot.cv [config] [key=value …]``).

For each of ``k`` folds of the tune records, a model is trained on the synthetic windows plus the other
folds' records and evaluated zero-shot on the held-out records (:func:`models.zeroshot.evaluate.evaluate_zeroshot`);
the mean over folds of each prompt set's macro AUROC is printed as JSON. Variants: ``data.criteria_only=0.3``
and the like override the config. The evaluation records in ``../shared/data`` are never used here.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from models.zeroshot.train import ZeroShotConfig, load_config


def _override(cfg: ZeroShotConfig, item: str) -> ZeroShotConfig:
    key, value = item.split("=", 1)
    section, field = key.split(".")
    part = getattr(cfg, section)
    current = getattr(part, field)
    return replace(cfg, **{section: replace(part, **{field: type(current)(value)})})


def cross_validate(cfg: ZeroShotConfig, folds: int = 3, seed: int = 0) -> dict[str, Any]:
    from models.runtime.zeroshot import ZeroShotModel
    from models.zeroshot.evaluate import evaluate_zeroshot
    from models.zeroshot.train import real_labelled_windows, train

    tune = Path(cfg.data.tune_dir)
    _, _, rid = real_labelled_windows(tune)
    records = np.array(sorted(set(rid)))
    order = np.random.default_rng(seed).permutation(len(records))
    out: dict[str, Any] = {"folds": []}
    for k in range(folds):
        held = frozenset(records[order[k::folds]].tolist())
        with tempfile.TemporaryDirectory() as tmp:
            train(cfg, tmp, log=lambda *_: None, exclude_records=held)
            r = evaluate_zeroshot(tune, ZeroShotModel.load(Path(tmp) / "zeroshot_merl.onnx"), records=sorted(held))
        out["folds"].append({s: r[s]["macro_auroc"] for s in ("plain", "knowledge")} | {"records": r["records"]})
    for s in ("plain", "knowledge"):
        out[s] = round(float(np.nanmean([f[s] for f in out["folds"]])), 4)
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    cfg = load_config(args[0] if args and "=" not in args[0] else "models/configs/zeroshot.toml")
    for a in (a for a in args if "=" in a):
        cfg = _override(cfg, a)
    print(json.dumps({"overrides": [a for a in args if "=" in a], **cross_validate(cfg)}))
