"""Figures of growth: E[T] against W, K or L (the headline figure and one variant on the axes
its claim needs), where the compute goes (visits per depth and state kind), and the topology
study's growth against a family's size parameter."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .. import exact, targets as target_sets
from ..analysis import visits_by_kind
from ..graph import path_star
from ..policy import pretrained, rlvr, sft
from ..study import VARIANTS, Study, TopologyStudy, grid_of
from ..study import topology
from .style import (AXIS_WORDS, COLOURS, HEADLINE, MARKERS, PARAMETER_WORDS, WORDS, fit_words, new_figure,
                    plain_log_ticks, policies_words, policy_words, target_words, value_ticks)


def _claim_scales(variant: str, parameter: str, base) -> tuple[str, str]:
    """(x scale, y scale) on which the stated bound along ``parameter`` is a straight line: log-y
    where it is exponential in it, linear where it is linear, log-log otherwise."""
    if VARIANTS[variant].bound.exponential_in == parameter:
        return "linear", "log"
    values = _bound_along(variant, parameter, base, [1.0, 2.0, 3.0])
    linear = abs(values[2] - 2 * values[1] + values[0]) <= 1e-9 * abs(values[2])
    return ("linear", "linear") if linear else ("log", "log")


def _axis_data(study: Study, variant: str, parameter: str):
    """Along one parameter through the base: (x, exact values, Monte Carlo (x, mean, stderr) of
    the runs with hits and no censored rollout)."""
    i = "WKL".index(parameter)
    by_point = {c.point: c for c in study.cells if c.variant == variant}
    cells = [by_point[p] for p in grid_of(study).axis(parameter) if p in by_point]
    x = np.array([c.point[i] for c in cells], float)
    exact_values = np.array([c.exact for c in cells], float)
    mc = [(c.point[i], r.mean, r.stderr) for c in cells if (r := study.mc(c)) is not None and r.hits >= 2
          and r.censored == 0]
    return x, exact_values, mc


def _bound_along(variant: str, parameter: str, base, x) -> np.ndarray:
    """The variant's stated bound (without its constant) at ``x`` along ``parameter``, the others at ``base``."""
    i = "WKL".index(parameter)
    bound = VARIANTS[variant].bound
    return np.array([bound.shape(*[v if j == i else base[j] for j in range(3)]) for v in np.atleast_1d(x)], float)


def _guide(variant: str, parameter: str, base, x, y, sigma, dense) -> np.ndarray | None:
    """The stated bound along ``parameter`` as a guide over ``dense``: the pretrained formula as
    it is; a bound exponential in the parameter through the value at the base; any other Theta
    bound as a + b * bound, a and b fitted to (x, y) (weights 1/sigma^2 if given), since Theta fixes
    the growth only up to a scale and lower-order terms."""
    bound = VARIANTS[variant].bound
    shape = _bound_along(variant, parameter, base, dense)
    if bound.is_formula:
        return shape
    i = "WKL".index(parameter)
    if len(x) == 0:
        return None
    if bound.exponential_in == parameter:
        at_base = np.flatnonzero(np.asarray(x) == base[i])
        if at_base.size == 0:
            return None
        return shape * y[at_base[0]] / _bound_along(variant, parameter, base, base[i])[0]
    # a zero standard error (a few equal hitting times) gets a huge but finite weight, as in
    # study.fits.fit_line: sigma floored at 1e-300 gave 1/sigma^2 = inf and a failed SVD
    floor = 1e-12 * np.maximum(np.abs(np.asarray(y, float)), 1e-300)
    weights = np.ones(len(x)) if sigma is None else 1 / np.maximum(np.asarray(sigma, float), floor) ** 2
    at_points = _bound_along(variant, parameter, base, x)
    if len(x) < 2 or np.ptp(at_points) <= 1e-12 * np.max(np.abs(at_points)):
        return np.full(len(dense), np.sum(weights * y) / np.sum(weights))
    design = np.column_stack([np.ones(len(x)), at_points]) * np.sqrt(weights)[:, None]
    (a, b), *_ = np.linalg.lstsq(design, np.asarray(y) * np.sqrt(weights), rcond=None)
    return a + b * shape


