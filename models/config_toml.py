"""Reading a model's training config: one TOML file of ``[section]`` tables onto frozen dataclasses.

Shared by :mod:`models.reconstruction.config` and :mod:`models.classifier.config`. Unknown keys are
an error (a typo must not silently fall back to a default); arrays become tuples (frozen configs).
"""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML document at ``path``; ValueError naming the file when it is missing or not TOML."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None


def section(cls: type, raw: dict[str, Any], name: str) -> Any:
    """``cls`` built from the ``[name]`` table ``raw``; ValueError listing unknown keys."""
    unknown = set(raw) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"config [{name}]: unknown key(s) {', '.join(sorted(unknown))}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
