"""The prototype model's card (``prototypes.md``) from its training metrics and, when there, its faithfulness
report (``ecgstream models eval prototypes``)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

FAITHFULNESS = "prototypes_faithfulness_cinc2021.json"
"""The faithfulness report the card quotes (beside the model)."""


def _ratio(v: float | None) -> str:
    return "n/a (random deletions did not lower the score on average)" if v is None else f"{v:.2f}"


def _faithfulness_text(path: Path) -> str:
    if not path.is_file():
        return ("Not measured yet: run `ecgstream models eval prototypes --data ../shared/data/cinc2021 "
                f"--json {path}` and rebuild the card.\n")
    r = json.loads(path.read_text())
    lg, sh = r["logit"], r["shown_matches"]
    return (
        f"On {r['windows']} windows of {r['records']} real records (`{r['data']}`; never trained on), explaining "
        f"each window's top class: deleting the best match's segment ({r['segment_s']:.2f} s, all 12 leads set to "
        f"0 mV) lowers that class's score by **{r['mean_drop_matched']:.4f}** on average; deleting a random segment "
        f"of the same length ({r['random_segments']} draws per window) by **{r['mean_drop_random']:.4f}**: ratio "
        f"**{_ratio(r['ratio'])}**. The matched deletion lowers the score more than the random ones on "
        f"**{100 * r['fraction_matched_greater']:.0f} %** of the windows.\n\n"
        f"| deletion | mean drop matched | mean drop random | ratio | windows matched > random |\n"
        f"|---|---:|---:|---:|---:|\n"
        f"| best match, score | {r['mean_drop_matched']:.4f} | {r['mean_drop_random']:.4f} | {_ratio(r['ratio'])} | "
        f"{100 * r['fraction_matched_greater']:.0f} % |\n"
        f"| best match, logit | {lg['mean_drop_matched']:.3f} | {lg['mean_drop_random']:.3f} | {_ratio(lg['ratio'])} | "
        f"{100 * lg['fraction_matched_greater']:.0f} % |\n"
        f"| all shown matches (≤ 3), score | {sh['mean_drop_matched']:.4f} | {sh['mean_drop_random']:.4f} | "
        f"{_ratio(sh['ratio'])} | {100 * sh['fraction_matched_greater']:.0f} % |\n"
        f"| all shown matches (≤ 3), logit | {sh['logit']['mean_drop_matched']:.3f} | "
        f"{sh['logit']['mean_drop_random']:.3f} | {_ratio(sh['logit']['ratio'])} | "
        f"{100 * sh['logit']['fraction_matched_greater']:.0f} % |\n\n"
        "Read it with care: the mean is carried by a minority of windows where the matched segment matters a lot; "
        "on many windows (regular rhythms, where every beat matches the prototype about equally) deleting one "
        "beat changes the score by less than 0.01 either way, so the per-window comparison is close to a coin "
        "toss there. 39 records: wide uncertainty.\n"
    )


def write_card(path: Path, metrics: dict[str, Any], stored: list[dict[str, Any]], faithfulness: Path) -> Path:
    """Write the card to ``path``."""
    cfg = metrics["config"]
    by_source = Counter(s["source"] for s in stored)
    hold = metrics.get("real_heldout", {})
    rows = "\n".join(
        f"| {s['prototype_id']} | {s['source']} | {s['record']} | {s['strip_segment_s'][0]:.2f}–"
        f"{s['strip_segment_s'][1]:.2f} | {s['push_similarity']:.3f} |" for s in stored)
    text = f"""# Prototype explanations (`prototypes.onnx`, `prototypes_strips.json`)

**Not a medical device.** A research aid that shows which known strips a window resembles; it must not be used
to diagnose, treat or triage anyone, and a similarity is not a finding.

## What it is
A ProtoPNet/ProtoECGNet-style prototype layer over the **shipped ECG-Mamba classifier's token embedding**
(`{cfg['model']['backbone']}`, frozen: stem, bidirectional Mamba blocks, final norm → 160 tokens of 64 ms).
An add-on (two 1×1 convolutions, ReLU) maps tokens to {cfg['model']['proto_dim']} non-negative features; each of the
18 classes has {cfg['model']['per_class']} prototypes, each a patch of {cfg['model']['patch_tokens']} tokens
(≈ {cfg['model']['patch_tokens'] * 0.064:.2f} s). Similarity = cosine between the prototype and a window patch,
in [0, 1], best over positions; a linear layer turns the {len(stored)} similarities into sigmoid class scores.
Outputs: `scores` (B, 18), `similarities` (B, {len(stored)}), `positions` (B, {len(stored)}) — the token where each
prototype matched best, so the window segment is known (token *t* covers samples 8·t − 15 … 8·(t+L) − 15 at 125 Hz).
Mamba tokens carry context from the whole window: the segment is where the match is anchored, not everything it saw.

