"""Figures of a training run: the exact hitting time against iteration, and a, b, c, d per depth
(visit-weighted where the policy differs between branches or lanes, the confused middle marked)."""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ..graph import PathStar, in_words
from ..history import reference_values
from ..result import TrainingRun
from ..training.parametrisation import DepthParameters
from .style import METHOD_WORDS, new_figure, plain_log_ticks, target_words


def _references(run: TrainingRun) -> dict[str, float]:
    """The history-aware reference values (docs/model.md section 8) on the symmetric path-star
    (``history.reference_values``), {} elsewhere; ``edge_conditioned`` is the RLVR optimum,
    drawn apart."""
    graph = run.policy.graph
    if not (isinstance(graph, PathStar) and graph.is_symmetric):
        return {}
    return {k: v for k, v in reference_values(graph).items() if k != "edge_conditioned"}


_REFERENCE_WORDS = {"history_aware": "history-aware bound (2K+1)W",
                    "history_aware_uniform_fork": "history-aware, fork uniform: (2K+1)W + W - 1"}


def _method_words(run: TrainingRun) -> str:
    chain = run.settings.get("chain", [run.method])[:-1]
    words = METHOD_WORDS.get(run.method, run.method)
    short = {"sft": "SFT", "rlvr": "RLVR", "rlvr-mc": "RLVR (Monte Carlo)", "ppo": "PPO", "rft": "RFT",
             "distill": "distillation", "pretrain": "pretraining"}
    return words + (f", started from {' then '.join(short.get(m, m) for m in chain)}" if chain else "")


def _symmetric(run: TrainingRun) -> bool:
    """Whether the run's final policy has one value per kind and depth in every branch and lane."""
    graph = run.policy.graph
    asked = []
    DepthParameters.build(graph).visit_weighted(run.policy.probabilities,
                                                lambda: asked.append(True) or np.ones(graph.n_states))
    return not asked


