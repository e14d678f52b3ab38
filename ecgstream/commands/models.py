"""``ecgstream models …``: train and evaluate the project's models (torch only inside training)."""

from __future__ import annotations

import json
from pathlib import Path

import click


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
def eval_reconstruction_cmd(data: Path, json_out: Path, model_path: Path | None, baseline_path: Path | None) -> None:
    """Per-lead r and RMSE (µV) of the linear baseline and the VAE on real 12-lead records (II, V1, V5 in)."""
    from models.reconstruction.evaluate import evaluate_records, format_table
    from models.runtime.onnx_model import DEFAULT_RECONSTRUCTION

    model_path = model_path or DEFAULT_RECONSTRUCTION
    baseline_path = baseline_path or model_path.with_name("reconstruction_linear.json")
    if not baseline_path.exists():
        raise click.ClickException(f"linear baseline {baseline_path} not found (pass --baseline)")
    result = evaluate_records(data, model_path, baseline_path)
    click.echo(f"{result['records']} records ({result['skipped_records']} skipped: not 12-lead or < 10 s), "
               f"{result['windows']} windows of 10 s")
    click.echo(format_table(result))
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"wrote {json_out}")

