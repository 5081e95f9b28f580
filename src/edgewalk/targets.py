"""Targets: one node, or a distribution over nodes (uniform over the graph's leaves by default),
the one convention ``run``, ``exact``, ``train`` and the study share (docs/model.md section 7).

With several targets a rollout's target is drawn from the distribution and ``E[T]`` is the
average of the per-target expected hitting times. A Monte Carlo run over several targets is one
sub-run per target with its share of the rollouts, each on its own disjoint range of the seed's
rollout streams and all with the same histogram edges; their results add up
(``HittingTimes.__add__``). The shares differ by at most one rollout, and the exact value the
run estimates is the share-weighted mean (the plain average when ``rollouts`` is a multiple of
the number of targets). The kernels are unchanged: with one target a :class:`TargetsPlan` is
exactly the :class:`RunPlan` of :func:`planning.plan`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Union

import numpy as np

from . import checks, engine, exact, leap, planning, statistics
from .engine import PLANNING_STEPS_PER_SECOND, Progress, RunPlan
from .errors import CostError, InputError
from .graph import START_STATE, Graph, PathStar
from .policy import Policy
from .result import HittingTimes

LEAVES = "leaves"
NODE_PREFIX = "node:"
TargetSpec = Union[str, int, Sequence[Union[str, int]], None]


@dataclass(frozen=True)
class Targets:
    """Target nodes, drawn uniformly, and how to say which: ``label`` is "leaves" for the graph's
    default targets, else the node names joined by commas."""

    nodes: tuple[int, ...]
    label: str
    names: tuple[str, ...]

    def describe(self) -> str:
        """What a command prints: "leaves (uniform over t1, t2, t3)" or "t1"."""
        if len(self.nodes) == 1 and self.label != LEAVES:
            return self.label
        shown = ", ".join(self.names[:6]) + (f", ... ({len(self.names)} nodes)" if len(self.names) > 6 else "")
        return f"{self.label} (uniform over {shown})"


def resolve(graph: Graph, target: TargetSpec = None) -> Targets:
    """The targets ``target`` names: None or "leaves" (the graph's default targets, its leaves),
    a node name or index, or a sequence of them (uniform); "node:NAME" is the node NAME, whatever
    NAME is (for a graph with a node called "leaves"). Every node must be one some state enters
    (the source is not)."""
    if isinstance(target, str) and target.startswith(NODE_PREFIX):
        target = (target[len(NODE_PREFIX):],)
    if target is None or (isinstance(target, str) and target.strip() == LEAVES):
        if target is not None and LEAVES in graph.node_names:
            raise InputError(f"target: '{LEAVES}' is both this graph's leaves and one of its nodes; give "
                             f"'{NODE_PREFIX}{LEAVES}' for the node, or name the leaves", "target")
        nodes, label = tuple(graph.leaves), LEAVES
        if not nodes:
            raise InputError("target: this graph has no leaves; give a node name", "target")
    elif isinstance(target, (str, int, np.integer)) and not isinstance(target, bool):
        nodes, label = (_node(graph, target),), None
    elif isinstance(target, Sequence):
        nodes, label = tuple(_node(graph, t) for t in target), None
        checks.distinct("target", [graph.node_names[v] for v in nodes])  # "t1" and "t_1" are one node
    else:
        raise InputError(f"target must be 'leaves', a node name or a list of node names, got {target!r}", "target")
    names = tuple(graph.node_names[v] for v in nodes)
    return Targets(nodes, label or ",".join(_label(n) for n in names), names)


def _label(name: str) -> str:
    """How a target list names a node so that :func:`resolve` reads it back as that node."""
    return NODE_PREFIX + name if name == LEAVES or name.startswith(NODE_PREFIX) else name


def _node(graph: Graph, target: str | int) -> int:
    node = graph.node(target) if isinstance(target, str) else target
    node = checks.whole("target", node, 0, graph.n_nodes - 1)
    if not graph.target_states(node).any():
        raise InputError(f"target: node {graph.node_names[node]} can never be entered", "target")
    return node


def interchangeable(policy: Policy, nodes: Sequence[int]) -> bool:
    """Whether the hitting times of ``nodes`` share one law because a symmetry of the chain maps
    each to the others: the nodes are leaves of a symmetric path-star and the policy treats every
    branch alike (each branch's rows, numbered branch by branch, hold the same probabilities, and
    the rows that choose a branch, the start's and the fork's, are uniform). Then one target's
    exact values and plan serve all of them, which on W = 100 branches saves 99 solves."""
    graph = policy.graph
    if len(nodes) < 2 or not isinstance(graph, PathStar) or not graph.is_symmetric:
        return False
    if not set(nodes) <= set(graph.leaves):
        return False
    p, row_start, next_state = policy.probabilities, graph.row_start, graph.next_state
    entries = next_state[row_start[0]:row_start[1]]  # the first state of every branch
    size = (graph.n_states - 1) // graph.branches
    if len(entries) != graph.branches or np.any(np.diff(entries) != size):
        return False
    choosing = np.flatnonzero(np.diff(row_start) == len(entries))
    choosing = [s for s in choosing if np.array_equal(next_state[row_start[s]:row_start[s + 1]], entries)]
    for s in [0, *choosing]:
        row = p[row_start[s]:row_start[s + 1]]
        if np.any(row != row[0]):
            return False
    first = p[row_start[1]:row_start[1 + size]]
    return all(np.array_equal(first, p[row_start[1 + b * size]:row_start[1 + (b + 1) * size]])
               for b in range(1, graph.branches))


def solutions(policy: Policy, nodes: Sequence[int]) -> list[exact.Solution]:
    """The exact solution of each target in ``nodes``: one solve shared by all of them where
    they are :func:`interchangeable` (the list then holds the same object throughout)."""
    if interchangeable(policy, nodes):
        return [exact.solve(policy, nodes[0])] * len(nodes)
    return [exact.solve(policy, t) for t in nodes]


def mean_hitting_time(policy: Policy, targets: Targets) -> float:
    """The exact E[T] with the target drawn uniformly from ``targets``: the average of the
    per-target expected hitting times (inf if one of them is), from :func:`solutions`."""
    return float(np.mean([s.values[START_STATE] for s in solutions(policy, targets.nodes)]))


def shares(rollouts: int, count: int) -> list[int]:
    """Rollouts per target: ``rollouts // count``, one more for the first ``rollouts % count``."""
    base, extra = divmod(rollouts, count)
    return [base + (i < extra) for i in range(count)]


@dataclass(frozen=True, eq=False)
class TargetsPlan:
    """A checked run over a target distribution: ``plans[i]`` is the sub-run of target i, on
    rollouts ``plans[i].first_rollout ..`` (consecutive, disjoint ranges covering
    ``first_rollout .. first_rollout + rollouts - 1``), all with the same ``max_steps`` and
    histogram edges. It offers what the study and the batch runner read of a :class:`RunPlan`
    (``part``, ``on``, ``describe``, the cost estimate); :func:`execute` runs it."""

    plans: tuple[RunPlan, ...] = field(repr=False)
    targets: Targets
    first_rollout: int
    rollouts: int

    def _common(self) -> RunPlan:
        return self.plans[0]

    policy = property(lambda self: self._common().policy)
    seed = property(lambda self: self._common().seed)
    max_steps = property(lambda self: self._common().max_steps)
    edges = property(lambda self: self._common().edges)
    bins = property(lambda self: self._common().bins)
    bin_width = property(lambda self: self._common().bin_width)
    backend = property(lambda self: self._common().backend)
    threads = property(lambda self: self._common().threads)
    search = property(lambda self: self._common().search)
    target_name = property(lambda self: self.targets.label)

    @property
    def exact_mean(self) -> float:
        """The exact mean this run estimates: the share-weighted mean of its sub-runs' exact
        means (nan under the search wrapper)."""
        return _weighted([p.exact_mean for p in self.plans], [p.rollouts for p in self.plans])

    @property
    def expected_steps(self) -> float:
        return _weighted([p.expected_steps for p in self.plans], [p.rollouts for p in self.plans])

    @property
    def estimated_steps(self) -> float:
        return sum(p.estimated_steps for p in self.plans)

    @property
    def estimated_seconds(self) -> float:
        return sum(p.estimated_seconds for p in self.plans)

    def part(self, first: int, count: int) -> "TargetsPlan":
        """The same run restricted to rollouts ``first_rollout + first`` ..
        ``first_rollout + first + count - 1`` (each sub-run cut to its overlap with them)."""
        low = self.first_rollout + first
        high = low + count
        parts = []
        for p in self.plans:
            start, end = max(low, p.first_rollout), min(high, p.first_rollout + p.rollouts)
            if start < end:
                parts.append(p.part(start - p.first_rollout, end - start))
        return replace(self, plans=tuple(parts), first_rollout=low, rollouts=count)

    def on(self, backend: str, threads: int) -> "TargetsPlan":
        """The same run on another backend or thread count (the same result, bit for bit)."""
        return replace(self, plans=tuple(p.on(backend, threads) for p in self.plans))

    def describe(self) -> dict[str, object]:
        """The run's parameters: those of its sub-runs, with the target distribution."""
        described = self._common().describe()
        described.update(target=self.targets.label, first_rollout=self.first_rollout,
                         rollouts=self.rollouts, exact_mean=self.exact_mean)
        if self.targets.label == LEAVES or len(self.targets.nodes) > 1:
            names = {p.target: p.target_name for p in self.plans}
            described.update(targets=[names[p.target] for p in self.plans],
                             target_rollouts=[p.rollouts for p in self.plans],
                             target_exact_means=[p.exact_mean for p in self.plans])
        return described


def _weighted(values: Sequence[float], weights: Sequence[int]) -> float:
    total = sum(weights)
    if any(math.isnan(v) for v in values):
        return math.nan
    if any(math.isinf(v) for v, w in zip(values, weights) if w):
        return math.inf
    return float(sum(v * w for v, w in zip(values, weights) if w) / total) if total else math.nan


def plan(policy: Policy, target: TargetSpec = None, *, rollouts: int = 100_000, seed: int = 0,
         max_steps: int | None = None, bins: int | None = None, first_rollout: int = 0,
         force: bool = False, **options) -> TargetsPlan:
    """Check a run over the targets ``target`` names (see :func:`resolve`; default the leaves)
    and plan one sub-run per target (see :func:`planning.plan` for the options; with fewer
    rollouts than targets the last targets get none and the run estimates the mean over the
    others). ``max_steps``
    defaults to the largest of the targets' defaults, so every sub-run has the same histogram
    edges. Raises CostError for a run estimated at over an hour in all unless ``force``."""
    targets = resolve(policy.graph, target)
    rollouts = checks.whole("rollouts", rollouts, 1)
    first_rollout = checks.whole("first_rollout", first_rollout, 0, planning.MAX_STEPS)
    counts = shares(rollouts, len(targets.nodes))
    starts = first_rollout + np.concatenate(([0], np.cumsum(counts)[:-1]))
    if interchangeable(policy, targets.nodes):
        # one target's plan (its exact law, bins and leap tables) serves every target
        first = planning.plan(policy, targets.nodes[0], rollouts=counts[0], seed=seed, max_steps=max_steps,
                              bins=bins, first_rollout=int(starts[0]), force=True, **options)
        # the tables are built once: the other sub-runs cost only their rollouts
        build = (0.0 if first.leap_tables is None else
                 leap.estimated_seconds(first.leap_tables.lumped.n_transient, first.max_steps, 0, first.threads,
                                        first.exact_mean))
        per_rollout = (first.estimated_seconds - build) / first.rollouts
        plans = [first] + [replace(first, target=t, target_name=policy.graph.node_names[t], rollouts=n,
                                   first_rollout=int(s), estimated_seconds=per_rollout * n)
                           for t, n, s in zip(targets.nodes[1:], counts[1:], starts[1:]) if n > 0]
    else:
        plans = [planning.plan(policy, t, rollouts=n, seed=seed, max_steps=max_steps, bins=bins,
                               first_rollout=int(s), force=True, **options)
                 for t, n, s in zip(targets.nodes, counts, starts) if n > 0]
    common = max(p.max_steps for p in plans)
    if max_steps is None and any(p.max_steps != common for p in plans):
        plans = [p if p.max_steps == common else
                 planning.plan(policy, p.target, rollouts=p.rollouts, seed=seed, max_steps=common,
                               bins=bins, first_rollout=p.first_rollout, force=True, **options)
                 for p in plans]
    if any(not np.array_equal(p.edges, plans[0].edges) for p in plans):
        # the targets' laws chose different bins (log-spaced for some): give every sub-run the
        # finest, so their histograms add up
        finest = max(plans, key=lambda p: p.bins).edges
        plans = [p if np.array_equal(p.edges, finest) else
                 planning.plan(policy, p.target, rollouts=p.rollouts, seed=seed, max_steps=p.max_steps,
                               edges=finest, first_rollout=p.first_rollout, force=True, **options)
                 for p in plans]
    planned = TargetsPlan(tuple(plans), targets, first_rollout, rollouts)
    if planned.estimated_seconds > planning.MAX_PLANNED_SECONDS and not force:
        raise CostError(
            f"this run needs about {planned.estimated_steps:.3g} steps (~{planned.estimated_seconds / 3600:.3g} "
            f"hours on {planned.threads} threads at {PLANNING_STEPS_PER_SECOND:.0e} steps/s each); the exact "
            f"expected hitting time is {planned.exact_mean:.6g} (`edgewalk exact`). Fewer rollouts or a "
            "smaller graph will do, or force it (force=True, --force).")
    return planned


def execute(run: TargetsPlan | RunPlan, progress: Progress | None = None) -> HittingTimes:
    """Run every sub-run and add the results; ``progress(done, steps)`` counts over the whole
    run. The parameters are :meth:`TargetsPlan.describe`'s."""
    if isinstance(run, RunPlan):
        return engine.execute(run, progress)
    total: HittingTimes | None = None
    done = steps = 0
    for sub in run.plans:
        def forward(n: int, s: int, done: int = done, steps: int = steps) -> None:
            if progress is not None:
                progress(done + n, steps + s)
        result = engine.execute(sub, forward)
        done, steps = done + result.rollouts, steps + result.steps
        total = result if total is None else total + result
        total = replace(total, compile_seconds=max(total.compile_seconds, result.compile_seconds))
    return replace(total, parameters=run.describe(), exact_mass_below=mixture_mass_below(run))


def simulate(policy: Policy, target: TargetSpec = None, *, progress: Progress | None = None,
             **options) -> HittingTimes:
    """Plan (see :func:`plan`) and execute a run over a target distribution."""
    return execute(plan(policy, target, **options), progress)


def compare_with_exact(run: TargetsPlan, result: HittingTimes) -> planning.ExactComparison:
    """:func:`planning.compare_with_exact` for a run over several targets: where censoring is
    negligible the reference is the share-weighted exact mean, otherwise the mixture's
    E[T | T <= max_steps] from each target's censored law; the histogram is compared with the
    mixture of the targets' exact laws at its bin edges. A run in which every rollout hit after
    the same time t0 has no sample variance, so no z-score: it is judged by the exact probability
    p that every rollout takes t0 (the product of P_x(T = t0) over the rollouts), and reported as
    the two-sided z of that p (0 when p = 1; reference "all_equal")."""
    uniform = _all_equal(run, result)
    if uniform is not None:
        return uniform
    if len(run.plans) == 1:
        return planning.compare_with_exact(run.plans[0], result)
    fraction = result.censored / result.rollouts if result.rollouts else math.nan
    mass_below = mixture_mass_below(run)
    chi2_p = (math.nan if mass_below is None else
              statistics.chi_square_p_value(result.counts, result.censored, mass_below))
    if run.search != "none":
        return planning.ExactComparison("", math.nan, math.nan, chi2_p, fraction, math.nan,
                                        "no exact solver under the search wrapper")
    weights = np.array([p.rollouts for p in run.plans], float) / run.rollouts
    laws = [planning.censored_law(p) for p in run.plans]
    q = float(sum(w * law[0] for w, law in zip(weights, laws)))
    mean_given_hit = math.nan
    hit = [w * (1 - law[0]) for w, law in zip(weights, laws)]
    if not math.isnan(q) and sum(hit) > 0:
        mean_given_hit = float(sum(h * law[1] for h, law in zip(hit, laws) if h > 0) / sum(hit))
    if result.hits == 0:
        return planning.ExactComparison("", math.nan, math.nan, chi2_p, fraction, q,
                                        f"every rollout was censored at max_steps = {run.max_steps}")
    negligible = (q * result.rollouts < 1) if not math.isnan(q) else result.censored == 0
    if negligible and math.isfinite(run.exact_mean):
        return planning.ExactComparison("exact_mean", run.exact_mean,
                                        statistics.z_score(result.mean, run.exact_mean, result.stderr),
                                        chi2_p, fraction, q, "")
    if math.isnan(mean_given_hit):
        return planning.ExactComparison("", math.nan, math.nan, chi2_p, fraction, q,
                                        f"{result.censored} rollouts were censored and the exact law at "
                                        f"max_steps = {run.max_steps} is too costly, or too inexact, to compute here")
    return planning.ExactComparison(
        "exact_mean_given_hit", mean_given_hit, statistics.z_score(result.mean, mean_given_hit, result.stderr),
        chi2_p, fraction, q,
        f"censoring is not negligible ({result.censored} of {result.rollouts} rollouts censored at "
        f"max_steps = {run.max_steps}): the mean over hits is compared with E[T | T <= max_steps] = "
        f"{mean_given_hit:.6g}")


def mixture_mass_below(run: TargetsPlan) -> np.ndarray | None:
    """P(T < edge) at the run's bin edges for the target drawn as the run draws it (the
    share-weighted mixture of its sub-runs' exact laws), or None if one of them is unknown."""
    if any(p.exact_mass_below is None for p in run.plans):
        return None
    return sum(p.rollouts * p.exact_mass_below for p in run.plans) / run.rollouts


ALL_EQUAL_COST = 2e8  # most multiply-adds spent on P(T = t0) of a run without sample variance


def _all_equal(run: TargetsPlan, result: HittingTimes) -> planning.ExactComparison | None:
    """The comparison of a run whose hits all took the same time (see compare_with_exact), or
    None if the run has sample variance, censored rollouts, or t0 is too costly to propagate to."""
    if (run.search != "none" or result.censored or result.hits < 2
            or result.total_of_squares * result.hits != result.total * result.total):
        return None
    t0 = result.total // result.hits
    if len(run.plans) * exact.propagation_cost(run.policy, t0) > ALL_EQUAL_COST:
        return None
    from scipy import stats

    log_p = 0.0
    for p in run.plans:
        probability = float(exact.hitting_time_pmf(run.policy, p.target, t0)[t0])
        log_p += p.rollouts * math.log(probability) if probability > 0 else -math.inf
    p_value = math.exp(log_p)
    z = float(stats.norm.isf(p_value / 2)) if p_value > 0 else math.inf
    return planning.ExactComparison(
        "all_equal", float(t0), max(z, 0.0), math.nan, 0.0, math.nan,
        f"every rollout took T = {t0} (no sample variance); the exact law gives that with probability "
        f"{p_value:.3g}")
