"""Training the zero-shot ECG encoder against report text (``ecgstream models train zeroshot``).

Data: synthetic windows from the project's simulator (:mod:`models.data.synthetic`; their rhythm gives the
labels, :data:`models.data.labels.SIM_RHYTHM_LABELS`), a share of them seen through the edge's 3→12 lead
VAE as the cloud receives them, plus the real CinC records of ``data.tune_dir`` (their SNOMED codes give
the knowledge-base labels), repeated ``real_repeat`` times. Each window is paired with a report written from
its labels (:func:`models.zeroshot.prompts.report_text`, ``reports_per_set`` phrasings per label set, one
drawn per step) and embedded once by the frozen MiniLM. Losses: :mod:`models.zeroshot.encoder`.

Outputs (``out``): ``zeroshot_merl.onnx`` (the ECG encoder: ``ecg`` (B, 12, 1250) mV and ``features``
(B, 17) → ``embedding`` (B, D) unit vectors; ``ecgstream`` metadata), ``zeroshot_merl_text.npz`` (the text
projection, the temperature, and the knowledge-base label embeddings for both prompt sets, so no text
model is needed at run time for those), ``zeroshot_minilm_tokenizer.json`` (for free text, with the text
ONNX built by ``ecgstream models export zeroshot-text``) and ``zeroshot_merl_train.json`` (the run).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.preprocessing import MODEL_FS, WINDOW_SAMPLES
from protocol.leads import STANDARD_LEADS

ARTIFACT = "zeroshot_merl.onnx"
TEXT_NPZ = "zeroshot_merl_text.npz"
TOKENIZER = "zeroshot_minilm_tokenizer.json"


@dataclass(frozen=True)
class DataConfig:
    synthetic_windows: int = 3000
    seed: int = 11
    edge_fraction: float = 0.3
    tune_dir: str = "../shared/tune"
    real_repeat: int = 6
    reports_per_set: int = 16
    criteria_only: float = 0.0
    """Share of findings in the training reports described by their criteria alone (no name)."""
    cache_dir: str = "out/cache/zeroshot"


@dataclass(frozen=True)
class ModelConfig:
    widths: tuple[int, ...] = (32, 48, 64, 96)
    kernel: int = 7
    embed_dim: int = 128
    dropout: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    epochs: int = 8
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-2
    uma_weight: float = 0.5
    max_minutes: float = 12.0
    threads: int = 1


@dataclass(frozen=True)
class ZeroShotConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_config(path: str | Path) -> ZeroShotConfig:
    from models.config_toml import load_training_config

    return load_training_config(ZeroShotConfig, path)


def config_hash(cfg: ZeroShotConfig) -> str:
    return hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class PairSet:
    """Training windows and their labels (knowledge-base keys per window)."""

    x: np.ndarray                 # (n, 12, 1250) float32 mV
    features: np.ndarray          # (n, N_FEATURES) float32
    label_sets: list[tuple[str, ...]]
    source: list[str]             # "synthetic" | "synthetic-edge" | "real"


def _features(x: np.ndarray) -> np.ndarray:
    from models.features import feature_matrix, measured_rows

    return feature_matrix(x, MODEL_FS, measured_rows(STANDARD_LEADS)).astype(np.float32)


def real_labelled_windows(root: str | Path) -> tuple[np.ndarray, list[tuple[str, ...]], list[str]]:
    """Every window of the CinC records under ``root`` with its record's knowledge-base labels and record id."""
    from models.classifier.real_data import load_real_windows, open_dataset
    from models.zeroshot.knowledge_base import load_knowledge_base

    kb = load_knowledge_base()
    codes = {rec.record_id: kb.labels_for_codes(rec.codes) for rec in open_dataset(root)}
    rw = load_real_windows(root, reconstruct=None, edge_fraction=0.0, seed=0)
    labels = [tuple(k for k in kb.keys if k in codes.get(r, frozenset())) for r in rw.record_ids]
    return rw.x.astype(np.float32), labels, list(rw.record_ids)


