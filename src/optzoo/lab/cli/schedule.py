"""``optzoo schedule``: the learning rate over the steps for chosen schedules, in one picture.

Example::

    optzoo schedule --schedules step,exponential,noam,cyclical,sgdr --steps 5000 --out sched

builds each schedule through the registry on a dummy one-parameter SGD optimizer (base
learning rate ``--lr``) with hyper-parameters scaled to the number of steps (override any
with ``--set name.key=value``), steps it ``--steps`` times and writes ``sched/schedules.png``
(all curves together, then one panel each), ``schedules.json`` (the learning rate at every
step and the hyper-parameters used) and ``schedules.md``, also printed.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_HYPER", "add_arguments", "lr_curve", "run"]

COMMAND = "schedule"
DEFAULT_SCHEDULES = "step,exponential,noam,cyclical,sgdr"


def _step(n: int, lr: float) -> dict[str, Any]:
    return {"step_size": max(1, n // 4), "gamma": 0.5}


def _piecewise(n: int, lr: float) -> dict[str, Any]:
    return {"milestones": [max(1, n // 3), max(2, 2 * n // 3)], "gamma": 0.1}


def _exponential(n: int, lr: float) -> dict[str, Any]:
    return {"r": max(1.0, n / 4)}


def _inverse_time(n: int, lr: float) -> dict[str, Any]:
    return {"r": max(1.0, n / 20), "c": 1.0}


def _warmup(n: int, lr: float) -> dict[str, Any]:
    return {"warmup_steps": max(1, n // 10)}


def _noam(n: int, lr: float) -> dict[str, Any]:
    # lr x d_model^-0.5 x min(s^-0.5, s w^-1.5): with d_model = 1/w the peak is lr.
    warmup = max(1, n // 10)
    return {"d_model": 1.0 / warmup, "warmup_steps": warmup}


def _cyclical(n: int, lr: float) -> dict[str, Any]:
    return {"base_lr": lr / 10, "max_lr": lr, "step_size": max(1, n // 8)}


def _sgdr(n: int, lr: float) -> dict[str, Any]:
    return {"T_0": max(1, n // 15), "T_mult": 2, "eta_min": lr / 100}


def _plateau(n: int, lr: float) -> dict[str, Any]:
    return {"factor": 0.5, "patience": max(1, n // 10)}


def _onecycle(n: int, lr: float) -> dict[str, Any]:
    return {"max_lr": lr, "total_steps": n}


#: Hyper-parameters per schedule for ``n`` steps and base learning rate ``lr``, by the built class's names.
DEFAULT_HYPER: dict[str, Callable[[int, float], dict[str, Any]]] = {
    "step": _step,
    "piecewise": _piecewise,
    "exponential": _exponential,
    "inverse-time": _inverse_time,
    "warmup": _warmup,
    "noam": _noam,
    "cyclical": _cyclical,
    "sgdr": _sgdr,
    "plateau": _plateau,
    "onecycle": _onecycle,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optzoo schedule``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "see `optzoo list --kind schedules` for the names.\n"
        "plateau is fed a made-up validation loss that improves, then stalls.\n"
        "example: optzoo schedule --schedules step,exponential,noam,cyclical,sgdr --steps 5000 --out sched"
    )
    parser.add_argument("--schedules", default=DEFAULT_SCHEDULES, metavar="LIST",
                        help=f"comma-separated registry names (default: {DEFAULT_SCHEDULES})")
    parser.add_argument("--steps", default="5000", metavar="N", help="steps to plot (default: 5000)")
    parser.add_argument("--lr", default="0.1", metavar="LR", help="the optimizer's base learning rate (default: 0.1)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME.KEY=VALUE",
                        help="override a hyper-parameter, e.g. --set sgdr.T_mult=1 or "
                             "--set piecewise.milestones=[100,300] (repeatable)")
    parser.add_argument("--log", action="store_true", help="log scale for the learning rate")
    parser.add_argument("--out", default="schedule-results", metavar="DIR",
                        help="output folder (default: schedule-results)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _plateau_metric(step: int, total: int) -> float:
    """A made-up validation loss: falls for the first third, then stays flat (with a tiny wiggle)."""
    knee = max(1, total // 3)
    base = math.exp(-3 * min(step, knee) / knee)
    return base + 1e-4 * math.sin(step)


def lr_curve(name: str, steps: int, lr: float, hyper: dict[str, Any]) -> list[float]:
    """The learning rate at steps ``0 .. steps - 1`` of schedule ``name`` built through the registry."""
    import torch

    from ... import registry

    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = registry.optimizer("sgd", [weight], lr=lr)
    scheduler = registry.schedule(name, optimizer, **hyper)
    lrs = []
    for step in range(steps):
        lrs.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        if name == "plateau":
            scheduler.step(_plateau_metric(step, steps))
        else:
            scheduler.step()
    return lrs


def _parse_sets(items: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    from .support import fail

    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        target, equals, text = item.partition("=")
        schedule, dot, key = target.strip().partition(".")
        if not equals or not dot or not key:
            fail(COMMAND, f"--set: expected NAME.KEY=VALUE (e.g. sgdr.T_0=500), got {item!r}")
        schedule = schedule.lower()
        if schedule not in names:
            fail(COMMAND, f"--set: {schedule!r} is not among --schedules ({', '.join(names)})")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
        overrides.setdefault(schedule, {})[key.strip()] = value
    return overrides


def run(args: argparse.Namespace) -> int:
    """Build, step and plot the chosen schedules."""
    from ... import registry
    from .support import fail, parse_names, parse_number, prepare_out, progress

    names = parse_names(COMMAND, "--schedules", args.schedules, registry.schedules(), "schedule")
    steps = int(parse_number(COMMAND, "--steps", args.steps, minimum=2, integer=True))
    lr = parse_number(COMMAND, "--lr", args.lr, positive=True)
    overrides = _parse_sets(args.set, names)
    out = prepare_out(COMMAND, args.out)

    from ..reporting import plots

    curves: dict[str, list[float]] = {}
    used: dict[str, dict[str, Any]] = {}
    with progress(len(names) * steps, "optzoo schedule", unit="step",
                  disable=None if not args.no_progress else True) as bar:
        for name in names:
            hyper = {**DEFAULT_HYPER.get(name, lambda n, lr: {})(steps, lr), **overrides.get(name, {})}
            try:
                curves[name] = lr_curve(name, steps, lr, hyper)
            except (TypeError, ValueError) as error:
                fail(COMMAND, f"schedule {name!r} with {hyper}: {str(error).splitlines()[0]}")
            used[name] = hyper
            bar.update(steps)

    notes = {name: ", ".join(f"{k}={_short(v)}" for k, v in hyper.items()) for name, hyper in used.items()}
    picture = plots.schedule_plot(curves, out / "schedules.png", notes=notes, log_y=args.log,
                                  title=f"Learning-rate schedules over {steps} steps (base lr {lr:g})")
    rows = ["| schedule | hyper-parameters | lr at start | min | max | lr at end |", "|---|---|---:|---:|---:|---:|"]
    for name, values in curves.items():
        rows.append(f"| {name} | {notes[name]} | {values[0]:.3g} | {min(values):.3g} | {max(values):.3g} "
                    f"| {values[-1]:.3g} |")
    table = "\n".join(rows) + "\n"
    (out / "schedules.md").write_text(table, encoding="utf-8")
    document = {"steps": steps, "base_lr": lr, "hyper": used, "lr": curves}
    (out / "schedules.json").write_text(json.dumps(document, default=str) + "\n", encoding="utf-8")
    print(table)
    print(f"wrote {picture}, {out / 'schedules.json'}, {out / 'schedules.md'}")
    return 0


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
