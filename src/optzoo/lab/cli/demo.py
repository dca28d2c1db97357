"""``optzoo demo``: the whole lab on embedded defaults, written to one self-contained HTML page.

The report (``optzoo-report/index.html`` by default) has:

1. optimizers' paths on test surfaces (Beale, the long valley, the saddle);
2. the learning-rate schedules;
3. the LR range test;
4. a short benchmark on the digits MLP: several optimizers over seeds;
5. batch size: stochastic (1) vs mini-batch (32) vs full-batch gradient descent;
6. K-means by batch, mini-batch and stochastic updates.

A part whose code is not available (yet) becomes a note in the report; the
rest still runs. The training runs go through one pool of worker processes
(one torch thread each). ``--quick`` shrinks every budget (for a smoke test).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]

SURFACE_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
SURFACES = (
    ("beale", "Beale's function: a flat plateau and narrow curved valleys; the minimum at (3, 0.5)."),
    ("long-valley", "A long, narrow valley: steep walls, a gentle floor. Plain SGD zig-zags between the walls."),
    ("saddle", "A saddle point: the gradient vanishes at the start; success is escaping downhill."),
)


@dataclass
class Budget:
    """How much work each part of the demo does."""

    optimizers: tuple[str, ...] = ("sgd", "momentum", "adagrad", "rmsprop", "adam")
    seeds: int = 3
    epochs: int = 40
    batch_seeds: int = 3
    batch_plan: tuple[tuple[int, float, int], ...] = ((1, 0.03, 8), (32, 0.1, 30), (0, 0.5, 300))
    kmeans_seeds: int = 5
    kmeans_plan: tuple[tuple[int, int], ...] = ((1, 8), (32, 30), (0, 100))
    surface_steps: int | None = None
    gif: bool = True
    schedule_steps: int = 300
    notes: list[str] = field(default_factory=list)


QUICK = Budget(
    optimizers=("sgd", "momentum", "adam"), seeds=2, epochs=6, batch_seeds=2,
    batch_plan=((1, 0.03, 1), (32, 0.1, 6), (0, 0.5, 30)), kmeans_seeds=2,
    kmeans_plan=((1, 1), (32, 6), (0, 20)), surface_steps=120, gif=False, schedule_steps=120,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optzoo demo``."""
    parser.add_argument("--out", default="optzoo-report", help="output folder (default: optzoo-report)")
    parser.add_argument("--quick", action="store_true", help="a much smaller budget (a smoke test, ~20 s)")
    parser.add_argument("--workers", type=int, default=None, help="parallel training processes (default: cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the demo and write ``<out>/index.html``; 0 on success, 1 if the output folder cannot be written."""
    from .bench import check_writable

    out = Path(args.out)
    reason = check_writable(out)
    if reason:
        print(f"optzoo demo: error: {reason}", file=sys.stderr)
        return 1
    if args.workers is not None and args.workers < 1:
        print("optzoo demo: error: --workers must be at least 1", file=sys.stderr)
        return 2
    assets = out / "files"
    assets.mkdir(exist_ok=True)
    budget = QUICK if args.quick else Budget()
    progress = not args.no_progress

    from ..reporting.html import Report

    started = time.perf_counter()
    report = Report(
        "optzoo — optimizers at work",
        "The classic neural-network optimizers on test surfaces and on real data, with the learning-rate "
        "schedules and the LR range test." + (" (quick run: small budgets)" if args.quick else ""),
    )
    overview = report.section("At a glance", anchor="overview", short="At a glance")
    parts: list[tuple[str, Callable[..., list[tuple[str, str, str]]]]] = [
        ("Optimizers on test surfaces", _surfaces),
        ("Learning-rate schedules", _schedules),
        ("LR range test", _lr_find),
        ("Training on real data", _training),
    ]
    cards: list[tuple[str, str, str]] = []
    problems: list[str] = []
    for index, (title, part) in enumerate(parts, 1):
        _say(f"[{index}/{len(parts)}] {title} ...")
        t0 = time.perf_counter()
        try:
            cards += part(report, assets, budget, args, progress)
        except ImportError as error:
            report.section(title).note(f"This part is not available in this build yet ({error}).")
            problems.append(f"{title}: not available ({error})")
        except KeyboardInterrupt:
            raise
        except Exception as error:  # a part that fails leaves a note, the report still gets written
            traceback.print_exc()
            report.section(title).note(f"This part failed: {type(error).__name__}: {error}")
            problems.append(f"{title}: failed ({type(error).__name__}: {error})")
        _say(f"      {title}: {time.perf_counter() - t0:.1f} s")

    elapsed = time.perf_counter() - started
    overview.paragraph(
        "What the course notes claim about the classic optimizers, measured: paths on two-dimensional test "
        "surfaces, the learning-rate schedules, and real training runs on data that ships with scikit-learn "
        "(the 8x8 digits), repeated over seeds so that the spread between runs shows.", lead=True)
    if cards:
        overview.cards(cards)
    if problems:
        overview.note("Parts not shown: " + "; ".join(problems) + ".")
    overview.paragraph(
        f"Generated by `optzoo demo{' --quick' if args.quick else ''}` in {elapsed:.0f} s on "
        f"{_machine()}. Every number comes from this run; the raw per-epoch results are in "
        f"`{assets.name}/results.jsonl` next to this page.")
    report.footer = (f"optzoo demo · {time.strftime('%Y-%m-%d %H:%M')} · {elapsed:.0f} s · "
                     "self-contained page: every picture is embedded, nothing loads from elsewhere.")
    path = report.write(out / "index.html")
    _say(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {elapsed:.0f} s")
    return 0


def _machine() -> str:
    import os

    import torch

    return f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}"


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


# ----------------------------------------------------------------------------- 1. surfaces


def _surfaces(report: Any, assets: Path, budget: Budget, args: argparse.Namespace,
              progress: bool) -> list[tuple[str, str, str]]:
    from ..reporting import plots
    from ..surfaces.functions import SURFACES as TABLE
    from ..surfaces.trajectory import run_trajectories

    section = report.section(
        "Optimizers on test surfaces",
        "Each optimizer starts from the same point with the learning rate tuned for it on that surface; "
        "the lines are their paths over the contours of the loss. This is the picture behind the course "
        "notes' animations (Beale's function, a long valley, a saddle point).",
        anchor="surfaces", short="Surfaces")
    section.course("SGD with momentum builds up speed along directions of steady descent and damps the "
                   "zig-zag across a valley; the adaptive methods (Adagrad, RMSProp, Adam) give every "
                   "parameter its own step size, so a flat direction and a steep one progress alike.")
    cards: list[tuple[str, str, str]] = []
    for name, blurb in SURFACES:
        surface = TABLE[name]
        runs = run_trajectories(surface, [(o, {}) for o in SURFACE_OPTIMIZERS], steps=budget.surface_steps)
        picture = plots.contour_plot(surface, runs, assets / f"surface-{name}.png", dpi=80)
        curve = plots.loss_plot(surface, runs, assets / f"surface-{name}-loss.png", dpi=70)
        section.heading(surface.title.replace("$", ""))
        section.paragraph(blurb)
        section.images([(picture, "paths over the contours (white dot: start)"),
                        (curve, "loss per step (dot: reached the tolerance)")])
        rows = [[r.optimizer, f"{r.lr:.3g}", r.status, _fmt(r.final_loss, 4),
                 "–" if r.steps_to_tol is None else str(r.steps_to_tol)] for r in
                sorted(runs, key=lambda r: (r.steps_to_tol is None, r.steps_to_tol or 0, r.final_loss))]
        section.table(["optimizer", "lr (tuned)", "outcome", "final loss", "steps to tolerance"], rows,
                      caption=f"{runs[0].steps if runs else 0} steps; sorted by steps to reach the tolerance.",
                      highlight_first=True)
        winner = min(runs, key=lambda r: (r.steps_to_tol is None, r.steps_to_tol or 0, r.final_loss))
        if name == "beale":
            cards.append(("Beale: first to the minimum", winner.optimizer,
                          f"{winner.steps_to_tol} steps" if winner.steps_to_tol is not None else winner.status))
        if budget.gif and name == "beale":
            gif = plots.animate_paths(surface, runs, assets / f"surface-{name}.gif", frames=50, fps=12, dpi=55)
            if gif.stat().st_size < 3_000_000:
                section.image(gif, "the same runs, animated", width=620)
    return cards


# ----------------------------------------------------------------------------- 2. schedules

#: What each schedule the registry may hold looks like, in a few words.
SCHEDULE_NOTES: dict[str, str] = {
    "step": "halve at fixed intervals",
    "piecewise": "drops at given milestones",
    "exponential": "eta_0 e^(-t/r)",
    "inverse-time": "eta_0 (1 + t/r)^-c",
    "noam": "warm-up, then 1/sqrt(step)",
    "warmup": "linear warm-up",
    "cyclical": "triangular cycles",
    "sgdr": "cosine with warm restarts",
    "onecycle": "one cycle: up, then far down",
    "plateau": "halve when a (made-up) loss stalls",
}


def _schedule_curve(name: str, steps: int, lr: float = 0.1) -> list[float]:
    """The LR curve of ``name`` with the hyper-parameters ``optzoo schedule`` uses for ``steps`` steps."""
    from .schedule import DEFAULT_HYPER, lr_curve

    hyper = DEFAULT_HYPER[name](steps, lr) if name in DEFAULT_HYPER else {}
    return lr_curve(name, steps, lr, hyper)


def _schedules(report: Any, assets: Path, budget: Budget, args: argparse.Namespace,
               progress: bool) -> list[tuple[str, str, str]]:
    import warnings

    from ... import registry

    available = registry.schedules()
    curves: dict[str, list[float]] = {}
    notes: dict[str, str] = {}
    skipped: list[str] = []
    for name in available:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                curves[name] = _schedule_curve(name, budget.schedule_steps)
            notes[name] = SCHEDULE_NOTES.get(name, "")
        except (TypeError, ValueError, RuntimeError, KeyError) as error:
            skipped.append(f"{name} ({type(error).__name__}: {error})")
    section = report.section(
        "Learning-rate schedules",
        "The learning rate over the steps of training for every schedule in the registry, each from an initial "
        "rate of 0.1 (SGD with momentum). Time-dependent schedules take big steps first and small ones for "
        "fine tuning; the performance-dependent one (plateau) cuts the rate when the loss stops improving.",
        anchor="schedules", short="Schedules")
    section.course("Time-dependent schedules: piecewise constant, exponential eta_0 e^(-t/r), reciprocal "
                   "eta_0 (1 + t/r)^-c; performance-dependent: keep eta until the validation loss stops "
                   "improving, then cut it.")
    if not curves:
        section.note("No schedule could be drawn" + (f": {', '.join(skipped)}." if skipped else "."))
        return []
    picture = _schedule_grid(curves, notes, assets / "schedules.png")
    section.image(picture, "learning rate against step, one panel per schedule")
    if skipped:
        section.note("Registered but not drawn with the demo's settings: " + ", ".join(skipped) + ".")
    return [("Schedules drawn", str(len(curves)), ", ".join(curves))]


def _schedule_grid(curves: dict[str, list[float]], notes: dict[str, str], path: Path) -> Path:
    from ..training.benchkit import _colors, _pyplot, _save_fig

    plt = _pyplot()
    names = list(curves)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.4 * rows), squeeze=False)
    colors = _colors(names)
    for ax, name in zip(axes.flat, names, strict=False):
        lrs = curves[name]
        ax.plot(range(len(lrs)), lrs, color=colors[name], lw=1.8)
        ax.fill_between(range(len(lrs)), 0, lrs, color=colors[name], alpha=0.12)
        ax.set_title(f"{name}: {notes.get(name, '')}", fontsize=9)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.supxlabel("step", fontsize=9)
    fig.supylabel("learning rate", fontsize=9)
    fig.tight_layout()
    return _save_fig(fig, path)