def _draw_variant(axes, study: Study, variant: str, parameter: str, colour: str) -> None:
    """Exact line, Monte Carlo points with 95% bars (1.96 standard errors), and the stated bound
    as a dashed guide (:func:`_guide`, fitted to the exact values, else the Monte Carlo means)."""
    base = tuple(grid_of(study).base)
    x, exact_values, mc = _axis_data(study, variant, parameter)
    marker = MARKERS.get(variant, "o")
    finite = np.isfinite(exact_values)
    if finite.any():
        axes.plot(x[finite], exact_values[finite], "-", color=colour, linewidth=1.6, gid=f"exact:{variant}")
    if mc:
        mx, mean, stderr = (np.array(v, float) for v in zip(*mc))
        axes.errorbar(mx, mean, yerr=1.96 * stderr, fmt=marker, color=colour, markersize=4.5, capsize=2,
                      markerfacecolor="white" if finite.any() else colour, label=f"monte carlo:{variant}")
    if len(x) == 0:
        return
    dense = np.linspace(x.min(), x.max(), 200)
    if finite.all():
        guide = _guide(variant, parameter, base, x, exact_values, None, dense)
    elif mc:
        guide = _guide(variant, parameter, base, mx, mean, stderr, dense)
    else:
        guide = None
    if guide is not None:
        axes.plot(dense, guide, "--", color=colour, linewidth=1, gid=f"bound:{variant}")


def _style_handles(parameter: str, base_value: int, exponential: bool = False) -> list[Line2D]:
    through = f"exponential ones through {parameter} = {base_value};\n" if exponential else ""
    return [Line2D([], [], color="k", label="exact"),
            Line2D([], [], color="k", marker="o", linestyle="none", markersize=4.5, markerfacecolor="white",
                   label="Monte Carlo mean, 95% bar\n(filled: no exact value)"),
            Line2D([], [], color="k", linestyle="--", linewidth=1,
                   label=f"stated bound: a + b \u00d7 bound fitted;\n{through}pretrained: its exact formula")]


def headline_figure(study: Study, parameter: str = "K") -> Figure:
    """E[T] of the headline variants present (pretrained, SFT, SFT + search, RLVR, RLVR + search;
    if none, every variant) against ``parameter`` on one log axis, one legend."""
    variants = [v for v in HEADLINE if v in study.parameters["variants"]] or list(study.parameters["variants"])
    base = grid_of(study).base
    i = "WKL".index(parameter)
    figure = new_figure(9.0, 5.0)
    axes = figure.add_subplot()
    for variant in variants:
        _draw_variant(axes, study, variant, parameter, COLOURS.get(variant, "k"))
    axes.set_yscale("log")
    values = getattr(grid_of(study), parameter)
    if parameter != "K":
        axes.set_xscale("log")
    value_ticks(axes, values, parameter != "K")
    held = ", ".join(f"{p} = {base[j]}" for j, p in enumerate("WKL") if j != i)
    axes.set(xlabel=AXIS_WORDS[parameter], ylabel="expected hitting time E[T] (transitions)",
             title=f"E[T] against {parameter}: {policies_words(study)} on the path-star {held}, "
                   f"target {target_words(study.parameters.get('target'))}")
    axes.title.set_fontsize(10)
    axes.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], color=COLOURS.get(v, "k"), marker=MARKERS.get(v, "o"), markersize=4.5,
                      linestyle="-" if np.isfinite(_axis_data(study, v, parameter)[1]).any() else "none",
                      label=WORDS.get(v, v)) for v in variants]
    handles += _style_handles(parameter, base[i], any(VARIANTS[v].bound.exponential_in == parameter for v in variants))
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return figure


def _guide_words(variant: str, parameter: str, base_value: int) -> str:
    bound = VARIANTS[variant].bound
    if bound.is_formula:
        return f"stated exact formula {bound.label}"
    if bound.exponential_in == parameter:
        return f"stated {bound.label}, through the value at {parameter} = {base_value}"
    return f"stated {bound.label}: a + b \u00d7 bound, a and b fitted"


