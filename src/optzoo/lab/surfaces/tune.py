"""Grid-search a default learning rate for every optimizer on every test surface.

Run ``python -m optzoo.lab.surfaces.tune`` (add ``--help`` for the options); it rewrites
``optzoo/lab/surfaces/data/surface_lrs.json``, which ``optzoo surface`` reads when no ``--lr``
is given. The file records the command, the grid, the criterion and each winner's
result, so that the numbers can be checked and reproduced.

See ``CRITERION`` below for the rule (it is also stored in the file).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ... import registry
from .functions import SURFACES, Surface
from .trajectory import Trajectory, run_trajectories

__all__ = ["CRITERION", "DEFAULT_GRID", "best_lr", "calibrated_lr", "main", "tune"]

CRITERION = """\
On a surface with a minimum, every learning rate of the grid runs for the given steps. A run
that diverges (inf/NaN, or far outside the window) is out, and so is one that takes a step
longer than 1/10 of the plotting window's diagonal (a path a person can follow). Runs that end within tol of the
minimum rank by the steps they took to first get there; among those within 10 % (or 2 steps)
of the fastest, the smallest learning rate wins (the furthest from the edge of divergence).
If no run ends within tol, the lowest final loss wins.
On a surface without a minimum (the saddles) a bigger step always escapes sooner, so nothing
can be tuned; instead every optimizer is calibrated to the same pace: its learning rate makes
its first step from the default start 1/50 of the plotting window's diagonal long (rounded
down to two significant digits). The differences then come from the algorithms alone."""

#: 1, 2, 3, 5, 7 per decade from 1e-4 to 10.
DEFAULT_GRID: tuple[float, ...] = (*(float(f"{m}e{e}") for e in range(-4, 1) for m in (1, 2, 3, 5, 7)), 10.0)
#: On surfaces with a minimum, the longest step allowed, as a share of the window's diagonal.
WATCHABLE_STEP = 1 / 10
#: On surfaces without a minimum, the first step's length as a share of the window's diagonal.
FIRST_STEP = 1 / 50
DATA_PATH = Path(__file__).parent / "data" / "surface_lrs.json"


def _window_diagonal(surface: Surface) -> float:
    (x0, x1), (y0, y1) = surface.xlim, surface.ylim
    return math.hypot(x1 - x0, y1 - y0)


def best_lr(surface: Surface, runs: Sequence[Trajectory]) -> Trajectory | None:
    """The winning run of one optimizer's grid on a surface with a minimum (see ``CRITERION``)."""
    cap = WATCHABLE_STEP * _window_diagonal(surface)
    ok = [r for r in runs if r.status != "diverged" and math.isfinite(r.final_loss) and r.max_step <= cap]
    if not ok:
        return None
    converged = [r for r in ok if r.status == "converged" and r.steps_to_tol is not None]
    if converged:
        fewest = min(r.steps_to_tol for r in converged)
        near = [r for r in converged if r.steps_to_tol <= max(fewest * 1.1, fewest + 2)]
        return min(near, key=lambda r: r.lr)
    return min(ok, key=lambda r: (r.final_loss, r.lr))


def _round_down(value: float, digits: int = 2) -> float:
    exponent = math.floor(math.log10(value)) - digits + 1
    return math.floor(value / 10.0**exponent) * 10.0**exponent


def calibrated_lr(surface: Surface, optimizer: str, probe_lr: float = 1e-3) -> float | None:
    """The learning rate whose first step from the surface's start is ``FIRST_STEP`` of its window's diagonal.

    The first step of every optimizer here is proportional to the learning rate, so one probe step suffices.
    """
    wanted = FIRST_STEP * _window_diagonal(surface)
    first = run_trajectories(surface, [(optimizer, {"lr": probe_lr})], steps=1)[0]
    if first.steps_done < 1 or not first.max_step > 0:
        return None
    return float(f"{_round_down(probe_lr * wanted / first.max_step):.2g}")


def tune(
    surfaces: Sequence[str],
    optimizers: Sequence[str],
    grid: Sequence[float] = DEFAULT_GRID,
    steps: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the grid and return the JSON-ready table (``lrs`` and the winners' ``results``)."""
    from tqdm import tqdm

    lrs: dict[str, dict[str, float]] = {}
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    usable = []
    probe = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    for name in optimizers:
        try:
            registry.optimizer(name, [probe], lr=grid[0])
        except Exception as error:  # an optimizer that cannot be built now is reported, not fatal
            skipped[name] = f"{type(error).__name__}: {error}"
        else:
            usable.append(name)

    bar = tqdm(total=len(surfaces) * len(usable), desc="tuning", unit="optimizer", disable=not progress)
    for surface_name in surfaces:
        surface = SURFACES[surface_name]
        lrs[surface_name], results[surface_name] = {}, {}
        for name in usable:
            bar.set_postfix_str(f"{surface_name} {name}")
            try:
                if surface.bounded:
                    runs = run_trajectories(surface, [(name, {"lr": lr}) for lr in grid], steps=steps)
                    winner = best_lr(surface, runs)
                else:
                    lr = calibrated_lr(surface, name)
                    winner = None if lr is None else run_trajectories(surface, [(name, {"lr": lr})], steps=steps)[0]
            except Exception as error:
                skipped[name] = f"{type(error).__name__}: {error}"
                bar.update()
                continue
            bar.update()
            if winner is None:
                continue
            lrs[surface_name][name] = winner.lr
            results[surface_name][name] = {
                "lr": winner.lr,
                "steps_to_tol": winner.steps_to_tol,
                "final_loss": winner.final_loss,
                "status": winner.status,
            }
    bar.close()
    return {"lrs": lrs, "results": results, "skipped": skipped}


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: tune and write the JSON data file."""
    parser = argparse.ArgumentParser(
        prog="python -m optzoo.lab.surfaces.tune",
        description="Grid-search default learning rates for every optimizer on every test surface.",
    )
    parser.add_argument("--surfaces", default=",".join(SURFACES),
                        help="comma-separated surfaces (default: all)")
    parser.add_argument("--optimizers", default=",".join(registry.optimizers()),
                        help="comma-separated registry names (default: all)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per run (default: each surface's own, as `optzoo surface` uses)")
    parser.add_argument("--out", type=Path, default=DATA_PATH, help="the JSON file to write (default: the package's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    surfaces = [s.strip() for s in args.surfaces.split(",") if s.strip()]
    optimizers = [o.strip().lower() for o in args.optimizers.split(",") if o.strip()]
    unknown = [s for s in surfaces if s not in SURFACES]
    if unknown:
        parser.error(f"unknown surface {', '.join(unknown)}; choose from: {', '.join(SURFACES)}")
    unknown = [o for o in optimizers if o not in registry.optimizers()]
    if unknown:
        parser.error(f"unknown optimizer {', '.join(unknown)}; choose from: {', '.join(registry.optimizers())}")

    table = tune(surfaces, optimizers, DEFAULT_GRID, args.steps, progress=not args.quiet)
    command = "python -m optzoo.lab.surfaces.tune" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    document = {
        "about": "Default learning rate per optimizer per test surface for `optzoo surface`.",
        "command": command,
        "criterion": CRITERION,
        "steps": {name: args.steps or SURFACES[name].steps for name in surfaces},
        "grid": list(DEFAULT_GRID),
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        **table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    for surface_name, row in table["lrs"].items():
        print(f"  {surface_name:<14} " + "  ".join(f"{k}={v:g}" for k, v in row.items()))
    for name, why in table["skipped"].items():
        print(f"  skipped {name}: {why}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