# ----------------------------------------------------------------------------- 3. LR range test


def _lr_find(report: Any, assets: Path, budget: Budget, args: argparse.Namespace,
             progress: bool) -> list[tuple[str, str, str]]:
    import importlib

    module = importlib.import_module("optzoo.lab.cli.lr_find")
    section = report.section(
        "LR range test",
        "Smith's test: train for a short while with a learning rate that grows exponentially from tiny to huge, "
        "and record the loss. The loss falls once the rate is large enough to make progress and blows up once "
        "it is too large; a good rate sits on the steep descent, well before the minimum.",
        anchor="lr-range-test", short="LR range test")
    try:
        pictures, text = _run_command(module, assets / "lr-find", quick=args.quick)
    except RuntimeError as error:
        section.note(f"`optzoo lr-find` could not run here: {error}")
        return []
    for picture in pictures:
        section.image(picture, "loss against learning rate (log scale)")
    if text.strip():
        section.code(text.strip()[-2000:])
    if not pictures and not text.strip():
        section.note("`optzoo lr-find` ran but produced no picture.")
    return []


def _run_command(module: Any, folder: Path, quick: bool = False) -> tuple[list[Path], str]:
    """Run a sibling command module (``add_arguments``/``run``) into ``folder``; its pictures and its output."""
    folder.mkdir(parents=True, exist_ok=True)
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    options = parser._option_string_actions  # the options it takes, to pass only those
    argv: list[str] = []
    if "--out" in options:
        default = str(options["--out"].default or "")
        target = folder / Path(default).name if Path(default).suffix else folder
        argv += ["--out", str(target)]
    for flag in ("--no-progress", "--quiet"):
        if flag in options:
            argv.append(flag)
    if quick and "--quick" in options:
        argv.append("--quick")
    buffer, errors = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(errors):
            code = module.run(parser.parse_args(argv))
    except SystemExit as exit_:  # a command that reports its error by exiting
        code = exit_.code if isinstance(exit_.code, int) else 1
    if code:
        message = (errors.getvalue().strip() or buffer.getvalue().strip()).splitlines()
        raise RuntimeError(message[-1] if message else f"exit code {code}")
    pictures = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".gif"))
    return pictures, buffer.getvalue()


