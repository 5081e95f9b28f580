"""PNG plots of a study and of a training run (matplotlib's Agg canvas; no display and no
pyplot state needed).

* ``K_<variant>.png``: the expected hitting time against K on a log axis, W and L at the base:
  Monte Carlo means with 95% error bars (points), exact values (line), the stated bound scaled to
  the exact (or Monte Carlo) value at K0 (dashed; the pretrained formula is drawn unscaled), and
  for SFT the exact asymptotic growth ((L+1)^2/L)^K scaled the same way (dotted).
* ``histograms.png``: the hitting-time histogram of one cell per variant (the base cell, or the
  nearest cell with Monte Carlo), with the exact distribution where the exact solver applies and
  the study used the converged policies.
* ``<run>.png`` per run of a run file: its histogram with the Monte Carlo and exact means.

Every function takes result objects (a Study, runs, a TrainingRun) and a directory.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import exact
from .graph import in_words, path_star
from .errors import InputError
from .result import HittingTimes, TrainingRun
from .study import VARIANTS, Cell, Study, TopologyStudy, grid_of
from .study import topology

__all__ = ["claim", "study_plot_names", "run_plot_names", "training_plot_names", "write_plots",
           "write_run_plots", "write_training_plots"]


def study_plot_names(variants) -> list[str]:
    """The files :func:`write_plots` writes for a study of these variants."""
    return [f"K_{_file_name(v)}.png" for v in variants] + ["histograms.png"]


def run_plot_names(names) -> list[str]:
    """The files :func:`write_run_plots` writes for runs of these names."""
    stems, used = [], set()
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "run"
        while stem in used:
            stem += "_"
        used.add(stem)
        stems.append(f"{stem}.png")
    return stems


def training_plot_names(method: str, transformer: bool = False) -> list[str]:
    """The files :func:`write_training_plots` writes for a run of this method (of a transformer:
    its hitting time only)."""
    if transformer:
        return [f"{method}_transformer_hitting_time.png"]
    return [f"{method}_hitting_time.png", f"{method}_abcd.png"]


def claim(directory: str | os.PathLike[str], names, overwrite: bool = False,
          option: str = "--plots") -> Path:
    """Check, before any work, that ``names`` can be written into ``directory``: it is a directory
    or can be created (its parent exists), files can be created in it, and no file of those names
    is there already unless ``overwrite``. InputError naming ``option`` otherwise."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{option} {directory}: exists and is not a directory")
    if not directory.parent.is_dir():
        raise InputError(f"{option} {directory}: directory {directory.parent} does not exist")
    probe_in = directory if directory.is_dir() else directory.parent
    if not os.access(probe_in, os.W_OK | os.X_OK):
        raise InputError(f"{option} {directory}: cannot create files in {probe_in} (permission denied)")
    existing = [n for n in names if (directory / n).exists()]
    if existing and not overwrite:
        raise InputError(f"{option} {directory}: would replace {', '.join(existing[:3])}"
                         f"{' and more' if len(existing) > 3 else ''}; give --overwrite to replace them "
                         "or choose another directory")
    return directory


def _file_name(variant: str) -> str:
    return variant.replace("+", "_")


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=110)
    return path


