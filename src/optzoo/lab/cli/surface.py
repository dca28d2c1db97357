"""``optzoo surface``: optimizers' paths on a 2-D test surface: contour plot, loss plot, GIF and table.

Example::

    optzoo surface --function beale --optimizers sgd,momentum,nesterov,adagrad,rmsprop,adam --out surf --gif

writes ``surf/beale.png`` (contours with one path per optimizer), ``surf/beale_loss.png``
(loss per step, log scale), ``surf/beale.gif`` (the paths moving together) and the results
table ``surf/beale.md`` / ``surf/beale.json`` (optimizer, lr, final loss, distance to the
nearest minimum, steps to tolerance, status), also printed.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "results_table", "run"]

COMMAND = "surface"
DEFAULT_OPTIMIZERS = "sgd,momentum,nesterov,adagrad,rmsprop,adam"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optzoo surface``."""
    from ..surfaces.functions import SURFACES

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        f"functions: {', '.join(SURFACES)}\n"
        "without --lr, each optimizer runs with the learning rate tuned for it on that function\n"
        "(python -m optzoo.lab.surfaces.tune; on the saddles: calibrated to the same first step).\n"
        "example: optzoo surface --function saddle --optimizers sgd,momentum,adam --gif --out surf"
    )
    parser.add_argument("--function", default="beale", metavar="NAME",
                        help=f"the test surface: {', '.join(SURFACES)} (default: beale)")
    parser.add_argument("--optimizers", default=DEFAULT_OPTIMIZERS, metavar="LIST",
                        help=f"comma-separated registry names (default: {DEFAULT_OPTIMIZERS}; see `optzoo list`)")
    parser.add_argument("--steps", default=None, metavar="N",
                        help="optimizer steps (default: the function's, 300; rosenbrock 1000)")
    parser.add_argument("--out", default="surface-results", metavar="DIR",
                        help="output folder (default: surface-results)")
    parser.add_argument("--gif", action="store_true", help="also write an animated GIF of the paths")
    parser.add_argument("--frames", default="80", metavar="N", help="GIF frames (default: 80)")
    parser.add_argument("--start", default=None, metavar="X,Y",
                        help="start point (default: the function's); a negative x needs --start=-1,2")
    parser.add_argument("--noise", default="0", metavar="SIGMA",
                        help="add gaussian noise of this std to every gradient: stochastic gradients (default: 0)")
    parser.add_argument("--seed", default="0", metavar="N", help="seed of the gradient noise (default: 0)")
    parser.add_argument("--tol", default=None, metavar="T",
                        help="a run reaches the minimum when f <= f_min + T (default: the function's, 1e-3)")
    parser.add_argument("--lr", action="append", default=[], metavar="NAME=VALUE",
                        help="learning rate of one optimizer, e.g. --lr adam=0.05 (repeatable or comma-separated; "
                             "a bare VALUE sets all); default: tuned per function")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parse_lrs(items: list[str], optimizers: list[str]) -> dict[str, float]:
    from .support import fail, parse_number, split_assignments

    lrs: dict[str, float] = {}
    for item in split_assignments(items):
        if "=" in item:
            name, _, value = item.partition("=")
            name = name.strip().lower()
            if name not in optimizers:
                fail(COMMAND, f"--lr: {name!r} is not among --optimizers ({', '.join(optimizers)})")
            lrs[name] = parse_number(COMMAND, f"--lr {name}", value.strip(), positive=True)
        else:
            value = parse_number(COMMAND, "--lr", item, positive=True)
            lrs.update(dict.fromkeys(optimizers, value))
    return lrs


