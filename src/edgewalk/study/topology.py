"""The topology study: does the separation between SFT and RLVR depend on the graph? Over a star
grid of one family's size parameters (for trees branching and depth), every cell trains SFT,
RLVR and a distilled policy on its own graph (``training.train_sft``, ``train_rlvr`` with exact
sign ascent from the pretrained logits plus ``RLVR_START_NOISE``, ``train_distill`` from that
RLVR policy; the defaults of ``training.METHODS``, but distillation's step capped by
:func:`distill_lr`),
evaluates them and the pretrained policy exactly and by Monte Carlo (SFT also inside the
no-revisit search wrapper, Monte Carlo only), and fits how each grows along each parameter, with
the headline series ``separation`` = E[T_SFT] / E[T_RLVR].

Growth fits. Along each parameter x (the others held at the base) the last ``tail`` points are
fitted twice: log T against x (exponential growth, ``rate`` = the factor per unit of x) and
log T against log x (polynomial growth, ``power`` = the exponent), by least squares, weighted by
the standard errors for Monte Carlo means, with 95% intervals from the t-distribution (as
:mod:`.fits`). ``growth`` names the better fit by R^2 of log T, or "flat" where the rate's interval
covers 1 and the power's covers 0 or the fitted values differ by less than 1%, "decreasing" where the rate's lies below 1, "" where there are
fewer than 3 points. On exact
values an interval measures only how far the points are from the fitted form.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import checks, exact, memory, planning, targets, training
from ..errors import CostError, InputError
from ..graph import FAMILIES, FAMILY_PARAMETERS, Graph, family, family_size
from ..policy import Policy, pretrained
from ..result import HittingTimes
from .fits import LEVEL, fit_line
from .grid import cell_seed
from .sweep import ProgressFactory, _no_progress

VARIANTS = ("pretrained", "sft", "sft+search", "rlvr", "distilled")
SEARCH = {"pretrained": "none", "sft": "none", "sft+search": "mask", "rlvr": "none", "distilled": "none"}
TRAINED_BY = {"sft": "sft", "sft+search": "sft", "rlvr": "rlvr", "distilled": "distill"}
SEPARATION = "separation"  # E[T_sft] / E[T_rlvr], exact
STUDY_KIND = "topology"
# RLVR starts from the pretrained logits plus this much seeded noise on the trainable entries:
# from an exactly symmetric start, exact sign ascent keeps sign(0) = 0 on every direction that
# would break a symmetry and stalls on a symmetric saddle (on the balanced tree of depth 5, 201.5
# instead of the depth-first 93, see docs/model.md section 7); Monte Carlo gradients break it by noise.
RLVR_START_NOISE = 1e-3
# Training a cell costs about this many seconds per exact solve (a target's factorisation of a
# small chain, measured on a 2-core machine) and per transition solved; planning refuses a grid
# whose trainings would take over an hour.
TRAINING_SECONDS_PER_SOLVE = 1.5e-3
TRAINING_SECONDS_PER_TRANSITION_SOLVED = 2e-7


@dataclass(frozen=True)
class FamilyGrid:
    """A star design over a family's size parameters: ``axes[p]`` are the values parameter p takes
    while the others are held at ``base[p]`` (always part of its axis); ``fixed`` holds the
    family's other arguments (the regular graph's seed)."""

    family: str
    axes: Mapping[str, tuple[int, ...]]
    base: Mapping[str, int]
    fixed: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = checks.choice("family", self.family, FAMILIES)
        parameters = FAMILY_PARAMETERS[name]
        for what, given in (("axes", self.axes), ("base", self.base)):
            if set(given) != set(parameters):
                raise InputError(f"{what}: family {name} has the parameters {', '.join(parameters)}, got "
                                 f"{', '.join(given) or 'none'}", what)
        base = {p: checks.whole(f"base: {p}", self.base[p], 1) for p in parameters}
        axes = {p: tuple(sorted({checks.whole(f"{p}: every value", v, 1) for v in self.axes[p]} | {base[p]}))
                for p in parameters}
        allowed = ("seed",) if name == "regular" else ()
        fixed = dict(self.fixed)
        if set(fixed) - set(allowed):
            raise InputError(f"fixed: family {name} takes {', '.join(allowed) or 'nothing'} besides its size", "fixed")
        object.__setattr__(self, "axes", axes)
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "fixed", fixed)

    @property
    def parameters(self) -> tuple[str, ...]:
        return FAMILY_PARAMETERS[self.family]

    def axis(self, parameter: str) -> list[tuple[int, ...]]:
        """The points along one parameter, in increasing order of it."""
        i = self.parameters.index(parameter)
        base = tuple(self.base[p] for p in self.parameters)
        return [base[:i] + (v,) + base[i + 1:] for v in self.axes[parameter]]

    def cells(self) -> list[tuple[int, ...]]:
        """Every point of the star, each once, sorted."""
        return sorted({point for p in self.parameters for point in self.axis(p)})

    def graph(self, point: Sequence[int]) -> Graph:
        return family(self.family, **dict(zip(self.parameters, point)), **self.fixed)

    def name(self, variant: str, point: Sequence[int]) -> str:
        """The run name of a variant at a point: ``sft_tree_branching2_depth3``."""
        return f"{variant}_{self.family}" + "".join(f"_{p}{v}" for p, v in zip(self.parameters, point))

    def to_json(self) -> dict:
        return {"family": self.family, "axes": {p: list(v) for p, v in self.axes.items()},
                "base": dict(self.base), "fixed": dict(self.fixed)}


@dataclass(frozen=True)
class TopologyCell:
    """One series at one point: ``exact`` the exact E[T] (targets averaged; nan for sft+search,
    which has no exact solver; for ``separation`` the ratio E[T_sft] / E[T_rlvr]), ``run`` the
    Monte Carlo run's name ("" if none), ``estimated_seconds`` its planned cost,
    ``training_seconds`` the time its policy's training took (0 if untrained) and ``z`` its Monte
    Carlo run against the exact law (:func:`edgewalk.targets.compare_with_exact`, judged when
    the policy was at hand; nan without both)."""

    variant: str
    point: tuple[int, ...]
    exact: float
    run: str
    estimated_seconds: float
    training_seconds: float
    z: float = math.nan


@dataclass(frozen=True)
class GrowthFit:
    """The growth of one series along one parameter (see the module docstring)."""

    series: str
    parameter: str
    held: str
    points: tuple[int, ...]
    source: str  # "exact" or "monte carlo"
    rate: float
    rate_ci_low: float
    rate_ci_high: float
    rate_r2: float
    power: float
    power_ci_low: float
    power_ci_high: float
    power_r2: float
    growth: str
    verdict: str

    def to_json(self) -> dict:
        record = {k: v.item() if isinstance(v, np.generic) else v for k, v in asdict(self).items()}
        record["points"] = [int(v) for v in self.points]
        return record


@dataclass(frozen=True, eq=False)
class TopologyStudy:
    """A finished topology sweep: its parameters (``kind`` "topology", the grid, target, ...),
    every cell, every growth fit and the Monte Carlo runs by name."""

    parameters: dict
    cells: list[TopologyCell]
    fits: list[GrowthFit]
    runs: dict[str, HittingTimes] = field(repr=False)

    def mc(self, cell: TopologyCell) -> HittingTimes | None:
        return self.runs.get(cell.run) if cell.run else None

    def value(self, series: str, point: tuple[int, ...]) -> float:
        """The exact value of a series at a point (nan if none)."""
        for cell in self.cells:
            if cell.variant == series and cell.point == point:
                return cell.exact
        return math.nan


def fit_growth(x: Sequence[float], y: Sequence[float], sigma: Sequence[float] | None = None
               ) -> tuple[float, float, float, float, float, float, float, float]:
    """(rate, its interval, R^2, power, its interval, R^2): log y fitted against x and against
    log x (weighted by sigma / y where standard errors are given)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    s = None if sigma is None else np.asarray(sigma, float) / y
    exponential = fit_line(x, np.log(y), s)
    polynomial = fit_line(np.log(x), np.log(y), s)
    return (math.exp(exponential.slope), math.exp(exponential.ci_low), math.exp(exponential.ci_high),
            exponential.r2, polynomial.slope, polynomial.ci_low, polynomial.ci_high, polynomial.r2)


