"""``ecgstream models train prototypes`` and ``ecgstream models eval prototypes`` (registered in ``models.py``).

Training reads synthetic windows from the simulator plus the config's real records (``../shared/tune``); the
evaluation is the deletion (faithfulness) test of :mod:`models.prototypes.faithfulness` on real records.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from models.prototypes.config import DEFAULT_CONFIG


@click.command("prototypes")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=DEFAULT_CONFIG, show_default=True, help="TOML config (models/configs/prototypes*.toml).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/prototypes"),
              show_default=True, help="Folder for prototypes.onnx, prototypes_strips.json, metrics and model card.")
@click.option("--data", "real_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Real labelled records (CinC 2020/2021 layout) instead of the config's real_dir.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train_prototypes_cmd(config_path: Path, out: Path, real_dir: Path | None, quiet: bool) -> None:
    """Train the prototype layer over the classifier's embedding, project each prototype onto a training strip,
    export ONNX + strips + model card."""
    from dataclasses import replace

    from models.prototypes.config import checked, load_config

    try:
        cfg = load_config(config_path)
        if real_dir is not None:
            cfg = checked(replace(cfg, data=replace(cfg.data, real_dir=str(real_dir))))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        from models.prototypes.train import train_prototypes
    except ImportError as exc:
        raise click.ClickException(f"training needs the train extras (pip install -e '.[train]'): {exc}") from None
    try:
        train_prototypes(cfg, out, progress=not quiet, echo=click.echo)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("prototypes")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Real labelled records (CinC 2020/2021 or PTB-XL layout), e.g. ../shared/data/cinc2021.")
@click.option("--json", "json_out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report here (JSON).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Prototype ONNX (default: models/artifacts/prototypes.onnx; its strips file beside it).")
@click.option("--random-segments", type=click.IntRange(min=1), default=10, show_default=True,
              help="Random same-length segments deleted per window (their mean drop is the baseline).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the random segments.")
@click.option("--max-records", type=click.IntRange(min=1), default=None, help="Only the first N records.")
def eval_prototypes_cmd(data: Path, json_out: Path, model_path: Path | None, random_segments: int, seed: int,
                        max_records: int | None) -> None:
    """Faithfulness: deleting the matched segment vs a random segment of the same length (score drops, ratio)."""
    from models.data.records import DatasetError
    from models.prototypes.faithfulness import evaluate_faithfulness
    from models.runtime.prototypes import PrototypeModel

    try:
        model = PrototypeModel.load(model_path, providers=["cpu"])
        report = evaluate_faithfulness(data, model, random_segments=random_segments, seed=seed,
                                       max_records=max_records)
    except (DatasetError, ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(f"{report['windows']} windows of {report['records']} records: mean drop matched "
               f"{report['mean_drop_matched']:.4f}, random {report['mean_drop_random']:.4f}, ratio {report['ratio']}, "
               f"matched > random on {100 * report['fraction_matched_greater']:.0f} % (logit ratio "
               f"{report['logit']['ratio']})")
    click.echo(f"wrote {json_out}")
