"""The shared training loop: a run stopped anywhere and resumed ends with exactly the weights of a run never
stopped; checkpoints are written atomically and refuse another config; the learning-rate schedule."""

from __future__ import annotations

import math
import random
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from models.training import (  # noqa: E402
    CheckpointMismatchError,
    EpochContext,
    IndexedBatches,
    LoopResult,
    LoopSettings,
    StepOutput,
    load_checkpoint,
    run_training,
    save_atomic,
    warmup_cosine,
    warmup_cosine_scheduler,
)

EPOCHS, SAMPLES, BATCH = 3, 40, 8
STEPS_PER_EPOCH = SAMPLES // BATCH
TOTAL_STEPS = EPOCHS * STEPS_PER_EPOCH
Batch = tuple[torch.Tensor, torch.Tensor]


class Crash(RuntimeError):
    """Stands in for the process dying mid-step."""


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(SAMPLES, 4, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(SAMPLES, 1, generator=g)


def _loader() -> DataLoader[Any]:
    """A real torch DataLoader, shuffled from torch's global generator."""
    return DataLoader(TensorDataset(*_data()), batch_size=BATCH, shuffle=True)


def _plan(epoch: int) -> IndexedBatches[Batch]:
    """A per-epoch plan, the way the models' training code builds one (NumPy, seeded by epoch)."""
    x, y = _data()
    order = torch.from_numpy(np.random.default_rng([3, epoch]).permutation(SAMPLES))
    return IndexedBatches(STEPS_PER_EPOCH, lambda b: (x[order[b * BATCH:(b + 1) * BATCH]], y[order[b * BATCH:(b + 1) * BATCH]]))


def train(ckpt: Path | None, *, data: str = "loader", resume: bool = False, stop_after_step: int | None = None,
          stop_after_epoch: int | None = None, every: int | None = None, crash_at: int | None = None,
          identity: dict[str, Any] | None = None,
          echo: Callable[[str], None] = lambda _s: None) -> tuple[nn.Module, torch.optim.Optimizer, LoopResult]:
    """A tiny model trained on the CPU; dropout, per-epoch generator noise, NumPy's and Python's global
    generators all feed the steps, so every random state must come back on resume."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)
    sched = warmup_cosine_scheduler(opt, TOTAL_STEPS, warmup_steps=4)
    steps = 0

    def step(batch: Batch, ctx: EpochContext) -> StepOutput:
        nonlocal steps
        steps += 1
        if crash_at is not None and steps == crash_at:
            raise Crash(f"crash in step {steps}")
        x, y = batch
        noise = 0.1 * torch.randn(x.shape, generator=ctx.generator)
        scale = 1.0 + 0.01 * random.random() + 0.01 * float(np.random.standard_normal())
        loss = (model(x + noise) * scale - y).pow(2).mean()
        return StepOutput(loss, {"loss": loss})

    source: Iterable[Batch] | Callable[[int], Iterable[Batch]] = _loader() if data == "loader" else _plan
    cfg = LoopSettings(epochs=EPOCHS, seed=5, clip_grad_norm=1.0, checkpoint_path=ckpt, checkpoint_every_steps=every,
                       identity=identity or {"config_hash": "abc"}, resume=resume, progress=False,
                       stop_after_step=stop_after_step, stop_after_epoch=stop_after_epoch)
    result = run_training(model, opt, sched, source, step, cfg, summarize=lambda m: {"loss": round(m["loss"], 6)},
                          describe=lambda e: f"epoch {e['epoch']}: {e['loss']}", echo=echo)
    return model, opt, result


def _same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _losses(r: LoopResult) -> list[tuple[int, float]]:
    return [(h["epoch"], h["loss"]) for h in r.history]


@pytest.fixture(scope="module")
def straight() -> dict[str, tuple[nn.Module, torch.optim.Optimizer, LoopResult]]:
    out = {}
    for data in ("loader", "plan"):
        random.seed(1)
        np.random.seed(1)
        out[data] = train(None, data=data)
    return out


@pytest.mark.parametrize("data", ["loader", "plan"])
def test_half_then_resume_gives_exactly_the_uninterrupted_weights(straight, data: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, opt, full = straight[data]
    assert full.completed and full.global_step == TOTAL_STEPS and len(full.history) == EPOCHS
    ckpt = tmp_path / "last.pt"
    random.seed(1)
    np.random.seed(1)
    _, _, first = train(ckpt, data=data, stop_after_step=TOTAL_STEPS // 2)      # stops mid-epoch 2
    assert not first.completed and first.global_step == TOTAL_STEPS // 2
    random.seed(99)                        # a new process: other global random states
    np.random.seed(99)
    lines: list[str] = []
    resumed_model, resumed_opt, resumed = train(ckpt, data=data, resume=True, echo=lines.append)
    assert any(line.startswith(f"resuming from {ckpt}") for line in lines)
    assert resumed.completed and resumed.global_step == TOTAL_STEPS
    _same_weights(resumed_model, model)
    assert torch.equal(resumed_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert _losses(resumed) == _losses(full)


@settings(max_examples=12, deadline=None)
@given(stop=st.integers(1, TOTAL_STEPS - 1), data=st.sampled_from(["loader", "plan"]))
def test_stopping_after_any_step_resumes_to_the_same_weights(straight, stop: int, data: str) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as d:
        ckpt = Path(d) / "last.pt"
        random.seed(1)
        np.random.seed(1)
        assert not train(ckpt, data=data, stop_after_step=stop)[2].completed
        resumed_model, _, resumed = train(ckpt, data=data, resume=True)
    _same_weights(resumed_model, straight[data][0])
    assert _losses(resumed) == _losses(straight[data][2])


def test_a_crash_resumes_from_the_latest_periodic_checkpoint(straight, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ckpt = tmp_path / "last.pt"
    random.seed(1)
    np.random.seed(1)
    with pytest.raises(Crash):
        train(ckpt, every=3, crash_at=10)                 # dies in step 10: the checkpoint of step 9 is the latest
    saved = load_checkpoint(ckpt)
    assert saved["global_step"] == 9 and saved["epoch"] == 0 and saved["batch_in_epoch"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]           # no temporary file left behind
    resumed_model, _, resumed = train(ckpt, every=3, resume=True)
    _same_weights(resumed_model, straight["loader"][0])
    assert _losses(resumed) == _losses(straight["loader"][2])


def test_epoch_checkpoint_records_the_finished_epoch(tmp_path: Path) -> None:
    ckpt = tmp_path / "last.pt"
    _, _, r = train(ckpt, stop_after_epoch=1)
    saved = load_checkpoint(ckpt)
    assert not r.completed and saved["epoch"] == 0 and saved["batch_in_epoch"] == 0
    assert saved["global_step"] == STEPS_PER_EPOCH and len(saved["history"]) == 1
    assert saved["scheduler"]["last_epoch"] == STEPS_PER_EPOCH and saved["config_hash"] == "abc"


def test_resume_without_a_checkpoint_starts_afresh(straight, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    random.seed(1)
    np.random.seed(1)
    model, _, r = train(tmp_path / "none.pt", resume=True, echo=lines.append)
    assert any("no checkpoint" in line and "from the start" in line for line in lines)
    assert [line for line in lines if line.startswith("epoch ")] == [f"epoch {e}: {v}" for e, v in _losses(r)]
    _same_weights(model, straight["loader"][0])


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path: Path) -> None:
    ckpt = tmp_path / "last.pt"
    train(ckpt, stop_after_step=2)
    with pytest.raises(CheckpointMismatchError, match="another config"):
        train(ckpt, resume=True, identity={"config_hash": "other"})
    assert issubclass(CheckpointMismatchError, ValueError)


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path: Path) -> None:
    path = tmp_path / "ckpt" / "last.pt"
    save_atomic({"epoch": 1, "w": torch.arange(3)}, path)
    with pytest.raises(Exception):  # noqa: B017 - whatever pickling raises for a lambda
        save_atomic({"epoch": 2, "w": torch.arange(3), "bad": lambda: 0}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_warmup_cosine_schedule() -> None:
    f = warmup_cosine(1100, warmup_steps=100, floor=0.02)
    assert f(0) == pytest.approx(0.01) and f(99) == 1.0 and f(100) == 1.0
    assert f(600) == pytest.approx(0.51) and f(1100) == pytest.approx(0.02) and f(5000) == pytest.approx(0.02)
    after = [f(s) for s in range(100, 1101)]
    assert all(a >= b for a, b in zip(after, after[1:], strict=False))
    assert math.isclose(warmup_cosine(10, warmup_steps=1, floor=0.0)(10), 0.0, abs_tol=1e-12)
    with pytest.raises(ValueError):
        warmup_cosine(0)
