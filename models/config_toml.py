"""Reading a model's training config: one TOML file of ``[section]`` tables onto frozen dataclasses.

Shared by :mod:`models.reconstruction.config` and :mod:`models.classifier.config`, through the same
reader as the edge and cloud settings (:mod:`settings.reader`; no environment overrides here). The
configs stay plain dataclasses, so training code needs no pydantic: the reader is imported only
when a config is read. Unknown sections and keys are an error (a typo must not silently fall back
to a default); values are checked against the fields' types (arrays become tuples); every problem
raises ``ValueError`` naming the file, the section and the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def load_training_config(cls: type[T], path: str | Path) -> T:
    """``cls`` read from the TOML file at ``path``; ValueError naming the file when it is missing or wrong."""
    from settings.reader import SettingsReader

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read config {path}: {exc}") from None
    doc = SettingsReader(cls).loads(text, source=str(path))
    return training_config_from_dict(cls, doc, source=str(path))


def training_config_from_dict(cls: type[T], raw: Mapping[str, Any], *, source: str = "config") -> T:
    """``cls`` built from a TOML-shaped mapping (one table per section); ValueError naming what is wrong."""
    from settings.reader import SettingsReader

    sections = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(raw) - sections
    if unknown:
        raise ValueError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}")
    return SettingsReader(cls).validate(raw, source=source).value