def build_pairs(cfg: DataConfig, *, log: Any = print, exclude_records: frozenset[str] = frozenset()) -> PairSet:
    """The training windows (see the module docstring); synthetic part cached under ``cache_dir``."""
    from models.classifier.data import default_reconstructor, edge_view
    from models.data.labels import SIM_RHYTHM_LABELS
    from models.data.synthetic import SyntheticSpec, load_or_generate

    t0 = time.monotonic()
    synth = load_or_generate(SyntheticSpec(n_windows=cfg.synthetic_windows, seed=cfg.seed), cfg.cache_dir)
    x = synth.signals.astype(np.float32)
    rng = np.random.default_rng(cfg.seed)
    edge: np.ndarray = np.asarray(rng.random(x.shape[0]) < cfg.edge_fraction)
    if edge.any():
        x[edge] = edge_view(x[edge], default_reconstructor())
    order = _kb_keys()
    labels = [tuple(k for k in order if k in SIM_RHYTHM_LABELS[r]) for r in synth.rhythms]
    source = ["synthetic-edge" if e else "synthetic" for e in edge]
    log(f"synthetic: {x.shape[0]} windows ({int(edge.sum())} through the VAE) in {time.monotonic() - t0:.0f} s")
    parts_x, parts_l, parts_s = [x], labels, source
    tune = Path(cfg.tune_dir)
    if cfg.real_repeat > 0 and tune.is_dir():
        rx, rl, rid = real_labelled_windows(tune)
        keep = np.array([r not in exclude_records for r in rid], dtype=bool)
        rx, rl = rx[keep], [lab for lab, k in zip(rl, keep, strict=True) if k]
        log(f"real: {rx.shape[0]} windows from {tune}, repeated {cfg.real_repeat}x")
        parts_x = [x, *([rx] * cfg.real_repeat)]
        parts_l = labels + rl * cfg.real_repeat
        parts_s = source + ["real"] * (rx.shape[0] * cfg.real_repeat)
    elif cfg.real_repeat > 0:
        log(f"real: {tune} not found; synthetic windows only")
    allx = np.concatenate(parts_x)
    return PairSet(allx, _features(allx), parts_l, parts_s)


def _kb_keys() -> tuple[str, ...]:
    from models.zeroshot.knowledge_base import load_knowledge_base

    return load_knowledge_base().keys


def report_bank(label_sets: Sequence[tuple[str, ...]], per_set: int, seed: int,
                criteria_only: float = 0.0) -> tuple[dict[tuple[str, ...], int], list[str]]:
    """``per_set`` report texts per distinct label set: (set → first text index, texts)."""
    from models.zeroshot.prompts import report_text

    rng = np.random.default_rng(seed)
    index: dict[tuple[str, ...], int] = {}
    texts: list[str] = []
    for label_set in sorted(set(label_sets)):
        index[label_set] = len(texts)
        texts.extend(report_text(label_set, rng, criteria_only=criteria_only) for _ in range(per_set))
    return index, texts


