"""Learning-rate schedules: a linear warm-up, then a cosine decay to a floor (what both models train with).

The schedule is a multiplier of the optimizer's base learning rate, indexed by optimizer step, so it is
a :class:`torch.optim.lr_scheduler.LambdaLR` whose state (the step count) goes into every checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

WARMUP_STEPS = 100
"""Steps of linear warm-up from ``1/WARMUP_STEPS`` to the full learning rate."""
FLOOR = 0.02
"""The multiplier the cosine decays to at the last step."""


def warmup_cosine(total_steps: int, warmup_steps: int = WARMUP_STEPS, floor: float = FLOOR) -> Callable[[int], float]:
    """Multiplier for step ``s``: ``(s + 1) / warmup_steps`` during warm-up, then a half cosine from 1 to
    ``floor`` over the remaining ``total_steps - warmup_steps`` steps (and ``floor`` after them)."""
    if warmup_steps < 1 or total_steps < 1:
        raise ValueError("warmup_steps and total_steps must be ≥ 1")
    if not 0.0 <= floor <= 1.0:
        raise ValueError("floor must be in [0, 1]")

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        p = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return floor + (1.0 - floor) * 0.5 * (1 + math.cos(math.pi * p))

    return f


def warmup_cosine_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = WARMUP_STEPS,
                            floor: float = FLOOR) -> torch.optim.lr_scheduler.LambdaLR:
    """:func:`warmup_cosine` on ``optimizer``, stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup_steps, floor))
