"""Hitting-time distributions: histogram bars on the lattice of possible hitting times with the
exact law overlaid, and the survival P(T > t) against t / E[T] beside them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..errors import InputError
from ..graph import in_words
from ..result import HittingTimes
from ..study import Study, grid_of
from .style import BARS, TIME, WORDS, as_number, new_figure, policy_words, target_words


# A coarser lattice that holds this share of the hits (and twice its even share) sets the bar widths.
DOMINANT = 0.5


def _dominant(positions: np.ndarray, weights: np.ndarray, coarser: bool = True) -> tuple[int, int, float]:
    """(period, residue, share) of whole-number ``positions`` (from 0): their gcd (share 1), or
    if ``coarser`` the smallest multiple of it, at most a third of their range, one of whose
    residue classes holds at least DOMINANT of the weight and twice its share under an even
    spread over the classes."""
    strict = max(1, int(np.gcd.reduce(positions)))
    last = min(500 * strict, int(positions[-1]) // 3) if coarser else 0
    for period in range(2 * strict, last + 1, strict):
        shares = np.bincount(positions % period, weights) / weights.sum()
        if shares.max() >= max(DOMINANT, 2 * strict / period):
            return period, int(np.argmax(shares)), float(shares.max())
    return strict, 0, 1.0


def lattice(result: HittingTimes) -> tuple[int, int | None, float]:
    """(period p, offset r or None, share): the lattice r + p n holding ``share`` of the hits.
    From the unit-width bins that hold hits: p their gcd distance (share 1) or, if they hold
    every hit, a coarser lattice of :func:`_dominant` (a nearly deterministic policy's times
    cluster on one, and bars narrower than it oscillate). Else the same in units of equal bins of
    width w (p a multiple of w, r unknown); else p = 2, r unknown (on a bipartite graph, the
    path-star among them, T always has the parity of the target's distance; elsewhere bars of
    even width do no harm)."""
    counts, edges = np.asarray(result.counts), np.asarray(result.edges, np.int64)
    occupied = np.flatnonzero(counts)
    unit = occupied[np.diff(edges)[occupied] == 1]
    if len(unit) >= 2:
        weights = counts[unit].astype(float)
        period, residue, share = _dominant(edges[unit] - edges[unit[0]], weights,
                                           weights.sum() == counts.sum())
        return period, int(edges[unit[0]]) + residue, share
    width = result.bin_width
    if width is not None and len(occupied) >= 2:
        period, _, share = _dominant(occupied - occupied[0], counts[occupied].astype(float))
        if period > 1:
            return period * width, None, share
    return 2, None, 1.0


@dataclass(frozen=True)
class Bars:
    """Histogram bars made of whole bins of a result: ``edges`` (some of its edges), per bar the
    fraction of rollouts ``mass``, the exact probability ``exact`` (None where unknown) and
    ``support``, how many of the possible hitting times (the lattice ``offset + period n``) it
    holds; ``share`` of the hits lie on that lattice (1 unless it is only the dominant one).
    Densities are per transition: a bar's probability over ``period * support``, so bars with
    more or fewer possible values do not oscillate."""

    edges: np.ndarray
    mass: np.ndarray
    exact: np.ndarray | None
    support: np.ndarray
    period: int
    offset: int | None
    share: float

    @property
    def density(self) -> np.ndarray:
        return self.mass / (self.period * self.support)

    @property
    def exact_density(self) -> np.ndarray | None:
        return None if self.exact is None else self.exact / (self.period * self.support)


def _support(a: np.ndarray, b: np.ndarray, period: int, offset: int | None) -> np.ndarray:
    """Lattice points in [a, b): exact where the offset is known, else the width over the period."""
    if offset is None:
        return (b - a) / period
    count = lambda t: np.maximum(0, -(-(t - offset) // period))  # noqa: E731  (points below t)
    return (count(b) - count(a)).astype(float)


def lattice_bars(result: HittingTimes, bars: int = BARS) -> Bars:
    """About ``bars`` bars from the first hit to the 99.5% quantile, each a whole number of
    periods of :func:`lattice` wide (snapped to the result's bin edges), none without a possible
    hitting time. Needs a hit."""
    counts, edges = np.asarray(result.counts), np.asarray(result.edges, np.int64)
    if not counts.any():
        raise InputError("histogram: the result has no hits")
    period, offset, share = lattice(result)
    cumulative = np.concatenate(([0], np.cumsum(counts)))
    first = int(np.flatnonzero(counts)[0])
    last = int(np.searchsorted(cumulative, 0.995 * cumulative[-1]))  # bins [first, last) hold 99.5%
    low, high = int(edges[first]), int(edges[min(last, len(edges) - 1)])
    if offset is not None:  # centre the bars on the lattice, the first hit inside the first bar
        centred = offset - period // 2
        centred -= period * max(0, math.ceil((centred - low) / period))
        if centred >= 0 and np.isin(centred, edges):
            low = centred
    unit = period if result.bin_width is None else math.lcm(period, result.bin_width)
    step = unit * max(1, math.ceil((high - low) / bars / unit))
    wanted = low + step * np.arange(max(1, math.ceil((high - low) / step)) + 1)
    index = np.unique(np.minimum(np.searchsorted(edges, wanted), len(edges) - 1))
    support = _support(edges[index[:-1]], edges[index[1:]], period, offset)
    keep = np.concatenate((support > 0, [True]))
    if support[-1] <= 0 and keep[:-1].sum() > 1:  # an empty last bar joins the one before it
        keep[np.flatnonzero(keep[:-1])[-1]] = False
    index = index[keep]
    a, b = edges[index[:-1]], edges[index[1:]]
    law = result.exact_mass_below
    return Bars(edges[index], np.diff(cumulative[index]) / result.rollouts,
                None if law is None else np.diff(np.asarray(law)[index]), _support(a, b, period, offset),
                period, offset, share)


# Below this many hits a lattice they all lie on is what they show, not what T is known to be.
FEW_HITS = 100


def _lattice_words(bars: Bars, hits: int | None = None) -> str:
    if bars.period == 1:
        return ""
    if bars.offset is not None and hits is not None and hits < FEW_HITS:
        if bars.share < 1:
            return f"{round(bars.share * hits)} of the {hits} hits lie on {bars.offset} + {bars.period}n: bars hold whole periods"
        return (f"the {_count(hits, 'hit')} {'lies' if hits == 1 else 'lie'} on {bars.offset} + {bars.period}n: "
                "each bar holds whole periods")
    if bars.offset is None:
        mostly = f"; {100 * bars.share:.0f}% of T on one residue" if bars.share < 1 else ""
        return f"bars {bars.edges[1] - bars.edges[0]} wide (whole periods of {bars.period}{mostly})"
    if bars.share < 1:
        return f"{100 * bars.share:.0f}% of T on {bars.offset} + {bars.period}n: bars hold whole periods"
    return f"T is {bars.offset} + {bars.period}n: each bar holds whole periods"


def _count(n: int, noun: str) -> str:
    """``1 rollout``, ``9 rollouts``, ``1,000 rollouts``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def mean_words(result: HittingTimes) -> str:
    """The Monte Carlo mean with its 95% error bar (1.96 standard errors), in words that hold
    for any number of hits: none, one (no error bar) or more."""
    if result.hits == 0:
        return "no hit"
    if result.hits == 1:
        return f"mean {result.mean:.6g} (1 hit: no error bar)"
    return f"mean {result.mean:.6g} +- {1.96 * result.stderr:.2g}"


def _histogram_panel(axes, result: HittingTimes) -> Bars:
    bars = lattice_bars(result)
    axes.stairs(bars.density, bars.edges, fill=True, color="C1", alpha=0.55,
                label=f"Monte Carlo ({_count(result.rollouts, 'rollout')})", gid="monte carlo")
    if bars.exact is not None:
        axes.stairs(bars.exact_density, bars.edges, color="k", linewidth=1, label="exact law", gid="exact")
    words = _lattice_words(bars, result.hits)
    first = int(np.flatnonzero(result.counts)[0])
    atom = result.counts[first] / result.rollouts
    if bars.support[0] > 1 and np.diff(result.edges)[first] == 1 and atom > 0.3 * bars.mass[0]:
        words += f"\nthe first bar holds the atom P(T = {int(result.edges[first])}) = {atom:.3g}"
    axes.set(xlabel=TIME, ylabel="probability per transition")
    axes.legend(fontsize=7, title=words or None, title_fontsize=7, loc="upper right")
    return bars


def _survival(result: HittingTimes) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(t, Monte Carlo P(T > t), exact P(T > t) or None) at t = every bin edge - 1."""
    edges = np.asarray(result.edges, np.int64)
    below = np.concatenate(([0], np.cumsum(result.counts)))
    law = result.exact_mass_below
    return edges - 1, 1.0 - below / result.rollouts, None if law is None else 1.0 - np.asarray(law)


def _survival_reach(result: HittingTimes) -> float:
    """The last t at which at least 10 rollouts (a tenth of them, at least one, in a run of
    fewer than 100) have not hit yet: how far the Monte Carlo survival is worth showing. Counted
    in whole rollouts; t = -1 always qualifies, so any run of one rollout or more has a reach."""
    edges = np.asarray(result.edges, np.int64)
    survivors = result.rollouts - np.concatenate(([0], np.cumsum(result.counts)))
    enough = min(10, max(1, result.rollouts // 10))
    return float(edges[np.flatnonzero(survivors >= enough)[-1]] - 1)


def _mean_of(result: HittingTimes, exact_mean: float) -> tuple[float, str]:
    if math.isfinite(exact_mean):
        return exact_mean, "exact"
    return result.mean, "Monte Carlo"


def _survival_panel(axes, result: HittingTimes, exact_mean: float) -> None:
    mean, source = _mean_of(result, exact_mean)
    t, survival, exact_survival = _survival(result)
    shown = (t >= 0) & (survival > 0)
    axes.plot(t[shown] / mean, survival[shown], drawstyle="steps-post", color="C1", linewidth=1.4,
              label="Monte Carlo", gid="monte carlo")
    if exact_survival is not None:
        kept = (t >= 0) & (exact_survival > 0)
        axes.plot(t[kept] / mean, exact_survival[kept], "--", color="k", linewidth=1, label="exact law",
                  gid="exact")
    x = np.linspace(0, 12, 200)
    axes.plot(x, np.exp(-x), ":", color="0.5", linewidth=1, label="exponential, same mean")
    first = int(np.flatnonzero(result.counts)[0])
    if np.diff(result.edges)[first] == 1:
        atom = result.counts[first] / result.rollouts
        axes.text(0.97, 0.97, f"P(T = {int(result.edges[first])}) = {atom:.3g}", transform=axes.transAxes,
                  ha="right", va="top", fontsize=7)
    axes.set(yscale="log", xlabel=f"t / E[T]  (E[T] = {mean:.4g}, {source})", ylabel="P(T > t)")
    axes.legend(fontsize=7, loc="lower left")


def distribution_figure(rows: list[tuple[str, HittingTimes | None, float]]) -> Figure:
    """One row per (title, result, exact mean or nan): the histogram and, beside it, the
    survival P(T > t) against t / E[T]. The survival panels share their axes; histograms whose
    99.5% quantiles lie within a factor 2 of each other share theirs."""
    figure = new_figure(11.0, 2.9 * len(rows) + 0.4)
    grid = figure.add_gridspec(len(rows), 2, width_ratios=(1.15, 1))
    first_survival, drawn = None, []
    lowest, widest = 1.0, 1.0
    for row, (title, result, exact_mean) in enumerate(rows):
        hist_axes = figure.add_subplot(grid[row, 0])
        survival_axes = figure.add_subplot(grid[row, 1], sharex=first_survival, sharey=first_survival)
        first_survival = first_survival or survival_axes
        hist_axes.set_title(title, fontsize=9, loc="left")
        if result is None or result.hits == 0:
            for axes in (hist_axes, survival_axes):
                axes.text(0.5, 0.5, _no_hit_words(result), ha="center", va="center", transform=axes.transAxes)
                # per axes: the survival panels share their axes, and the other rows keep their ticks
                axes.tick_params(bottom=False, left=False, labelbottom=False, labelleft=False)
            continue
        drawn.append((hist_axes, _histogram_panel(hist_axes, result)))
        _survival_panel(survival_axes, result, exact_mean)
        # as low as half a rollout, but a decade at least, so a small run's exact law stays in view
        lowest = min(lowest, 0.5 / max(result.rollouts, 10))
        widest = max(widest, _survival_reach(result) / _mean_of(result, exact_mean)[0])
    first_survival.set(ylim=(lowest, 1.5), xlim=(0, min(12.0, 1.05 * widest)))
    groups: list[list[tuple[object, Bars]]] = []
    for axes, bars in drawn:
        group = next((g for g in groups if 0.5 <= bars.edges[-1] / g[0][1].edges[-1] <= 2.0), None)
        if group is None:
            groups.append([(axes, bars)])
        else:
            axes.sharex(group[0][0])
            axes.sharey(group[0][0])
            group.append((axes, bars))
    for group in groups:
        top = max(max(np.max(b.density), np.max(b.exact_density, initial=0) if b.exact is not None else 0)
                  for _, b in group)
        group[0][0].set(xlim=(min(b.edges[0] for _, b in group), max(b.edges[-1] for _, b in group)),
                        ylim=(0, 1.08 * top))
    return figure


def _no_hit_words(result: HittingTimes | None) -> str:
    if result is None:
        return "no Monte Carlo run (over budget)"
    limit = result.parameters.get("max_steps")
    at = f" at max_steps = {limit:,}" if isinstance(limit, int) else ""
    rollouts = "the one rollout was" if result.rollouts == 1 else f"all {result.rollouts:,} rollouts were"
    return f"no hit: {rollouts} censored{at}"


def study_distribution_rows(study: Study) -> list[tuple[str, HittingTimes | None, float]]:
    """The rows of :func:`distribution_figure` for a study: per variant its base cell, or the
    cell with Monte Carlo nearest to it."""
    base = tuple(grid_of(study).base)
    rows = []
    for variant in study.parameters["variants"]:
        simulated = [c for c in study.cells if c.variant == variant and c.run]
        cell = min(simulated, key=lambda c: sum(abs(a - b) for a, b in zip(c.point, base)), default=None)
        if cell is None:
            rows.append((f"{policy_words(study, variant)}: no Monte Carlo cell", None, math.nan))
            continue
        result = study.mc(cell)
        exact_text = f"E[T] = {cell.exact:.6g} exact" if math.isfinite(cell.exact) else "no exact solver"
        rows.append((f"{policy_words(study, variant)} on the path-star W = {cell.W}, K = {cell.K}, L = {cell.L}: "
                     f"{exact_text}, {mean_words(result)}", result, cell.exact))
    return rows


def run_title(name: str, result: HittingTimes) -> str:
    """A run's figure title: its policy, search, graph and target in words, and its numbers."""
    p = result.parameters
    policy = p.get("policy", {}) if isinstance(p.get("policy"), dict) else {"name": str(p.get("policy", ""))}
    policy_name = policy.get("name", "")
    if "trained_by" in policy:
        policy_name = f"{policy['trained_by']}-trained ({Path(str(policy.get('file', ''))).name})"
    elif policy_name in WORDS and policy_name != "pretrained":
        policy_name = f"{WORDS[policy_name]} (converged limit)"
    graph = p.get("graph", {})
    search = p.get("search", "none")
    exact_mean = as_number(p.get("exact_mean"))
    numbers = (f"E[T] = {exact_mean:.6g} exact, " if math.isfinite(exact_mean) else "no exact mean, ")
    return (f"{name}: policy {policy_name}{'' if search == 'none' else ' in the search wrapper (' + search + ')'} "
            f"on {in_words(graph) if isinstance(graph, dict) else graph}, target {target_words(p.get('target'))}\n"
            f"{numbers}{mean_words(result)}{' (95%)' if result.hits > 1 else ''}, {result.censored:,} censored, "
            f"{p.get('method', 'step')} method")