def _k_plot(study: Study, variant: str, path: Path) -> Path:
    grid = grid_of(study)
    W0, K0, L0 = grid.base
    by_point = {c.point: c for c in study.cells if c.variant == variant}
    cells = [by_point[p] for p in grid.axis("K") if p in by_point]
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = figure.add_subplot()
    ks = np.array([c.K for c in cells])
    exact_values = np.array([c.exact for c in cells])
    if np.isfinite(exact_values).any():
        ax.plot(ks, exact_values, "-", color="C0", label="exact")
    mc = [(c.K, study.runs[c.run]) for c in cells if c.run]
    if mc:
        ax.errorbar([k for k, _ in mc], [r.mean for _, r in mc], yerr=[1.96 * r.stderr for _, r in mc],
                    fmt="o", color="C1", markersize=4, capsize=2, label="Monte Carlo (95%)")

    anchor = next((c for c in cells if c.K == K0), None)
    reference = None
    if anchor is not None:
        reference = anchor.exact if math.isfinite(anchor.exact) else (
            study.runs[anchor.run].mean if anchor.run else None)
    bound = VARIANTS[variant].bound
    dense = np.linspace(ks.min(), ks.max(), 200) if len(ks) else np.array([])
    if bound.is_formula:
        ax.plot(dense, [bound.shape(W0, k, L0) for k in dense], "--", color="C2", label=f"stated: {bound.label}")
    elif reference is not None:
        scale = reference / bound.shape(W0, K0, L0)
        ax.plot(dense, [scale * bound.shape(W0, k, L0) for k in dense], "--", color="C2",
                label=f"stated {bound.label}, matched at K = {K0}")
        if bound.exponential_in == "K":
            base = (L0 + 1) ** 2 / L0
            ax.plot(dense, reference * base ** (dense - K0), ":", color="C3",
                    label=f"((L+1)^2/L)^K = {base:.4g}^K, matched at K = {K0}")
    ax.set_yscale("log")
    ax.set_xlabel("K (depth)")
    ax.set_ylabel("expected hitting time")
    fit = next((f for f in study.fits if f.variant == variant and f.parameter == "K"), None)
    title = f"{variant}: W = {W0}, L = {L0}"
    if fit is not None:
        title += f"\n{fit.kind} fit {fit.estimate:.4g} [{fit.ci_low:.4g}, {fit.ci_high:.4g}]"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(figure, path)


def _histogram_cell(study: Study, variant: str) -> Cell | None:
    """The base cell if it has Monte Carlo, else the cell with Monte Carlo nearest to it."""
    base = grid_of(study).base
    simulated = [c for c in study.cells if c.variant == variant and c.run]
    if not simulated:
        return None
    return min(simulated, key=lambda c: sum(abs(a - b) for a, b in zip(c.point, base)))


