"""Pictures of optimizers at work: contour plots with paths, loss curves, GIF animations, LR curves.

Everything draws with matplotlib's Agg backend (no display needed) and writes files; GIFs use
the Pillow writer, so no ffmpeg is needed. matplotlib is imported inside the functions, so
importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..surfaces.functions import Surface
from ..surfaces.trajectory import Trajectory

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "animate_paths",
    "colors_for",
    "contour_plot",
    "loss_plot",
    "lr_find_plot",
    "schedule_plot",
]

#: Distinct on a light background (ColorBrewer Set1 without its yellow, then a few of tab10).
PALETTE = (
    "#E41A1C",  # red
    "#377EB8",  # blue
    "#4DAF4A",  # green
    "#984EA3",  # purple
    "#FF7F00",  # orange
    "#111111",  # black
    "#A65628",  # brown
    "#F781BF",  # pink
    "#17BECF",  # cyan
    "#BCBD22",  # olive
    "#7F7F7F",  # grey
    "#1B9E77",  # teal
)

#: The GIF palette index left free for "unchanged since the last frame".
TRANSPARENT = 255
#: The surface's filled contours: low is dark, and pale enough for coloured paths on top.
CMAP = "bone"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def colors_for(names: Sequence[str]) -> dict[str, str]:
    """A fixed colour per name, in the order given."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _outcome(run: Trajectory) -> str:
    if run.status == "converged":
        return f"converged in {run.steps_to_tol} steps"
    if run.status == "escaped":
        return f"escaped in {run.steps_to_tol} steps"
    if run.status == "diverged":
        return f"diverged at step {run.steps_done + 1}"
    if run.status == "stuck":
        # a stuck run did not diverge, so no distance means a surface without a minimum: a saddle
        return "stuck at the saddle" if run.distance_to_minimum is None else f"stuck at f = {run.final_loss:.3g}"
    if run.steps_to_tol is not None:
        return f"reached tol at {run.steps_to_tol}, left it"
    return f"not there yet (f = {run.final_loss:.3g})"


def _label(run: Trajectory) -> str:
    return f"{run.optimizer} (lr {run.lr:.3g}): {_outcome(run)}"


def _widths(count: int) -> list[float]:
    """Line widths, widest first: paths drawn later lie on top, so paths that coincide show as nested bands."""
    if count <= 1:
        return [2.4] * count
    return [2.0 + 2.6 * (count - 1 - i) / (count - 1) for i in range(count)]


def _view(surface: Surface, runs: Sequence[Trajectory]) -> tuple[tuple[float, float], tuple[float, float]]:
    """The plotting window, grown to show paths that leave it by a little (not diverged ones)."""
    (x0, x1), (y0, y1) = surface.xlim, surface.ylim
    wx, wy = x1 - x0, y1 - y0
    if not surface.bounded:  # runs stop where they leave the window: show a margin around it
        return (x0 - 0.06 * wx, x1 + 0.06 * wx), (y0 - 0.06 * wy, y1 + 0.06 * wy)
    lo_x, hi_x, lo_y, hi_y = x0, x1, y0, y1
    for run in runs:
        if run.status == "diverged" or not len(run.path):
            continue
        px, py = run.path[:, 0], run.path[:, 1]
        if px.min() < x0 - wx or px.max() > x1 + wx or py.min() < y0 - wy or py.max() > y1 + wy:
            continue  # far outside: keep the window, the path is clipped
        lo_x, hi_x = min(lo_x, px.min()), max(hi_x, px.max())
        lo_y, hi_y = min(lo_y, py.min()), max(hi_y, py.max())
    pad_x, pad_y = 0.03 * (hi_x - lo_x), 0.03 * (hi_y - lo_y)
    if (lo_x, hi_x, lo_y, hi_y) != (x0, x1, y0, y1):
        return (lo_x - pad_x, hi_x + pad_x), (lo_y - pad_y, hi_y + pad_y)
    return (x0, x1), (y0, y1)


def _grid(surface: Surface, xlim: tuple[float, float], ylim: tuple[float, float], n: int = 240):
    import torch

    xs = np.linspace(*xlim, n)
    ys = np.linspace(*ylim, n)
    gx, gy = np.meshgrid(xs, ys)
    with torch.no_grad():
        z = surface.f(torch.from_numpy(gx), torch.from_numpy(gy)).numpy()
    return gx, gy, z