FLAT_SPREAD = 1.01  # a series whose fitted points differ by less than 1% is flat


def _judge(series: str, parameter: str, fit: tuple[float, ...], spread: float = math.inf) -> tuple[str, str]:
    """(growth, verdict) of a fit; ``spread`` is the largest fitted value over the smallest."""
    rate, low, high, r2_rate, power, p_low, p_high, r2_power = fit
    both = (f"rate x{rate:.4g} per unit of {parameter} [{low:.4g}, {high:.4g}] (R^2 {r2_rate:.5f}); "
            f"power {parameter}^{power:.3g} [{p_low:.3g}, {p_high:.3g}] (R^2 {r2_power:.5f})")
    if math.isnan(low):
        return "", f"too few points for an interval: {both}"
    if (low <= 1 <= high and p_low <= 0 <= p_high) or spread < FLAT_SPREAD:
        return "flat", f"flat: {both}"
    if high < 1:
        return "decreasing", f"decreasing: {both}"
    kind = "exponential" if (r2_rate if not math.isnan(r2_rate) else 1) >= (r2_power if not math.isnan(r2_power) else 1) else "polynomial"
    return kind, f"{kind}: {both}"


def fit_topology(grid: FamilyGrid, cells: Sequence[TopologyCell], runs: Mapping[str, HittingTimes],
                 tail: int = 4) -> list[GrowthFit]:
    """One fit per series and parameter with at least 2 positive points: on the exact values
    where the series has them, else on the Monte Carlo means."""
    found = []
    by_key = {(c.variant, c.point): c for c in cells}
    for series in dict.fromkeys(c.variant for c in cells):
        for parameter in grid.parameters:
            i = grid.parameters.index(parameter)
            held = ", ".join(f"{p}={grid.base[p]}" for p in grid.parameters if p != parameter)
            x, y, sigma = [], [], []
            for point in grid.axis(parameter):
                cell = by_key.get((series, point))
                if cell is None:
                    continue
                if math.isfinite(cell.exact) and cell.exact > 0:
                    x.append(point[i]), y.append(cell.exact), sigma.append(None)
                elif cell.run and cell.run in runs and runs[cell.run].hits >= 2 and runs[cell.run].mean > 0:
                    x.append(point[i]), y.append(runs[cell.run].mean), sigma.append(runs[cell.run].stderr)
            exact_data = all(s is None for s in sigma)
            if not exact_data:  # mixed: use the Monte Carlo points only
                keep = [j for j, s in enumerate(sigma) if s is not None]
                x, y, sigma = [x[j] for j in keep], [y[j] for j in keep], [sigma[j] for j in keep]
            if len(x) < 2:
                continue
            n = min(tail, len(x))
            fx, fy, fs = x[-n:], y[-n:], None if exact_data else sigma[-n:]
            fit = fit_growth(fx, fy, fs)
            growth, verdict = _judge(series, parameter, fit, max(fy) / min(fy))
            found.append(GrowthFit(series, parameter, held, tuple(int(v) for v in fx),
                                   "exact" if exact_data else "monte carlo", *fit, growth, verdict))
    return found


