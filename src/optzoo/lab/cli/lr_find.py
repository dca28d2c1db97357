"""``optzoo lr-find``: Smith's LR range test on a bundled problem, with plot and suggestion.

Example::

    optzoo lr-find --problem digits-mlp --optimizer sgd --out lr-find

sweeps the learning rate exponentially from ``--start-lr`` to ``--end-lr`` over ``--iters``
mini-batches of scikit-learn's 8x8 digits (shipped with scikit-learn, nothing is
downloaded), then writes ``lr-find/<problem>_<optimizer>.png`` (loss against the learning
rate, log scale, the suggestion marked), ``.json`` and ``.md``, and prints the suggested
learning rate and the range for a cyclical schedule. The model and the optimizer are
restored afterwards (the test only looks).
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

__all__ = ["add_arguments", "run"]

COMMAND = "lr-find"
PROBLEMS = ("digits-logreg", "digits-mlp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optzoo lr-find``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "example: optzoo lr-find --problem digits-mlp --optimizer adam --out lr-find"
    parser.add_argument("--problem", default="digits-mlp", metavar="NAME",
                        help=f"the problem: {', '.join(PROBLEMS)} (default: digits-mlp)")
    parser.add_argument("--optimizer", default="sgd", metavar="NAME",
                        help="registry name of the optimizer (default: sgd; see `optzoo list`)")
    parser.add_argument("--start-lr", default="1e-6", metavar="LR", help="first learning rate (default: 1e-6)")
    parser.add_argument("--end-lr", default="10", metavar="LR", help="last learning rate (default: 10)")
    parser.add_argument("--iters", default="200", metavar="N", help="mini-batches in the sweep (default: 200)")
    parser.add_argument("--batch-size", default="32", metavar="N", help="mini-batch size (default: 32)")
    parser.add_argument("--mode", choices=("exp", "linear"), default="exp",
                        help="how the learning rate grows (default: exp)")
    parser.add_argument("--smooth", default="0.05", metavar="BETA",
                        help="weight of the newest loss in the running average, in (0, 1] (default: 0.05)")
    parser.add_argument("--diverge-threshold", default="5", metavar="X",
                        help="stop once the loss exceeds X times the best loss (default: 5)")
    parser.add_argument("--seed", default="0", metavar="N", help="seed of the model's initialisation (default: 0)")
    parser.add_argument("--out", default="lr-find-results", metavar="DIR",
                        help="output folder (default: lr-find-results)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


class _Batches:
    """An endless, seeded stream of shuffled mini-batches ``(x, y)`` of one split."""

    def __init__(self, x: Any, y: Any, batch_size: int, seed: int) -> None:
        import torch

        self.x, self.y, self.batch_size = x, y, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Any:
        import torch

        n = len(self.x)
        while True:
            order = torch.randperm(n, generator=self.generator)
            for begin in range(0, n - self.batch_size + 1, self.batch_size):
                index = order[begin:begin + self.batch_size]
                yield self.x[index], self.y[index]


class _Counted:
    """Wraps the batch stream to move a progress bar as the range test consumes batches."""

    def __init__(self, batches: _Batches, bar: Any) -> None:
        self.batches, self.bar = batches, bar

    def __iter__(self) -> Any:
        for batch in self.batches:
            self.bar.update()
            yield batch


def run(args: argparse.Namespace) -> int:
    """Run the range test and write the plot, the JSON and the markdown summary."""
    from ... import registry
    from .support import fail, parse_names, parse_number, prepare_out, progress

    problem_name = args.problem.strip().lower()
    if problem_name not in PROBLEMS:
        fail(COMMAND, f"--problem: unknown problem {args.problem!r}; choose from: {', '.join(PROBLEMS)}")
    (optimizer_name,) = parse_names(COMMAND, "--optimizer", args.optimizer, registry.optimizers(), "optimizer")
    if "," in args.optimizer:
        fail(COMMAND, "--optimizer: give one optimizer")
    start_lr = parse_number(COMMAND, "--start-lr", args.start_lr, positive=True)
    end_lr = parse_number(COMMAND, "--end-lr", args.end_lr, positive=True)
    if end_lr <= start_lr:
        fail(COMMAND, f"--end-lr ({end_lr:g}) must be greater than --start-lr ({start_lr:g})")
    iters = int(parse_number(COMMAND, "--iters", args.iters, minimum=2, integer=True))
    batch_size = int(parse_number(COMMAND, "--batch-size", args.batch_size, minimum=1, integer=True))
    smooth = parse_number(COMMAND, "--smooth", args.smooth, positive=True)
    if smooth > 1:
        fail(COMMAND, f"--smooth: must be in (0, 1], got {args.smooth}")
    diverge = parse_number(COMMAND, "--diverge-threshold", args.diverge_threshold, positive=True)
    seed = int(parse_number(COMMAND, "--seed", args.seed, minimum=0, integer=True))
    out = prepare_out(COMMAND, args.out)

    import torch

    try:
        from ...schedules import lr_range_test
    except ImportError:
        fail(COMMAND, "optzoo.schedules.lr_range_test is not available in this installation")
    from ..reporting import plots
    from ..training.problems import problem

    task = problem(problem_name)
    torch.manual_seed(seed)
    model = task.build_model()
    optimizer = registry.optimizer(optimizer_name, model.parameters(), lr=start_lr)
    batches = _Batches(task.train.x, task.train.y, min(batch_size, len(task.train)), seed)
    with progress(iters, f"optzoo lr-find {problem_name} {optimizer_name}", unit="batch",
                  disable=None if not args.no_progress else True) as bar:
        result = lr_range_test(
            model, task.loss, _Counted(batches, bar), optimizer,
            start_lr=start_lr, end_lr=end_lr, num_iter=iters, mode=args.mode, smooth=smooth,
            diverge_threshold=diverge,
        )

    lrs = [float(v) for v in result.lrs]
    losses = [float(v) for v in result.losses]
    suggested = None if result.suggested_lr is None else float(result.suggested_lr)
    cyclical = None if result.cyclical_range is None else tuple(float(v) for v in result.cyclical_range)
    stem = f"{problem_name}_{optimizer_name}"
    picture = plots.lr_find_plot(
        lrs, losses, out / f"{stem}.png", suggested_lr=suggested, cyclical_range=cyclical,
        title=f"LR range test: {optimizer_name} on {problem_name} (batch {batch_size})",
        raw_losses=getattr(result, "raw_losses", None),
    )
    document = {
        "problem": problem_name, "optimizer": optimizer_name, "batch_size": batch_size,
        "start_lr": start_lr, "end_lr": end_lr, "num_iter": iters, "mode": args.mode, "smooth": smooth,
        "diverge_threshold": diverge, "seed": seed, "iterations_run": len(lrs),
        "suggested_lr": suggested, "cyclical_range": list(cyclical) if cyclical else None,
        "lrs": lrs, "losses": [v if math.isfinite(v) else None for v in losses],
    }
    (out / f"{stem}.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    summary = (
        f"LR range test, {optimizer_name} on {problem_name}: {len(lrs)} mini-batches of {batch_size}, "
        f"lr {start_lr:g} -> {end_lr:g} ({args.mode})\n\n"
        f"| suggested lr | cyclical range (base_lr, max_lr) |\n|---:|---|\n"
        f"| {'—' if suggested is None else f'{suggested:.3g}'} "
        f"| {'—' if not cyclical else f'{cyclical[0]:.3g} – {cyclical[1]:.3g}'} |\n"
    )
    (out / f"{stem}.md").write_text(summary, encoding="utf-8")
    print(summary)
    print(f"wrote {picture}, {out / f'{stem}.json'}, {out / f'{stem}.md'}")
    return 0
