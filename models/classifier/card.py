"""Model cards for the shipped classifiers, written from their metrics, real-record evaluation and speed.

``python -m models.classifier.card --arch mamba --dir models/artifacts`` writes
``classifier_<arch>.md`` from ``classifier_<arch>_metrics.json`` (training + held-out synthetic),
``classifier_<arch>_eval_cinc2021.json`` (``ecgstream models eval classifier``, when present) and a
fresh speed measurement (``classifier_<arch>_speed.json``, reused with ``--no-speed``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from models.data.labels import CLASSES, DESCRIPTIONS, VOCABULARY

EVAL_NAME = "classifier_{arch}_eval_cinc2021.json"
SPEED_NAME = "classifier_{arch}_speed.json"
TITLES = {"mamba": "ECG-Mamba arrhythmia classifier", "resnet": "1-D ResNet arrhythmia classifier (baseline)"}


def _cell(rep: dict[str, Any], cls: str, key: str = "auroc") -> str:
    e = rep["per_class"][cls]
    if e["status"] != "present":
        return e["status"]
    v = e.get(key)
    ci = e.get(f"{key}_ci95")
    s = "n/a" if v is None else f"{v:.3f}"
    return s + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _macro(rep: dict[str, Any], key: str = "auroc") -> str:
    v, ci = rep.get(f"macro_{key}"), rep.get(f"macro_{key}_ci95")
    s = "n/a" if v is None else f"**{v:.3f}**"
    return s + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _table(columns: dict[str, dict[str, Any]], key: str = "auroc", counts: dict[str, int] | None = None) -> str:
    head = "| class |" + (" positives |" if counts else "") + " " + " | ".join(columns) + " |"
    sep = "|---|" + ("---:|" if counts else "") + "---|" * len(columns)
    lines = [head, sep]
    for c in CLASSES:
        pos = f" {counts[c]} |" if counts else ""
        lines.append(f"| {c} |{pos} " + " | ".join(_cell(r, c, key) for r in columns.values()) + " |")
    lines.append("| macro |" + (" |" if counts else "") + " " + " | ".join(_macro(r, key) for r in columns.values())
                 + " |")
    return "\n".join(lines)


def render(arch: str, metrics: dict[str, Any], cinc: dict[str, Any] | None, speed: list[dict[str, Any]] | None,
           other: dict[str, Any] | None = None, cinc_int8: dict[str, Any] | None = None,
           other_cinc: dict[str, Any] | None = None) -> str:
    """The markdown card."""
    h = metrics["held_out_synthetic"]
    cfg = metrics["config"]
    name = f"classifier_{arch}"
    d = cfg["data"]
    out = [f"# {TITLES.get(arch, arch)} (`{name}.onnx`, `{name}_int8.onnx`)", ""]
    out += ["**Not a medical device.** Research and engineering use only: trained on SYNTHETIC ECG; its outputs "
            "must not be used to diagnose, treat or triage anyone.", ""]
    out += ["## What it is", "",
            f"Multi-label classifier of one 10 s, 12-lead window (125 Hz, band-passed 0.5–40 Hz, mV; input `leads12` "
            f"(B, 12, 1250) float32) → a sigmoid probability per class (`probabilities` (B, 18)). "
            f"Architecture: {_arch_text(arch, cfg)}. {metrics['parameters']:,} parameters. "
            f"ONNX opset 17, fixed window length, dynamic batch; FP32 {metrics['onnx_fp32_bytes'] / 1024:.0f} KiB, "
            f"INT8 {metrics['onnx_int8_bytes'] / 1024:.0f} KiB (static QDQ, per-channel weights, activation ranges "
            f"from {d['calib_windows']} training windows; convolutions and projections INT8, the selective scan "
            "float). The ONNX metadata entry `ecgstream` lists the classes, their SNOMED CT codes, rate, leads and "
            "version.", "",
            "| class | meaning | SNOMED CT |", "|---|---|---|"]
    for c in VOCABULARY:
        out.append(f"| {c.key} | {DESCRIPTIONS[c.key]} | {', '.join(sorted(c.snomed)) or '— (no code)'} |")
    out += ["", "## Training data (synthetic)", "",
            f"{d['train_windows']:,} SYNTHETIC windows from the ecgstream simulator (one random virtual patient per "
            f"window: axis, amplitudes, intervals, rate; noise of random kind and level; seed {d['train_seed']}), "
            f"labelled from the simulated rhythm. {d['edge_fraction']:.0%} are seen as on the edge: II, V1, V5 "
            f"through the shipped reconstruction VAE (`reconstruction_vae.onnx`); the rest are true 12-lead. "
            f"{d['noise_fraction']:.0%} are made unreadable (heavy EMG, motion, lead-off, intermittent contact) "
            "and labelled NOISE only. No real record was used for training or tuning. "
            f"{cfg['train']['epochs']} epochs, batch {cfg['train']['batch_size']}, AdamW, "
            f"{metrics['train_seconds'] / 60:.0f} min on {cfg['train']['threads']} CPU thread(s) of a shared "
            f"2-core machine (config hash `{metrics['config_hash']}`).", "",
            "Reproduce: `ecgstream models train classifier --config models/configs/classifier_full.toml "
            f"--arch {arch} --out models/artifacts --checkpoints out/classifier/checkpoints` (add `--resume` after an "
            "interruption).", ""]
    syn = (cinc or {}).get("synthetic") or {"true12": h["true12"]["onnx_fp32"], "edge": h["edge"]["onnx_fp32"]}
    syn_int8 = (cinc_int8 or {}).get("synthetic") or {"true12": h["true12"]["onnx_int8"], "edge": h["edge"]["onnx_int8"]}
    out += ["## Held-out synthetic test set", "",
            f"{h['windows']:,} windows (seed {d['test_seed']}, never trained on), the same windows as true 12 leads "
            "and through the edge path. AUROC (ONNX Runtime):", "",
            _table({"true 12, FP32": syn["true12"], "edge, FP32": syn["edge"],
                    "true 12, INT8": syn_int8["true12"], "edge, INT8": syn_int8["edge"]}), "",
            f"95 % intervals: bootstrap over windows ({syn['true12'].get('bootstrap', 0)} resamples) where shown.", "",
            f"Macro AUPRC: true 12 {h['true12']['onnx_fp32']['macro_auprc']}, edge "
            f"{h['edge']['onnx_fp32']['macro_auprc']} (FP32). INT8 change in macro AUROC: "
            + ", ".join(f"{k} {v:+.4f}" for k, v in metrics["int8_macro_auroc_change"].items())
            + " (goal: drop ≤ 0.005). ONNX FP32 vs PyTorch: max |Δp| "
            f"{metrics['onnx_vs_torch_max_abs']:.1e}.", ""]
    out += ["The synthetic test set is nearly saturated (macro AUROC ≈ 0.999 for both architectures): "
            "it shows the edge path (VAE-reconstructed leads) and INT8 cost nothing *on simulator data*, but it "
            "cannot rank models or predict real-record accuracy.", ""]
    if arch == "mamba":
        out += ["Scan: the chunked (Mamba-2 SSD) scan equals the token-by-token reference scan on the trained "
                "weights within 1e-4 in probability, and stays finite for Δ from 1e-6 to 1e3 "
                "(`tests/models/test_classifier_scan.py`); in ONNX Runtime it is several times faster than the "
                "same model exported with the sequential scan (`python -m bench classifier`). INT8 halves the "
                "file but is not faster on this CPU: the float scan dominates, and QDQ adds (de)quantization.", ""]
    if other is not None:
        oh = other["held_out_synthetic"]
        out += [f"Comparison ({other['architecture']}, {other['parameters']:,} parameters, same data and budget): "
                f"macro AUROC true 12 {oh['true12']['onnx_fp32']['macro_auroc']}, edge "
                f"{oh['edge']['onnx_fp32']['macro_auroc']} vs this model's "
                f"{h['true12']['onnx_fp32']['macro_auroc']}, {h['edge']['onnx_fp32']['macro_auroc']}.", ""]
    if cinc is not None:
        b = cinc.get("bootstrap", {})
        out += ["## Real records: PhysioNet/CinC Challenge 2021 sample (`../shared/data/cinc2021`)", "",
                f"{cinc['records']} records ({cinc['skipped_records']} skipped), labels from the `# Dx:` SNOMED CT "
                f"codes. AUROC with 95 % bootstrap intervals ({b.get('resamples', '?')} resamples over records); "
                "**few records — the intervals are wide, and a class with 1–2 positives says little**. Classes "
                "with no positive record are *absent* (not scored, not counted as 0). FP32 unless marked INT8.", "",
                _table({"true 12 leads": cinc["true12"], "edge (II, V1, V5 → VAE)": cinc["edge"],
                        **({"true 12, INT8": cinc_int8["true12"], "edge, INT8": cinc_int8["edge"]} if cinc_int8 else {})},
                       counts=cinc.get("label_counts")), "",
                *([f"The {other['architecture']} baseline on the same records: macro AUROC true 12 "
                   f"{_macro(other_cinc['true12'])}, edge {_macro(other_cinc['edge'])}.", ""]
                  if other is not None and other_cinc is not None else []),
                "Reproduce: `ecgstream models eval classifier --data ../shared/data/cinc2021 --model "
                f"models/artifacts/{name}.onnx --json models/artifacts/{EVAL_NAME.format(arch=arch)}`.", ""]
    if speed:
        out += ["## Speed (CPU, ONNX Runtime, 2 threads; shared machine, best of repeats)", "",
                "| what | batch | ms/window | windows/s |", "|---|---:|---:|---:|"]
        out += [f"| {r['what']} | {r['batch']} | {r['ms_per_window']:.2f} | {r['windows_per_s']:.0f} |" for r in speed]
        out += ["", "Reproduce: `.venv/bin/python -m bench classifier`.", ""]
    out += ["## Limits; what it must not be used for", "",
            "- Not a medical device; not validated on patients. Trained only on simulated ECG: real ECGs have "
            "morphologies, artefacts and rhythm mixtures the simulator lacks, so real-record accuracy is far "
            "below the synthetic figures (see above).",
            "- Ventricular fibrillation, asystole, second/third-degree AV block and paced rhythms are **not** "
            "classes: the edge catches VF and asystole with its rules, not with this model.",
            "- Probabilities are not calibrated on real data; thresholds for alarms belong to the edge rules.",
            "- Input must be prepared by `models.preprocessing` (125 Hz, 0.5–40 Hz band-pass, mV, 10 s).", ""]
    return "\n".join(out)


def _arch_text(arch: str, cfg: dict[str, Any]) -> str:
    if arch == "mamba":
        m = cfg["mamba"]
        return (f"1-D CNN stem (3 stride-2 convolutions → 160 tokens of 64 ms), {m['n_blocks']} bidirectional "
                f"Mamba-2 blocks (d_model {m['d_model']}, d_state {m['d_state']}, expand {m['expand']}, head dim "
                f"{m['headdim']}; selective scan with input-dependent Δ, B, C, computed in chunks of {m['chunk']} "
                "tokens as matrix products, SSD form), mean‖max pooling, linear head")
    r = cfg["resnet"]
    return (f"1-D ResNet: stem convolution, 4 residual stages of widths {r['widths']} (kernel {r['kernel']}), "
            "mean‖max pooling, linear head")


def write_card(arch: str, folder: str | Path, *, measure_speed: bool = True) -> Path:
    """Write ``classifier_<arch>.md`` in ``folder`` from the JSON files there (see the module notes)."""
    folder = Path(folder)
    metrics = json.loads((folder / f"classifier_{arch}_metrics.json").read_text())
    eval_path = folder / EVAL_NAME.format(arch=arch)
    cinc = json.loads(eval_path.read_text()) if eval_path.exists() else None
    speed_path = folder / SPEED_NAME.format(arch=arch)
    speed = None
    if measure_speed:
        from models.classifier.speed import edge_path_speed, ort_runner

        speed = edge_path_speed({
            f"{arch} FP32": ort_runner(folder / f"classifier_{arch}.onnx"),
            f"{arch} INT8": ort_runner(folder / f"classifier_{arch}_int8.onnx"),
        })
        speed_path.write_text(json.dumps(speed, indent=2) + "\n")
    elif speed_path.exists():
        speed = json.loads(speed_path.read_text())
    other_arch = "resnet" if arch == "mamba" else "mamba"
    other_path = folder / f"classifier_{other_arch}_metrics.json"
    other = json.loads(other_path.read_text()) if other_path.exists() else None
    int8_eval = folder / EVAL_NAME.format(arch=f"{arch}_int8")
    cinc_int8 = json.loads(int8_eval.read_text()) if int8_eval.exists() else None
    other_eval = folder / EVAL_NAME.format(arch=other_arch)
    other_cinc = json.loads(other_eval.read_text()) if other_eval.exists() else None
    path = folder / f"classifier_{arch}.md"
    path.write_text(render(arch, metrics, cinc, speed, other, cinc_int8, other_cinc))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--arch", choices=["mamba", "resnet"], required=True)
    p.add_argument("--dir", default="models/artifacts")
    p.add_argument("--no-speed", action="store_true", help="reuse the recorded speed instead of measuring")
    args = p.parse_args(argv)
    print(write_card(args.arch, args.dir, measure_speed=not args.no_speed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