## Training data
- **Synthetic** windows from the ecgstream simulator: {cfg['data']['synthetic_windows']} (seed
  {cfg['data']['synthetic_seed']}; 90 % for training, 10 % test), {cfg['data']['edge_fraction']:.0%} seen as the edge
  sees them (II, V1, V5 through the VAE), {cfg['data']['noise_fraction']:.0%} made unreadable (NOISE).
- **Real**: `{cfg['data']['real_dir']}` (CinC 2021 records, {cfg['data']['real_hop_s']:g} s hop), split by record:
  {cfg['data']['holdout_fraction']:.0%} of the records held out (scored only, never trained or pushed on by this
  layer; the frozen classifier backbone itself was trained with all 53 tune records, see its card).
- Losses: BCE + {cfg['train']['cluster']} × cluster + {cfg['train']['separation']} × separation
  + {cfg['train']['coverage']} × coverage (every prototype near some window of its class: no dead prototypes)
  + {cfg['train']['diversity']} × diversity (a class's prototypes unlike one another)
  ({cfg['train']['epochs']} epochs), push, then the last layer alone ({cfg['train']['last_layer_epochs']} epochs,
  L1 {cfg['train']['last_layer_l1']} on weights to other classes). Training took {metrics['train_seconds']} s on
  {cfg['train']['threads']} CPU thread(s).

## Prototypes
Each prototype is projected onto (is) the feature patch of a training window of its class, most similar to it;
a class's prototypes go to different windows, and a prototype goes to the best *real* window of its class when
that is within {cfg['data']['real_margin']} similarity of the best window overall. *Push similarity*: how close
the learned prototype was to that patch before the projection (1 = it did not move).
**{by_source.get('real', 0)} real** (../shared/tune records), **{by_source.get('synthetic', 0)} synthetic**
(record id `synthetic:<seed>:<index>:<simulator rhythm>`). Stored strip: lead II, 10 s, 125 Hz.

| prototype | source | record | segment (s) | push similarity |
|---|---|---|---|---|
{rows}

## Scores (the prototype layer's own class scores)
Macro AUROC over classes with positives and negatives: training windows {metrics['train']['macro_auroc']},
synthetic test {metrics['synthetic_test']['macro_auroc']}, held-out real tune records {hold.get('macro_auroc')}
({hold.get('windows', 0)} windows). These explain, they do not replace the classifier's calls.
ONNX Runtime vs PyTorch: max |Δ| {metrics['onnx_max_abs_diff']}.

## Faithfulness (`../shared/data/cinc2021`, reporting only)
{_faithfulness_text(faithfulness)}
Reproduce: `ecgstream models train prototypes --config models/configs/prototypes.toml --out models/artifacts`, then
`ecgstream models eval prototypes --data ../shared/data/cinc2021 --json models/artifacts/{FAITHFULNESS}` and
`python -m models.prototypes.card models/artifacts` (this card).

## Must not be used for
Diagnosis, triage or any decision about a patient. Synthetic prototypes show simulator strips, not patients;
real prototypes come from {by_source.get('real', 0)} strips of a 53-record set and say nothing about populations.
"""
    path.write_text(text)
    return path


def rebuild(folder: Path) -> Path:
    """Rewrite ``folder/prototypes.md`` from the metrics, strips and faithfulness files there (after an eval)."""
    metrics = json.loads((folder / "prototypes_metrics.json").read_text())
    stored = json.loads((folder / "prototypes_strips.json").read_text())["prototypes"]
    return write_card(folder / "prototypes.md", metrics, stored, folder / FAITHFULNESS)


if __name__ == "__main__":      # python -m models.prototypes.card models/artifacts
    import sys

    print(rebuild(Path(sys.argv[1] if len(sys.argv) > 1 else "models/artifacts")))
