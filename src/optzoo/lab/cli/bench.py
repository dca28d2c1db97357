"""``optzoo bench``: train a real problem with chosen optimizers and seeds; curves, spread, timing, report.

Example::

    optzoo bench --problem digits-mlp --optimizers sgd,momentum,adam --seeds 5 --epochs 30 --out bench-out

writes ``bench-out/results.jsonl`` (one row per run per epoch, appended as
each run finishes), ``curves.png``, ``final_val.png``, ``epoch_time.png``,
``summary.md`` and ``checkpoints/<optimizer>-seed<k>/{best,last}.pt``.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optzoo bench``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "problems: digits-logreg, digits-mlp, digits-cnn, breast-cancer-logreg, diabetes-linreg, kmeans\n"
        "example: optzoo bench --problem digits-mlp --optimizers sgd,momentum,adam --seeds 5 --out bench-out"
    )
    parser.add_argument("--problem", default="digits-mlp", help="problem to train (default: digits-mlp)")
    parser.add_argument("--optimizers", default="sgd,momentum,adam",
                        help="comma-separated registry names (default: sgd,momentum,adam; see `optzoo list`)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per optimizer, seeds 0..N-1 (default: 3)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the problem's)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="mini-batch size: 1 = stochastic, 0 = full batch (default: 32)")
    parser.add_argument("--lr", action="append", default=[], metavar="NAME=VALUE",
                        help="learning rate of one optimizer, e.g. --lr adam=3e-3 (repeatable or comma-separated); "
                             "default: a tuned value per problem")
    parser.add_argument("--schedule", default=None, help="LR schedule from the registry (default: none)")
    parser.add_argument("--schedule-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="schedule hyper-parameter, e.g. --schedule-arg step_size=10 (repeatable)")
    parser.add_argument("--schedule-per", choices=("epoch", "step"), default="epoch",
                        help="step the schedule every epoch or every optimizer step (default: epoch)")
    parser.add_argument("--patience", type=int, default=None,
                        help="stop a run after this many epochs without a better validation loss")
    parser.add_argument("--no-shuffle", action="store_true",
                        help="visit the samples in one fixed order every epoch (shows cyclic behaviour)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation/test split")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel processes (default: the number of cores)")
    parser.add_argument("--no-checkpoints", action="store_true", help="do not write best/last checkpoints")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--out", default=None, help="output directory (default: bench-results/<problem>)")


def _fail(message: str, code: int = 2) -> int:
    print(f"optzoo bench: error: {message}", file=sys.stderr)
    return code


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _pairs(items: list[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            name, sep, value = part.partition("=")
            if not sep or not name or not value:
                raise ValueError(f"{what} takes NAME=VALUE, got {part!r}")
            pairs[name.strip().lower()] = value.strip()
    return pairs


def check_writable(out: Path) -> str | None:
    """Create ``out`` if needed and prove a file can be written there; the reason it cannot, or None."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".optzoo-write-test"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as error:
        return f"cannot write to output directory {str(out)!r}: {error.strerror or error}"
    return None


