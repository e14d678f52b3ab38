"""``ecgstream models train zeroshot``, ``models eval zeroshot`` and ``models export zeroshot-text``
(registered in ``models.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

DEFAULT_CONFIG = Path("models/configs/zeroshot.toml")


def _training_modules() -> None:
    try:
        import sentence_transformers  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise click.ClickException(f"this needs the train extras (pip install -e '.[train]'): {exc}") from None


@click.command("zeroshot")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=DEFAULT_CONFIG, show_default=True, help="TOML config (models/configs/zeroshot*.toml).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/zeroshot"),
              show_default=True, help="Folder for zeroshot_merl.onnx, its text-side .npz and the training summary.")
def train_zeroshot_cmd(config_path: Path, out: Path) -> None:
    """Train the ECG encoder of the ECG–text zero-shot model (CLIP + MERL uni-modal alignment) against a
    frozen MiniLM, on synthetic windows and ../shared/tune's real records; export ONNX."""
    _training_modules()
    from models.zeroshot.train import load_config, train

    try:
        cfg = load_config(config_path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    train(cfg, out, log=click.echo)


@click.command("zeroshot")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Labelled real records (CinC 2020/2021 layout: WFDB headers with '# Dx:').")
@click.option("--json", "json_out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report here (JSON).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The ECG encoder ONNX (default: the shipped models/artifacts/zeroshot_merl.onnx).")
@click.option("--max-records", type=click.IntRange(min=2), default=None, help="Only the first N records.")
def eval_zeroshot_cmd(data: Path, json_out: Path, model_path: Path | None, max_records: int | None) -> None:
    """Zero-shot macro AUROC per prompt set (plain names vs knowledge-base prompts) over records."""
    from models.data.records import DatasetError
    from models.runtime.zeroshot import ZeroShotModel
    from models.zeroshot.evaluate import evaluate_zeroshot

    try:
        model = ZeroShotModel.load(model_path)
        result = evaluate_zeroshot(data, model, max_records=max_records)
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"{result['records']} records: macro AUROC plain {result['plain']['macro_auroc']}, "
               f"knowledge {result['knowledge']['macro_auroc']}")
    click.echo(f"wrote {json_out}")


@click.group("export")
def export_group() -> None:
    """Build artifacts that are made on demand rather than shipped."""


@export_group.command("zeroshot-text")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write it (default: models/artifacts/zeroshot_text.onnx, where the runtime looks).")
@click.option("--fp32", is_flag=True, help="Keep full precision (default: INT8 when it keeps cosine >= 0.99).")
def export_zeroshot_text_cmd(out: Path | None, fp32: bool) -> None:
    """The MiniLM text encoder of the zero-shot model to ONNX, for free-text labels."""
    _training_modules()
    from models.runtime.zeroshot import DEFAULT_TEXT_ONNX
    from models.zeroshot.export_text import export_text_encoder

    report = export_text_encoder(out or DEFAULT_TEXT_ONNX, int8=not fp32)
    click.echo(json.dumps(report, indent=2))
