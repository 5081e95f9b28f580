"""The sweep: every variant at every cell of a grid, exact where the solver applies and Monte
Carlo where the run fits the budget; the study it makes, and its Monte Carlo means against the
exact values."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ContextManager

from .. import checks, memory, planning, statistics, targets
from ..errors import CostError, InputError
from ..graph import symmetric_size
from ..policy import Policy
from ..result import HittingTimes
from ..targets import TargetsPlan
from .fits import EXPONENT_TOLERANCE, LEVEL, Fit, fit_study
from .grid import PLANNING_SECONDS_PER_CELL, Grid, cell_seed, run_name
from .variants import DEFAULT_VARIANTS, DISTILLED_NOTE, POLICY_SOURCES, VARIANTS, training_settings, variant_policies


@dataclass(frozen=True)
class Cell:
    """One variant at one grid point. ``exact`` is nan where the exact solver does not apply
    (the search wrapper); ``run`` names the Monte Carlo run in ``Study.runs``, "" if the cell was
    over budget; ``estimated_seconds`` is the plan's cost estimate of the Monte Carlo run."""

    variant: str
    W: int
    K: int
    L: int
    exact: float
    run: str
    estimated_seconds: float

    @property
    def point(self) -> tuple[int, int, int]:
        return (self.W, self.K, self.L)


@dataclass(frozen=True, eq=False)
class Study:
    """A finished sweep: its parameters (grid, rollouts, seed, budget, ...), every cell, every
    fit, and the Monte Carlo runs by name."""

    parameters: dict
    cells: list[Cell]
    fits: list[Fit]
    runs: dict[str, HittingTimes] = field(repr=False)

    def mc(self, cell: Cell) -> HittingTimes | None:
        return self.runs.get(cell.run) if cell.run else None


ProgressFactory = Callable[[str, int], ContextManager[Callable[[int, int], None] | None]]


@contextlib.contextmanager
def _no_progress(name: str, rollouts: int) -> Iterator[None]:
    yield None


@dataclass(frozen=True)
class PlannedCell:
    """One variant at one grid point, planned: its policy, the engine's plan of its Monte Carlo
    run (``run.max_steps`` and ``run.bins`` fix the histogram layout) and whether that run fits
    the budget (``simulated``)."""

    variant: str
    point: tuple[int, int, int]
    policy: Policy
    run: TargetsPlan
    simulated: bool

    @property
    def name(self) -> str:
        """The run's name in ``Study.runs`` (see :func:`run_name`)."""
        return run_name(self.variant, self.point)


