"""Train the prototype layer, push each prototype onto a real training segment, export ONNX + strips + card.

Steps (ProtoPNet, with the backbone frozen throughout: it is the shipped classifier's embedding):

1. **Data**: synthetic windows from the simulator (:func:`models.classifier.data.load_split`; a share seen
   through the VAE as on the edge, a share made unreadable) plus the real records of ``data.real_dir``
   (:func:`models.classifier.real_data.load_real_windows`), whose records are split at record level: a
   held-out share is only scored, never trained or pushed on.
2. **Embedding** once: every window → the classifier's 160 tokens (stored as float16).
3. **Prototype phase**: add-on, prototypes and last layer trained with BCE + cluster + separation losses.
4. **Push**: each prototype is replaced by the feature patch, among the training windows of its class, that
   is most similar to it; the window's lead II strip, record, source and segment are kept.
5. **Last-layer phase**: only the last layer, BCE + L1 on the weights to other classes.
6. **Export**: one ONNX graph (backbone + head), the strips JSON, metrics JSON and the model card.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from models.classifier.mamba import ECGMamba
from models.data.labels import CLASSES
from models.preprocessing import MODEL_FS, WINDOW_SAMPLES
from models.prototypes import ARTIFACT, INPUT_NAME, LEAD, OUTPUTS, STRIPS, segment_seconds
from models.prototypes.config import PrototypeConfig
from models.prototypes.network import PrototypeHead, PrototypeNet, embed
from protocol.leads import STANDARD_LEADS

OPSET = 17
LEAD_INDEX = STANDARD_LEADS.index(LEAD)
Echo = Callable[[str], None]


@dataclass(frozen=True)
class Windows:
    """Labelled windows with where each comes from: ``x`` (n, 12, 1250) mV, ``y`` (n, classes),
    ``source`` ("real"/"synthetic"), ``record`` (record id), ``offset_s`` (window start in the record)."""

    x: np.ndarray
    y: np.ndarray
    source: tuple[str, ...]
    record: tuple[str, ...]
    offset_s: tuple[float, ...]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, idx: np.ndarray) -> Windows:
        return Windows(self.x[idx], self.y[idx], tuple(self.source[i] for i in idx),
                       tuple(self.record[i] for i in idx), tuple(self.offset_s[i] for i in idx))


def concat(parts: list[Windows]) -> Windows:
    parts = [p for p in parts if len(p)]
    return Windows(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                   tuple(s for p in parts for s in p.source), tuple(r for p in parts for r in p.record),
                   tuple(o for p in parts for o in p.offset_s))


def synthetic_windows(cfg: PrototypeConfig, *, progress: bool) -> Windows:
    """The config's synthetic training windows (cached under ``out/cache/synthetic``)."""
    from models.classifier.data import load_split

    d = cfg.data
    ws = load_split(d.synthetic_windows, d.synthetic_seed, edge_fraction=d.edge_fraction,
                    noise_fraction=d.noise_fraction, cache_dir="out/cache/synthetic", progress=progress)
    records = tuple(f"synthetic:{d.synthetic_seed}:{i}:{r}" for i, r in enumerate(ws.rhythms))
    return Windows(ws.x, ws.y.astype(np.float32), ("synthetic",) * len(ws), records, (0.0,) * len(ws))


def real_windows(root: str | Path, *, edge_fraction: float, hop_s: float, seed: int, progress: bool = False) -> Windows:
    """Every window of the real records under ``root`` (a share seen through the VAE), with its record."""
    from models.classifier.data import default_reconstructor
    from models.classifier.real_data import load_real_windows

    rw = load_real_windows(root, reconstruct=default_reconstructor() if edge_fraction > 0 else None,
                           edge_fraction=edge_fraction, seed=seed, hop_s=hop_s, progress=progress)
    offsets: list[float] = []
    seen: dict[str, int] = {}
    for r in rw.record_ids:
        offsets.append(seen.get(r, 0) * hop_s)
        seen[r] = seen.get(r, 0) + 1
    return Windows(rw.x, rw.y.astype(np.float32), ("real",) * len(rw.record_ids), tuple(rw.record_ids),
                   tuple(offsets))