def histogram_bars(counts: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """About 60 bars up to the 99.5% quantile of a histogram with equal-width bins: (left edges,
    counts, widths) of the merged bars. Needs a positive total."""
    cumulative = np.cumsum(counts)
    last = int(np.searchsorted(cumulative, 0.995 * cumulative[-1])) + 1
    group = max(1, -(-last // 60))
    bars = -(-last // group)
    padded = np.zeros(bars * group)
    used = min(len(padded), len(counts))
    padded[:used] = counts[:used]
    merged_edges = edges[0] + np.arange(bars + 1) * group * (edges[1] - edges[0])
    return merged_edges[:-1], padded.reshape(bars, group).sum(axis=1), np.diff(merged_edges)


def _histograms(study: Study, path: Path) -> Path:
    variants = study.parameters["variants"]
    columns = min(3, len(variants))
    rows = -(-len(variants) // columns)
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    for i, variant in enumerate(variants):
        ax = figure.add_subplot(rows, columns, i + 1)
        cell = _histogram_cell(study, variant)
        if cell is None:
            ax.set_title(f"{variant}: no Monte Carlo cell within budget", fontsize=9)
            ax.set_axis_off()
            continue
        result = study.runs[cell.run]
        counts, edges = result.counts, result.edges
        left, merged, widths = histogram_bars(counts, edges)
        ax.bar(left, merged / (result.rollouts * widths), width=widths, align="edge",
               color="C1", alpha=0.7, label=f"Monte Carlo ({result.rollouts} rollouts)")
        # The exact distribution is recomputed from the variant's policy, which the file holds
        # only for converged policies (trained ones would have to be trained again).
        if (math.isfinite(cell.exact) and study.parameters.get("policies", "converged") == "converged"
                and VARIANTS[variant].policy is not None):
            graph = path_star(cell.W, cell.K, cell.L)
            merged_edges = np.append(left, left[-1] + widths[-1])
            pmf = exact.hitting_time_pmf(VARIANTS[variant].policy(graph), graph.leaf(1), int(merged_edges[-1]) - 1)
            per_bin = np.add.reduceat(pmf, merged_edges[:-1].astype(int))
            ax.stairs(per_bin / widths, merged_edges, color="C0", label="exact")
        ax.set_title(f"{variant}: W = {cell.W}, K = {cell.K}, L = {cell.L}", fontsize=9)
        ax.set_xlabel("hitting time")
        ax.set_ylabel("probability per step")
        ax.legend(fontsize=7)
    return _save(figure, path)


def write_plots(study: Study, directory: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
    """Write the PNG plots of ``study`` into ``directory`` (created if missing; its parent must
    exist; see :func:`claim`) and return their paths."""
    directory = claim(directory, study_plot_names(study.parameters["variants"]), overwrite)
    directory.mkdir(exist_ok=True)
    paths = [_k_plot(study, v, directory / f"K_{_file_name(v)}.png") for v in study.parameters["variants"]]
    paths.append(_histograms(study, directory / "histograms.png"))
    return paths


def _run_plot(name: str, result: HittingTimes, path: Path) -> Path:
    p = result.parameters
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = figure.add_subplot()
    if result.hits > 0:
        left, merged, widths = histogram_bars(result.counts.astype(float), result.edges.astype(float))
        ax.bar(left, merged / (result.rollouts * widths), width=widths, align="edge", color="C1",
               alpha=0.7, label=f"{result.rollouts} rollouts ({result.censored} censored)")
    mean, stderr = result.mean, result.stderr
    exact_mean = p.get("exact_mean")
    exact_mean = float(exact_mean) if isinstance(exact_mean, (int, float)) else math.nan
    if math.isfinite(mean):
        ax.axvline(mean, color="C1", linestyle="-", linewidth=1,
                   label=f"mean {mean:.6g} +- {1.96 * stderr:.3g} (95%)")
    if math.isfinite(exact_mean):
        ax.axvline(exact_mean, color="C0", linestyle="--", linewidth=1, label=f"exact mean {exact_mean:.6g}")
    ax.set_xlabel("hitting time")
    ax.set_ylabel("probability per step")
    graph = p.get("graph", {})
    described = ", ".join(f"{k} = {v}" for k, v in graph.items()) if isinstance(graph, dict) else str(graph)
    policy = p.get("policy", {})
    policy_name = policy.get("name", "") if isinstance(policy, dict) else str(policy)
    search = p.get("search", "none")
    ax.set_title(f"{name}: {policy_name} on {described}{'' if search == 'none' else ', search ' + search}",
                 fontsize=9)
    ax.legend(fontsize=8)
    return _save(figure, path)


def write_run_plots(runs: Mapping[str, HittingTimes], directory: str | os.PathLike[str],
                    overwrite: bool = False) -> list[Path]:
    """One histogram ``<run>.png`` per run in ``directory`` (created if missing; see :func:`claim`)."""
    names = run_plot_names(runs)
    directory = claim(directory, names, overwrite, "--out")
    directory.mkdir(exist_ok=True)
    return [_run_plot(name, result, directory / file) for (name, result), file in zip(runs.items(), names)]



def write_training_plots(run: TrainingRun, directory: str | os.PathLike[str],
                         optimum: float | None = None, overwrite: bool = False,
                         references: Mapping[str, float] | None = None) -> list[Path]:
    """``<method>_hitting_time.png`` (hitting time against iteration, log axis, with the
    optimum and any ``references`` as dotted lines; Monte Carlo values of a run that records
    which are exact, such as a transformer's, as hollow points) and, for a table,
    ``<method>_abcd.png`` (a, b, c, d per depth against iteration; on a heterogeneous graph the
    mean over the branches that have the depth). A transformer's files are named
    ``<method>_transformer_*`` (:func:`training_plot_names`)."""
    transformer = run.parametrisation == "transformer"
    directory = claim(directory, training_plot_names(run.method, transformer), overwrite)
    directory.mkdir(exist_ok=True)
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.add_subplot()
    name = f"{run.method}_transformer" if transformer else run.method
    exact_rows = np.asarray(run.metrics.get("exact", np.ones(len(run.iteration), bool)), bool)
    axes.plot(run.iteration, run.hitting_time, color="C0", linewidth=1,
              label=f"{name} ({'exact' if exact_rows.all() else 'exact: filled, Monte Carlo: hollow'} E[T])")
    if not exact_rows.all():
        axes.plot(run.iteration[exact_rows], run.hitting_time[exact_rows], "o", color="C0", markersize=3)
        axes.plot(run.iteration[~exact_rows], run.hitting_time[~exact_rows], "o", color="C0", markersize=3,
                  markerfacecolor="none")
    if optimum is not None:
        axes.axhline(optimum, color="k", linestyle="--", linewidth=1, label=f"tabular optimum {optimum:.6g}")
    for index, (label, value) in enumerate((references or {}).items()):
        axes.axhline(value, color=f"C{index + 1}", linestyle=":", linewidth=1.2,
                     label=f"{label.replace('_', ' ')} {value:.6g}")
    targets = ", ".join(run.settings.get("targets", ["leaves"]))
    axes.set(yscale="log", xlabel="iteration", ylabel=f"expected hitting time (targets: {targets[:40]})",
             title=f"{name} on {in_words(run.graph)}" + (
                 f", window {run.model['config'].get('window') or 'all'}" if run.model else ""))
    axes.legend(fontsize="small")
    paths = [_save(figure, directory / f"{name}_hitting_time.png")]
    if run.a.size == 0:  # no per-depth table to show (a transformer, or not a path-star)
        return paths

    figure = Figure(figsize=(9.6, 6.4), layout="constrained")
    for index, name in enumerate("abcd"):
        axes = figure.add_subplot(2, 2, index + 1)
        values = getattr(run, name)
        if values.size == 0:
            axes.text(0.5, 0.5, "no a, b, c, d off the path-star", ha="center", transform=axes.transAxes)
            continue
        if values.ndim == 3:  # per branch: average over the branches that reach each depth
            values = np.nanmean(values, axis=1)
        for depth in range(values.shape[1]):
            axes.plot(run.iteration, values[:, depth], color=f"C{depth % 10}", label=f"j={depth + 1}")
        axes.set(ylim=(-0.02, 1.02), xlabel="iteration", title=name)
    if run.a.size:
        figure.axes[0].legend(fontsize="x-small", ncol=2)
    figure.suptitle(f"{run.method}: per-depth probabilities of the desired move")
    paths.append(_save(figure, directory / f"{run.method}_abcd.png"))
    return paths


def topology_plot_names(parameters: list[str]) -> list[str]:
    """The PNGs :func:`write_topology_plots` writes: ``growth_<parameter>.png`` per size parameter."""
    return [f"growth_{p}.png" for p in parameters]


def write_topology_plots(study: TopologyStudy, directory: str | os.PathLike[str],
                         overwrite: bool = False) -> list[Path]:
    """Per size parameter, ``growth_<parameter>.png``: the exact E[T] of every variant (Monte
    Carlo means with 95% error bars where there is no exact value) against the parameter, the
    others held at the base, on a log axis; beside it the separation E[T_sft] / E[T_rlvr]."""
    parameters = list(study.parameters["parameters"])
    directory = claim(directory, topology_plot_names(parameters), overwrite)
    directory.mkdir(exist_ok=True)
    grid = topology.grid_of(study)
    by_key = {(c.variant, c.point): c for c in study.cells}
    paths = []
    for parameter in parameters:
        i = parameters.index(parameter)
        figure = Figure(figsize=(10.4, 4.2), layout="constrained")
        times, ratio = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
        for number, variant in enumerate(dict.fromkeys(c.variant for c in study.cells)):
            axes = ratio if variant == topology.SEPARATION else times
            x, y, err = [], [], []
            for point in grid.axis(parameter):
                cell = by_key.get((variant, point))
                if cell is None:
                    continue
                result = study.mc(cell)
                if math.isfinite(cell.exact):
                    x.append(point[i]), y.append(cell.exact), err.append(0.0)
                elif result is not None and result.hits:
                    x.append(point[i]), y.append(result.mean), err.append(1.96 * result.stderr)
            if x:
                axes.errorbar(x, y, yerr=err, marker="o", color=f"C{number}", label=variant, capsize=2)
        held = ", ".join(f"{p}={grid.base[p]}" for p in parameters if p != parameter)
        times.set(yscale="log", xlabel=parameter, ylabel=f"E[T] (target {study.parameters['target']})",
                  title=f"{grid.family}, {held}")
        ratio.set(yscale="log", xlabel=parameter, ylabel="E[T_sft] / E[T_rlvr]", title="separation")
        times.legend(fontsize="small")
        paths.append(_save(figure, directory / f"growth_{parameter}.png"))
    return paths
