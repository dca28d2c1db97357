"""Run an optimizer from the registry on a 2-D test surface and record its path.

The point is a single float64 parameter of two scalars, so a run of a few hundred steps
takes milliseconds. Unless the caller passes ``lr``, each optimizer runs with the
learning rate tuned for it on that surface by ``python -m optzoo.lab.surfaces.tune``
(stored in ``optzoo/lab/surfaces/data/surface_lrs.json``), or the optimizer's own default where
no tuned value exists.

Example:
    >>> from optzoo.lab.surfaces.functions import SURFACES
    >>> from optzoo.lab.surfaces.trajectory import run_trajectory
    >>> run = run_trajectory(SURFACES["long-valley"], "momentum", steps=300, lr=0.3)
    >>> run.path.shape, run.status, run.steps_to_tol is not None
    ((301, 2), 'converged', True)
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import torch

from ... import registry
from .functions import Point, Surface

__all__ = ["STATUSES", "Trajectory", "default_lr", "run_trajectories", "run_trajectory", "tuned_lr", "tuned_lrs"]

#: What a run can end as.
STATUSES = {
    "converged": "ended within tol of the minimum",
    "escaped": "left the saddle: reached the escape loss and then the plotting window",
    "diverged": "the loss or the point became inf/NaN, or the point ran far outside the window",
    "stuck": "stopped moving away from the target: a local minimum, a flat region or (saddles) never escaped",
    "max steps": "still on its way when the steps ran out",
}

#: A run is stopped as diverged once the point is this many window widths from the window.
FAR_AWAY = 10.0
#: The gradient norm below which a run that missed its target counts as stuck.
STUCK_GRAD = 1e-3

DATA_FILE = "data/surface_lrs.json"


@dataclass
class Trajectory:
    """One optimizer's run on one surface.

    ``path[t]`` is the point after ``t`` steps and ``losses[t]`` the (noise-free) loss
    there; both have ``steps + 1`` rows unless the run stopped early (``diverged`` or
    ``escaped``).
    """

    function: str
    optimizer: str
    lr: float
    hyper: dict[str, Any]
    path: np.ndarray
    losses: np.ndarray
    steps: int
    target_loss: float
    steps_to_tol: int | None
    status: str
    seconds: float = 0.0
    distance_to_minimum: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        """The loss at the last point reached."""
        return float(self.losses[-1]) if len(self.losses) else math.nan

    @property
    def steps_done(self) -> int:
        """How many optimizer steps were taken."""
        return len(self.path) - 1

    @property
    def max_step(self) -> float:
        """The longest single step of the path."""
        if len(self.path) < 2:
            return 0.0
        return float(np.max(np.linalg.norm(np.diff(self.path, axis=0), axis=1)))

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no path)."""
        return {
            "optimizer": self.optimizer,
            "lr": self.lr,
            "hyper": {k: v for k, v in self.hyper.items() if k != "lr"},
            "final_loss": _finite_or_none(self.final_loss),
            "distance_to_minimum": self.distance_to_minimum,
            "steps_to_tol": self.steps_to_tol,
            "steps_done": self.steps_done,
            "status": self.status,
            "final_point": [_finite_or_none(v) for v in self.path[-1].tolist()],
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@functools.lru_cache(maxsize=1)
def _tuned_table() -> dict[str, Any]:
    try:
        text = resources.files("optzoo.lab.surfaces").joinpath(DATA_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return {}
    return json.loads(text)


def tuned_lrs() -> dict[str, dict[str, float]]:
    """The tuned learning rates, ``{surface: {optimizer: lr}}`` (empty if the data file is missing)."""
    return _tuned_table().get("lrs", {})


def tuned_lr(function: str, optimizer: str) -> float | None:
    """The learning rate tuned for ``optimizer`` on surface ``function``, or ``None``."""
    return tuned_lrs().get(function, {}).get(optimizer.lower())


def default_lr(function: str, optimizer: str) -> float:
    """The tuned learning rate, else the optimizer's own default."""
    lr = tuned_lr(function, optimizer)
    if lr is not None:
        return float(lr)
    probe = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    return float(registry.optimizer(optimizer, [probe]).param_groups[0]["lr"])


def run_trajectory(
    function: Surface,
    optimizer_name: str,
    start: Point | None = None,
    steps: int | None = None,
    *,
    tol: float | None = None,
    **hyper: Any,
) -> Trajectory:
    """Run ``optimizer_name`` (a registry name) for ``steps`` steps on ``function``.

    Args:
        function: the surface (a :class:`~optzoo.lab.surfaces.functions.Surface`, noisy or not).
        optimizer_name: any name of :func:`optzoo.registry.optimizers`.
        start: the start point (default: the surface's).
        steps: how many optimizer steps (default: the surface's ``steps``).
        tol: overrides the surface's tolerance for "reached the minimum".
        **hyper: the optimizer's hyper-parameters, by its own keyword names; without
            ``lr`` the tuned learning rate for this surface is used.

    Raises:
        ValueError: an unknown optimizer name (the message lists the valid ones) or bad steps.
        TypeError: a hyper-parameter the optimizer does not take.
    """
    return run_trajectories(function, [(optimizer_name, hyper)], start, steps, tol=tol)[0]


def run_trajectories(
    function: Surface,
    runs: Sequence[tuple[str, dict[str, Any]]],
    start: Point | None = None,
    steps: int | None = None,
    *,
    tol: float | None = None,
) -> list[Trajectory]:
    """Run several ``(optimizer_name, hyper)`` side by side, in lock-step, on ``function``.

    The same as calling :func:`run_trajectory` for each, only faster: one forward and
    backward pass per step serves every run (each run is its own parameter and its own
    optimizer). On a noisy surface every run sees the same noise sequence.
    """
    steps = function.steps if steps is None else int(steps)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    function = function.fresh()
    start = (float(function.start[0]), float(function.start[1])) if start is None else (
        float(start[0]), float(start[1]))
    if tol is None:
        target = function.target_loss
    else:
        target = function.min_value + tol if function.min_value is not None else function.escape_loss

    params: list[torch.nn.Parameter] = []
    optimizers = []
    hypers = []
    for name, hyper in runs:
        hyper = dict(hyper)
        if "lr" not in hyper:
            hyper["lr"] = default_lr(function.name, name)
        point = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
        optimizers.append(registry.optimizer(name, [point], **hyper))
        params.append(point)
        hypers.append(hyper)

    (x0, x1), (y0, y1) = function.xlim, function.ylim
    far = FAR_AWAY * max(x1 - x0, y1 - y0)
    count = len(runs)
    paths: list[list[tuple[float, float]]] = [[start] for _ in range(count)]
    losses: list[list[float]] = [[] for _ in range(count)]
    statuses = [""] * count
    active = list(range(count))
    began = time.perf_counter()
    for _ in range(steps):
        if not active:
            break
        for i in active:
            optimizers[i].zero_grad()
        batch = torch.stack([params[i] for i in active])
        values = function(batch)
        values.sum().backward()
        for i, value in zip(active, values.tolist(), strict=True):
            losses[i].append(value)
            optimizers[i].step()
        points = torch.stack([params[i].detach() for i in active]).tolist()
        still = []
        for i, (x, y) in zip(active, points, strict=True):
            if not (math.isfinite(x) and math.isfinite(y)):
                statuses[i] = "diverged"
                continue
            paths[i].append((x, y))
            if not function.bounded:
                if not (x0 <= x <= x1 and y0 <= y <= y1):
                    statuses[i] = "escaped"
                    continue
            elif x < x0 - far or x > x1 + far or y < y0 - far or y > y1 + far:
                statuses[i] = "diverged"
                continue
            still.append(i)
        active = still
    seconds = (time.perf_counter() - began) / max(count, 1)

    return [
        _finish(function, name, optimizers[i], hypers[i], paths[i], losses[i], statuses[i], steps, target, seconds)
        for i, (name, _) in enumerate(runs)
    ]


def _finish(
    function: Surface,
    name: str,
    optimizer: torch.optim.Optimizer,
    hyper: dict[str, Any],
    path: list[tuple[float, float]],
    losses: list[float],
    status: str,
    steps: int,
    target: float,
    seconds: float,
) -> Trajectory:
    # The (noise-free) loss and gradient at the last point.
    last = torch.tensor(path[-1], dtype=torch.float64, requires_grad=True)
    last_loss = function.f(last[0], last[1])
    (grad,) = torch.autograd.grad(last_loss, last)
    losses = [*losses, last_loss.item()][: len(path)]  # losses[t] is the loss at path[t]
    losses_array = np.asarray(losses, dtype=np.float64)
    path_array = np.asarray(path, dtype=np.float64)

    if not math.isfinite(losses_array[-1]):
        status = "diverged"
    reached = np.flatnonzero(losses_array <= target)
    steps_to_tol = int(reached[0]) if reached.size else None
    if status == "escaped" and steps_to_tol is None:
        steps_to_tol = len(path_array) - 1
    if not status:
        if function.bounded and losses_array[-1] <= target:
            status = "converged"
        elif not function.bounded and steps_to_tol is not None:
            status = "escaped"
        elif not function.bounded or float(grad.norm()) < STUCK_GRAD:
            status = "stuck"
        else:
            status = "max steps"

    nearest = function.nearest_minimum(tuple(path_array[-1])) if status != "diverged" else None
    return Trajectory(
        function=function.name,
        optimizer=name.lower(),
        lr=float(optimizer.param_groups[0]["lr"]),
        hyper=hyper,
        path=path_array,
        losses=losses_array,
        steps=steps,
        target_loss=target,
        steps_to_tol=steps_to_tol,
        status=status,
        seconds=seconds,
        distance_to_minimum=None if nearest is None else nearest[1],
    )
