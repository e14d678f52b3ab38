"""The training loop every model shares: epochs of batches, optimizer steps, checkpoints, exact resume.

A model's training code supplies three things and :func:`run_training` does the rest:

* ``data`` — a DataLoader-like iterable of batches, or ``epoch -> iterable`` for a per-epoch plan
  (seeded shuffling, crops, gains); its ``len`` sizes the progress bar;
* ``step(batch, ctx) -> StepOutput`` — the forward pass: the loss to minimise and the numbers to
  average over the epoch (``ctx`` carries the epoch and a per-epoch seeded ``torch.Generator``);
* ``summarize(means) -> dict`` and ``describe(entry) -> str`` — the epoch's history entry and its line.

Each step is ``zero_grad → backward → clip (optional) → optimizer.step → scheduler.step``. Each epoch
starts by seeding torch's global generator and ``ctx.generator`` with :func:`epoch_seed`. A checkpoint
(model, optimizer, scheduler, epoch and step, history, partial epoch sums, RNG states) is written
atomically after every epoch and, with ``checkpoint_every_steps``, every that many steps. With
``resume`` the run continues from the checkpoint, mid-epoch included, and ends with the same weights
as a run never stopped: the epoch's batch plan is rebuilt from its seed, the batches already done are
skipped, and the random states are put back as they were at the checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from models.training.checkpoint import capture_rng, load_checkpoint, restore_rng, save_atomic

B = TypeVar("B")

SEED_STRIDE = 100_003
"""``epoch_seed = seed * SEED_STRIDE + epoch``: distinct per epoch, and per run seed for any sane epoch count."""


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based) of a run seeded ``seed``."""
    return seed * SEED_STRIDE + epoch


@dataclass(frozen=True)
class IndexedBatches(Generic[B]):
    """A DataLoader-like epoch: ``count`` batches, batch ``i`` built by ``make(i)`` only when reached."""

    count: int
    make: Callable[[int], B]

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[B]:
        return (self.make(i) for i in range(self.count))


@dataclass(frozen=True)
class StepOutput:
    """What one forward pass gives the loop: the loss to minimise and per-batch numbers to average."""

    loss: torch.Tensor
    metrics: Mapping[str, float | torch.Tensor]
    """Averaged over the epoch's batches and handed to ``summarize`` (``{"loss": loss}`` is typical)."""


@dataclass
class EpochContext:
    """Per-epoch state handed to ``step``."""

    epoch: int
    """0-based."""
    generator: torch.Generator
    """CPU generator seeded with :func:`epoch_seed`; its state goes into mid-epoch checkpoints."""


@dataclass(frozen=True)
class LoopSettings:
    """How to run the loop (the model's own config supplies the numbers)."""

    epochs: int
    seed: int
    clip_grad_norm: float | None = None
    """Clip the global gradient norm to this before each step (None: no clipping)."""
    checkpoint_path: Path | None = None
    """Where the latest checkpoint lives (None: no checkpoints, no resume)."""
    checkpoint_every_steps: int | None = None
    """Also checkpoint every this many optimizer steps (None: only at the end of each epoch)."""
    identity: Mapping[str, Any] = field(default_factory=dict)
    """Saved in each checkpoint and checked on resume (e.g. ``{"config_hash": …}``)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Saved in each checkpoint, not checked (e.g. the config itself)."""
    resume: bool = False
    """Continue from ``checkpoint_path`` when it exists (else start afresh, saying so)."""
    map_location: str | torch.device | None = "cpu"
    """Where the checkpoint's tensors are loaded (the training device)."""
    progress: bool = True
    """A tqdm bar per epoch."""
    desc: str = "epoch"
    """The bar reads ``f"{desc} {epoch}/{epochs}"``."""
    postfix_every: int = 20
    """Refresh the bar's running means every this many batches."""
    stop_after_epoch: int | None = None
    """Stop (returning ``completed=False``) after saving the checkpoint of this many epochs, as an interrupted run."""
    stop_after_step: int | None = None
    """Stop (``completed=False``) after saving a checkpoint at this global step, as an interrupted run."""

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError("epochs must be ≥ 1")
        if self.checkpoint_every_steps is not None and self.checkpoint_every_steps < 1:
            raise ValueError("checkpoint_every_steps must be ≥ 1 (or None)")
        if (self.stop_after_epoch is not None or self.stop_after_step is not None) and self.checkpoint_path is None:
            raise ValueError("stopping early needs a checkpoint_path to resume from")


