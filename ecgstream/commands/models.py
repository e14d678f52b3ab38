"""``ecgstream models …``: train and evaluate the project's models (torch only inside training).

Every error a user can cause ends as a :class:`click.ClickException` (or an exception type
:func:`ecgstream.cli.main` reports), so it prints as one ``ecgstream: error: …`` line with exit
status 2; ONNX Runtime's own exceptions (a file that is not a model, the wrong model) included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click


@contextmanager
def _onnx_errors() -> Iterator[None]:
    """ONNX Runtime's exceptions (which derive from no standard error type) as one CLI error line."""
    try:
        yield
    except Exception as exc:
        if not type(exc).__module__.startswith("onnxruntime"):
            raise
        lines = str(exc).strip().splitlines()
        raise click.ClickException(f"ONNX Runtime cannot use the model: {lines[0] if lines else type(exc).__name__}") from None


@click.group()
def models() -> None:
    """Train, evaluate and export the models (training data is synthetic)."""


@models.group()
def train() -> None:
    """Train a model from a TOML config."""


@train.command("reconstruction")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config (models/configs/reconstruction_{tiny,full}.toml).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/reconstruction"),
              show_default=True, help="Folder for the ONNX model, baseline, metrics and checkpoints.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoints/last.pt.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train_reconstruction_cmd(config_path: Path, out: Path, resume: bool, quiet: bool) -> None:
    """Train the 3→12 lead reconstruction VAE on synthetic windows, calibrate it and export ONNX."""
    from models.reconstruction.config import load_config

    cfg = load_config(config_path)
    try:
        from models.reconstruction.train import train_reconstruction
    except ImportError as exc:
        raise click.ClickException(f"training needs the train extras (pip install -e '.[train]'): {exc}") from None
    train_reconstruction(cfg, out, resume=resume, progress=not quiet, echo=click.echo)


@train.command("classifier")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config (models/configs/classifier_{tiny,full}.toml).")
@click.option("--arch", type=click.Choice(["mamba", "resnet", "both"]), default="mamba", show_default=True,
              help="ECG-Mamba, the 1-D ResNet baseline, or both one after the other.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/classifier"),
              show_default=True, help="Folder for the ONNX models (FP32, INT8), weights and metrics.")