def check_grid(grid: FamilyGrid, variants: Sequence[str]) -> None:
    """Refuse, before building anything, a grid whose largest graph exceeds the memory limit or
    whose trainings would take over an hour (estimated from its graphs' sizes; each graph's
    targets counted as its leaves)."""
    # A graph grows with each size parameter, so the largest is at the end of an axis: checked
    # before the other cells are counted (a tree's size is exponential in its depth).
    ends = {grid.axis(p)[-1] for p in grid.parameters}
    largest = max(ends, key=lambda p: family_size(grid.family, *p)[1])
    n_states, n_transitions = family_size(grid.family, *largest)
    memory.require(memory.chain_bytes(n_states, n_transitions),
                   f"grid: its largest cell {dict(zip(grid.parameters, largest))} has {memory.format_count(n_states)} states and "
                   f"{memory.format_count(n_transitions)} transitions and", "grid")
    sizes = {point: family_size(grid.family, *point) for point in grid.cells()}
    if not any(v in TRAINED_BY for v in variants):
        return
    methods = training.METHODS
    solves = methods["rlvr"].iterations + methods["sft"].iterations // 10 + methods["distill"].iterations // 10
    seconds = 0.0
    for point in sizes:
        leaves = _leaf_count(grid.family, point)
        seconds += solves * leaves * (TRAINING_SECONDS_PER_SOLVE + TRAINING_SECONDS_PER_TRANSITION_SOLVED * sizes[point][1])
    if seconds > planning.MAX_PLANNED_SECONDS:
        raise CostError(f"grid: training SFT, RLVR and distilled policies on its {len(sizes)} graphs would take "
                        f"about {seconds / 3600:.3g} hours (exact RLVR solves once per target and iteration); "
                        "choose fewer or smaller values", "grid")


