"""Training checkpoints: written atomically, read back only by a run with the same identity, RNG included.

A checkpoint is one ``torch.save`` dict. :func:`save_atomic` writes it to a temporary file beside the
target, flushes it to disk and renames it over the target, so a crash mid-write leaves the previous
checkpoint whole. :func:`load_checkpoint` refuses a file whose identity (e.g. the config hash) differs
from the run's. :func:`capture_rng` / :func:`restore_rng` carry the Python, NumPy and torch (CPU and
CUDA) random states, so a run resumed from a checkpoint draws the same numbers as one never stopped.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch


class CheckpointMismatchError(ValueError):
    """The checkpoint was saved by a run with another identity (config, architecture …)."""


def save_atomic(state: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` (creating its folder): temporary file, fsync, rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):        # make the rename itself durable where the OS allows it
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def load_checkpoint(path: str | Path, *, identity: Mapping[str, Any] | None = None,
                    map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Read a checkpoint; every key of ``identity`` must hold the same value in it.

    Raises :class:`CheckpointMismatchError` (a ``ValueError``) naming the file when one differs. The file is
    unpickled in full (RNG states are not plain tensors): load only checkpoints your own runs wrote.
    """
    path = Path(path)
    state: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=False)
    for key, expected in (identity or {}).items():
        saved = state.get(key)
        if saved != expected:
            raise CheckpointMismatchError(
                f"{path} was saved with another config ({key} {saved!r}, this run {expected!r}); "
                "remove it or train without --resume")
    return state


def capture_rng() -> dict[str, Any]:
    """The global random states: Python ``random``, NumPy's legacy global generator, torch CPU and CUDA."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng(state: Mapping[str, Any]) -> None:
    """Put back what :func:`capture_rng` returned (a checkpoint loaded onto a GPU is handled too)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