@click.option("--checkpoints", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the per-epoch checkpoints (default: OUT/checkpoints).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint.")
@click.option("--device", default="cpu", show_default=True, help="Training device: cpu, cuda, cuda:1 ...")
@click.option("--data", "real_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Real labelled records (CinC 2020/2021 or PTB-XL layout) to train on, mixed with the synthetic "
                   "windows (or alone with --real-only).")
@click.option("--real-only", is_flag=True, help="Train on the --data records alone, no synthetic training windows.")
@click.option("--real-repeat", type=click.IntRange(min=1), default=None,
              help="Times each real window appears per epoch (default: the config's real_repeat).")
@click.option("--calibrate", "calibration_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Real records to calibrate the logits and choose each class's threshold on "
                                 "(record-level k-fold cross-validation) before export.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train_classifier_cmd(config_path: Path, arch: str, out: Path, checkpoints: Path | None, resume: bool,
                         device: str, real_dir: Path | None, real_only: bool, real_repeat: int | None,
                         calibration_dir: Path | None, quiet: bool) -> None:
    """Train the arrhythmia classifier (synthetic edge-view windows, real records or both), calibrate it on
    real records when asked, export FP32 + INT8 ONNX. Resumable: --resume continues from the last
    checkpoint, and a finished run resumed with --calibrate is re-calibrated and re-exported."""
    from dataclasses import replace

    from models.classifier.config import checked, load_config

    try:
        cfg = load_config(config_path)
        data = cfg.data
        if real_dir is not None:
            data = replace(data, real_dir=str(real_dir), real_only=real_only)
        elif real_only:
            raise ValueError("--real-only needs --data DIR")
        if real_repeat is not None:
            data = replace(data, real_repeat=real_repeat)
        if calibration_dir is not None:
            data = replace(data, calibration_dir=str(calibration_dir))
        cfg = checked(replace(cfg, data=data))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        from models.classifier.train import train_classifier
    except ImportError as exc:
        raise click.ClickException(f"training needs the train extras (pip install -e '.[train]'): {exc}") from None
    for one in (["mamba", "resnet"] if arch == "both" else [arch]):
        train_classifier(cfg, one, out, checkpoint_dir=checkpoints, resume=resume, progress=not quiet,
                         device=device, echo=click.echo)


@models.group()
def calibrate() -> None:
    """Fit a model to one patient from their own recordings."""


@calibrate.command("reconstruction")
@click.option("--reference", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The patient's 12-lead ECG (WFDB .hea, EDF or CSV; any rate; at least 10 s), e.g. the admission ECG.")
@click.option("--patient", "patient_id", required=True, help="Patient id, as the edge knows the patient.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out/edge/calibrations"),
              show_default=True, help="Folder the edge reads calibrations from ([processing] calibration_dir).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Reconstruction ONNX the edge runs (default: models/artifacts/reconstruction_vae.onnx).")
@click.option("--seconds", type=click.FloatRange(10, None), default=None,
              help="Use only the first SECONDS of the reference (whole 10 s windows; default: all).")
def calibrate_reconstruction_cmd(reference: Path, patient_id: str, out_dir: Path, model_path: Path | None,
                                 seconds: float | None) -> None:
    """Calibrate the 3→12 reconstruction to one patient; the edge picks it up for that patient's windows."""
    from models.reconstruction.patient_calibration import CalibrationError, calibrate_from_record
    from protocol.topics import validate_id

    try:
        validate_id(patient_id, "patient id")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        with _onnx_errors():
            cal = calibrate_from_record(reference, patient_id=patient_id, model_path=model_path, seconds=seconds)
    except CalibrationError as exc:
        raise click.ClickException(str(exc)) from None
    path = cal.save(out_dir / f"{patient_id}.json")
    click.echo(f"patient {patient_id}: {cal.calibration_s:g} s of {reference.name}; fit r generic → calibrated:")
    for lead in cal.in_sample_r:
        click.echo(f"  {lead:<3} {cal.generic_r[lead]:.3f} → {cal.in_sample_r[lead]:.3f}   "
                   f"band ×{cal.band_scale[list(cal.in_sample_r).index(lead)]:.2f}")
    click.echo(f"wrote {path}")


@models.group("eval")
def eval_() -> None:
    """Evaluate a model on real records."""


@eval_.command("reconstruction")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of real WFDB records (searched recursively; non-12-lead records are skipped).")
@click.option("--json", "json_out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report here (JSON).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="ONNX model (default: models/artifacts/reconstruction_vae.onnx).")
@click.option("--baseline", "baseline_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Linear baseline JSON (default: reconstruction_linear.json beside the model).")
@click.option("--calibration-seconds", "calibration_s", type=click.FloatRange(0, 9), default=5.0, show_default=True,
              help="Also score patient-calibrated models: calibrate on the first S s of each window's 12 leads, "
                   "score the rest; 0: off.")
@click.option("--ceiling", is_flag=True,
              help="Also report a linear map fitted on these very records (leave one out): a bound on what any "
                   "patient-generic map could reach here, not a model.")
def eval_reconstruction_cmd(data: Path, json_out: Path, model_path: Path | None, baseline_path: Path | None,
                            calibration_s: float, ceiling: bool) -> None:
    """Per-lead r and RMSE (µV) of the linear baseline and the VAE on real 12-lead records (II, V1, V5 in)."""
    from models.reconstruction.evaluate import evaluate_records, format_table
    from models.runtime.onnx_model import DEFAULT_RECONSTRUCTION

    model_path = model_path or DEFAULT_RECONSTRUCTION
    baseline_path = baseline_path or model_path.with_name("reconstruction_linear.json")
    if not baseline_path.exists():
        raise click.ClickException(f"linear baseline {baseline_path} not found (pass --baseline)")
    try:
        json.loads(baseline_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"linear baseline {baseline_path} is not JSON ({exc})") from None
    try:
        with _onnx_errors():
            result = evaluate_records(data, model_path, baseline_path, calibration_s=calibration_s, ceiling=ceiling)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{result['records']} records ({result['skipped_records']} skipped: not 12-lead or < 10 s), "
               f"{result['windows']} windows of 10 s")
    click.echo(format_table(result, ("baseline", "vae", "linear_ceiling_loo")))
    cal = result.get("patient_calibrated")
    if cal:
        click.echo(f"\npatient-calibrated on the first {cal['calibration_s']:g} s of each window, scored on the "
                   f"last {cal['scored_s']:g} s ({cal['not_calibrated']} windows could not be calibrated):")
        click.echo(format_table(cal, ("baseline", "vae", "baseline_calibrated", "vae_calibrated")))
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"wrote {json_out}")