def _leaf_count(name: str, point: Sequence[int]) -> int:
    """The number of default targets of a family's graph (the regular graph's is a guess: 2)."""
    if name == "path-star":
        return point[0]
    if name == "star":
        return point[0]
    if name == "tree":
        return point[0] ** point[1]
    return 1 if name == "grid" else 2


def _trained(graph: Graph, nodes: list[int] | None, needed: set[str], seed: int, threads: int | None,
             run_name: Callable[[str], str]) -> dict[str, tuple[Policy, float, float]]:
    """The trained policies a cell needs: method -> (policy, exact mean over the targets,
    seconds of training)."""
    out: dict[str, tuple[Policy, float, float]] = {}
    defaults = training.METHODS
    if "rlvr" in needed or "distill" in needed:
        began = time.perf_counter()
        rng = np.random.default_rng(cell_seed(seed, run_name("rlvr-start")))
        start = rng.normal(0.0, RLVR_START_NOISE, graph.n_transitions) * graph.trainable[graph.entry_state]
        run = training.train_rlvr(graph, record_every=defaults["rlvr"].iterations, targets=nodes, logits=start)
        out["rlvr"] = (run.policy, float(run.hitting_time[-1]), time.perf_counter() - began)
    if "sft" in needed:
        began = time.perf_counter()
        run = training.train_sft(graph, record_every=defaults["sft"].iterations, targets=nodes)
        out["sft"] = (run.policy, float(run.hitting_time[-1]), time.perf_counter() - began)
    if "distill" in needed:
        began = time.perf_counter()
        teacher = out["rlvr"][0]
        run = training.train_distill(graph, teacher, lr=distill_lr(teacher, nodes),
                                     seed=cell_seed(seed, run_name("distilled")), threads=threads,
                                     record_every=defaults["distill"].iterations, targets=nodes)
        out["distill"] = (run.policy, float(run.hitting_time[-1]), time.perf_counter() - began)
    return out


def distill_lr(teacher: Policy, nodes: list[int] | None) -> float:
    """The distillation step the study uses: the default lr (100), or 2 / max_s E[N(s)] where
    the teacher visits a state more often. Gradient descent on a row's cross-entropy is stable
    for lr N(s) < 4; a teacher that is not deterministic in a row (RLVR off the path-star often
    is not) makes lr = 100 oscillate and land on the wrong vertex."""
    chosen = teacher.graph.leaves if nodes is None else nodes
    visits = np.mean([exact.expected_visits(teacher, t) for t in chosen], axis=0)
    return float(min(training.METHODS["distill"].lr, 2.0 / max(visits.max(), 1e-300)))


