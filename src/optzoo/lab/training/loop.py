"""The lab's training loop: epochs, mini-batches, schedules, early stopping, checkpoints.

One call of :func:`train` is one run (one problem, one optimizer, one seed):

* every epoch visits the training set in a fresh random permutation
  (``shuffle=False`` keeps one fixed order, to show cyclic behaviour);
* ``batch_size`` 1 is stochastic gradient descent, 0 (or the training-set
  size) is full-batch gradient descent, anything between is mini-batch;
* a schedule from the registry steps per epoch or per step;
* train and validation loss and metric are measured on the whole split after
  every epoch (epoch 0 is the starting point), with the wall time of the
  epoch's steps;
* early stopping watches the validation loss (``patience``);
* with ``checkpoint_dir``, ``last.pt`` (every epoch) and ``best.pt`` (lowest
  validation loss) hold model, optimizer, schedule and RNG states: resuming
  from one continues exactly as if the run had never stopped;
* the same seed gives bit-identical runs;
* a NaN or infinite loss ends the run with status ``"diverged"``.

Example:
    >>> from optzoo.lab.training.problems import problem
    >>> result = train(problem("diabetes-linreg"), RunConfig("sgd", epochs=3, seed=1))
    >>> result.status, len(result.epochs), result.metric_name
    ('ok', 4, 'R^2')
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ... import registry
from .problems import Problem

__all__ = ["BatchSampler", "EpochRecord", "RunConfig", "RunResult", "load_checkpoint", "train"]

STATUSES = ("ok", "early-stopped", "diverged", "stopped", "error")


@dataclass
class RunConfig:
    """Everything that defines one run besides the problem.

    ``lr=None`` takes the problem's default for this optimizer and batch size.
    ``batch_size`` 0 means the whole training set. ``stop_after`` ends the run
    (status ``"stopped"``) after that epoch, as an interruption would.
    """

    optimizer: str = "sgd"
    lr: float | None = None
    hyper: dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 32
    seed: int = 0
    shuffle: bool = True
    schedule: str | None = None
    schedule_hyper: dict[str, Any] = field(default_factory=dict)
    schedule_per: str = "epoch"
    patience: int | None = None
    min_delta: float = 0.0
    checkpoint_dir: str | None = None
    stop_after: int | None = None


@dataclass
class EpochRecord:
    """Measurements after one epoch (epoch 0: before any step)."""

    epoch: int
    train_loss: float
    train_metric: float
    val_loss: float
    val_metric: float
    lr: float
    steps: int
    time: float  # seconds spent in this epoch's optimisation steps
    eval_time: float  # seconds spent measuring the splits


@dataclass
class RunResult:
    """The outcome of one run, with one record per epoch."""

    problem: str
    optimizer: str
    seed: int
    lr: float
    batch_size: int
    metric_name: str
    higher_is_better: bool
    status: str = "ok"
    message: str = ""
    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    test_loss: float = math.nan
    test_metric: float = math.nan
    wall_time: float = 0.0
    model_state: dict[str, Tensor] | None = None

    @property
    def final(self) -> EpochRecord | None:
        """The last epoch measured (``None`` when the run never started)."""
        return self.epochs[-1] if self.epochs else None

    def rows(self, **extra: Any) -> list[dict[str, Any]]:
        """One flat dict per epoch (run-level fields repeated), ready for JSON lines."""
        run = {
            "problem": self.problem, "optimizer": self.optimizer, "seed": self.seed, "lr": self.lr,
            "batch_size": self.batch_size, "metric_name": self.metric_name,
            "higher_is_better": self.higher_is_better, "status": self.status,
            "message": self.message, "best_epoch": self.best_epoch, "test_loss": _json_float(self.test_loss),
            "test_metric": _json_float(self.test_metric), "wall_time": _json_float(self.wall_time), **extra,
        }
        if not self.epochs:
            return [{**run, "epoch": None}]
        return [{**run, **{k: _json_float(v) for k, v in asdict(record).items()}} for record in self.epochs]


def _json_float(value: Any) -> Any:
    """NaN and inf are not JSON: write them as None; floats keep 7 significant digits (float32's precision)."""
    if isinstance(value, float):
        return float(f"{value:.7g}") if math.isfinite(value) else None
    return value


class BatchSampler:
    """The order of the training samples: a fresh permutation each epoch, or a fixed one.

    Its state (the generator's) goes into checkpoints, so a resumed run draws the
    same permutations as one that never stopped.

    Example:
        >>> s = BatchSampler(5, batch_size=2, seed=0, shuffle=False)
        >>> [b.tolist() for b in s.epoch()]
        [[0, 1], [2, 3], [4]]
    """

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True) -> None:
        if n < 1:
            raise ValueError("the training set is empty")
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0 (0 = full batch), got {batch_size}")
        self.n = n
        self.batch_size = n if batch_size == 0 or batch_size > n else batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(10_007 * seed + 1)

    def order(self) -> Tensor:
        """The next epoch's visiting order (a permutation of ``range(n)``)."""
        if self.shuffle:
            return torch.randperm(self.n, generator=self.generator)
        return torch.arange(self.n)

    def epoch(self) -> list[Tensor]:
        """The next epoch's mini-batches of indices; the last one may be smaller."""
        return list(torch.split(self.order(), self.batch_size))

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def _current_lr(optimizer: Any) -> float:
    try:
        return float(optimizer.param_groups[0]["lr"])
    except (AttributeError, IndexError, KeyError, TypeError):
        return math.nan


