"""Model cards for the shipped classifiers, written from their metrics, real-record evaluation and speed.

``python -m models.classifier.card --arch mamba --dir models/artifacts`` writes
``classifier_<arch>.md`` from ``classifier_<arch>_metrics.json`` (training + held-out synthetic),
``classifier_<arch>_eval_cinc2021.json`` (``ecgstream models eval classifier --compare-int8``, when
present) and a fresh speed measurement (``classifier_<arch>_speed.json``, reused with ``--no-speed``).

The card leads with the real-record figures at the operating point (per class threshold,
sensitivity, specificity, F1 and AUROC for the edge view and the true 12 leads; macro F1 and AUROC;
INT8 vs FP32 on the same records), then the synthetic held-out table.

What the model was trained on comes from ``training_data`` (the argument, else the metrics JSON's
``"training_data"`` entry):

* a dict (what a training run on real data should write)::

      {"synthetic": true,                       # synthetic simulator windows were used (default true)
       "real": [{"name": "CinC 2021 tune set", "path": "../shared/tune", "records": 53,
                 "use": "fine-tuning and per-class thresholds",
                 "validation": "5-fold record-level cross-validation"}],   # [] = no real record used
       "thresholds": "how the per-class thresholds were chosen",           # optional
       "description": "anything else, shown verbatim",                     # optional
       "reproduce": "the training command line"}                           # optional

  each ``real`` entry may also be a plain string;
* a string: shown verbatim; one that says ``SYNTHETIC`` and never says ``real`` (what training
  wrote before real data) is read as synthetic only.

Without the argument, :func:`describe_training` reads the metrics JSON: its ``training_data`` when that
is a dict, else what its config (``real_dir``, ``real_only``, ``calibration_dir``) and
``calibration_cv`` say, else its ``training_data`` text.

A metrics ``"device"`` entry (e.g. ``"NVIDIA H100 80GB HBM3 (cuda)"``) names where it was trained;
without it the card names the CPU threads of the config.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
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


def training_sources(training_data: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """``training_data`` (see the module notes) as ``{"synthetic": bool, "real": list | None, "thresholds": str | None,
    "description": str | None, "reproduce": str | None}``; ``real`` None means the description does not say."""
    if training_data is None:
        return {"synthetic": True, "real": [], "thresholds": None, "description": None, "reproduce": None}
    if isinstance(training_data, str):
        synthetic_only = "SYNTHETIC" in training_data.upper() and "real" not in training_data.lower()
        return {"synthetic": synthetic_only or "SYNTHETIC" in training_data.upper(),
                "real": [] if synthetic_only else None, "thresholds": None, "description": training_data,
                "reproduce": None}
    real = training_data.get("real", [])
    if real is not None and not isinstance(real, list):
        real = [real]
    return {"synthetic": bool(training_data.get("synthetic", True)), "real": real,
            "thresholds": training_data.get("thresholds"), "description": training_data.get("description"),
            "reproduce": training_data.get("reproduce")}


def describe_training(metrics: Mapping[str, Any]) -> str | Mapping[str, Any] | None:
    """What a metrics JSON says the model learned from: its ``training_data`` dict when it is one, else a
    description built from its config's ``real_dir`` / ``real_only`` / ``calibration_dir`` and its
    ``calibration_cv`` (what ``ecgstream models train classifier --data … --calibrate …`` records), else its
    ``training_data`` text (metrics written before real data was possible)."""
    given = metrics.get("training_data")
    if isinstance(given, Mapping):
        return given
    d = metrics.get("config", {}).get("data", {})
    if not any(k in d for k in ("real_dir", "calibration_dir")):
        return given
    real: list[dict[str, Any]] = []
    if d.get("real_dir"):
        real.append({"name": "real training records", "path": d["real_dir"],
                     "use": "training" + ("" if d.get("real_only") else
                                          f", mixed with the synthetic windows (each real window ×"
                                          f"{d.get('real_repeat', 1)} per epoch)")})
    thresholds = None
    if d.get("calibration_dir"):
        cv = metrics.get("calibration_cv") or {}
        k = cv.get("k", d.get("calibration_folds"))
        oof = f"; out-of-fold macro F1 {cv['macro_f1']}" if cv.get("macro_f1") is not None else ""
        real.append({"name": "real calibration records", "path": d["calibration_dir"], "records": cv.get("records"),
                     "use": "logit calibration and per-class thresholds",
                     "validation": f"{k}-fold record-level cross-validation{oof}"})
        if metrics.get("thresholds"):
            chosen = cv.get("classes_thresholded")
            thresholds = (f"chosen per class on `{d['calibration_dir']}` by {k}-fold record-level cross-validation"
                          + (f" for {', '.join(chosen)}; 0.5 for the rest" if chosen else ""))
    return {"synthetic": not d.get("real_only", False), "real": real, "thresholds": thresholds}


def _source_text(src: str | Mapping[str, Any]) -> str:
    if isinstance(src, str):
        return src
    name = src.get("name", "real records")
    parts = [f"**{name}**" + (f" (`{src['path']}`)" if src.get("path") else "")]
    if src.get("records") is not None:
        parts.append(f"{src['records']} records")
    if src.get("use"):
        parts.append(f"used for {src['use']}")
    if src.get("validation"):
        parts.append(str(src["validation"]))
    return ", ".join(parts)


def _real_count(real: list[Any]) -> str:
    n = [s.get("records") for s in real if isinstance(s, Mapping)]
    counts = [x for x in n if isinstance(x, int)]
    if counts and len(counts) == len(real):
        return f"{sum(counts)} real records"
    return "real records"


def _headline(src: dict[str, Any]) -> str:
    real = src["real"]
    if real:
        what = (f"SYNTHETIC ECG and {_real_count(real)}" if src["synthetic"] else _real_count(real))
        return f"trained on {what} (see *Training data*)"
    if real is None:
        return f"trained on: {src['description']}"
    return "trained on SYNTHETIC ECG"


def _f(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""


def _op_cells(e: dict[str, Any]) -> list[str]:
    """Sensitivity (detected/positives), specificity, F1 and AUROC of one class at the operating point."""
    if e["status"] == "absent":
        return ["absent", _f(e.get("specificity")), "—", "—"]
    sens = "—" if e.get("sensitivity") is None else f"{e['sensitivity']:.2f} ({e['tp']}/{e['tp'] + e['fn']})"
    auc = e["status"] if e["status"] != "present" else _f(e.get("auroc"), 3)
    return [sens, _f(e.get("specificity")), _f(e.get("f1")), auc]


def _threshold_text(source: str) -> str:
    if source == "artifact":
        return "the per-class thresholds shipped in the artifact's `ecgstream` metadata"
    if source.startswith("default"):
        return ("**0.5 for every class: this artifact ships no thresholds** (its metadata has no `thresholds`), so "
                "these are not tuned operating points")
    return f"thresholds from {source}"


def operating_point_section(cinc: dict[str, Any], cinc_int8: dict[str, Any] | None, name: str) -> list[str]:
    """The card's lead: real records at the operating point, edge view and true 12 leads, and INT8 vs FP32."""
    b = cinc.get("bootstrap", {})
    data = cinc.get("data", "../shared/data/cinc2021")
    out = [f"## Real records at the operating point (`{data}`)", "",
           f"{cinc['records']} real 12-lead records ({cinc['skipped_records']} skipped; {cinc.get('windows', '?')} "
           "windows of 10 s), labels from their `# Dx:` SNOMED CT codes; **never used for training, calibration or "
           "thresholds**. A record's score is the mean of its windows' probabilities; it is called for a class when "
           "the score reaches the class's threshold.", ""]
    reproduce = ["Reproduce: `ecgstream models eval classifier --data " + data + f" --model models/artifacts/{name}.onnx "
                 f"--compare-int8 --json models/artifacts/{EVAL_NAME.format(arch=name.removeprefix('classifier_'))}`.",
                 ""]
    if "thresholds" not in cinc or "macro_f1" not in cinc.get("edge", {}):
        return out + ["This evaluation has no operating-point figures (made before they existed): macro AUROC edge "
                      f"{_macro(cinc['edge'])}, true 12 {_macro(cinc['true12'])}. Rerun it:", "", *reproduce]
    out += [f"Thresholds: {_threshold_text(cinc['thresholds_source'])}. Sensitivity (detected/positive records), "
            "specificity and F1 at that threshold, and AUROC (threshold-free); a class without a positive record "
            "is *absent*: only its specificity (how often it is called where it is not) is shown. FP32.", "",
            "| class | positives | threshold | edge sens | edge spec | edge F1 | edge AUROC "
            "| true 12 sens | true 12 spec | true 12 F1 | true 12 AUROC |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    counts = cinc.get("label_counts", {})
    for c in CLASSES:
        edge, true12 = cinc["edge"]["per_class"][c], cinc["true12"]["per_class"][c]
        out.append(f"| {c} | {counts.get(c, edge['positives'])} | {_f(edge.get('threshold'))} | "
                   + " | ".join(_op_cells(edge) + _op_cells(true12)) + " |")
    e, t = cinc["edge"], cinc["true12"]
    out.append(f"| **macro** (scored classes) | | | | | **{_f(e.get('macro_f1'))}** | **{_f(e.get('macro_auroc'), 3)}** "
               f"| | | **{_f(t.get('macro_f1'))}** | **{_f(t.get('macro_auroc'), 3)}** |")
    out += ["", f"Edge view (II, V1, V5 → VAE → 12 leads): macro F1 **{_f(e.get('macro_f1'))}**"
            f"{_ci(e.get('macro_f1_ci95'))}, macro AUROC **{_f(e.get('macro_auroc'), 3)}**"
            f"{_ci(e.get('macro_auroc_ci95'))}. True 12 leads: macro F1 {_f(t.get('macro_f1'))}"
            f"{_ci(t.get('macro_f1_ci95'))}, macro AUROC {_f(t.get('macro_auroc'), 3)}{_ci(t.get('macro_auroc_ci95'))}. "
            f"95 % bootstrap intervals over records ({b.get('resamples', '?')} resamples); few records: wide "
            f"intervals, and a class with 1–2 positives says little. Scored: {', '.join(e['classes_scored'])}.", ""]
    return out + _int8_lines(cinc, cinc_int8) + reproduce


def _int8_lines(cinc: dict[str, Any], cinc_int8: dict[str, Any] | None) -> list[str]:
    """INT8 vs FP32 on the same real records: from the report's ``int8`` part, else a separate INT8 report."""
    q = cinc.get("int8")
    if q is None and cinc_int8 is not None:
        q = {"true12": cinc_int8["true12"], "edge": cinc_int8["edge"], "change": None}
    if q is None:
        return ["INT8 on real records: not evaluated (add `--compare-int8`).", ""]
    lines = ["INT8 vs FP32 on the same real records (same thresholds):", "",
             "| input | macro AUROC FP32 | INT8 | change | macro F1 FP32 | INT8 | change | max abs Δp | calls changed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for view, label in (("edge", "edge"), ("true12", "true 12")):
        a, b = cinc[view], q[view]
        ch = (q.get("change") or {}).get(view, {})

        def delta(key: str, a: dict[str, Any] = a, b: dict[str, Any] = b) -> str:
            x, y = a.get(key), b.get(key)
            return "—" if x is None or y is None else f"{y - x:+.4f}"

        lines.append(f"| {label} | {_f(a.get('macro_auroc'), 3)} | {_f(b.get('macro_auroc'), 3)} | {delta('macro_auroc')} "
                     f"| {_f(a.get('macro_f1'))} | {_f(b.get('macro_f1'))} | {delta('macro_f1')} "
                     f"| {_f(ch.get('max_abs_prob'), 3)} | {ch.get('calls_changed', '—')} |")
    return [*lines, ""]


def _augment_text(cfg: Mapping[str, Any]) -> str:
    a = cfg.get("augment") or {}
    if not a.get("enabled"):
        return ""
    return (f", domain-randomised (amplitude and per-lead gain, electrical axis ±{a.get('axis_deg', 0):g}°, chest "
            "electrode shift, EMG, powerline and baseline wander, device low-pass "
            f"{a.get('lowpass_hz', ['?', '?'])[0]:g}–{a.get('lowpass_hz', ['?', '?'])[1]:g} Hz, a 100 Hz device "
            f"rate for {a.get('low_rate_probability', 0):.0%} of windows)")


def _real_flags(d: Mapping[str, Any]) -> str:
    return ((f" --data {d['real_dir']}" if d.get("real_dir") else "") + (" --real-only" if d.get("real_only") else "")
            + (f" --calibrate {d['calibration_dir']}" if d.get("calibration_dir") else ""))


def training_section(src: dict[str, Any], metrics: dict[str, Any], arch: str) -> list[str]:
    """Where the weights and thresholds came from: the synthetic part from the config, real sources as given."""
    cfg = metrics["config"]
    d = cfg["data"]
    real = src["real"]
    title = "synthetic" if real == [] else ("synthetic and real" if src["synthetic"] and real else "as described")
    out = [f"## Training data ({title})", ""]
    if src["description"] and real != []:
        out += [str(src["description"]), ""]
    if src["synthetic"]:
        out += [f"{d['train_windows']:,} SYNTHETIC windows from the ecgstream simulator (one random virtual patient per "
                f"window: axis, amplitudes, intervals, rate; noise of random kind and level; seed {d['train_seed']}), "
                f"labelled from the simulated rhythm{_augment_text(cfg)}. {d['edge_fraction']:.0%} are seen as on the "
                "edge: II, V1, V5 "
                f"through the shipped reconstruction VAE (`reconstruction_vae.onnx`); the rest are true 12-lead. "
                f"{d['noise_fraction']:.0%} are made unreadable (heavy EMG, motion, lead-off, intermittent contact) "
                "and labelled NOISE only."
                + (" No real record was used for training, calibration or thresholds." if real == [] else ""), ""]
    if real:
        out += ["Real records:", "", *[f"- {_source_text(r)}" for r in real], ""]
    if src["thresholds"]:
        out += [f"Thresholds: {str(src['thresholds']).rstrip('.')}.", ""]
    out += [f"{cfg['train']['epochs']} epochs, batch {cfg['train']['batch_size']}, AdamW, "
            f"{metrics['train_seconds'] / 60:.0f} min on {_trained_on(metrics, cfg)} "
            f"(config hash `{metrics['config_hash']}`).", "",
            f"Reproduce: `{src['reproduce']}`." if src["reproduce"] else
            "Reproduce: `ecgstream models train classifier --config models/configs/classifier_full.toml "
            f"--arch {arch}{_real_flags(d)} --out models/artifacts --checkpoints out/classifier/checkpoints` (add "
            "`--resume` after an interruption).", ""]
    return out


def _trained_on(metrics: dict[str, Any], cfg: dict[str, Any]) -> str:
    """The training device: the metrics' ``device`` (e.g. a GPU's name) when recorded, else the CPU threads."""
    if metrics.get("device"):
        return str(metrics["device"])
    return f"{cfg['train']['threads']} CPU thread(s) of a shared 2-core machine"


def render(arch: str, metrics: dict[str, Any], cinc: dict[str, Any] | None, speed: list[dict[str, Any]] | None,
           other: dict[str, Any] | None = None, cinc_int8: dict[str, Any] | None = None,
           other_cinc: dict[str, Any] | None = None, *,
           training_data: str | Mapping[str, Any] | None = None) -> str:
    """The markdown card. ``training_data`` (see the module notes) defaults to the metrics' ``training_data``."""
    h = metrics["held_out_synthetic"]
    cfg = metrics["config"]
    name = f"classifier_{arch}"
    d = cfg["data"]
    src = training_sources(training_data if training_data is not None else describe_training(metrics))
    out = [f"# {TITLES.get(arch, arch)} (`{name}.onnx`, `{name}_int8.onnx`)", ""]
    out += [f"**Not a medical device.** Research and engineering use only: {_headline(src)}; its outputs "
            "must not be used to diagnose, treat or triage anyone.", ""]
    if cinc is not None:
        out += operating_point_section(cinc, cinc_int8, name)
    out += ["## What it is", "",
            f"Multi-label classifier of one 10 s, 12-lead window (125 Hz, band-passed 0.5–40 Hz, mV; input `leads12` "
            f"(B, 12, 1250) float32) → a sigmoid probability per class (`probabilities` (B, 18)). "
            f"Architecture: {_arch_text(arch, cfg)}. {metrics['parameters']:,} parameters. "
            f"ONNX opset 17, fixed window length, dynamic batch; FP32 {metrics['onnx_fp32_bytes'] / 1024:.0f} KiB, "
            f"INT8 {metrics['onnx_int8_bytes'] / 1024:.0f} KiB (static QDQ, per-channel weights, activation ranges "
            f"from {d['calib_windows']} training windows; convolutions and projections INT8, the selective scan "
            "float). The ONNX metadata entry `ecgstream` lists the classes, their SNOMED CT codes, rate, leads and "
            "version" + (", and the per-class operating thresholds" if metrics.get("thresholds") else "") + "."
            + (" A second input `features` carries rhythm features measured from II, V1 and V5 of the same window "
               "(heart rate, RR irregularity, premature beats, QRS width, QTc, P, ST and T levels; `models.features`); "
               "the runtime computes them, so callers pass only the 12 leads." if cfg.get("inputs", {}).get(
                   "rhythm_features") else ""), "",
            "| class | meaning | SNOMED CT |", "|---|---|---|"]
    for c in VOCABULARY:
        out.append(f"| {c.key} | {DESCRIPTIONS[c.key]} | {', '.join(sorted(c.snomed)) or '— (no code)'} |")
    out += [""]
    out += training_section(src, metrics, arch)
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
        q8 = cinc.get("int8") or cinc_int8
        out += [f"## Real records in detail: AUROC with intervals (`{cinc.get('data', '../shared/data/cinc2021')}`)", "",
                f"{cinc['records']} records ({cinc['skipped_records']} skipped), labels from the `# Dx:` SNOMED CT "
                f"codes. AUROC with 95 % bootstrap intervals ({b.get('resamples', '?')} resamples over records); "
                "**few records — the intervals are wide, and a class with 1–2 positives says little**. Classes "
                "with no positive record are *absent* (not scored, not counted as 0). FP32 unless marked INT8.", "",
                _table({"true 12 leads": cinc["true12"], "edge (II, V1, V5 → VAE)": cinc["edge"],
                        **({"true 12, INT8": q8["true12"], "edge, INT8": q8["edge"]} if q8 else {})},
                       counts=cinc.get("label_counts")), "",
                *([f"The {other['architecture']} baseline on the same records: macro AUROC true 12 "
                   f"{_macro(other_cinc['true12'])}, edge {_macro(other_cinc['edge'])}"
                   + (f"; macro F1 at its thresholds ({other_cinc.get('thresholds_source')}) true 12 "
                      f"{_f(other_cinc['true12']['macro_f1'])}, edge {_f(other_cinc['edge']['macro_f1'])}"
                      if "macro_f1" in other_cinc["edge"] else "") + ".", ""]
                  if other is not None and other_cinc is not None else []),
                ]
    if speed:
        out += ["## Speed (CPU, ONNX Runtime, 2 threads; shared machine, best of repeats)", "",
                "| what | batch | ms/window | windows/s |", "|---|---:|---:|---:|"]
        out += [f"| {r['what']} | {r['batch']} | {r['ms_per_window']:.2f} | {r['windows_per_s']:.0f} |" for r in speed]
        out += ["", "Reproduce: `.venv/bin/python -m bench classifier`.", ""]
    trained = ("Trained only on simulated ECG: real ECGs have morphologies, artefacts and rhythm mixtures the "
               "simulator lacks, so real-record accuracy is far below the synthetic figures (see above)."
               if src["real"] == [] else
               "Real-record training data is small (see *Training data*): the real-record figures above come from "
               "few records, with wide intervals, and may not hold for other populations, devices or settings.")
    shipped = (cinc or {}).get("thresholds_source") == "artifact"
    thresholds = ("- Per-class thresholds ship in the artifact's metadata"
                  + (f" ({src['thresholds']})" if src["thresholds"] else "")
                  + "; probabilities are not calibrated beyond them." if shipped else
                  "- Probabilities are not calibrated on real data and the artifact ships no per-class thresholds "
                  "(0.5 is used above); thresholds for alarms belong to the edge rules.")
    out += ["## Limits; what it must not be used for", "",
            f"- Not a medical device; not validated on patients. {trained}",
            "- Ventricular fibrillation, asystole, second/third-degree AV block and paced rhythms are **not** "
            "classes: the edge catches VF and asystole with its rules, not with this model.",
            thresholds,
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


def write_card(arch: str, folder: str | Path, *, measure_speed: bool = True,
               training_data: str | Mapping[str, Any] | None = None) -> Path:
    """Write ``classifier_<arch>.md`` in ``folder`` from the JSON files there (see the module notes).

    ``training_data`` describes what the model learned from (see the module notes); by default the
    metrics JSON's ``training_data`` entry.
    """
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
    path.write_text(render(arch, metrics, cinc, speed, other, cinc_int8, other_cinc, training_data=training_data))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--arch", choices=["mamba", "resnet"], required=True)
    p.add_argument("--dir", default="models/artifacts")
    p.add_argument("--no-speed", action="store_true", help="reuse the recorded speed instead of measuring")
    p.add_argument("--training-data", metavar="FILE.json",
                   help="JSON describing the training data (see the module notes); default: the metrics' entry")
    args = p.parse_args(argv)
    training = json.loads(Path(args.training_data).read_text(encoding="utf-8")) if args.training_data else None
    print(write_card(args.arch, args.dir, measure_speed=not args.no_speed, training_data=training))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