def sweep_family(
    grid: FamilyGrid,
    variants: Sequence[str] = VARIANTS,
    rollouts: int = 20_000,
    seed: int = 0,
    budget: float = 10.0,
    backend: str = "numba",
    threads: int | None = None,
    tail: int = 4,
    target: str = targets.LEAVES,
    progress: ProgressFactory = _no_progress,
    announce: Callable[[str], None] | None = None,
) -> TopologyStudy:
    """Train and evaluate every variant at every point of ``grid`` (see the module docstring):
    the exact E[T] over ``target`` ("leaves" or a node every graph has) where the solver
    applies, and ``rollouts`` Monte Carlo rollouts (seed from :func:`cell_seed` of the run name)
    where the run is planned at no more than ``budget`` seconds; then the separation and the
    growth fits. Every parameter is checked, and the grid's size and training cost estimated,
    before any work. ``announce(text)`` hears of each point as it starts."""
    variants = checks.distinct("variants", variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise InputError(f"variants must be names from {', '.join(VARIANTS)}; unknown: "
                         f"{', '.join(map(repr, unknown))}", "variants")
    rollouts = checks.whole("rollouts", rollouts, 1)
    seed = checks.seed("seed", seed)
    budget = checks.real("budget (seconds)", budget, 0.0)
    tail = checks.whole("tail (points of a fit; a line with an interval needs 3)", tail, 3)
    check_grid(grid, variants)
    cells: list[TopologyCell] = []
    runs: dict[str, HittingTimes] = {}
    began = time.perf_counter()
    for point in grid.cells():
        if announce is not None:
            announce(f"{grid.family} {dict(zip(grid.parameters, point))}")
        graph = grid.graph(point)
        chosen = targets.resolve(graph, target)
        nodes = None if chosen.label == targets.LEAVES else list(chosen.nodes)
        trained = _trained(graph, nodes, {TRAINED_BY[v] for v in variants if v in TRAINED_BY}, seed, threads,
                           lambda v: grid.name(v, point))
        for variant in variants:
            if variant == "pretrained":
                policy, exact_mean, seconds = pretrained(graph), None, 0.0
            else:
                policy, exact_mean, seconds = trained[TRAINED_BY[variant]]
            name = grid.name(variant, point)
            run = targets.plan(policy, target, rollouts=rollouts, seed=cell_seed(seed, name), backend=backend,
                               threads=threads, search=SEARCH[variant], force=True)
            if exact_mean is None:
                exact_mean = targets.mean_hitting_time(policy, chosen)
            if SEARCH[variant] != "none":
                exact_mean = math.nan
            simulated = run.estimated_seconds <= budget
            z = math.nan
            if simulated:
                with progress(name, rollouts) as update:
                    runs[name] = targets.execute(run, update)
                z = targets.compare_with_exact(run, runs[name]).z
            cells.append(TopologyCell(variant, point, float(exact_mean), name if simulated else "",
                                      float(run.estimated_seconds),
                                      float(seconds) if variant in ("sft", "rlvr", "distilled") else 0.0, z))
        if "sft" in trained and "rlvr" in trained:
            ratio = trained["sft"][1] / trained["rlvr"][1]
            cells.append(TopologyCell(SEPARATION, point, float(ratio), "", 0.0, 0.0, math.nan))
    parameters = {
        "kind": STUDY_KIND, **grid.to_json(), "parameters": list(grid.parameters), "variants": list(variants),
        "target": target, "rollouts": rollouts, "seed": seed, "budget_seconds": budget, "backend": backend,
        "threads": threads, "tail": tail, "search_mode": "mask", "level": LEVEL,
        "rlvr_start_noise": RLVR_START_NOISE,
        "training": {m: {"iterations": v.iterations, "lr": v.lr, **({"rollouts": v.rollouts} if v.rollouts else {})}
                     for m, v in training.METHODS.items() if m in ("sft", "rlvr", "distill")},
        "seconds": time.perf_counter() - began,
    }
    return TopologyStudy(parameters, cells, fit_topology(grid, cells, runs, tail), runs)


def grid_of(study: TopologyStudy) -> FamilyGrid:
    p = study.parameters
    return FamilyGrid(p["family"], {k: tuple(v) for k, v in p["axes"].items()}, p["base"], p.get("fixed", {}))


@dataclass(frozen=True)
class TopologyComparison:
    """One Monte Carlo mean against the exact value its run estimates (the share-weighted mean
    over the run's targets, recorded as its exact_mean); ``z`` is the cell's (see
    :class:`TopologyCell`)."""

    variant: str
    point: tuple[int, ...]
    mean: float
    stderr: float
    exact: float
    z: float
    censored: int


def compare_with_exact(study: TopologyStudy) -> list[TopologyComparison]:
    """Every Monte Carlo run that has an exact value, with the z the sweep judged it by."""
    found = []
    for cell in study.cells:
        result = study.mc(cell)
        if result is None or math.isnan(cell.z):
            continue
        reference = float(result.parameters.get("exact_mean", math.nan))
        found.append(TopologyComparison(cell.variant, cell.point, result.mean, result.stderr, reference,
                                        cell.z, result.censored))
    return found



# --------------------------------------------------------------------------- sweep files

FAMILY_FILE_KEYS = ("family", "grid", "variants", "target", "rollouts", "seed", "budget", "tail", "output",
                    "backend", "threads", "plots")


@dataclass(frozen=True)
class FamilySweep:
    """A topology sweep described by a sweep file (``family = "..."``; see docs/cluster.md)::

        family = "tree"
        variants = ["pretrained", "sft", "sft+search", "rlvr", "distilled"]
        target = "leaves"
        rollouts = 20000
        seed = 0
        budget = 10.0
        tail = 4
        output = "edgewalk-study.h5"
        backend = "numba"
        threads = 2
        plots = "plots"
        [grid]                  # the family's size parameters, lists or ranges, and base
        branching = "2-4"
        depth = [1, 2, 3, 4, 5]
        base = [2, 4]
        seed = 0                # regular graphs only: the graphs' seed
    """

    grid: FamilyGrid
    variants: tuple[str, ...] = VARIANTS
    target: str = targets.LEAVES
    rollouts: int = 20_000
    seed: int = 0
    budget: float = 10.0
    tail: int = 4
    output: str = "edgewalk-study.h5"
    backend: str = "numba"
    threads: int | None = None
    plots: str | None = None


def family_sweep_from_mapping(data: Mapping, source: str = "sweep file") -> FamilySweep:
    """Check a parsed sweep file with a ``family`` key. Raises InputError naming ``source`` and
    the offending key, with what is allowed, before any work."""
    try:
        return _family_sweep(data)
    except InputError as error:
        raise type(error)(f"{source}: {error}") from None


def _family_sweep(data: Mapping) -> FamilySweep:
    from .. import kernels
    from .grid import parse_list

    unknown = sorted(set(data) - set(FAMILY_FILE_KEYS))
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(unknown)}; a family sweep file allows {', '.join(FAMILY_FILE_KEYS)} "
                         "(shards, Dask and block_rollouts are for the path-star study)")
    name = checks.choice("family", data["family"], FAMILIES)
    parameters = FAMILY_PARAMETERS[name]
    grid_data = data.get("grid")
    allowed = (*parameters, "base", *(("seed",) if name == "regular" else ()))
    if not isinstance(grid_data, Mapping) or set(grid_data) - set(allowed) or not {*parameters, "base"} <= set(grid_data):
        raise InputError(f"[grid] needs the keys {', '.join((*parameters, 'base'))} of family {name}"
                         + (" (and may give seed)" if name == "regular" else ""))
    axes = {}
    for p in parameters:
        value = grid_data[p]
        if isinstance(value, str):
            axes[p] = parse_list(value, f"grid.{p}")
        elif isinstance(value, list) and value:
            axes[p] = tuple(checks.whole(f"grid.{p}", v, 1) for v in value)
        else:
            raise InputError(f"grid.{p} must be a non-empty list of whole numbers or a string like \"1-6\", got {value!r}")
    base = grid_data["base"]
    if not (isinstance(base, list) and len(base) == len(parameters)):
        raise InputError(f"grid.base must be a list of {len(parameters)} whole numbers {parameters}, got {base!r}")
    fixed = {"seed": checks.seed("grid.seed", grid_data.get("seed", 0))} if name == "regular" else {}
    grid = FamilyGrid(name, axes, dict(zip(parameters, (checks.whole("grid.base", v, 1) for v in base))), fixed)
    variants = data.get("variants", list(VARIANTS))
    if not isinstance(variants, list) or any(v not in VARIANTS for v in variants):
        raise InputError(f"variants must be a list of names from {', '.join(VARIANTS)}, got {variants!r}")
    strings = {}
    for key, default in (("output", "edgewalk-study.h5"), ("backend", "numba"), ("plots", None),
                         ("target", targets.LEAVES)):
        value = data.get(key, default)
        if value is not None and not (isinstance(value, str) and value):
            raise InputError(f"{key} must be a non-empty string, got {value!r}")
        strings[key] = value
    threads = data.get("threads")
    variants = tuple(checks.distinct("variants", variants))
    check_grid(grid, variants)
    return FamilySweep(
        grid=grid, variants=variants, target=strings["target"],
        rollouts=checks.whole("rollouts", data.get("rollouts", 20_000), 1),
        seed=checks.seed("seed", data.get("seed", 0)),
        budget=checks.real("budget (seconds)", data.get("budget", 10.0), 0.0),
        tail=checks.whole("tail", data.get("tail", 4), 3), output=strings["output"],
        backend=checks.choice("backend", strings["backend"], kernels.BACKENDS),
        threads=None if threads is None else kernels.check_threads(threads), plots=strings["plots"])
