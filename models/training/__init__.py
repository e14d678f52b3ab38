"""One training loop for every model in ``models/``: epochs, optimizer steps, the learning-rate schedule,
progress bars, atomic checkpoints and exact resume.

* :mod:`models.training.loop` — :func:`run_training`, the loop itself (torch; training code only);
* :mod:`models.training.checkpoint` — atomic save, checked load, RNG state capture and restore;
* :mod:`models.training.schedule` — the learning-rate schedules the models train with.

The edge runtime never imports this package (it needs torch).
"""

from models.training.checkpoint import CheckpointMismatchError, load_checkpoint, save_atomic
from models.training.loop import (
    EpochContext,
    IndexedBatches,
    LoopResult,
    LoopSettings,
    StepOutput,
    epoch_seed,
    run_training,
)
from models.training.schedule import warmup_cosine, warmup_cosine_scheduler

__all__ = [
    "CheckpointMismatchError",
    "EpochContext",
    "IndexedBatches",
    "LoopResult",
    "LoopSettings",
    "StepOutput",
    "epoch_seed",
    "load_checkpoint",
    "run_training",
    "save_atomic",
    "warmup_cosine",
    "warmup_cosine_scheduler",
]