def _fmt(value: float | None, spec: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return format(value, spec)


def results_table(surface: Any, runs: list[Any]) -> str:
    """The results as a markdown table (a caption line, then one row per optimizer)."""
    bounded = surface.min_value is not None
    to = "steps to tol" if bounded else "steps to escape"
    target = (f"tolerance: f ≤ f_min + {runs[0].target_loss - surface.min_value:g}" if bounded and runs
              else f"escaped: f ≤ {surface.escape_loss:g}")
    start = runs[0].path[0] if runs else surface.start
    steps = runs[0].steps if runs else 0
    lines = [
        f"**{surface.title}**, {steps} steps from ({start[0]:g}, {start[1]:g}); {target}.",
        "",
        f"| optimizer | lr | final loss | distance to nearest minimum | {to} | status |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run.optimizer} | {run.lr:.3g} | {_fmt(run.final_loss, '.3e')} | {_fmt(run.distance_to_minimum)} "
            f"| {_fmt(run.steps_to_tol, 'd')} | {run.status} |"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Run the chosen optimizers on the surface and write the pictures and the table."""
    from ... import registry
    from ..surfaces.functions import SURFACES, Noisy
    from .support import fail, parse_names, parse_number, parse_point, prepare_out, progress

    name = args.function.strip().lower()
    if name not in SURFACES:
        fail(COMMAND, f"--function: unknown function {args.function!r}; choose from: {', '.join(SURFACES)}")
    surface = SURFACES[name]
    optimizers = parse_names(COMMAND, "--optimizers", args.optimizers, registry.optimizers(), "optimizer")
    steps = None if args.steps is None else int(parse_number(COMMAND, "--steps", args.steps, minimum=1,
                                                             integer=True))
    frames = int(parse_number(COMMAND, "--frames", args.frames, minimum=2, integer=True))
    noise = parse_number(COMMAND, "--noise", args.noise, minimum=0)
    seed = int(parse_number(COMMAND, "--seed", args.seed, minimum=0, integer=True))
    tol = None if args.tol is None else parse_number(COMMAND, "--tol", args.tol, positive=True)
    start = None if args.start is None else parse_point(COMMAND, "--start", args.start)
    lrs = _parse_lrs(args.lr, optimizers)
    out = prepare_out(COMMAND, args.out)

    from ..surfaces.trajectory import run_trajectories, tuned_lr

    function = Noisy(surface, sigma=noise, seed=seed) if noise > 0 else surface
    specs = [(o, {"lr": lrs[o]} if o in lrs else {}) for o in optimizers]
    try:
        runs = run_trajectories(function, specs, start=start, steps=steps, tol=tol)
    except (TypeError, ValueError) as error:
        fail(COMMAND, str(error).splitlines()[0])

    from ..reporting import plots

    stem = name
    files = {"contour": out / f"{stem}.png", "loss": out / f"{stem}_loss.png",
             "table": out / f"{stem}.md", "json": out / f"{stem}.json"}
    if args.gif:
        files["gif"] = out / f"{stem}.gif"
    colors = plots.colors_for(optimizers)
    show = not args.no_progress
    with progress(3 + (frames if args.gif else 0), f"optzoo surface {name}", unit="part",
                  disable=None if show else True) as bar:
        plots.contour_plot(function, runs, files["contour"], colors=colors)
        bar.update()
        plots.loss_plot(function, runs, files["loss"], colors=colors)
        bar.update()
        if args.gif:
            plots.animate_paths(function, runs, files["gif"], frames=frames, colors=colors,
                                progress=lambda done, total: bar.update(1))
        table = results_table(function, runs)
        files["table"].write_text(table, encoding="utf-8")
        document = {
            "function": name,
            "title": function.title,
            "source": surface.source,
            "start": list(runs[0].path[0]) if runs else list(surface.start),
            "steps": runs[0].steps if runs else steps,
            "target_loss": runs[0].target_loss if runs else function.target_loss,
            "min_value": surface.min_value,
            "minima": [list(m) for m in surface.minima],
            "noise": {"sigma": noise, "seed": seed},
            "results": [
                {**r.as_dict(),
                 "lr_source": "given" if r.optimizer in lrs else (
                     "tuned" if tuned_lr(name, r.optimizer) is not None else "optimizer default")}
                for r in runs
            ],
            "files": {k: v.name for k, v in files.items()},
        }
        files["json"].write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        bar.update()

    print(table)
    print("wrote " + ", ".join(str(Path(p)) for p in files.values()))
    return 0
