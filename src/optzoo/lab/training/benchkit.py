"""Benchmark machinery shared by ``optzoo bench`` and ``optzoo demo``.

* :class:`Job`: one run to do (problem, run config, a label to group it by);
* :func:`run_jobs`: runs jobs in parallel processes (one torch thread each),
  with a progress bar, appending each finished run's rows to a JSON-lines
  file at once, so that an interrupted benchmark leaves its finished runs
  readable;
* :func:`read_results`: reads such a file back (a cut last line is skipped);
* :func:`summarize` and :func:`summary_markdown`: per-label statistics over
  seeds, ranked by the final validation metric;
* :func:`plot_curves`, :func:`plot_final_box`, :func:`plot_epoch_time`: the
  pictures (matplotlib, imported on first use).

Everything downstream works on *rows*: one flat dict per run per epoch, the
lines of ``results.jsonl``.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Job",
    "LabelSummary",
    "cpu_count",
    "findings",
    "plot_curves",
    "plot_epoch_time",
    "plot_final_box",
    "read_results",
    "run_jobs",
    "summarize",
    "summary_markdown",
]


@dataclass
class Job:
    """One run: ``config`` holds :class:`~optzoo.lab.training.loop.RunConfig` fields."""

    problem: str
    config: dict[str, Any]
    label: str
    split_seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_job(job: Job) -> list[dict[str, Any]]:
    """Run one job in this process and return its rows (one per epoch)."""
    from .loop import RunConfig, train
    from .problems import problem

    result = train(problem(job.problem, job.split_seed), RunConfig(**job.config))
    return result.rows(label=job.label, **job.extra)


def _write_rows(handle: Any, rows: Sequence[dict[str, Any]]) -> None:
    handle.write("".join(json.dumps(row, allow_nan=False) + "\n" for row in rows))
    handle.flush()


def run_jobs(
    jobs: Sequence[Job],
    results_path: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "runs",
    on_done: Callable[[list[dict[str, Any]]], None] | None = None,
    append: bool = False,
) -> list[dict[str, Any]]:
    """Run ``jobs``, up to ``workers`` at a time (default: the core count), and return all rows.

    Each finished run's rows are appended to ``results_path`` at once (the
    file is started afresh unless ``append``). On Ctrl-C the pending runs are
    cancelled, the file keeps the finished ones, and ``KeyboardInterrupt``
    propagates.
    """
    from tqdm.auto import tqdm

    workers = max(1, min(workers or cpu_count(), len(jobs) or 1))
    handle = None
    if results_path is not None:
        handle = open(results_path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115
    all_rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(jobs), desc=desc, unit="run", disable=not progress, file=sys.stderr, leave=False)

    def finished(rows: list[dict[str, Any]]) -> None:
        all_rows.extend(rows)
        if handle is not None:
            _write_rows(handle, rows)
        if on_done is not None:
            on_done(rows)
        last = rows[-1]
        bar.set_postfix_str(f"{last['label']} seed {last['seed']}: {last['status']}", refresh=False)
        bar.update(1)

    try:
        if workers == 1:
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for job in jobs:
                    finished(run_job(job))
            finally:
                torch.set_num_threads(threads)
        else:
            _run_pool(jobs, workers, finished)
    finally:
        bar.close()
        if handle is not None:
            handle.close()
    return all_rows


def _run_pool(jobs: Sequence[Job], workers: int, finished: Callable[[list[dict[str, Any]]], None]) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # forkserver: workers fork from a clean server that has imported the lab once
    # (never from a parent whose OpenMP pool may already be running).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch._dynamo", "optzoo.lab.training.loop", "optzoo.lab.training.problems"])
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker)
    try:
        pending = {executor.submit(run_job, job) for job in jobs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                finished(future.result())
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a results file; a last line cut by an interruption is skipped."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if line.endswith("\n"):
                    raise
    return rows


# ----------------------------------------------------------------------------- statistics


def _runs(rows: Iterable[dict[str, Any]]) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """label -> seed -> that run's rows, ordered by epoch (label order as first seen)."""
    runs: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(dict)
    for row in rows:
        runs[row["label"]].setdefault(row["seed"], []).append(row)
    for by_seed in runs.values():
        for run in by_seed.values():
            run.sort(key=lambda r: -1 if r.get("epoch") is None else r["epoch"])
    return runs


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


#: The epoch at which "how fast does it train" is read off (train loss after this many epochs).
EARLY_EPOCH = 3