@eval_.command("classifier")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of CinC 2020/2021 records (.hea with '# Dx:' SNOMED CT codes + .mat), searched recursively.")
@click.option("--json", "json_out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report here (JSON).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Classifier ONNX (default: models/artifacts/classifier_mamba.onnx).")
@click.option("--reconstruction", "reconstruction_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Reconstruction VAE ONNX for the edge path (default: models/artifacts/reconstruction_vae.onnx).")
@click.option("--bootstrap", type=click.IntRange(0, 100_000), default=1000, show_default=True,
              help="Bootstrap resamples (over records) for the 95 % intervals; 0: none.")
@click.option("--thresholds", "thresholds_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON {class: threshold} (or {\"thresholds\": {...}}) to score at instead of the model's shipped "
                   "thresholds; classes it leaves out keep the model's (0.5 where the model ships none).")
@click.option("--compare-int8", "compare_int8", is_flag=True,
              help="Also score the INT8 artifact (MODEL's <name>_int8.onnx beside it, or --int8-model) on the same "
                   "records at the same thresholds, and report its change from FP32.")
@click.option("--int8-model", "int8_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The INT8 artifact for --compare-int8 (implies it).")
@click.option("--synthetic", "synthetic_config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also score the held-out synthetic test set of this training config.")
def eval_classifier_cmd(data: Path, json_out: Path, model_path: Path | None, reconstruction_path: Path | None,
                        bootstrap: int, thresholds_path: Path | None, compare_int8: bool, int8_path: Path | None,
                        synthetic_config: Path | None) -> None:
    """Per-class and macro AUROC/AUPRC on real records, and sensitivity, specificity and F1 at the model's
    shipped thresholds: true 12 leads, and the edge path (II, V1, V5 → VAE)."""
    from models.classifier.evaluate import (
        evaluate_records,
        evaluate_synthetic,
        format_table,
        read_thresholds_file,
    )
    from models.data.records import DatasetError
    from models.runtime.classifier import DEFAULT_CLASSIFIER

    model_path = model_path or DEFAULT_CLASSIFIER
    if not model_path.exists():
        raise click.ClickException(f"classifier {model_path} not found (train it or pass --model)")
    if compare_int8 and int8_path is None:
        int8_path = model_path.with_name(f"{model_path.stem}_int8{model_path.suffix}")
        if not int8_path.exists():
            raise click.ClickException(f"INT8 classifier {int8_path} not found (pass --int8-model)")
    try:
        thresholds = read_thresholds_file(thresholds_path) if thresholds_path is not None else None
        with _onnx_errors():
            result = evaluate_records(data, model_path, reconstruction_path, bootstrap=bootstrap,
                                      thresholds=thresholds, int8_model=int8_path)
    except (DatasetError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{result['records']} records ({result['skipped_records']} skipped), {result['windows']} windows; "
               f"AUROC [95 % CI over records]; sens/spec/F1 at the thresholds ({result['thresholds_source']})")
    click.echo(format_table(result))
    if synthetic_config is not None:
        with _onnx_errors():
            result["synthetic"] = evaluate_synthetic(model_path, synthetic_config, thresholds=result["thresholds"])
        click.echo(f"held-out synthetic ({result['synthetic']['windows']} windows)")
        click.echo(format_table(result["synthetic"]))
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"wrote {json_out}")

from ecgstream.commands.models_stress import eval_stress_cmd, train_stress_cmd  # noqa: E402

train.add_command(train_stress_cmd)
eval_.add_command(eval_stress_cmd)

from ecgstream.commands.models_zeroshot import (  # noqa: E402
    eval_zeroshot_cmd,
    export_group,
    train_zeroshot_cmd,
)

train.add_command(train_zeroshot_cmd)
eval_.add_command(eval_zeroshot_cmd)
models.add_command(export_group)

from ecgstream.commands.models_prototypes import eval_prototypes_cmd, train_prototypes_cmd  # noqa: E402

train.add_command(train_prototypes_cmd)
eval_.add_command(eval_prototypes_cmd)