def variant_figure(study: Study, variant: str, parameter: str = "K") -> Figure:
    """One variant against ``parameter`` on the axes its claim needs (:func:`_claim_scales`),
    with the exact asymptote ((L+1)^2/L)^K where the bound is exponential in K."""
    base = grid_of(study).base
    i = "WKL".index(parameter)
    figure = new_figure(7.6, 4.6)
    axes = figure.add_subplot()
    colour = COLOURS.get(variant, "C0")
    _draw_variant(axes, study, variant, parameter, colour)
    xscale, yscale = _claim_scales(variant, parameter, base)
    x, exact_values, mc = _axis_data(study, variant, parameter)
    at_base = [y for xx, y in zip(x, exact_values) if xx == base[i] and math.isfinite(y)] + [
        m for xx, m, _ in mc if xx == base[i]]
    styles = _style_handles(parameter, base[i])
    handles = [*([styles[0]] if np.isfinite(exact_values).any() else []), *([styles[1]] if mc else []),
               Line2D([], [], color=colour, linestyle="--", linewidth=1,
                      label=_guide_words(variant, parameter, base[i]))]
    if VARIANTS[variant].bound.exponential_in == parameter == "K" and at_base:
        growth = (base[2] + 1) ** 2 / base[2]
        dense = np.linspace(x.min(), x.max(), 200)
        axes.plot(dense, at_base[0] * growth ** (dense - base[1]), ":", color="k", linewidth=1, gid="asymptote")
        handles.append(Line2D([], [], color="k", linestyle=":", linewidth=1,
                              label=f"exact asymptote ((L+1)^2/L)^K = {growth:.4g}^K, through K = {base[1]}"))
    axes.set(xscale=xscale, yscale=yscale, xlabel=AXIS_WORDS[parameter],
             ylabel="expected hitting time E[T] (transitions)")
    value_ticks(axes, getattr(grid_of(study), parameter), xscale == "log")
    if yscale == "linear":
        axes.set_ylim(bottom=0)
    held = ", ".join(f"{p} = {base[j]}" for j, p in enumerate("WKL") if j != i)
    fit = next((f for f in study.fits if f.variant == variant and f.parameter == parameter), None)
    scales = {("linear", "linear"): "linear axes", ("linear", "log"): "log E[T]", ("log", "log"): "log-log"}
    axes.set_title(f"{policy_words(study, variant)} on the path-star {held}: E[T] against {parameter} "
                   f"({scales[xscale, yscale]})\n{fit_words(fit)}", fontsize=9)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(handles=handles, fontsize=8, loc="upper left")
    return figure


def compute_figure(policies: Mapping[str, object], targets=None, title: str = "") -> Figure:
    """Exact expected visits before the hit per depth and state kind (R+, R-, L+, L-), one panel
    per policy (name -> Policy on one path-star), sharing a log axis; ``targets`` as in
    :func:`analysis.visits_by_kind`."""
    figure = new_figure(4.0 * len(policies) + 1.2, 4.4)
    first = None
    for column, (name, policy) in enumerate(policies.items()):
        axes = figure.add_subplot(1, len(policies), column + 1, sharey=first)
        first = first or axes
        visits = visits_by_kind(policy, targets)
        chosen = tuple(policy.graph.leaves if targets is None else targets)
        total = float(np.mean([exact.expected_hitting_time(policy, t) for t in chosen]))
        depth = np.arange(1, len(visits["R+"]) + 1)
        for (kind, values), marker in zip(visits.items(), "o^sv"):
            axes.plot(depth, values, marker=marker, markersize=4, label=kind, gid=f"{name}:{kind}")
        deepest = sum(v[-1] for v in visits.values()) / total
        axes.set(yscale="log", xlabel="depth j (diamond, from the fork)",
                 title=f"{name}: E[T] = {total:.4g}\nthe deepest diamond (j = {depth[-1]}) takes "
                       f"{100 * deepest:.3g}% of it")
        axes.title.set_fontsize(9)
        value_ticks(axes, depth if len(depth) <= 15 else depth[::2])
        axes.grid(True, which="major", alpha=0.3)
        if column == 0:
            axes.set_ylabel("expected visits before the hit (all branches and lanes)")
            axes.legend(fontsize=8, title="state kind", title_fontsize=8)
    figure.suptitle(title, fontsize=10)
    return figure