def _parameter_rows(run: TrainingRun, name: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(per depth the value to draw, the (low, high) band across branches or None, what it is)."""
    values = np.asarray(getattr(run, name), float)
    if f"{name}_visit_weighted" in run.metrics:
        return (run.metrics[f"{name}_visit_weighted"],
                np.stack([run.metrics[f"{name}_branch_low"], run.metrics[f"{name}_branch_high"]]),
                "visit-weighted mean over branches and lanes; band: per-branch range")
    if _symmetric(run):
        plain = values if values.ndim == 2 else np.nanmax(values, axis=1)
        return plain, None, "every branch and lane has the same value"
    if values.ndim == 3:
        with np.errstate(all="ignore"):
            return (np.nanmean(values, axis=1), np.stack([np.nanmin(values, axis=1), np.nanmax(values, axis=1)]),
                    "plain mean over the branches; band: their range; this file records no visit weights")
    return values, None, "plain mean over branches and lanes; this file records no visit weights"


def _first_moves_down(values: np.ndarray, tolerance: float) -> list[int]:
    """The depths (1-based) whose first change by more than ``tolerance`` is downward."""
    down = []
    for depth in range(values.shape[1]):
        change = values[:, depth] - values[0, depth]
        moved = np.flatnonzero(np.abs(change) > tolerance)
        if moved.size and change[moved[0]] < 0:
            down.append(depth + 1)
    return down


def _depth_range(depths: list[int]) -> str:
    return ", ".join(map(str, depths)) if len(depths) <= 4 else f"{depths[0]}..{depths[-1]} ({len(depths)} depths)"


def training_figures(run: TrainingRun, optimum: float | None = None) -> list[Figure]:
    """[hitting time against iteration on a log axis, with the optimum and on the symmetric
    path-star the history-aware references; a, b, c, d per depth against iteration (not for a
    transformer, which has no table of them)]. A parameter that first moves down at some depths
    (b or d: the confused middle) is marked there; Monte Carlo methods need a move of 0.01 to
    count, exact ones any. Rows a run records as Monte Carlo estimates (``metrics["exact"]``
    false, as a transformer's can be) are drawn hollow."""
    targets = target_words(", ".join(run.settings["targets"]) if "targets" in run.settings else None)
    where = f"on {in_words(run.graph)}, target {targets}"
    transformer = run.parametrisation == "transformer"
    figure = new_figure(7.6, 4.6)
    axes = figure.add_subplot()
    exact_rows = np.asarray(run.metrics.get("exact", np.ones(len(run.iteration), bool)), bool)
    axes.plot(run.iteration, run.hitting_time, color="C0", linewidth=1.6,
              label="exact E[T] of the policy" if exact_rows.all() else "E[T]: exact (filled), Monte Carlo (hollow)")
    if not exact_rows.all():
        # markers large enough, and hollow ones white inside, to tell apart on top of the line
        axes.plot(run.iteration[exact_rows], run.hitting_time[exact_rows], "o", color="C0", markersize=6, zorder=3)
        axes.plot(run.iteration[~exact_rows], run.hitting_time[~exact_rows], "o", color="C0", markersize=6,
                  markerfacecolor="white", markeredgewidth=1.4, zorder=3)
    if optimum is not None:
        axes.axhline(optimum, color="k", linestyle="--", linewidth=1, gid="optimum",
                     label=f"RLVR optimum (best edge-conditioned policy, fork uniform) {optimum:.6g}")
    for index, (name, value) in enumerate(_references(run).items()):
        axes.axhline(value, color=f"C{index + 2}", linestyle=":", linewidth=1.4, gid=name.replace("_", "-"),
                     label=f"{_REFERENCE_WORDS[name]} = {value:.6g}")
    axes.set(yscale="log", xlabel="iteration", ylabel="expected hitting time E[T] (transitions)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # a short run would get ticks at 0.2, 0.4, ...
    model = f", transformer window {run.model['config'].get('window') or 'all'}" if run.model else ""
    axes.set_title(f"{_method_words(run)}{model}\n{where}", fontsize=9)
    axes.grid(True, which="both", alpha=0.25)
    plain_log_ticks(axes)
    axes.legend(fontsize=8)
    hitting = figure
    if transformer:
        return [hitting]

    if run.a.size == 0:
        figure = new_figure(7.0, 1.2)
        axes = figure.add_subplot()
        axes.text(0.5, 0.5, f"a, b, c, d are defined on path-star graphs only (docs/model.md 3.2);\n"
                  f"this run is {where}", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return [hitting, figure]
    figure = new_figure(11.0, 7.2)
    tolerance = 0.01 if "rollouts" in run.settings else 1e-9
    lanes = {n for row in _lanes(run.graph) for n in row}
    described, marked = "", False
    for index, (name, kind, move) in enumerate(zip("abcd", ("R+", "R-", "L+", "L-"),
                                                    ("forward", "backtrack", "forward", "backtrack"))):
        axes = figure.add_subplot(2, 2, index + 1)
        values, band, described = _parameter_rows(run, name)
        depths = values.shape[1]
        colours = [_depth_colour(j, depths) for j in range(depths)]
        down = _first_moves_down(values, tolerance) if name in "bd" else []
        marked = marked or bool(down)
        for j in range(depths):
            if band is not None:
                axes.fill_between(run.iteration, band[0][:, j], band[1][:, j], color=colours[j], alpha=0.15,
                                  linewidth=0)
            axes.plot(run.iteration, values[:, j], color=colours[j], linewidth=2.2 if j + 1 in down else 1.2,
                      label=f"j = {j + 1}", gid=f"{name}:{j + 1}")
        axes.axhline(1.0, color="k", linestyle="--", linewidth=0.8)
        if len(lanes) == 1:
            L = next(iter(lanes))
            axes.axhline(1 / (L + 1) if name in "ad" else L / (L + 1), color="0.5", linestyle=":", linewidth=0.8)
        axes.set(ylim=(-0.03, 1.03), xlabel="iteration", ylabel=f"{name}: P(desired move)",
                 yticks=np.linspace(0, 1, 6))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        title = f"{name}: {move} at {kind}"
        if down:
            title += f"; first moves down at j = {_depth_range(down)}"
            _dip_inset(axes, run.iteration, values, down, colours)
        axes.set_title(title, fontsize=9, loc="left")
        axes.grid(True, alpha=0.25)
    handles = figure.axes[0].get_legend_handles_labels()[0][:12]
    handles.append(Line2D([], [], color="k", linestyle="--", linewidth=0.8, label="RLVR optimum (1)"))
    if len(lanes) == 1:
        handles.append(Line2D([], [], color="0.5", linestyle=":", linewidth=0.8, label="pretrained value"))
    figure.legend(handles=handles, loc="outside lower center", fontsize=8, ncol=min(len(handles), 8),
                  title="depth" + ("" if depths <= 12 else " (first 12 shown)"), title_fontsize=8)
    note = ("; thick: b or d first moves down there (confused middle), inset: change from the start"
            if marked else "")
    figure.suptitle(textwrap.fill(f"{_method_words(run)} {where}: probability of the desired move per depth "
                                  f"({described}{note})", 150), fontsize=10)
    return [hitting, figure]


def _dip_inset(axes, iteration: np.ndarray, values: np.ndarray, down: list[int], colours) -> None:
    """Inset, where it hides the fewest recorded points: the change from the start of every depth
    over the first iterations, until the depths that first move down are back above their start
    (at least 5 rows), twice as long."""
    change = values - values[0]
    marked = change[:, [j - 1 for j in down]]
    below = np.flatnonzero((marked < 0).any(axis=1))
    rows = min(len(iteration), max(5, 2 * (int(below[-1]) + 1) if below.size else 5))
    x = (iteration - iteration[0]) / max(1, iteration[-1] - iteration[0])
    y = (values + 0.03) / 1.06  # the panel's y limits
    boxes = [(0.5, 0.07, 0.46, 0.38), (0.5, 0.5, 0.46, 0.38), (0.12, 0.5, 0.4, 0.38), (0.12, 0.07, 0.4, 0.38)]

    def covered(box) -> int:  # recorded points the box would hide
        left, bottom, width, height = box
        return int(np.sum((x[:, None] >= left) & (x[:, None] <= left + width) & (y >= bottom) & (y <= bottom + height)))

    inset = axes.inset_axes(min(boxes, key=covered))
    for j in range(values.shape[1]):
        inset.plot(iteration[:rows], change[:rows, j], color=colours[j], linewidth=2.0 if j + 1 in down else 0.8)
    inset.axhline(0, color="k", linewidth=0.6)
    inset.set_title("change from the start", fontsize=7)
    inset.set_xlabel("iteration", fontsize=6, labelpad=1)
    inset.tick_params(labelsize=6)
    inset.xaxis.set_major_locator(MaxNLocator(integer=True))


def _lanes(graph: dict) -> list[list[int]]:
    if {"W", "K", "L"} <= graph.keys():
        return [[graph["L"]]]
    return graph.get("lanes", [])


def _depth_colour(j: int, depths: int):
    return colormaps["viridis"](0.9 * j / max(1, depths - 1))
