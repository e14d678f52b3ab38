"""``ecgstream models train stress`` and ``ecgstream models eval stress`` (registered in ``models.py``).

Both use synthetic subjects from the simulator unless ``--data`` names a WESAD folder (``S*/S*.pkl``).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from models.stress.config import DEFAULT_CONFIG, StressConfig

_CONFIG = click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                       default=DEFAULT_CONFIG, show_default=True, help="TOML config (models/configs/stress*.toml).")
_DATA = click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                     help="A WESAD folder (S*/S*.pkl) to use instead of synthetic subjects.")


def _config(path: Path) -> StressConfig:
    from models.stress.config import load_config

    try:
        return load_config(path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _training_modules() -> None:
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise click.ClickException(f"training needs the train extras (pip install -e '.[train]'): {exc}") from None


def _wesad(data_dir: Path):  # type: ignore[no-untyped-def]
    from models.data.wesad import WesadError
    from models.stress.data import wesad_set

    try:
        return wesad_set(data_dir)
    except WesadError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("stress")
@_CONFIG
@_DATA
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/stress"), show_default=True,
              help="Folder for stress_transformer.onnx and its training summary.")
def train_stress_cmd(config_path: Path, data_dir: Path | None, out: Path) -> None:
    """Train the stress patch transformer (baseline / stress / amusement) on synthetic subjects or WESAD, export ONNX."""
    _training_modules()
    from models.stress.data import synthetic_set
    from models.stress.train import train_stress

    cfg = _config(config_path)
    data = _wesad(data_dir) if data_dir is not None else synthetic_set(cfg.data.subjects, cfg.data.windows_per_state,
                                                                       cfg.data.seed)
    train_stress(cfg, out, data, echo=click.echo)


@click.command("stress")
@_CONFIG
@_DATA
@click.option("--json", "json_out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report here (JSON).")
@click.option("--subjects", type=click.IntRange(min=2), default=None,
              help="Synthetic subjects to evaluate on (default: the config's eval_subjects).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Also score this ONNX model as it is on the same windows (default: the shipped one, if present).")
def eval_stress_cmd(config_path: Path, data_dir: Path | None, json_out: Path, subjects: int | None,
                    model_path: Path | None) -> None:
    """Leave-one-subject-out accuracy and macro F1: a fresh model per held-out subject (synthetic by default);
    and the shipped model as it is on the same subjects."""
    _training_modules()
    from models.runtime.stress import DEFAULT_STRESS
    from models.stress.data import synthetic_set
    from models.stress.evaluate import loso, score_artifact

    cfg = _config(config_path)
    if data_dir is not None:
        data = _wesad(data_dir)
    else:
        data = synthetic_set(subjects or cfg.data.eval_subjects, cfg.data.windows_per_state, cfg.data.eval_seed)
    try:
        result = loso(data, cfg, echo=click.echo)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    res = result["loso"]
    click.echo(f"{result['source']} subjects: {result['subjects']}, windows: {result['windows']}; leave-one-subject-out "
               f"accuracy {res['accuracy']:.3f}, macro F1 {res['macro_f1']:.3f}")
    binary = res["stress_vs_rest"]
    click.echo(f"  stress vs rest: accuracy {binary['accuracy']:.3f}, sensitivity {binary['sensitivity']:.3f}, "
               f"specificity {binary['specificity']:.3f}")
    for name, m in res["per_class"].items():
        click.echo(f"  {name:<10} precision {m['precision']:.3f} recall {m['recall']:.3f} F1 {m['f1']:.3f} "
                   f"(n={m['support']})")
    model_path = model_path or (DEFAULT_STRESS if DEFAULT_STRESS.exists() else None)
    if model_path is not None:
        shipped = result["artifact"] = score_artifact(data, model_path)
        click.echo(f"{model_path.name} ({shipped['trained_on']}-trained) as shipped on these subjects: "
                   f"accuracy {shipped['accuracy']:.3f}, macro F1 {shipped['macro_f1']:.3f}")
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    click.echo(f"wrote {json_out}")