def split_records(w: Windows, holdout_fraction: float, seed: int) -> tuple[Windows, Windows]:
    """(train, held out): whole records drawn at random (seeded); at least one record stays in training."""
    records = sorted(set(w.record))
    n_hold = min(len(records) - 1, int(round(holdout_fraction * len(records))))
    rng = np.random.default_rng(seed)
    hold = set(rng.permutation(records)[:n_hold].tolist()) if n_hold > 0 else set()
    mask = np.array([r in hold for r in w.record])
    return w.take(np.flatnonzero(~mask)), w.take(np.flatnonzero(mask))


def load_backbone(path: str | Path) -> ECGMamba:
    """The classifier checkpoint's ECG-Mamba, frozen, in eval mode."""
    from models.classifier.train import load_trained

    model = load_trained(path)
    if not isinstance(model, ECGMamba):
        raise ValueError(f"{path} is not an ECG-Mamba checkpoint (the prototypes use its token embedding)")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def embed_all(backbone: ECGMamba, x: np.ndarray, batch: int = 128) -> np.ndarray:
    """(n, 12, 1250) → (n, 160, d_model) float16 tokens."""
    out = []
    with torch.no_grad():
        for s in range(0, len(x), batch):
            out.append(embed(backbone, torch.as_tensor(np.ascontiguousarray(x[s : s + batch]))).half().numpy())
    return np.concatenate(out)


def prototype_losses(head: PrototypeHead, logits: Tensor, best: Tensor, y: Tensor) -> dict[str, Tensor]:
    """BCE and the prototype terms: **cluster** pulls each window's best match among its classes' prototypes up
    to 1; **separation** pushes its best match among the other classes' prototypes down; **coverage** pulls
    every prototype toward some window of its class in the batch (no dead prototypes); **diversity** keeps a
    class's prototypes apart (cosine above 0.5 between two of them costs)."""
    bce = F.binary_cross_entropy_with_logits(logits, y)
    per_class = best.view(best.shape[0], head.n_classes, head.per_class).amax(-1)          # (B, C)
    cluster = ((1.0 - per_class) * y).sum() / y.sum().clamp(min=1.0)
    separation = (per_class * (1.0 - y)).amax(-1).mean()
    own = y @ head.identity.T                                                               # (B, P): window has its class
    present = own.amax(0)
    coverage = ((1.0 - (best * own).amax(0)) * present).sum() / present.sum().clamp(min=1.0)
    flat = F.normalize(head.prototypes.flatten(1), dim=1).view(head.n_classes, head.per_class, -1)
    cos = flat @ flat.transpose(1, 2)
    off_diag = 1.0 - torch.eye(head.per_class, device=cos.device)
    diversity = (F.relu(cos - 0.5) * off_diag).sum() / (off_diag.sum() * head.n_classes).clamp(min=1.0)
    return {"bce": bce, "cluster": cluster, "separation": separation, "coverage": coverage, "diversity": diversity}


def _batches(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[s : s + size] for s in range(0, n, size)]