# ----------------------------------------------------------------------------- 4-6. training


def _training(report: Any, assets: Path, budget: Budget, args: argparse.Namespace,
              progress: bool) -> list[tuple[str, str, str]]:
    from ..training import benchkit
    from ..training.problems import problem

    mlp = problem("digits-mlp")
    kmeans = problem("kmeans")
    jobs: list[benchkit.Job] = []
    for name in budget.optimizers:
        for seed in range(budget.seeds):
            jobs.append(benchkit.Job("digits-mlp", {
                "optimizer": name, "lr": mlp.default_lr(name, 32), "epochs": budget.epochs, "batch_size": 32,
                "seed": seed}, label=name, extra={"study": "optimizers"}))
    for batch, lr, epochs in budget.batch_plan:
        for seed in range(budget.batch_seeds):
            jobs.append(benchkit.Job("digits-mlp", {
                "optimizer": "sgd", "lr": lr, "epochs": epochs, "batch_size": batch, "seed": seed},
                label=_batch_label(batch, len(mlp.train)), extra={"study": "batch"}))
    for batch, epochs in budget.kmeans_plan:
        for seed in range(budget.kmeans_seeds):
            jobs.append(benchkit.Job("kmeans", {
                "optimizer": "sgd", "epochs": epochs, "batch_size": batch, "seed": seed},
                label=_batch_label(batch, len(kmeans.train)), extra={"study": "kmeans"}))
    # the longest runs first, so that the pool's last minutes are not one straggler
    jobs.sort(key=lambda j: -j.config["epochs"] * (len(mlp.train) / (j.config["batch_size"] or 10**9) + 3))
    rows = benchkit.run_jobs(jobs, assets / "results.jsonl", workers=args.workers, progress=progress,
                             desc="training runs")
    studies: dict[str, list[dict[str, Any]]] = {"optimizers": [], "batch": [], "kmeans": []}
    for row in rows:
        studies[row["study"]].append(row)
    cards = _optimizer_study(report, assets, studies["optimizers"], budget)
    cards += _batch_study(report, assets, studies["batch"], len(mlp.train))
    cards += _kmeans_study(report, assets, studies["kmeans"], len(kmeans.train))
    return cards