def check_variants(variants: Sequence[str]) -> tuple[str, ...]:
    """Distinct names of known variants, in the order given."""
    variants = checks.distinct("variants", variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise InputError(f"variants must be names from {', '.join(VARIANTS)}; unknown: "
                         f"{', '.join(map(repr, unknown))}", "variants")
    return variants


def plan_cells(
    grid: Grid,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    rollouts: int = 50_000,
    seed: int = 0,
    budget: float = 20.0,
    backend: str = "numba",
    threads: int | None = None,
    tail: int = 4,
    policies: str = "converged",
    target: str = targets.LEAVES,
) -> list[PlannedCell]:
    """Check every parameter and plan every cell (sorted cells, variants in the given order)
    before any simulation. A cell is ``simulated`` if its plan estimates the run of ``rollouts``
    rollouts on ``threads`` threads at no more than ``budget`` seconds. ``target`` is "leaves"
    (each rollout's target drawn uniformly from the leaves, as training does) or a node name
    every cell's graph has; trained policies are trained for the same targets. Raises
    InputError naming the bad parameter."""
    variants = check_variants(variants)
    checks.whole("tail (points of an exponential fit; a line with an interval needs 3)", tail, 3)
    budget = checks.real("budget (seconds)", budget, 0.0)
    seed = checks.seed("seed", seed)
    policies = checks.choice("policies", policies, POLICY_SOURCES)
    check_grid_size(grid, variants)
    planned = []
    for point in grid.cells():
        by_variant = variant_policies(point, variants, policies, seed, threads, target)
        for variant in variants:
            policy = by_variant[variant]
            run = targets.plan(policy, target, rollouts=rollouts, seed=cell_seed(seed, run_name(variant, point)),
                               backend=backend, threads=threads, search=VARIANTS[variant].search,
                               force=True)
            planned.append(PlannedCell(variant, point, policy, run, run.estimated_seconds <= budget))
    return planned


# Planning a cell builds its graph and policies and solves each variant exactly: about this many
# seconds per transition and per variant, plus a fixed cost (grid.PLANNING_SECONDS_PER_CELL;
# measured on a 2-core machine).
PLANNING_SECONDS_PER_TRANSITION = 1e-6


def check_grid_size(grid: Grid, variants: Sequence[str]) -> None:
    """Refuse, before building anything, a grid whose largest graph exceeds the memory limit or
    whose planning alone would take over an hour."""
    sizes = {point: symmetric_size(*point) for point in grid.cells()}
    largest = max(sizes, key=lambda p: sizes[p][1])
    n_states, n_transitions = sizes[largest]
    memory.require(memory.chain_bytes(n_states, n_transitions),
                   f"grid: its largest cell W = {largest[0]}, K = {largest[1]}, L = {largest[2]} has "
                   f"{memory.format_count(n_states)} states and {memory.format_count(n_transitions)} transitions and", "grid")
    seconds = sum(len(variants) * (PLANNING_SECONDS_PER_CELL + PLANNING_SECONDS_PER_TRANSITION * t)
                  for _, t in sizes.values())
    if seconds > planning.MAX_PLANNED_SECONDS:
        raise CostError(f"grid: {len(sizes):,} cells of {len(variants)} variants would take about "
                        f"{seconds / 3600:.3g} hours just to plan (their graphs hold "
                        f"{sum(t for _, t in sizes.values()):,} transitions); choose fewer or smaller "
                        "values of W, K and L", "grid")


def study_parameters(grid: Grid, variants: Sequence[str], rollouts: int, seed: int, budget: float,
                     backend: str, threads: int | None, tail: int, policies: str = "converged",
                     target: str = targets.LEAVES) -> dict:
    """The ``Study.parameters`` of a sweep (JSON-able)."""
    return {
        "policies": policies,
        **({"training": training_settings()} if policies == "trained" else {}),
        "design": "star", "W": list(grid.W), "K": list(grid.K), "L": list(grid.L),
        "base": list(grid.base), "variants": list(variants), "rollouts": rollouts, "seed": seed,
        "budget_seconds": budget, "backend": backend, "threads": threads, "tail": tail,
        "target": target, "search_mode": "mask", "level": LEVEL,
        "exponent_tolerance": EXPONENT_TOLERANCE,
        "bounds": {name: VARIANTS[name].bound.label for name in variants},
        "notes": [DISTILLED_NOTE] if policies == "converged" else [],
    }


def assemble(planned: Sequence[PlannedCell], runs: Mapping[str, HittingTimes], grid: Grid,
             parameters: dict, tail: int = 4) -> Study:
    """The study of planned cells whose Monte Carlo runs are ``runs`` (by run name; every
    simulated cell must have one): cells with their exact values, and the fits."""
    missing = [c.name for c in planned if c.simulated and c.name not in runs]
    if missing:
        raise InputError(f"no Monte Carlo result for {', '.join(missing)}")
    cells = [Cell(c.variant, *c.point, float(c.run.exact_mean), c.name if c.simulated else "",
                  float(c.run.estimated_seconds)) for c in planned]
    kept = {c.name: runs[c.name] for c in planned if c.simulated}
    return Study(parameters, cells, fit_study(cells, kept, grid, tail), kept)


def sweep(
    grid: Grid,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    rollouts: int = 50_000,
    seed: int = 0,
    budget: float = 20.0,
    backend: str = "numba",
    threads: int | None = None,
    tail: int = 4,
    progress: ProgressFactory = _no_progress,
    policies: str = "converged",
    target: str = targets.LEAVES,
) -> Study:
    """Evaluate every variant at every cell of ``grid``: the exact expected hitting time where the
    solver applies, and ``rollouts`` Monte Carlo rollouts (targets as in :func:`plan_cells`, by
    default uniform over the leaves; seed from :func:`cell_seed`)
    where its plan estimates the run at no more than ``budget`` seconds. Every parameter is
    checked and every cell planned before any simulation. ``progress(run, rollouts)`` gives a
    context manager yielding a progress callback for one run (or None). (``edgewalk.batch`` runs
    the same study split into rollout blocks, sharded, resumable or on Dask, bit for bit equal.)
    ``policies``: "converged" (docs/model.md section 3) or "trained" (see :func:`variant_policies`)."""
    planned = plan_cells(grid, variants, rollouts, seed, budget, backend, threads, tail, policies, target)
    runs = {}
    for cell in planned:
        if cell.simulated:
            with progress(cell.name, rollouts) as update:
                runs[cell.name] = targets.execute(cell.run, update)
    threads_used = planned[0].run.threads if planned else threads
    parameters = study_parameters(grid, variants, rollouts, seed, budget, backend, threads_used, tail,
                                  policies, target)
    return assemble(planned, runs, grid, parameters, tail)


def grid_of(study: Study) -> Grid:
    p = study.parameters
    return Grid(tuple(p["W"]), tuple(p["K"]), tuple(p["L"]), tuple(p["base"]))


# --- Monte Carlo against exact --------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """One Monte Carlo mean against the exact value of its cell."""

    variant: str
    W: int
    K: int
    L: int
    mean: float
    stderr: float
    exact: float
    z: float
    censored: int
    chi2_p: float = math.nan  # the histogram against the exact law at its bin edges (nan: unknown)


def compare_with_exact(study: Study) -> list[Comparison]:
    """For every cell with Monte Carlo and an exact value: z = (mean - exact) / stderr (the means
    recomputed from each run's exact integer sums) where censoring is negligible, and the
    chi-square p-value of the histogram, the censored rollouts as one more cell, against the
    exact law where the run carries it. Where censoring is not negligible the mean over hits does
    not estimate E[T], so z is nan and the law alone judges the run."""
    found = []
    for cell in study.cells:
        result = study.mc(cell)
        if result is None or not math.isfinite(cell.exact):
            continue
        law = result.exact_mass_below
        chi2_p = (math.nan if law is None else
                  statistics.chi_square_p_value(result.counts, result.censored, law))
        censored_law = math.nan if law is None else max(0.0, 1.0 - float(law[-1]))  # P(T > max_steps)
        negligible = (censored_law * result.rollouts < 1) if law is not None else result.censored == 0
        z = statistics.z_score(result.mean, cell.exact, result.stderr) if negligible else math.nan
        found.append(Comparison(cell.variant, cell.W, cell.K, cell.L, result.mean, result.stderr,
                                cell.exact, z, result.censored, chi2_p))
    return found