def _build_schedule(config: RunConfig, optimizer: Any, lr: float, steps_per_epoch: int) -> Any:
    if not config.schedule:
        return None
    hyper = dict(config.schedule_hyper)
    total = config.epochs * (steps_per_epoch if config.schedule_per == "step" else 1)
    if config.schedule.lower() == "onecycle":
        hyper.setdefault("max_lr", lr)
        hyper.setdefault("total_steps", total)
    return registry.schedule(config.schedule, optimizer, **hyper)


def _is_plateau(schedule: Any) -> bool:
    # WarmupLR handing over to ReduceLROnPlateau needs the metric too (it says so by needs_metrics).
    return type(schedule).__name__ == "ReduceLROnPlateau" or getattr(schedule, "needs_metrics", False)


def _save(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a half-written checkpoint never replaces a good one."""
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train` (``best.pt`` or ``last.pt``)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def train(
    problem: Problem,
    config: RunConfig,
    resume_from: str | os.PathLike[str] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    threads: int | None = 1,
) -> RunResult:
    """Train ``problem`` as ``config`` says and return the per-epoch record.

    ``resume_from`` continues from a checkpoint of the same run (same
    optimizer, seed, batch size and schedule): the final parameters equal
    those of an uninterrupted run bit for bit. ``config.epochs`` may be larger
    than the original's. Errors building the optimizer or schedule come back
    as status ``"error"`` with the message, so that a benchmark goes on.
    ``threads``: torch threads during the run (restored afterwards); the lab's
    models are so small that one thread is the fastest, and a fixed count
    keeps runs bit-identical whatever the caller's setting (None: leave it).
    """
    lr = float(config.lr) if config.lr is not None else problem.default_lr(config.optimizer, config.batch_size)
    result = RunResult(
        problem.name, config.optimizer, config.seed, lr, config.batch_size or len(problem.train),
        problem.metric_name, problem.higher_is_better,
    )
    if config.schedule_per not in ("epoch", "step"):
        raise ValueError(f"schedule_per must be 'epoch' or 'step', got {config.schedule_per!r}")
    start = time.perf_counter()
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            _train(problem, config, lr, result, resume_from, on_epoch)
    except (ValueError, TypeError, NotImplementedError, RuntimeError) as error:
        # the epochs measured before a failure stay in the result
        result.status, result.message = "error", f"{type(error).__name__}: {error}"
    finally:
        torch.set_num_threads(previous_threads)
    result.wall_time = time.perf_counter() - start
    return result


def _train(
    problem: Problem,
    config: RunConfig,
    lr: float,
    result: RunResult,
    resume_from: str | os.PathLike[str] | None,
    on_epoch: Callable[[EpochRecord], None] | None,
) -> None:
    torch.manual_seed(config.seed)
    model = problem.build_model()
    sampler = BatchSampler(len(problem.train), config.batch_size, config.seed, config.shuffle)
    steps_per_epoch = math.ceil(sampler.n / sampler.batch_size)
    optimizer = registry.optimizer(config.optimizer, model.parameters(), lr=lr, **config.hyper)
    schedule = _build_schedule(config, optimizer, lr, steps_per_epoch)
    ckpt_dir = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)

    steps, bad_epochs, first_epoch = 0, 0, 1
    best_state: dict[str, Tensor] | None = None
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        saved = state["config"]
        for key in ("optimizer", "seed", "batch_size", "shuffle", "schedule", "schedule_per"):
            if saved[key] != getattr(config, key):
                raise ValueError(f"checkpoint {resume_from} was written with {key}={saved[key]!r}, "
                                 f"not {getattr(config, key)!r}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if schedule is not None and state["schedule"] is not None:
            schedule.load_state_dict(state["schedule"])
        sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        result.epochs = [EpochRecord(**r) for r in state["records"]]
        result.best_epoch, result.best_val_loss = state["best_epoch"], state["best_val_loss"]
        best_state = state["best_model"]
        steps, bad_epochs, first_epoch = state["steps"], state["bad_epochs"], state["epoch"] + 1
    else:
        t0 = time.perf_counter()
        train_loss, train_metric = problem.evaluate(model, problem.train)
        val_loss, val_metric = problem.evaluate(model, problem.val)
        record = EpochRecord(0, train_loss, train_metric, val_loss, val_metric, _current_lr(optimizer), 0, 0.0,
                             time.perf_counter() - t0)
        result.epochs.append(record)
        result.best_epoch, result.best_val_loss = 0, val_loss
        best_state = copy.deepcopy(model.state_dict())
        if on_epoch is not None:
            on_epoch(record)

    def checkpoint(epoch: int) -> dict[str, Any]:
        return {
            "format": 1, "problem": problem.name, "config": asdict(config), "lr": lr, "epoch": epoch,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict() if schedule is not None else None,
            "sampler": sampler.state_dict(), "torch_rng": torch.get_rng_state(),
            "records": [asdict(r) for r in result.epochs], "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss, "best_model": best_state, "steps": steps,
            "bad_epochs": bad_epochs,
        }

    model.train()
    for epoch in range(first_epoch, config.epochs + 1):
        t0 = time.perf_counter()
        diverged = False
        for index in sampler.epoch():
            xb, yb = problem.train.x[index], problem.train.y[index]
            seen: list[Tensor] = []

            def closure(xb: Tensor = xb, yb: Tensor = yb, seen: list[Tensor] = seen) -> Tensor:
                optimizer.zero_grad(set_to_none=True)
                loss = problem.loss(model(xb), yb)
                loss.backward()
                seen.append(loss.detach())
                return loss

            returned = optimizer.step(closure)
            loss = returned if isinstance(returned, Tensor) else seen[-1]
            steps += 1
            if not math.isfinite(float(loss.detach())):
                diverged = True
                break
            if schedule is not None and config.schedule_per == "step" and not _is_plateau(schedule):
                schedule.step()
        step_time = time.perf_counter() - t0

        t1 = time.perf_counter()
        train_loss, train_metric = problem.evaluate(model, problem.train)
        val_loss, val_metric = problem.evaluate(model, problem.val)
        record = EpochRecord(epoch, train_loss, train_metric, val_loss, val_metric, _current_lr(optimizer), steps,
                             step_time, time.perf_counter() - t1)
        result.epochs.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if diverged or not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            result.status = "diverged"
            result.message = f"non-finite loss in epoch {epoch} (step {steps})"
            break

        if schedule is not None and (config.schedule_per == "epoch" or _is_plateau(schedule)):
            if _is_plateau(schedule):
                schedule.step(val_loss)
            else:
                schedule.step()

        improved = val_loss < result.best_val_loss - config.min_delta
        if improved:
            result.best_epoch, result.best_val_loss = epoch, val_loss
            best_state = copy.deepcopy(model.state_dict())
            bad_epochs = 0
        else:
            bad_epochs += 1
        if ckpt_dir is not None:
            payload = checkpoint(epoch)
            _save(ckpt_dir / "last.pt", payload)
            if improved:
                _save(ckpt_dir / "best.pt", payload)
        if config.patience is not None and bad_epochs >= config.patience:
            result.status = "early-stopped"
            result.message = f"no better validation loss for {bad_epochs} epochs"
            break
        if config.stop_after is not None and epoch >= config.stop_after and epoch < config.epochs:
            result.status = "stopped"
            result.message = f"stopped after epoch {epoch} as asked"
            break

    result.model_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None and result.status != "diverged":
        final_state = copy.deepcopy(model.state_dict())
        model.load_state_dict(best_state)
        result.test_loss, result.test_metric = problem.evaluate(model, problem.test)
        model.load_state_dict(final_state)