def _batch_label(batch: int, n: int) -> str:
    if batch == 1:
        return "stochastic (batch 1)"
    if batch == 0 or batch >= n:
        return f"full batch ({n})"
    return f"mini-batch {batch}"


def _summary_rows(summaries: list[Any]) -> tuple[list[str], list[list[str]]]:
    from ..training.benchkit import summary_table

    headers, body = summary_table(summaries)
    keep = [0, 1, 2, 3, 4, 5, 6, 8, 10, 11]  # drop the val-loss and test columns here: the page is for eyes
    return [headers[i] for i in keep], [[row[i] for i in keep] for row in body]


def _optimizer_study(report: Any, assets: Path, rows: list[dict[str, Any]],
                     budget: Budget) -> list[tuple[str, str, str]]:
    from ..training import benchkit

    summaries = benchkit.summarize(rows)
    section = report.section(
        "Training on real data",
        f"A 2-layer MLP (64 → 128 → 10, ReLU) learns the 8x8 handwritten digits (1,797 images bundled with "
        f"scikit-learn; 60/20/20 train/validation/test split). {len(summaries)} optimizers, {budget.seeds} seeds "
        f"each, {budget.epochs} epochs of mini-batches of 32, each with a learning rate that suits it.",
        anchor="training", short="Digits MLP")
    section.course("Adam: fast training, large generalization gap, unstable. SGDM: stable, little "
                   "generalization gap, better convergence(?).")
    usable = [s for s in summaries if not math.isnan(s.val_metric[0])]
    if not usable:
        section.note("No run finished.")
        return []
    curves = benchkit.plot_curves(rows, assets / "optimizers-curves.png",
                                  title="digits MLP: mean over seeds, band = min–max over seeds")
    box = benchkit.plot_final_box(rows, assets / "optimizers-box.png")
    timing = benchkit.plot_epoch_time(rows, assets / "optimizers-time.png")
    section.image(curves, "Loss (log scale) and accuracy per epoch, on the training data (left) and on the "
                          "validation data it never trains on (right). The distance between the left and right "
                          "curves is the generalization gap.")
    section.paragraph(_optimizer_story(usable))
    headers, body = _summary_rows(summaries)
    section.table(headers, body, caption="Ranked by final validation accuracy (mean ± std over seeds). "
                  "Gap = train − validation accuracy; val − train loss is the same gap measured on the loss. "
                  "Time per epoch: median over epochs and seeds of the optimisation steps only (one thread per run).",
                  highlight_first=True)
    section.images([(box, "final validation accuracy of every seed: the spread between runs"),
                    (timing, "wall time of an epoch's optimisation steps")])
    best = usable[0]
    fast = min(usable, key=lambda s: s.early_train_loss[0] if not math.isnan(s.early_train_loss[0]) else math.inf)
    return [
        ("Digits MLP: best validation accuracy", best.label,
         f"{best.val_metric[0]:.3f} ± {best.val_metric[1]:.3f} over {best.runs} seeds"),
        ("Digits MLP: fastest to train", fast.label,
         f"train loss {fast.early_train_loss[0]:.3f} after {fast.early_epoch} epochs"),
    ]