def command_line(args: argparse.Namespace, optimizers: list[str], lrs: dict[str, float], out: Path) -> str:
    """The canonical command that reproduces this benchmark."""
    parts = ["optzoo", "bench", "--problem", args.problem, "--optimizers", ",".join(optimizers),
             "--seeds", str(args.seeds), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    for name, value in lrs.items():
        parts += ["--lr", f"{name}={value:g}"]
    if args.schedule:
        parts += ["--schedule", args.schedule, "--schedule-per", args.schedule_per]
        for item in args.schedule_arg:
            parts += ["--schedule-arg", item]
    if args.patience is not None:
        parts += ["--patience", str(args.patience)]
    if args.no_shuffle:
        parts.append("--no-shuffle")
    if args.split_seed:
        parts += ["--split-seed", str(args.split_seed)]
    if args.no_checkpoints:
        parts.append("--no-checkpoints")
    parts += ["--out", str(out)]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; 0 when at least one run trained, 2 for bad arguments, 1 for an unwritable output."""
    from ... import registry
    from ..training.problems import problems

    valid_problems = problems()
    if args.problem not in valid_problems:
        return _fail(f"unknown problem {args.problem!r}; choose one of: {', '.join(valid_problems)}")
    optimizers = [name.strip().lower() for name in args.optimizers.split(",") if name.strip()]
    valid = registry.optimizers()
    unknown = [name for name in optimizers if name not in valid]
    if unknown or not optimizers:
        what = f"unknown optimizer {', '.join(map(repr, unknown))}" if unknown else "no optimizer given"
        return _fail(f"{what}; choose from: {', '.join(valid)}")
    optimizers = list(dict.fromkeys(optimizers))
    try:
        lr_text = _pairs(args.lr, "--lr")
        schedule_hyper = {k: _literal(v) for k, v in _pairs(args.schedule_arg, "--schedule-arg").items()}
        lrs = {name: float(value) for name, value in lr_text.items()}
    except ValueError as error:
        return _fail(str(error))
    stray = [name for name in lrs if name not in optimizers]
    if stray:
        return _fail(f"--lr names an optimizer not benchmarked: {', '.join(stray)}; "
                     f"benchmarked: {', '.join(optimizers)}")
    if any(not (math.isfinite(v) and v > 0) for v in lrs.values()):
        return _fail("learning rates must be positive numbers")
    if args.schedule and args.schedule.lower() not in registry.schedules():
        return _fail(f"unknown schedule {args.schedule!r}; choose one of: {', '.join(registry.schedules())}")
    if args.seeds < 1:
        return _fail("--seeds must be at least 1")
    if args.batch_size < 0:
        return _fail("--batch-size must be >= 0 (0 = full batch)")
    if args.workers is not None and args.workers < 1:
        return _fail("--workers must be at least 1")

    from ..training.problems import problem

    task = problem(args.problem, args.split_seed)
    if args.epochs is None:
        args.epochs = task.default_epochs
    if args.epochs < 1:
        return _fail("--epochs must be at least 1")
    out = Path(args.out) if args.out else Path("bench-results") / args.problem
    reason = check_writable(out)
    if reason:
        return _fail(reason, code=1)

    from ..training import benchkit

    final_lrs = {name: lrs.get(name, task.default_lr(name, args.batch_size)) for name in optimizers}
    jobs = []
    for name in optimizers:
        for seed in range(args.seeds):
            config = {
                "optimizer": name, "lr": final_lrs[name], "epochs": args.epochs, "batch_size": args.batch_size,
                "seed": seed, "shuffle": not args.no_shuffle, "schedule": args.schedule,
                "schedule_hyper": schedule_hyper, "schedule_per": args.schedule_per, "patience": args.patience,
                "checkpoint_dir": None if args.no_checkpoints else str(out / "checkpoints" / f"{name}-seed{seed}"),
            }
            jobs.append(benchkit.Job(args.problem, config, label=name, split_seed=args.split_seed))

    command = command_line(args, optimizers, final_lrs, out)
    workers = args.workers or benchkit.cpu_count()
    results_path = out / "results.jsonl"
    print(f"{len(jobs)} runs of {args.problem} ({len(optimizers)} optimizers x {args.seeds} seeds, "
          f"{args.epochs} epochs) on {min(workers, len(jobs))} processes -> {out}", file=sys.stderr)
    start = time.perf_counter()
    try:
        rows = benchkit.run_jobs(jobs, results_path, workers=workers, progress=not args.no_progress,
                                 desc=f"bench {args.problem}")
    except KeyboardInterrupt:
        rows = benchkit.read_results(results_path) if results_path.exists() else []
        if rows:
            write_report(rows, out, command, task, time.perf_counter() - start, workers, pictures=False,
                         note="Interrupted: only the runs that finished are summarised.")
        raise
    elapsed = time.perf_counter() - start
    write_report(rows, out, command, task, elapsed, workers)
    summaries = benchkit.summarize(rows)
    print(benchkit.summary_markdown(summaries))
    print(f"wrote {out / 'summary.md'} and {results_path} in {elapsed:.1f} s")
    if all(math.isnan(s.val_metric[0]) for s in summaries):
        return _fail("no run finished (see summary.md)", code=1)
    return 0


def write_report(
    rows: list[dict[str, Any]],
    out: Path,
    command: str,
    task: Any,
    elapsed: float,
    workers: int,
    pictures: bool = True,
    note: str = "",
) -> Path:
    """Write the pictures and ``summary.md`` for a finished (or interrupted) benchmark."""
    import platform

    import torch

    from ..training import benchkit

    summaries = benchkit.summarize(rows)
    if pictures:
        benchkit.plot_curves(rows, out / "curves.png", title=f"{task.name}: mean over seeds, band = min–max")
        benchkit.plot_final_box(rows, out / "final_val.png")
        benchkit.plot_epoch_time(rows, out / "epoch_time.png")
    runs = len({(r["label"], r["seed"]) for r in rows})
    first = rows[0] if rows else {}
    lines = [
        f"# Benchmark: {task.name}",
        "",
        "Produced by:",
        "",
        f"```\n{command}\n```",
        "",
        f"{task.description}. Data: {len(task.train)} train / {len(task.val)} validation / {len(task.test)} test "
        f"samples (split seed fixed; the run seed sets the initialisation and the shuffling). "
        f"Batch size {first.get('batch_size', '?')}, {runs} runs, {elapsed:.1f} s on {workers} processes "
        f"(one torch thread each; torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} cores).",
        "",
    ]
    if note:
        lines += [f"**{note}**", ""]
    lines += ["## Findings", ""] + [f"- {line}" for line in benchkit.findings(summaries)] + [""]
    lines += [
        "## Ranking by final validation " + (summaries[0].metric_name if summaries else "metric"),
        "",
        benchkit.summary_markdown(summaries),
        "Final = the last epoch a run reached. Mean ± std over seeds; diverged and failed runs are counted but "
        "left out of the statistics. Gap = train minus validation metric (and validation minus train loss): "
        "how much better the model does on the data it was trained on. Test = the held-out test split, measured "
        "with each run's best-validation-loss weights. Time per epoch: the median over all epochs and seeds of the "
        "optimisation steps' wall time (evaluation excluded; the median because a shared machine has rare "
        "very slow epochs).",
        "",
    ]
    if pictures:
        lines += [
            "## Pictures", "",
            "![train and validation curves](curves.png)", "",
            "![final validation metric per seed](final_val.png)", "",
            "![time per epoch](epoch_time.png)", "",
        ]
    path = out / "summary.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