def _figure_size(xlim: tuple[float, float], ylim: tuple[float, float], legend_below: bool) -> tuple[float, float]:
    ratio = (xlim[1] - xlim[0]) / (ylim[1] - ylim[0])
    if ratio >= 1.6:  # wide: a wide figure, legend under it
        width = 12.0
        return width, min(8.0, max(3.0, width / ratio) + (1.9 if legend_below else 1.0))
    height = 7.0
    width = min(14.0, height * ratio * 0.92 + (4.2 if not legend_below else 0.8))
    return width, height + (2.0 if legend_below else 0.0)


def _draw_surface(ax: Axes, surface: Surface, xlim: tuple[float, float], ylim: tuple[float, float]) -> Any:
    from matplotlib import colors

    gx, gy, z = _grid(surface, xlim, ylim)
    if surface.log_scale and surface.min_value is not None:
        gap = np.clip(z - surface.min_value, 1e-12, None)
        lo = max(np.log10(gap.min()), np.log10(gap.max()) - 6.0)
        hi = np.log10(gap.max())
        levels = np.logspace(math.floor(lo * 2) / 2, math.ceil(hi * 2) / 2, 25)
        gap = np.clip(gap, levels[0], None)
        filled = ax.contourf(gx, gy, gap, levels=levels, norm=colors.LogNorm(), cmap=CMAP, alpha=0.45,
                             extend="both")
        ax.contour(gx, gy, gap, levels=levels, norm=colors.LogNorm(), colors="0.35", linewidths=0.5, alpha=0.7)
    else:
        levels = np.linspace(z.min(), z.max(), 16)
        filled = ax.contourf(gx, gy, z, levels=levels, cmap=CMAP, alpha=0.45)
        ax.contour(gx, gy, z, levels=levels, colors="0.35", linewidths=0.5, alpha=0.7)
    return filled


def _draw_landmarks(ax: Axes, surface: Surface) -> list[Any]:
    handles = []
    if surface.minima:
        mx, my = zip(*surface.minima, strict=True)
        handles.append(ax.plot(mx, my, linestyle="none", marker="*", markersize=20, markerfacecolor="gold",
                               markeredgecolor="black", markeredgewidth=1.2, zorder=9,
                               label="global minimum" if len(surface.minima) == 1 else "global minima")[0])
    if surface.critical_points:
        cx, cy = zip(*surface.critical_points, strict=True)
        handles.append(ax.plot(cx, cy, linestyle="none", marker="P", markersize=12, markerfacecolor="white",
                               markeredgecolor="black", zorder=6,
                               label="saddle point" if not surface.bounded else "local maximum")[0])
    return handles


def _setup_axes(ax: Axes, surface: Surface, xlim: tuple[float, float], ylim: tuple[float, float], title: str) -> None:
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_xlabel("x", fontsize=12)
    ax.set_ylabel("y", fontsize=12)
    ax.set_title(title, fontsize=14)
    ax.tick_params(labelsize=10)


def _title(surface: Surface, runs: Sequence[Trajectory], title: str | None) -> str:
    if title:
        return title
    steps = max((r.steps for r in runs), default=0)
    start = runs[0].path[0] if runs else surface.start
    return f"{surface.title}\n{steps} steps from ({start[0]:g}, {start[1]:g})"


def _legend(fig: Figure, handles: list[Any], below: bool) -> None:
    if below:
        fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=10, framealpha=0.95)
    else:
        fig.legend(handles=handles, loc="outside right center", fontsize=10, framealpha=0.95)