def _optimizer_story(usable: list[Any]) -> str:
    """What the numbers say, next to the course notes' claim about Adam and SGDM."""
    by = {s.label: s for s in usable}
    early = [s for s in usable if not math.isnan(s.early_train_loss[0])]
    fast = min(early, key=lambda s: s.early_train_loss[0]) if early else usable[0]
    gap = max(usable, key=lambda s: s.loss_gap)
    stable = min(usable, key=lambda s: s.val_metric[1])
    text = (f"Measured: **{fast.label}** trained fastest (train loss {fast.early_train_loss[0]:.3f} after "
            f"{fast.early_epoch} epochs), **{gap.label}** ended with the largest generalization gap "
            f"(validation − train loss {gap.loss_gap:+.3f}), and **{stable.label}** varied least between seeds "
            f"(std of the final validation accuracy {stable.val_metric[1]:.3f}). ")
    adam, sgdm = by.get("adam"), by.get("momentum")
    if adam is not None and sgdm is not None:
        faster = adam.early_train_loss[0] < sgdm.early_train_loss[0]
        wider = adam.loss_gap > sgdm.loss_gap
        steadier = sgdm.val_metric[1] <= adam.val_metric[1]
        text += (
            f"Adam against SGD with momentum: Adam {'did' if faster else 'did not'} train faster "
            f"({adam.early_train_loss[0]:.3f} vs {sgdm.early_train_loss[0]:.3f} after {adam.early_epoch} epochs), "
            f"its gap was {'larger' if wider else 'not larger'} ({adam.loss_gap:+.3f} vs {sgdm.loss_gap:+.3f}), "
            f"and SGDM {'was' if steadier else 'was not'} the steadier of the two over seeds "
            f"(std {sgdm.val_metric[1]:.3f} vs {adam.val_metric[1]:.3f}). "
            f"On this small problem every optimizer ends within "
            f"{usable[0].val_metric[0] - usable[-1].val_metric[0]:.3f} accuracy of the best, so the ranking "
            f"is close and could change with other seeds or learning rates."
        )
    return text