def _fit(head: PrototypeHead, tokens: np.ndarray, y: np.ndarray, weights: np.ndarray, cfg: PrototypeConfig,
         epochs: int, *, last_only: bool, echo: Echo) -> None:
    """Train ``head`` on cached tokens; windows drawn with repeats ``weights`` (int per window) per epoch."""
    t = cfg.train
    params = list(head.last.parameters()) if last_only else list(head.parameters())
    opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=0.0 if last_only else 1e-4)
    rng = np.random.default_rng([t.seed, 3 if last_only else 1])
    index = np.repeat(np.arange(len(tokens)), weights)
    off_class = 1.0 - head.identity.T
    head.train()
    names = ("loss", "bce", "cluster", "separation", "coverage", "diversity")
    for epoch in range(epochs):
        totals = np.zeros(len(names))
        batches = _batches(len(index), t.batch_size, rng)
        for b in batches:
            sel = index[b]
            logits, best, _, _ = head(torch.as_tensor(tokens[sel]).float())
            terms = prototype_losses(head, logits, best, torch.as_tensor(y[sel]))
            if last_only:
                loss = terms["bce"] + t.last_layer_l1 * (head.last.weight * off_class).abs().sum()
            else:
                loss = (terms["bce"] + t.cluster * terms["cluster"] + t.separation * terms["separation"]
                        + t.coverage * terms["coverage"] + t.diversity * terms["diversity"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if not last_only:
                with torch.no_grad():
                    head.prototypes.clamp_(min=0.0)          # prototypes live where the (ReLU) features do
            totals += [loss.item()] + [terms[k].item() for k in names[1:]]
        m = totals / max(1, len(batches))
        echo(f"{'last layer' if last_only else 'prototypes'} epoch {epoch + 1}/{epochs}: "
             + " ".join(f"{k} {v:.4f}" for k, v in zip(names, m, strict=True)))
    head.eval()


@dataclass(frozen=True)
class PushedPrototype:
    """Where a prototype was projected: window ``window`` of the training set, token ``position``."""

    window: int
    position: int
    similarity: float


def similarity_table(head: PrototypeHead, tokens: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(n, P) best similarity of every prototype in every window and (n, P) the position where it is."""
    sims, pos = [], []
    with torch.no_grad():
        for s in range(0, len(tokens), batch):
            best, where = head.similarity_maps(head.features(torch.as_tensor(tokens[s : s + batch]).float())).max(-1)
            sims.append(best.numpy())
            pos.append(where.numpy())
    return np.concatenate(sims), np.concatenate(pos)


def push(head: PrototypeHead, tokens: np.ndarray, y: np.ndarray, real: np.ndarray,
         real_margin: float = 0.0) -> list[PushedPrototype]:
    """Replace every prototype by the feature patch most similar to it among the training windows of its class
    (in place) and say where each came from. The prototypes of one class go to different windows; a prototype
    goes to the best *real* window of its class (``real`` marks them) when that one is within ``real_margin``
    of the best window overall. ValueError when a class has no training window."""
    n_protos, _, patch = head.prototypes.shape
    sims, pos = similarity_table(head, tokens)
    proto_class = np.arange(n_protos) // head.per_class
    missing = sorted({CLASSES[c] for c in set(proto_class.tolist()) if not (y[:, c] > 0.5).any()})
    if missing:
        raise ValueError(f"no training window of class(es) {', '.join(missing)} to project prototypes onto; "
                         "use more synthetic windows")
    chosen: dict[int, PushedPrototype] = {}
    for c in range(head.n_classes):
        own = np.flatnonzero(proto_class == c)
        taken: set[int] = set()
        for j in own[np.argsort(-sims[:, own].max(0))]:           # the best-placed prototype chooses first
            allowed = y[:, c] > 0.5
            if len(taken) < int(allowed.sum()):
                allowed[list(taken)] = False
            score = np.where(allowed, sims[:, j], -np.inf)
            w = int(np.argmax(score))
            real_score = np.where(allowed & real, sims[:, j], -np.inf)
            if np.isfinite(real_score).any() and real_score.max() >= score[w] - real_margin:
                w = int(np.argmax(real_score))
            taken.add(w)
            chosen[int(j)] = PushedPrototype(w, int(pos[w, j]), float(sims[w, j]))
    with torch.no_grad():
        for j, p in chosen.items():
            z = head.features(torch.as_tensor(tokens[p.window : p.window + 1]).float())[0]
            head.prototypes[j] = z[:, p.position : p.position + patch]
    return [chosen[j] for j in range(n_protos)]


def predict(head: PrototypeHead, tokens: np.ndarray, batch: int = 256) -> np.ndarray:
    """(n, classes) sigmoid scores from cached tokens."""
    out = []
    with torch.no_grad():
        for s in range(0, len(tokens), batch):
            out.append(torch.sigmoid(head(torch.as_tensor(tokens[s : s + batch]).float())[0]).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), dtype=np.float32)


def score_report(y: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Per-class AUROC where a class has positives and negatives, and their macro mean."""
    from models.classifier.metrics import auroc

    per: dict[str, float] = {}
    for j, c in enumerate(CLASSES):
        pos = int(y[:, j].sum())
        if 0 < pos < len(y):
            per[c] = round(float(auroc(y[:, j], scores[:, j])), 4)
    return {"windows": int(len(y)), "auroc": per,
            "macro_auroc": round(float(np.mean(list(per.values()))), 4) if per else None}


def strips(train: Windows, pushed: list[PushedPrototype], head: PrototypeHead) -> list[dict[str, Any]]:
    """The stored description of every prototype (the runtime's ``matches`` entries, less the similarity)."""
    out = []
    for j, p in enumerate(pushed):
        cls = CLASSES[j // head.per_class]
        out.append({
            "prototype_id": f"{cls}-{j % head.per_class}", "class": cls, "source": train.source[p.window],
            "record": train.record[p.window], "window_offset_s": train.offset_s[p.window], "lead": LEAD,
            "fs_hz": int(MODEL_FS),
            "strip_mv": [round(float(v), 4) for v in train.x[p.window, LEAD_INDEX]],
            "strip_segment_s": list(segment_seconds(p.position, head.patch_tokens)),
            "push_similarity": round(p.similarity, 4),
        })
    return out


def export(net: PrototypeNet, path: Path, info: dict[str, Any]) -> Path:
    """``net`` as ONNX (dynamic batch) with the ``ecgstream`` metadata and a top-level ``version``."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(2, len(STANDARD_LEADS), WINDOW_SAMPLES),), str(path),
                          input_names=[INPUT_NAME], output_names=list(OUTPUTS),
                          dynamic_axes={INPUT_NAME: {0: "batch"}, **{o: {0: "batch"} for o in OUTPUTS}},
                          opset_version=OPSET, dynamo=False)
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in (("ecgstream", json.dumps(info)), ("version", info["version"])):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "ecgstream"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def train_prototypes(cfg: PrototypeConfig, out: Path, *, progress: bool = False,
                     echo: Echo = print) -> dict[str, Any]:
    """Train, push, export into ``out`` (``prototypes.onnx``, ``prototypes_strips.json``,
    ``prototypes_metrics.json``, ``prototypes.md``); returns the metrics."""
    start = time.monotonic()
    torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    d, m = cfg.data, cfg.model
    backbone = load_backbone(m.backbone)
    echo(f"synthetic windows: {d.synthetic_windows} (seed {d.synthetic_seed})")
    syn = synthetic_windows(cfg, progress=progress)
    syn_train, syn_test = syn.take(np.arange(int(0.9 * len(syn)))), syn.take(np.arange(int(0.9 * len(syn)), len(syn)))
    real_train = real_hold = None
    if d.real_dir:
        real = real_windows(d.real_dir, edge_fraction=d.edge_fraction, hop_s=d.real_hop_s, seed=d.split_seed,
                            progress=progress)
        real_train, real_hold = split_records(real, d.holdout_fraction, d.split_seed)
        echo(f"real windows: {len(real_train)} training ({len(set(real_train.record))} records), "
             f"{len(real_hold)} held out ({len(set(real_hold.record))} records)")
    train = concat([syn_train] + ([real_train] if real_train is not None else []))
    repeats = np.array([d.real_repeat if s == "real" else 1 for s in train.source])
    echo("embedding windows with the classifier's backbone …")
    tokens = embed_all(backbone, train.x)
    head = PrototypeHead(tokens.shape[2], len(CLASSES), m.per_class, m.patch_tokens, m.proto_dim)
    with torch.no_grad():      # start each prototype on a random feature patch of a window of its class
        rng = np.random.default_rng(cfg.train.seed)
        for j in range(head.prototypes.shape[0]):
            of_class = np.flatnonzero(train.y[:, j // m.per_class] > 0.5)
            w = int(rng.choice(of_class)) if of_class.size else int(rng.integers(len(train)))
            pos = int(rng.integers(tokens.shape[1] - m.patch_tokens + 1))
            z = head.features(torch.as_tensor(tokens[w : w + 1]).float())[0]
            head.prototypes[j] = z[:, pos : pos + m.patch_tokens] + 0.01
    _fit(head, tokens, train.y, repeats, cfg, cfg.train.epochs, last_only=False, echo=echo)
    pushed = push(head, tokens, train.y, np.array([src == "real" for src in train.source]), d.real_margin)
    echo(f"pushed {len(pushed)} prototypes: {sum(train.source[p.window] == 'real' for p in pushed)} onto real records")
    _fit(head, tokens, train.y, repeats, cfg, cfg.train.last_layer_epochs, last_only=True, echo=echo)

    metrics: dict[str, Any] = {"config_hash": cfg.hash(), "config": cfg.to_dict()}
    metrics["train"] = score_report(train.y, predict(head, tokens))
    metrics["synthetic_test"] = score_report(syn_test.y, predict(head, embed_all(backbone, syn_test.x)))
    if real_hold is not None and len(real_hold):
        metrics["real_heldout"] = {**score_report(real_hold.y, predict(head, embed_all(backbone, real_hold.x))),
                                   "records": sorted(set(real_hold.record))}
    stored = strips(train, pushed, head)
    metrics["prototypes"] = {"total": len(stored), "real": sum(s["source"] == "real" for s in stored),
                             "synthetic": sum(s["source"] == "synthetic" for s in stored)}
    metrics["train_seconds"] = round(time.monotonic() - start, 1)

    out.mkdir(parents=True, exist_ok=True)
    version = f"prototypes@{cfg.hash()}"
    info = {
        "task": "case-based explanation: similarity of a 10 s 12-lead window to prototype strips per class",
        "version": version, "classes": list(CLASSES), "per_class": m.per_class, "patch_tokens": m.patch_tokens,
        "stride_samples": 8, "left_pad_samples": 15, "fs_hz": MODEL_FS, "samples": WINDOW_SAMPLES,
        "leads": list(STANDARD_LEADS), "units": "mV", "input": INPUT_NAME, "outputs": list(OUTPUTS),
        "prototype_ids": [s["prototype_id"] for s in stored], "strips": STRIPS,
        "backbone": f"{Path(m.backbone).name} (frozen ECG-Mamba token embedding)",
        "training_data": "SYNTHETIC windows (ecgstream simulator) + real CinC 2021 records (../shared/tune)",
        "not_a_medical_device": True,
    }
    net = PrototypeNet(backbone, head).eval()
    onnx_path = export(net, out / ARTIFACT, info)
    metrics["onnx_max_abs_diff"] = _onnx_check(net, onnx_path, syn_test.x[:8])
    (out / STRIPS).write_text(json.dumps({"version": version, "prototypes": stored}) + "\n")
    (out / "prototypes_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    from models.prototypes.card import FAITHFULNESS, write_card

    write_card(out / "prototypes.md", metrics, stored, out / FAITHFULNESS)
    echo(f"wrote {onnx_path}, {out / STRIPS} in {metrics['train_seconds']} s")
    return metrics


def _onnx_check(net: PrototypeNet, path: Path, x: np.ndarray) -> float:
    """Largest |ONNX Runtime − PyTorch| score on ``x``; positions must agree."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})
    with torch.no_grad():
        ref = [t.numpy() for t in net(torch.as_tensor(x, dtype=torch.float32))]
    return round(float(max(np.abs(got[0] - ref[0]).max(), np.abs(got[1] - ref[1]).max())), 7)