def _median_iqr(values: Sequence[float]) -> tuple[float, float]:
    """Median and interquartile range: wall times on a shared machine have outliers 20-60x the typical value."""
    values = sorted(v for v in values if v is not None and math.isfinite(v))
    if not values:
        return math.nan, math.nan
    if len(values) < 4:
        return statistics.median(values), (values[-1] - values[0])
    q1, _, q3 = statistics.quantiles(values, n=4)
    return statistics.median(values), q3 - q1


@dataclass
class LabelSummary:
    """Statistics over the seeds of one label (an optimizer, or an optimizer with a batch size)."""

    label: str
    optimizer: str
    lr: float
    batch_size: int
    metric_name: str
    higher_is_better: bool
    runs: int
    diverged: int
    errors: int
    error_message: str
    val_metric: tuple[float, float]
    val_metric_range: tuple[float, float]
    train_metric: tuple[float, float]
    val_loss: tuple[float, float]
    train_loss: tuple[float, float]
    best_val_metric: tuple[float, float]
    test_metric: tuple[float, float]
    epoch_time: tuple[float, float]  # median and interquartile range of the epochs' step time (robust to noise)
    epochs: float
    early_epoch: int = 0
    early_train_loss: tuple[float, float] = (math.nan, math.nan)

    @property
    def gap(self) -> float:
        """Train minus validation metric (how much better the model does on data it saw)."""
        return self.train_metric[0] - self.val_metric[0]

    @property
    def loss_gap(self) -> float:
        """Validation minus train loss."""
        return self.val_loss[0] - self.train_loss[0]


def summarize(rows: Iterable[dict[str, Any]]) -> list[LabelSummary]:
    """One :class:`LabelSummary` per label, best final validation metric first.

    Diverged and failed runs count in ``diverged``/``errors`` but not in the
    statistics; labels with no usable run come last.
    """
    summaries = []
    for label, by_seed in _runs(rows).items():
        first = next(iter(by_seed.values()))[0]
        good = [run for run in by_seed.values() if run[-1]["status"] not in ("diverged", "error")]
        finals = [run[-1] for run in good]
        trained = [r for run in good for r in run if r.get("epoch")]
        errors = [run[-1] for run in by_seed.values() if run[-1]["status"] == "error"]
        val = [f["val_metric"] for f in finals]
        summaries.append(LabelSummary(
            label=label, optimizer=first["optimizer"], lr=first["lr"], batch_size=first["batch_size"],
            metric_name=first["metric_name"], higher_is_better=first.get("higher_is_better", True),
            runs=len(by_seed), diverged=sum(run[-1]["status"] == "diverged" for run in by_seed.values()),
            errors=len(errors), error_message=errors[0]["message"] if errors else "",
            val_metric=_mean_std(val),
            val_metric_range=(min(val), max(val)) if val else (math.nan, math.nan),
            train_metric=_mean_std([f["train_metric"] for f in finals]),
            val_loss=_mean_std([f["val_loss"] for f in finals]),
            train_loss=_mean_std([f["train_loss"] for f in finals]),
            best_val_metric=_mean_std([
                (max if first.get("higher_is_better", True) else min)(r["val_metric"] for r in run) for run in good
            ]),
            test_metric=_mean_std([f["test_metric"] for f in finals]),
            epoch_time=_median_iqr([r["time"] for r in trained]),
            epochs=statistics.fmean([f["epoch"] or 0 for f in finals]) if finals else 0.0,
            early_epoch=EARLY_EPOCH,
            early_train_loss=_mean_std([r["train_loss"] for run in good for r in run if r.get("epoch") == EARLY_EPOCH]),
        ))

    def key(s: LabelSummary) -> tuple[int, float]:
        value = s.val_metric[0]
        if math.isnan(value):
            return (1, 0.0)
        return (0, -value if s.higher_is_better else value)

    return sorted(summaries, key=key)