def _batch_study(report: Any, assets: Path, rows: list[dict[str, Any]], n: int) -> list[tuple[str, str, str]]:
    from ..training import benchkit

    if not rows:
        return []
    section = report.section(
        "Batch size: stochastic vs mini-batch vs full batch",
        f"The same MLP trained by plain SGD, updating after every single sample (batch 1: {n} updates per "
        f"epoch), after mini-batches of 32, or once per pass over all {n} samples (full batch). Each has its "
        f"own learning rate and number of epochs; the right-hand pictures put them on one clock.",
        anchor="batch-size", short="Batch size")
    section.course("Mini-batch updates are an unbiased estimate of the full gradient whose variance falls "
                   "with the batch size; SGD converges faster per pass over the data, and mini-batches "
                   "approach batch updates in variance but SGD in efficiency when vector processing is used.")
    by_epoch = benchkit.plot_curves(rows, assets / "batch-epochs.png", keys=("train_loss", "val_metric"),
                                    log_x=True, title="per epoch (log scale)", figsize=(9.5, 3.4))
    by_time = benchkit.plot_curves(rows, assets / "batch-time.png", keys=("train_loss", "val_metric"),
                                   x_axis="time", log_x=True, title="per second of computing", figsize=(9.5, 3.4))
    section.image(by_epoch, "Per epoch (one pass over the data): the smaller the batch, the more updates per "
                            "pass and the faster the loss falls.")
    section.image(by_time, "Per second of computing: one sample at a time wastes the vector hardware, so "
                           "batch 1 pays for its many updates in time.")
    summaries = benchkit.summarize(rows)
    table = []
    for s in summaries:
        first = [r for r in rows if r["label"] == s.label and r["epoch"] == 1]
        after_one = sum(r["train_loss"] for r in first) / max(len(first), 1)
        table.append([s.label, f"{s.lr:g}", f"{s.epochs:.0f}", f"{after_one:.3f}",
                      f"{s.val_metric[0]:.3f} ± {s.val_metric[1]:.3f}", f"{s.train_loss[0]:.3f}",
                      f"{1000 * s.epoch_time[0]:.1f}"])
    section.table(["how", "lr", "epochs", "train loss after 1 epoch", "final val accuracy", "final train loss",
                   "ms per epoch"], table, highlight_first=True,
                  caption="Ranked by final validation accuracy (mean ± std over seeds).")
    usable = [s for s in summaries if not math.isnan(s.val_metric[0])]
    if not usable:
        return []
    slowest = max(usable, key=lambda s: s.epoch_time[0])
    quickest = min(usable, key=lambda s: s.epoch_time[0])
    section.paragraph(
        f"An epoch took {1000 * slowest.epoch_time[0]:.0f} ms with {slowest.label} and "
        f"{1000 * quickest.epoch_time[0]:.1f} ms with {quickest.label}: "
        f"{slowest.epoch_time[0] / max(quickest.epoch_time[0], 1e-9):.0f} times as long for the same pass over "
        f"the data. Best final validation accuracy: **{usable[0].label}** ({usable[0].val_metric[0]:.3f}).")
    return [("Batch size: best final accuracy", usable[0].label, f"{usable[0].val_metric[0]:.3f} val accuracy")]