def train(cfg: ZeroShotConfig, out: str | Path, *, log: Any = print,
          exclude_records: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Train, export and write the artifacts to ``out`` (see the module docstring); returns the run summary.
    ``exclude_records``: real records of ``tune_dir`` left out (cross-validation, :mod:`models.zeroshot.cv`)."""
    import torch

    from models.zeroshot.encoder import EcgEncoder, ZeroShotModel, clip_loss
    from models.zeroshot.text import embed_texts

    t_start = time.monotonic()
    tc = cfg.train
    torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = build_pairs(cfg.data, log=log, exclude_records=exclude_records)
    set_index, texts = report_bank(pairs.label_sets, cfg.data.reports_per_set, cfg.data.seed, cfg.data.criteria_only)
    t0 = time.monotonic()
    text_emb = torch.from_numpy(embed_texts(texts))
    log(f"reports: {len(texts)} texts for {len(set_index)} label sets embedded in {time.monotonic() - t0:.0f} s")

    keys = _kb_keys()
    multi = np.zeros((len(pairs.label_sets), len(keys)), dtype=np.float32)
    for i, s in enumerate(pairs.label_sets):
        for k in s:
            multi[i, keys.index(k)] = 1.0
    set_ids = np.array([list(set_index).index(s) for s in pairs.label_sets])
    first_text = np.array([set_index[s] for s in pairs.label_sets])

    mc = cfg.model
    model = ZeroShotModel(EcgEncoder(tuple(mc.widths), mc.kernel, mc.embed_dim, mc.dropout), mc.embed_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    n = len(pairs.label_sets)
    steps_per_epoch = max(1, n // tc.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, total_steps=tc.epochs * steps_per_epoch)
    x_all = torch.from_numpy(pairs.x)
    f_all = torch.from_numpy(pairs.features)
    rng = np.random.default_rng(tc.seed)
    history: list[dict[str, float]] = []
    deadline = t_start + 60 * tc.max_minutes
    stopped_early = False
    for epoch in range(tc.epochs):
        model.train()
        perm = rng.permutation(n)
        losses: list[float] = []
        for step in range(steps_per_epoch):
            idx = perm[step * tc.batch : (step + 1) * tc.batch]
            xb = x_all[idx] * torch.from_numpy(rng.uniform(0.8, 1.25, (len(idx), 1, 1)).astype(np.float32))
            tb = text_emb[first_text[idx] + rng.integers(0, cfg.data.reports_per_set, len(idx))]
            sid = torch.from_numpy(set_ids[idx])
            match = (sid[:, None] == sid[None, :]).float()
            pooled = model.ecg.trunk(xb, f_all[idx])
            z1, z2 = model.ecg.head(pooled), model.ecg.head(pooled)
            zt = model.text_embed(tb)
            cma = clip_loss(z1, zt, model.scale(), match)
            uma = clip_loss(z1, z2, model.scale())
            loss = cma + tc.uma_weight * uma
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if time.monotonic() > deadline:
                stopped_early = True
                break
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "minutes": (time.monotonic() - t_start) / 60})
        log(f"epoch {epoch + 1}: loss {history[-1]['loss']:.3f} ({history[-1]['minutes']:.1f} min)")
        if stopped_early:
            log(f"stopped at the {tc.max_minutes:g} min budget")
            break
    model.eval()
    summary = {"config": asdict(cfg), "config_hash": config_hash(cfg), "windows": n,
               "windows_by_source": {s: pairs.source.count(s) for s in sorted(set(pairs.source))},
               "label_sets": len(set_index), "report_texts": len(texts), "history": history,
               "stopped_early": stopped_early, "minutes": (time.monotonic() - t_start) / 60,
               "train_accuracy_top1": _label_accuracy(model, pairs, multi, keys)}
    export(model, cfg, out, summary)
    log(f"wrote {out / ARTIFACT}, {out / TEXT_NPZ} ({summary['minutes']:.1f} min)")
    return summary


def _label_accuracy(model: Any, pairs: PairSet, multi: np.ndarray, keys: Sequence[str]) -> float:
    """Share of labelled training windows whose best knowledge prompt is one of their labels (a sanity figure)."""
    import torch

    emb = label_embeddings(model, "knowledge")
    have = multi.sum(1) > 0
    with torch.no_grad():
        z = torch.cat([model.ecg(torch.from_numpy(pairs.x[s : s + 256]), torch.from_numpy(pairs.features[s : s + 256]))
                       for s in range(0, len(pairs.x), 256)]).numpy()
    best = (z @ emb.T).argmax(1)
    return float(multi[np.arange(len(best)), best][have].mean()) if have.any() else float("nan")


def label_embeddings(model: Any, style: str) -> np.ndarray:
    """(K, D) unit vectors for the knowledge base's labels in prompt ``style`` (prompts averaged)."""
    import torch

    from models.zeroshot.knowledge_base import load_knowledge_base
    from models.zeroshot.prompts import prompts_for
    from models.zeroshot.text import embed_texts

    kb = load_knowledge_base()
    out = []
    for prompts in prompts_for(kb.keys, style):  # type: ignore[arg-type]
        with torch.no_grad():
            z = model.text_embed(torch.from_numpy(embed_texts(prompts))).mean(0)
        out.append((z / z.norm()).numpy())
    return np.stack(out).astype(np.float32)


def export(model: Any, cfg: ZeroShotConfig, out: Path, summary: dict[str, Any]) -> None:
    """The ECG ONNX, the text-side ``.npz`` and the tokenizer copy (see the module docstring)."""
    import shutil

    import onnx
    import torch

    from models.features import FEATURES_VERSION, N_FEATURES
    from models.preprocessing import PREPROCESSING_VERSION
    from models.zeroshot.knowledge_base import load_knowledge_base
    from models.zeroshot.text import TEXT_MODEL, tokenizer_json

    version = f"zeroshot-merl-{config_hash(cfg)}"
    path = out / ARTIFACT
    ecg = model.ecg.eval()
    dummy = (torch.zeros(2, 12, WINDOW_SAMPLES), torch.zeros(2, N_FEATURES))
    torch.onnx.export(ecg, dummy, str(path), input_names=["ecg", "features"], output_names=["embedding"],
                      dynamic_axes={"ecg": {0: "batch"}, "features": {0: "batch"}, "embedding": {0: "batch"}},
                      opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    info = {"version": version, "config_hash": config_hash(cfg), "leads": list(STANDARD_LEADS), "fs_hz": MODEL_FS,
            "samples": WINDOW_SAMPLES, "input": "ecg", "features_input": "features",
            "features_version": FEATURES_VERSION, "preprocessing_version": PREPROCESSING_VERSION,
            "output": "embedding", "embed_dim": cfg.model.embed_dim, "text_model": TEXT_MODEL,
            "trained_on": "synthetic windows from the project's simulator plus 53 real CinC 2021 records"}
    entry = proto.metadata_props.add()
    entry.key, entry.value = "ecgstream", json.dumps(info)
    onnx.save(proto, str(path))
    kb = load_knowledge_base()
    np.savez(out / TEXT_NPZ, version=np.array(version), keys=np.array(kb.keys),
             names=np.array([label.name for label in kb]),
             knowledge=label_embeddings(model, "knowledge"), plain=label_embeddings(model, "plain"),
             projection_w=model.text.weight.detach().numpy().astype(np.float32),
             projection_b=model.text.bias.detach().numpy().astype(np.float32),
             logit_scale=np.array(float(model.scale())))
    shutil.copyfile(tokenizer_json(), out / TOKENIZER)
    (out / "zeroshot_merl_train.json").write_text(json.dumps({**summary, "version": version}, indent=2) + "\n")