def study_compute_figure(study: Study) -> Figure:
    grid = grid_of(study)
    W0, _, L0 = grid.base
    K = max(grid.K)
    graph = path_star(W0, K, L0)
    target = study.parameters.get("target", "leaves")
    chosen = target_sets.resolve(graph, target)
    return compute_figure({"pretrained": pretrained(graph), "SFT (converged)": sft(graph),
                           "RLVR (converged)": rlvr(graph)}, list(chosen.nodes),
                          f"Where the compute goes: exact expected visits per depth and state kind on the "
                          f"path-star W = {W0}, K = {K}, L = {L0}, target {target_words(target)}")


def topology_figure(study: TopologyStudy, parameter: str) -> Figure:
    """The exact E[T] of every variant (lines; Monte Carlo means with 95% bars as dashes, as
    points where there is no exact value) against one size parameter, the others at the base,
    on a log axis; beside it the separation E[T_sft] / E[T_rlvr] (exact) and its growth fit."""
    parameters = list(study.parameters["parameters"])
    i = parameters.index(parameter)
    grid = topology.grid_of(study)
    by_key = {(c.variant, c.point): c for c in study.cells}
    figure = new_figure(11.0, 4.8)
    times, ratio = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    axis = grid.axis(parameter)
    series = list(dict.fromkeys(c.variant for c in study.cells))
    for number, variant in enumerate(series):
        axes = ratio if variant == topology.SEPARATION else times
        colour, marker = COLOURS.get(variant, f"C{number}"), MARKERS.get(variant, "o")
        cells = [(point[i], by_key[(variant, point)]) for point in axis if (variant, point) in by_key]
        exact_points = [(x, c.exact) for x, c in cells if math.isfinite(c.exact)]
        mc = [(x, r.mean, 1.96 * r.stderr) for x, c in cells if (r := study.mc(c)) is not None and r.hits]
        label = "E[T_sft] / E[T_rlvr] (exact)" if variant == topology.SEPARATION else WORDS.get(variant, variant)
        if exact_points:
            axes.plot(*zip(*exact_points), marker=marker, markersize=4, color=colour, label=label,
                      linestyle=(0, (2, 2)) if variant == "distilled" else "-", linewidth=1.8,
                      gid=f"exact:{variant}")  # distilled dotted: it often equals RLVR
        if mc and variant != topology.SEPARATION:
            x, mean, err = zip(*mc)
            axes.errorbar(x, mean, yerr=err, fmt="_" if exact_points else marker,
                          markersize=9 if exact_points else 4.5, capsize=2, color=colour, label=None if exact_points else f"{label} (Monte Carlo only)")
    held = ", ".join(f"{p} = {grid.base[p]}" for p in parameters if p != parameter)
    values = [point[i] for point in axis]
    for axes in (times, ratio):
        axes.set(yscale="log", xlabel=PARAMETER_WORDS.get(parameter, parameter))
        value_ticks(axes, values)
        axes.grid(True, which="major", alpha=0.3)
        plain_log_ticks(axes)
    times.set(ylabel="expected hitting time E[T] (transitions)")
    times.set_title(textwrap.fill(
        f"{study.parameters['family']} graphs, {held}, target {target_words(study.parameters['target'])}; "
        "SFT, RLVR and distilled trained on every graph; lines exact, dashes Monte Carlo (95% bars)", 80),
        fontsize=9)
    fit = next((f for f in study.fits if f.series == topology.SEPARATION and f.parameter == parameter), None)
    ratio.set(ylabel="separation E[T_sft] / E[T_rlvr]")
    ratio.set_title(textwrap.fill(f"separation against {parameter}: "
                                  + (fit.verdict if fit is not None else "no fit"), 75), fontsize=9)
    times.legend(fontsize=8)
    ratio.legend(fontsize=8, loc="upper left")
    return figure