@dataclass
class LoopResult:
    """How the run ended."""

    history: list[dict[str, Any]]
    """One entry per completed epoch: ``{"epoch": n, **summarize(means), "seconds": s}``."""
    completed: bool
    """False when ``stop_after_epoch`` / ``stop_after_step`` stopped it."""
    global_step: int
    resumed_from: Path | None = None


@dataclass
class _Partial:
    """The part of an epoch already done (from a mid-epoch checkpoint)."""

    batches: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _batches(data: Iterable[B] | Callable[[int], Iterable[B]], epoch: int) -> Iterable[B]:
    return data(epoch) if callable(data) else data


def run_training(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    data: Iterable[B] | Callable[[int], Iterable[B]],
    step: Callable[[B, EpochContext], StepOutput],
    settings: LoopSettings,
    *,
    summarize: Callable[[dict[str, float]], dict[str, Any]] = dict,
    describe: Callable[[dict[str, Any]], str] | None = None,
    postfix: Callable[[dict[str, float]], dict[str, str]] | None = None,
    echo: Callable[[str], None] = print,
) -> LoopResult:
    """Train ``model`` for ``settings.epochs`` epochs (see the module docstring); weights change in place.

    ``summarize`` turns the epoch's mean metrics into its history entry (the loop adds ``epoch`` and
    ``seconds``); ``describe`` turns the entry into the line echoed after the epoch; ``postfix`` turns
    the running means into the progress bar's postfix.
    """
    return _Loop(model, optimizer, scheduler, data, step, settings, summarize, describe, postfix, echo).run()