def contour_plot(
    surface: Surface,
    runs: Sequence[Trajectory],
    out: str | Path,
    *,
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
    dpi: int = 120,
) -> Path:
    """The surface's contours with one coloured path per run (start, end, minimum marked); writes ``out``."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    colors = dict(colors or colors_for([r.optimizer for r in runs]))
    xlim, ylim = _view(surface, runs)
    below = (xlim[1] - xlim[0]) / (ylim[1] - ylim[0]) >= 1.6
    fig, ax = plt.subplots(figsize=_figure_size(xlim, ylim, below), dpi=dpi,
                           layout="constrained" if below else "compressed")
    _draw_surface(ax, surface, xlim, ylim)
    handles = []
    widths = _widths(len(runs))
    for run, width in zip(runs, widths, strict=True):
        color = colors.get(run.optimizer, "black")
        path = run.path
        (line,) = ax.plot(path[:, 0], path[:, 1], color=color, linewidth=width, marker="o", markersize=2.2,
                          zorder=4, label=_label(run), solid_capstyle="round")
        end_marker = "X" if run.status == "diverged" else "o"
        ax.plot(path[-1, 0], path[-1, 1], marker=end_marker, markersize=8, markerfacecolor=color,
                markeredgecolor="black", markeredgewidth=1.2, zorder=7, linestyle="none")
        handles.append(line)
    starts = {tuple(r.path[0]) for r in runs} or {tuple(surface.start)}
    sx, sy = zip(*starts, strict=True)
    ax.plot(sx, sy, linestyle="none", marker="o", markersize=11, markerfacecolor="white", markeredgecolor="black",
            markeredgewidth=2, zorder=8)
    handles.append(Line2D([], [], linestyle="none", marker="o", markersize=10, markerfacecolor="white",
                          markeredgecolor="black", markeredgewidth=2, label="start"))
    diverged = any(r.status == "diverged" for r in runs)
    handles.append(Line2D([], [], linestyle="none", marker="o", markersize=8, markerfacecolor="0.6",
                          markeredgecolor="black", label="end (X: diverged)" if diverged else "end"))
    handles.extend(_draw_landmarks(ax, surface))
    _setup_axes(ax, surface, xlim, ylim, _title(surface, runs, title))
    _legend(fig, handles, below)
    out = Path(out)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def loss_plot(
    surface: Surface,
    runs: Sequence[Trajectory],
    out: str | Path,
    *,
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
    dpi: int = 120,
) -> Path:
    """Loss against step, one curve per run: ``f - f_min`` on a log axis (plain ``f`` on a saddle)."""
    plt = _pyplot()
    colors = dict(colors or colors_for([r.optimizer for r in runs]))
    fig, ax = plt.subplots(figsize=(9.5, 5.5), dpi=dpi)
    bounded = surface.min_value is not None
    floor = 1e-16
    for run in runs:
        steps = np.arange(len(run.losses))
        values = run.losses - surface.min_value if bounded else run.losses
        if bounded:
            values = np.clip(values, floor, None)
        color = colors.get(run.optimizer, "black")
        ax.plot(steps, values, color=color, linewidth=2.0, label=_label(run))
        if run.status == "diverged":
            ax.plot(steps[-1], values[-1], marker="X", markersize=10, color=color, markeredgecolor="black")
        elif run.steps_to_tol is not None:
            ax.plot(run.steps_to_tol, values[run.steps_to_tol], marker="o", markersize=7, color=color,
                    markeredgecolor="black", zorder=5)
    target = runs[0].target_loss if runs else surface.target_loss
    if bounded:
        ax.set_yscale("log")
        ax.axhline(target - surface.min_value, color="0.3", linestyle="--", linewidth=1.2,
                   label=f"tolerance {target - surface.min_value:g}")
        ax.set_ylabel(r"$f(x, y) - f_{\min}$  (log scale)", fontsize=12)
        top = max((np.nanmax(np.clip(r.losses - surface.min_value, floor, None)[np.isfinite(r.losses)])
                   for r in runs if np.isfinite(r.losses).any()), default=1.0)
        low = min((np.nanmin(np.clip(r.losses - surface.min_value, floor, None)) for r in runs), default=floor)
        ax.set_ylim(max(low / 3, floor), min(top * 3, 1e12))
    else:
        ax.axhline(target, color="0.3", linestyle="--", linewidth=1.2, label=f"escaped: f ≤ {target:g}")
        ax.set_ylabel("f(x, y)", fontsize=12)
    ax.set_xlabel("step", fontsize=12)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(title or f"{surface.title} — loss per step", fontsize=14)
    ax.legend(fontsize=10, loc="best", framealpha=0.95)
    ax.set_xlim(0, max(1, max((r.steps_done for r in runs), default=1)))
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def animate_paths(
    surface: Surface,
    runs: Sequence[Trajectory],
    out: str | Path,
    *,
    frames: int = 80,
    fps: int = 16,
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
    dpi: int = 72,
    progress: Callable[[int, int], Any] | None = None,
) -> Path:
    """An animated GIF of the runs moving together, at most ``frames`` frames, written with Pillow (no ffmpeg).

    The still parts (contours, legend) are drawn once; each frame only redraws the paths on top
    (matplotlib's blitting), and all frames share one palette, so Pillow stores only what changed.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from PIL import Image

    colors = dict(colors or colors_for([r.optimizer for r in runs]))
    xlim, ylim = _view(surface, runs)
    below = (xlim[1] - xlim[0]) / (ylim[1] - ylim[0]) >= 1.6
    width, height = _figure_size(xlim, ylim, below)
    fig, ax = plt.subplots(figsize=(width * 0.8, height * 0.8), dpi=dpi,
                           layout="constrained" if below else "compressed")
    _draw_surface(ax, surface, xlim, ylim)
    landmarks = _draw_landmarks(ax, surface)
    start = runs[0].path[0] if runs else surface.start
    (start_marker,) = ax.plot([start[0]], [start[1]], marker="o", markersize=9, markerfacecolor="white",
                              markeredgecolor="black", markeredgewidth=2, zorder=8)
    steps = max((r.steps for r in runs), default=0)
    frames = max(2, min(frames, steps + 1))
    at = np.unique(np.linspace(0, steps, frames).round().astype(int))
    lines, heads = [], []
    for run, line_width in zip(runs, _widths(len(runs)), strict=True):
        color = colors.get(run.optimizer, "black")
        (line,) = ax.plot([], [], color=color, linewidth=line_width, zorder=4, solid_capstyle="round")
        (head,) = ax.plot([], [], marker="o", markersize=9, markerfacecolor=color, markeredgecolor="black",
                          zorder=7, linestyle="none")
        lines.append(line)
        heads.append(head)
    handles = [
        Line2D([], [], color=colors.get(r.optimizer, "black"), linewidth=3, label=f"{r.optimizer} (lr {r.lr:.3g})")
        for r in runs
    ] + landmarks
    _setup_axes(ax, surface, xlim, ylim, title or surface.title)
    _legend(fig, handles, below)
    counter = ax.text(0.02, 0.97, "", transform=ax.transAxes, fontsize=12, va="top", ha="left", zorder=10,
                      bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85})
    moving = [*lines, *heads, counter]

    # Lay out and draw the still picture once, then blit the moving artists over it per frame.
    fig.canvas.draw()
    fig.set_layout_engine("none")
    for artist in moving:
        artist.set_visible(False)
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)
    for artist in moving:
        artist.set_visible(True)

    images = []
    for index, step in enumerate(at):
        for run, line, head in zip(runs, lines, heads, strict=True):
            upto = run.path[: int(step) + 1]
            line.set_data(upto[:, 0], upto[:, 1])
            head.set_data(upto[-1:, 0], upto[-1:, 1])
        counter.set_text(f"step {int(step)}")
        fig.canvas.restore_region(background)
        for artist in [*lines, *heads, *landmarks, start_marker, counter]:
            ax.draw_artist(artist)
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()))
        if progress is not None:
            progress(index + 1, len(at))
    plt.close(fig)

    palette = _shared_palette(images[-1], [*colors.values(), "gold", "white", "black"])
    indexed = [np.asarray(image.quantize(palette=palette, dither=Image.Dither.NONE)) for image in images]
    # Each frame after the first keeps only the pixels that changed; the rest is transparent
    # (index 255) over the previous frame, which compresses to almost nothing.
    frames_p = []
    for index, pixels in enumerate(indexed):
        if index:
            pixels = np.where(pixels == indexed[index - 1], TRANSPARENT, pixels).astype(np.uint8)
        frame = Image.fromarray(pixels, mode="P")
        frame.putpalette(palette.getpalette())
        frame.info["transparency"] = TRANSPARENT
        frames_p.append(frame)
    durations = [round(1000 / fps)] * len(frames_p)
    durations[-1] = 2000  # hold the end
    out = Path(out)
    frames_p[0].info.pop("transparency")
    frames_p[0].save(out, save_all=True, append_images=frames_p[1:], duration=durations, loop=0, disposal=1,
                     transparency=TRANSPARENT, optimize=False)
    return out