def _kmeans_study(report: Any, assets: Path, rows: list[dict[str, Any]], n: int) -> list[tuple[str, str, str]]:
    from ..training import benchkit

    if not rows:
        return []
    section = report.section(
        "K-means: batch vs mini-batch vs stochastic updates",
        f"K-means with K = 10 on the digits, written as gradient descent: the centroids are the parameters and "
        f"the loss is the mean squared distance of each point to its nearest centroid (the distortion). Plain "
        f"SGD updates them after every sample, every mini-batch of 32, or once per pass over all {n} points "
        f"(one pass of the batch version is a damped Lloyd step). Each seed starts from different centroids.",
        anchor="kmeans", short="K-means")
    section.course("A simpler problem: K-means. SGD converges faster, but to a poorer minimum; also note the "
                   "rather large variation between runs.")
    curves = benchkit.plot_curves(rows, assets / "kmeans.png", keys=("train_loss", "val_metric"), log_x=True,
                                  log_loss=False, title="K-means on the digits: distortion and cluster purity "
                                  "(mean, band = min–max over seeds)", figsize=(9.5, 3.4))
    section.image(curves, "Distortion on the training points (left) and purity of the clusters on the validation "
                          "points (right: the share of points whose label is their cluster's majority label), per "
                          "epoch on a log scale.")
    summaries = benchkit.summarize(rows)
    summaries.sort(key=lambda s: s.train_loss[0])
    table = []
    story = {}
    for s in summaries:
        runs = [r for r in rows if r["label"] == s.label]
        first = [r["train_loss"] for r in runs if r["epoch"] == 1]
        finals: dict[int, float] = {}
        for r in runs:
            finals[r["seed"]] = r["train_loss"]  # rows are in epoch order within a run
        values = list(finals.values())
        story[s.label] = (sum(first) / len(first), s.train_loss, min(values), max(values))
        table.append([s.label, f"{s.lr:g}", f"{s.epochs:.0f}", f"{sum(first) / len(first):.3f}",
                      f"{s.train_loss[0]:.3f} ± {s.train_loss[1]:.3f}", f"{min(values):.3f} – {max(values):.3f}",
                      f"{s.val_metric[0]:.3f}"])
    section.table(["updates", "lr", "epochs", "distortion after 1 epoch", "final distortion", "min – max over seeds",
                   "val purity"], table, highlight_first=True,
                  caption="Lower distortion is better. Ranked by final training distortion (mean ± std over seeds).")
    stochastic = next((k for k in story if k.startswith("stochastic")), None)
    batch = next((k for k in story if k.startswith("full")), None)
    cards = []
    if stochastic and batch:
        s_first, s_final, s_lo, s_hi = story[stochastic]
        b_first, b_final, b_lo, b_hi = story[batch]
        faster = s_first < b_first
        poorer = s_final[0] > b_final[0]
        wider = (s_hi - s_lo) > (b_hi - b_lo)
        section.paragraph(
            f"Measured: after one pass over the data the stochastic version is at {s_first:.3f} and the batch "
            f"version at {b_first:.3f}, so SGD {'does' if faster else 'does not'} converge faster. At the end "
            f"SGD sits at {s_final[0]:.3f} ± {s_final[1]:.3f} and batch at {b_final[0]:.3f} ± {b_final[1]:.3f}. "
            + ("SGD's minimum is poorer on average: with a constant step it keeps jittering around the minimum "
               "instead of settling. " if poorer else
               "SGD's minimum is not poorer on average here, although with a constant step it keeps jittering "
               "instead of settling. ")
            + f"Run-to-run range: SGD {s_lo:.3f} – {s_hi:.3f}, "
            f"batch {b_lo:.3f} – {b_hi:.3f}, so here the {'stochastic' if wider else 'batch'} version varies "
            f"more between seeds"
            + ("." if wider else ": batch K-means keeps whatever local minimum its starting centroids lead to, "
               "while SGD's noise lets it leave poor ones.")
        )
        cards.append(("K-means: after one epoch", f"SGD {s_first:.2f} vs batch {b_first:.2f}",
                      "distortion (lower is better)"))
    return cards