def _pm(pair: tuple[float, float], digits: int = 3) -> str:
    mean, std = pair
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_table(summaries: Sequence[LabelSummary]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the ranking table (strings), shared by Markdown and HTML."""
    metric = summaries[0].metric_name if summaries else "metric"
    headers = ["rank", "optimizer", "lr", f"final val {metric} (mean ± std)", "min – max",
               f"train {metric}", "gap (train − val)", "val loss", "val − train loss",
               f"test {metric}", "time / epoch (ms, median)", "diverged", "runs"]
    body = []
    for rank, s in enumerate(summaries, 1):
        usable = not math.isnan(s.val_metric[0])
        note = f" ({s.errors} failed: {s.error_message[:60]})" if s.errors else ""
        body.append([
            str(rank) if usable else "–", s.label + note, f"{s.lr:g}", _pm(s.val_metric),
            f"{s.val_metric_range[0]:.3f} – {s.val_metric_range[1]:.3f}" if usable else "–",
            _pm(s.train_metric), f"{s.gap:+.3f}" if usable else "–", _pm(s.val_loss),
            f"{s.loss_gap:+.3f}" if usable else "–", _pm(s.test_metric),
            f"{1000 * s.epoch_time[0]:.1f}" if usable else "–",
            str(s.diverged), str(s.runs),
        ])
    return headers, body


def summary_markdown(summaries: Sequence[LabelSummary]) -> str:
    """The ranking as a Markdown table."""
    headers, body = summary_table(summaries)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def findings(summaries: Sequence[LabelSummary]) -> list[str]:
    """A few plain sentences read off the summaries: the winner, the spread, speed, gaps, failures."""
    usable = [s for s in summaries if not math.isnan(s.val_metric[0])]
    lines: list[str] = []
    if not usable:
        return ["No run finished without diverging or failing."]
    metric = usable[0].metric_name
    best = usable[0]
    lines.append(
        f"Best final validation {metric}: **{best.label}** with {_pm(best.val_metric)} over {best.runs} seeds"
        + (f", ahead of {usable[1].label} ({_pm(usable[1].val_metric)})." if len(usable) > 1 else ".")
    )
    if len(usable) > 2:
        worst = usable[-1]
        lines.append(f"Last among the runs that finished: {worst.label} ({_pm(worst.val_metric)}).")
    early = [s for s in usable if not math.isnan(s.early_train_loss[0])]
    if early:
        fast = min(early, key=lambda s: s.early_train_loss[0])
        slow = max(early, key=lambda s: s.early_train_loss[0])
        lines.append(
            f"Fastest to train: {fast.label} (train loss {fast.early_train_loss[0]:.3f} after "
            f"{fast.early_epoch} epochs; slowest {slow.label}, {slow.early_train_loss[0]:.3f})."
        )
    gap = max(usable, key=lambda s: s.loss_gap)
    small = min(usable, key=lambda s: s.loss_gap)
    lines.append(
        f"Largest generalization gap (validation − train loss): {gap.label} ({gap.loss_gap:+.3f}, {metric} "
        f"gap {gap.gap:+.3f}); smallest: {small.label} ({small.loss_gap:+.3f}, {metric} gap {small.gap:+.3f})."
    )
    spread = max(usable, key=lambda s: s.val_metric[1])
    lines.append(f"Largest run-to-run spread: {spread.label} (std {spread.val_metric[1]:.3f}, range "
                 f"{spread.val_metric_range[0]:.3f} – {spread.val_metric_range[1]:.3f}).")
    quick = min(usable, key=lambda s: s.epoch_time[0])
    slowest = max(usable, key=lambda s: s.epoch_time[0])
    lines.append(f"Time per epoch (median): {quick.label} {1000 * quick.epoch_time[0]:.1f} ms to "
                 f"{slowest.label} {1000 * slowest.epoch_time[0]:.1f} ms.")
    diverged = [f"{s.label} ({s.diverged}/{s.runs})" for s in summaries if s.diverged]
    if diverged:
        lines.append("Diverged: " + ", ".join(diverged) + ".")
    failed = [f"{s.label} ({s.error_message[:80]})" for s in summaries if s.errors]
    if failed:
        lines.append("Could not run: " + "; ".join(failed) + ".")
    return lines


# ----------------------------------------------------------------------------- pictures


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(labels: Sequence[str]) -> dict[str, Any]:
    plt = _pyplot()
    # tab10, then black and Dark2: distinct hues for up to 19 labels (tab20's pale twins are hard to tell apart)
    palette = [*plt.get_cmap("tab10").colors, (0.0, 0.0, 0.0), *plt.get_cmap("Dark2").colors]
    return {label: palette[i % len(palette)] for i, label in enumerate(labels)}


def _curve(runs: dict[int, list[dict[str, Any]]], key: str, x_axis: str) -> tuple[list[float], Any, Any, Any, Any]:
    """x, mean, std, min and max of ``key`` over the seeds (up to the shortest finite run)."""
    import numpy as np

    series = []
    xs = []
    for run in runs.values():
        if run[-1]["status"] in ("diverged", "error") or run[0].get("epoch") is None:
            continue
        series.append([r[key] for r in run])
        if x_axis == "time":
            xs.append(np.cumsum([r["time"] for r in run]))
        elif x_axis == "steps":
            xs.append([r["steps"] for r in run])
        else:
            xs.append([r["epoch"] for r in run])
    if not series:
        return [], None, None, None, None
    length = min(len(s) for s in series)
    values = np.array([[np.nan if v is None else v for v in s[:length]] for s in series], dtype=float)
    x = np.mean([np.asarray(x[:length], dtype=float) for x in xs], axis=0)
    return list(x), values.mean(0), values.std(0), values.min(0), values.max(0)


def plot_curves(
    rows: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    title: str = "",
    x_axis: str = "epoch",
    band: str = "minmax",
    keys: Sequence[str] = ("train_loss", "val_loss", "train_metric", "val_metric"),
    log_loss: bool = True,
    log_x: bool = False,
    figsize: tuple[float, float] | None = None,
) -> Path:
    """Mean over seeds (line) and the min–max (or ±std) band of each curve, one colour per label.

    ``x_axis``: ``"epoch"``, ``"steps"`` (optimizer updates) or ``"time"``
    (seconds of optimisation); ``log_x`` puts it on a log scale (for runs of
    very different lengths).
    """
    plt = _pyplot()
    runs = _runs(rows)
    first = next((r[0] for by_seed in runs.values() for r in by_seed.values()), {})
    metric = first.get("metric_name", "metric")
    colors = _colors(list(runs))
    names = {"train_loss": "train loss", "val_loss": "validation loss",
             "train_metric": f"train {metric}", "val_metric": f"validation {metric}"}
    cols = 2 if len(keys) > 1 else 1
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=figsize or (5.6 * cols, 3.6 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        for label, by_seed in runs.items():
            x, mean, std, low, high = _curve(by_seed, key, x_axis)
            if not x:
                continue
            ax.plot(x, mean, color=colors[label], label=label, lw=1.6)
            lo, hi = (mean - std, mean + std) if band == "std" else (low, high)
            ax.fill_between(x, lo, hi, color=colors[label], alpha=0.18, lw=0)
        ax.set_title(names.get(key, key), fontsize=10)
        ax.set_xlabel({"time": "seconds of optimisation", "steps": "optimizer steps"}.get(x_axis, "epoch"))
        if x_axis == "steps" or (log_x and x_axis == "epoch"):
            ax.set_xscale("symlog", linthresh=1)
        elif log_x:
            ax.set_xscale("symlog", linthresh=0.01)
        if key.endswith("loss") and log_loss:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * ((len(labels) - 1) // 6 if handles else 0), 1, 1))
    return _save_fig(fig, path)


def plot_final_box(rows: Iterable[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> Path:
    """Box plot of the final validation metric per label, each seed a dot."""
    plt = _pyplot()
    summaries = summarize(rows)
    runs = _runs(rows)
    labels = [s.label for s in summaries if not math.isnan(s.val_metric[0])]
    data = [[run[-1]["val_metric"] for run in runs[label].values()
             if run[-1]["status"] not in ("diverged", "error")] for label in labels]
    colors = _colors(list(runs))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(labels) + 1.5), 3.6))
    if data:
        box = ax.boxplot(data, patch_artist=True, widths=0.55, medianprops={"color": "black"})
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30 if len(labels) > 5 else 0, ha="right"
                      if len(labels) > 5 else "center")
        for patch, label in zip(box["boxes"], labels, strict=True):
            patch.set_facecolor(colors[label])
            patch.set_alpha(0.45)
        for i, values in enumerate(data, 1):
            jitter = [i + 0.08 * ((k % 5) - 2) for k in range(len(values))]
            ax.scatter(jitter, values, s=12, color="black", zorder=3)
    metric = summaries[0].metric_name if summaries else "metric"
    ax.set_ylabel(f"final validation {metric}")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or f"final validation {metric} over seeds (best first)", fontsize=10)
    fig.tight_layout()
    return _save_fig(fig, path)


def plot_epoch_time(rows: Iterable[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> Path:
    """Bar chart of the median wall time of an epoch's optimisation steps; the whisker spans the middle half."""
    plt = _pyplot()
    summaries = [s for s in summarize(rows) if not math.isnan(s.epoch_time[0])]
    summaries.sort(key=lambda s: s.epoch_time[0])
    colors = _colors(list(_runs(rows)))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(summaries) + 1.5), 3.4))
    labels = [s.label for s in summaries]
    means = [1000 * s.epoch_time[0] for s in summaries]
    stds = [500 * s.epoch_time[1] for s in summaries]
    ax.bar(range(len(labels)), means, yerr=stds, color=[colors[label] for label in labels], alpha=0.8, capsize=3)
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 5 else 0,
                  ha="right" if len(labels) > 5 else "center")
    ax.set_ylabel("ms per epoch (steps only, median)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or "wall time per epoch", fontsize=10)
    fig.tight_layout()
    return _save_fig(fig, path)


def _save_fig(fig: Any, path: str | os.PathLike[str]) -> Path:
    plt = _pyplot()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