def _shared_palette(image: Any, exact: Sequence[str]) -> Any:
    """A 255-colour palette: the ``exact`` colours (paths, markers) and the best of the rest of ``image``."""
    from matplotlib.colors import to_rgb
    from PIL import Image

    keys = []
    for color in exact:
        rgb = [round(255 * c) for c in to_rgb(color)]
        if rgb not in keys:
            keys.append(rgb)
    keys = keys[:64]
    free = TRANSPARENT - len(keys)  # the last index stays free for transparency
    rest = image.quantize(colors=free, method=Image.Quantize.MEDIANCUT).getpalette()
    values = [v for rgb in keys for v in rgb] + list(rest[: 3 * free])
    values += [0] * (768 - len(values))
    palette = Image.new("P", (1, 1))
    palette.putpalette(values)
    return palette


def schedule_plot(
    curves: Mapping[str, Sequence[float]],
    out: str | Path,
    *,
    title: str = "Learning rate schedules",
    log_y: bool = False,
    notes: Mapping[str, str] | None = None,
    dpi: int = 120,
) -> Path:
    """The learning rate against the step, one curve per schedule (``curves[name][t]``)."""
    plt = _pyplot()
    colors = colors_for(list(curves))
    names = list(curves)
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(10, 3.2 + 1.9 * len(names)), dpi=dpi,
                             gridspec_kw={"height_ratios": [2.2] + [1.0] * len(names)}, sharex=True)
    top = axes[0]
    for name in names:
        lrs = np.asarray(curves[name], dtype=float)
        label = f"{name}: {notes[name]}" if notes and name in notes else name
        top.plot(np.arange(len(lrs)), lrs, color=colors[name], linewidth=2, label=label)
    top.set_title(title, fontsize=14)
    top.set_ylabel("learning rate", fontsize=12)
    if log_y:
        top.set_yscale("log")
    top.grid(True, alpha=0.3)
    top.legend(fontsize=9, loc="upper right", framealpha=0.95)
    for ax, name in zip(axes[1:], names, strict=True):
        lrs = np.asarray(curves[name], dtype=float)
        ax.plot(np.arange(len(lrs)), lrs, color=colors[name], linewidth=1.8)
        ax.fill_between(np.arange(len(lrs)), 0, lrs, color=colors[name], alpha=0.12)
        ax.set_ylabel("lr", fontsize=10)
        ax.text(0.99, 0.9, name, transform=ax.transAxes, ha="right", va="top", fontsize=11, fontweight="bold",
                color=colors[name])
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[-1].set_xlabel("step", fontsize=12)
    axes[-1].set_xlim(0, max(len(c) for c in curves.values()) - 1)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def lr_find_plot(
    lrs: Sequence[float],
    losses: Sequence[float],
    out: str | Path,
    *,
    suggested_lr: float | None = None,
    cyclical_range: tuple[float, float] | None = None,
    title: str = "LR range test",
    raw_losses: Sequence[float] | None = None,
    dpi: int = 120,
) -> Path:
    """Loss against learning rate (log x), with the suggested LR and the cyclical range marked."""
    plt = _pyplot()
    lrs_a = np.asarray(lrs, dtype=float)
    losses_a = np.asarray(losses, dtype=float)
    fig, ax = plt.subplots(figsize=(9.5, 5.5), dpi=dpi)
    if raw_losses is not None:
        ax.plot(lrs_a, np.asarray(raw_losses, dtype=float), color="0.7", linewidth=1, label="loss per batch")
    ax.plot(lrs_a, losses_a, color=PALETTE[1], linewidth=2.2, label="smoothed loss" if raw_losses is not None
            else "loss")
    ax.set_xscale("log")
    finite = losses_a[np.isfinite(losses_a)]
    suggested_y = None
    if suggested_lr is not None and math.isfinite(suggested_lr) and finite.size:
        suggested_y = float(np.interp(np.log(suggested_lr), np.log(lrs_a[np.isfinite(losses_a)]), finite))
    if finite.size:
        low, start = float(finite.min()), float(finite[0])
        span = max(start - low, 1e-12)
        top = start + 0.6 * span
        if suggested_y is not None:
            top = max(top, suggested_y + 0.1 * span)
        ax.set_ylim(low - 0.1 * span, top)
    if cyclical_range is not None:
        ax.axvspan(cyclical_range[0], cyclical_range[1], color=PALETTE[2], alpha=0.15,
                   label=f"cyclical range {cyclical_range[0]:.2g} – {cyclical_range[1]:.2g}")
    if suggested_y is not None:
        ax.axvline(suggested_lr, color=PALETTE[0], linestyle="--", linewidth=1.5)
        ax.plot([suggested_lr], [suggested_y], marker="o", markersize=11, markerfacecolor=PALETTE[0],
                markeredgecolor="black", zorder=5, linestyle="none", label=f"suggested lr {suggested_lr:.3g}")
    ax.set_xlabel("learning rate (log scale)", fontsize=12)
    ax.set_ylabel("training loss", fontsize=12)
    ax.set_title(title, fontsize=14)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=10, loc="upper left", framealpha=0.95)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