class _Loop(Generic[B]):
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None,
                 data: Iterable[B] | Callable[[int], Iterable[B]], step: Callable[[B, EpochContext], StepOutput],
                 settings: LoopSettings, summarize: Callable[[dict[str, float]], dict[str, Any]],
                 describe: Callable[[dict[str, Any]], str] | None,
                 postfix: Callable[[dict[str, float]], dict[str, str]] | None, echo: Callable[[str], None]) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.data, self.step, self.s = data, step, settings
        self.summarize, self.describe, self.postfix, self.echo = summarize, describe, postfix, echo
        self.history: list[dict[str, Any]] = []
        self.global_step = 0

    # --- checkpoints --------------------------------------------------------------------------------

    def _save(self, epoch_done: int, partial: _Partial | None = None, gen: torch.Generator | None = None) -> None:
        """``epoch_done``: index of the last complete epoch (-1: none); ``partial``: the epoch after it."""
        assert self.s.checkpoint_path is not None
        state: dict[str, Any] = {
            **self.s.extra,
            **self.s.identity,
            "epoch": epoch_done,
            "global_step": self.global_step,
            "batch_in_epoch": partial.batches if partial else 0,
            "partial_sums": dict(partial.sums) if partial else {},
            "partial_seconds": partial.seconds if partial else 0.0,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "history": list(self.history),
            "rng": capture_rng(),
            "generator": gen.get_state() if gen is not None else None,
        }
        save_atomic(state, self.s.checkpoint_path)

    def _resume(self) -> tuple[int, _Partial, dict[str, Any] | None]:
        """(first epoch to run, what of it is done, the checkpoint) — or a fresh start."""
        path = self.s.checkpoint_path
        if not self.s.resume or path is None:
            return 0, _Partial(), None
        if not path.exists():
            self.echo(f"no checkpoint at {path}: training from the start")
            return 0, _Partial(), None
        ckpt = load_checkpoint(path, identity=self.s.identity, map_location=self.s.map_location)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.history = list(ckpt["history"])
        start = int(ckpt["epoch"]) + 1
        partial = _Partial(int(ckpt.get("batch_in_epoch", 0)), dict(ckpt.get("partial_sums", {})),
                           float(ckpt.get("partial_seconds", 0.0)))
        self.global_step = int(ckpt.get("global_step", 0))
        where = f"after epoch {start}" if partial.batches == 0 else f"in epoch {start + 1}, after batch {partial.batches}"
        self.echo(f"resuming from {path} {where}")
        return start, partial, ckpt

    # --- the loop -----------------------------------------------------------------------------------

    def run(self) -> LoopResult:
        s = self.s
        start, partial, ckpt = self._resume()
        if ckpt is not None and partial.batches == 0 and ckpt.get("rng") is not None:
            restore_rng(ckpt["rng"])          # at an epoch boundary: before the next epoch seeds itself

        def result(completed: bool) -> LoopResult:
            return LoopResult(self.history, completed, self.global_step, s.checkpoint_path if ckpt else None)

        for epoch in range(start, s.epochs):
            done = partial if epoch == start else _Partial()
            if not self._epoch(epoch, done, ckpt if epoch == start and done.batches > 0 else None):
                return result(False)
            if s.checkpoint_path is not None:
                self._save(epoch)
            if s.stop_after_epoch is not None and epoch + 1 >= s.stop_after_epoch:
                return result(False)
        return result(True)

    def _epoch(self, epoch: int, done: _Partial, ckpt: dict[str, Any] | None) -> bool:
        """Run one epoch (the part not ``done``); False when stopped early mid-epoch."""
        s = self.s
        t0 = time.perf_counter() - done.seconds
        seed = epoch_seed(s.seed, epoch)
        torch.manual_seed(seed)
        ctx = EpochContext(epoch, torch.Generator().manual_seed(seed))
        batches = _batches(self.data, epoch)
        total = len(batches) if isinstance(batches, Sized) else None
        it: Iterator[B] = iter(batches)
        for _ in range(done.batches):     # the batches the checkpoint already trained on
            next(it)
        if ckpt is not None:              # mid-epoch: the random states as they were at the checkpoint
            if ckpt.get("rng") is not None:
                restore_rng(ckpt["rng"])
            if ckpt.get("generator") is not None:
                ctx.generator.set_state(ckpt["generator"].cpu())
        sums = dict(done.sums)
        self.model.train()
        bar = None
        if s.progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=done.batches, desc=f"{s.desc} {epoch + 1}/{s.epochs}", unit="batch",
                       dynamic_ncols=True)
        try:
            b = done.batches - 1
            for b, batch in enumerate(it, start=done.batches):
                out = self.step(batch, ctx)
                self.optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                if s.clip_grad_norm is not None:
                    nn.utils.clip_grad_norm_(self.model.parameters(), s.clip_grad_norm)
                self.optimizer.step()
                if self.scheduler is not None:
                    self.scheduler.step()
                self.global_step += 1
                for k, v in out.metrics.items():
                    sums[k] = sums.get(k, 0.0) + (v.detach().item() if isinstance(v, torch.Tensor) else float(v))
                if bar is not None:
                    bar.update(1)
                    if self.postfix is not None and b % s.postfix_every == 0:
                        bar.set_postfix(self.postfix({k: v / (b + 1) for k, v in sums.items()}))
                stop = s.stop_after_step is not None and self.global_step >= s.stop_after_step
                periodic = (s.checkpoint_every_steps is not None and self.global_step % s.checkpoint_every_steps == 0
                            and b + 1 != total)   # the epoch's own checkpoint follows at once
                if (stop or periodic) and s.checkpoint_path is not None:
                    partial = _Partial(b + 1, sums, time.perf_counter() - t0)
                    self._save(epoch - 1, partial, ctx.generator)
                if stop:
                    return False
        finally:
            if bar is not None:
                bar.close()
        n = b + 1
        if n == 0:
            raise ValueError(f"epoch {epoch + 1} had no batches")
        means = {k: v / n for k, v in sums.items()}
        entry = {"epoch": epoch + 1, **self.summarize(means), "seconds": round(time.perf_counter() - t0, 1)}
        self.history.append(entry)
        if self.describe is not None:
            self.echo(self.describe(entry))
        return True
