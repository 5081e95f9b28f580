"""Planning: every run is validated, given its defaults and costed here, once, before any work;
the engine then executes the plan. The cost refusal lives here and nowhere else.

``simulate`` and ``gradient_statistics`` are the one-call conveniences: plan, then execute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import checks, engine, exact, kernels, leap, lumping, memory, statistics
from .engine import PLANNING_STEPS_PER_SECOND, GradientPlan, Progress, RunPlan
from .errors import CostError, InputError, SizeError
from .policy import Policy
from .result import GradientStatistics, HittingTimes, regular_edges

DEFAULT_BINS = 4096
MAX_STEPS = 2**62
MAX_PLANNED_SECONDS = 3600.0  # a run estimated to take longer is refused unless forced
METHODS = ("auto", "step", "leap")
# "auto" leaps where the lumped chain has at most this many transient blocks: their powers then
# take seconds at most (about 3 s and 100 MB for 400 blocks up to 2**40 steps).
AUTO_LEAP_BLOCKS = 512


def resolve_target(policy: Policy, target: int | str | None) -> int:
    """The node index of ``target`` (a node index or name; default the first leaf), checked to be
    a node some state enters."""
    graph = policy.graph
    if target is None:
        target = graph.leaves[0]
    elif isinstance(target, str):
        target = graph.node(target)
    target = checks.whole("target", target, 0, graph.n_nodes - 1)
    if not graph.target_states(target).any():
        raise InputError(f"target: node {graph.node_names[target]} can never be entered")
    return target


def plan(
    policy: Policy,
    target: int | str | None = None,
    *,
    rollouts: int = 100_000,
    seed: int = 0,
    max_steps: int | None = None,
    bins: int | None = None,
    backend: str = "numba",
    threads: int | None = None,
    search: str = "none",
    first_rollout: int = 0,
    force: bool = False,
    method: str = "auto",
    edges: np.ndarray | None = None,
) -> RunPlan:
    """Check a run's parameters, fill in its defaults and estimate its cost.

    ``method``: "step" walks every transition; "leap" draws each rollout's hitting time from its
    exact law by binary lifting over the lumped chain (:mod:`edgewalk.leap`), at a cost that
    grows like log T; "auto" leaps wherever there is no search wrapper (not a Markov chain on
    states) and the lumped chain has at most AUTO_LEAP_BLOCKS blocks. Leap and step runs of the
    same seed draw different rollouts of the same law.

    ``target`` defaults to the first leaf (t1). ``max_steps`` defaults to 50 times the exact
    expected hitting time (at least 1000, at most 2**62), so censoring is negligible, or under
    the search wrapper to 2 * n_states, which it never reaches. ``bins`` defaults to
    min(max_steps + 1, 4096) bins of equal integer width covering [0, max_steps], or for leap
    runs to log-spaced bins where the law spans several decades (``leap.suggest_edges``).
    ``edges`` (instead of ``bins``) gives the histogram's integer bin edges outright: strictly
    increasing from 0, the last beyond max_steps. ``first_rollout`` starts the run at that
    rollout of the seed's sequence (parts of a run add up to the whole). Raises InputError naming
    a bad parameter, SizeError for a problem too big for memory, and CostError for a run
    estimated to take over an hour unless ``force``."""
    target = resolve_target(policy, target)
    rollouts = checks.whole("rollouts", rollouts, 1)
    seed = checks.seed("seed", seed)
    backend = checks.choice("backend", backend, kernels.BACKENDS)
    search = checks.choice("search", search, kernels.SEARCH_MODES)
    threads = kernels.check_threads(threads)
    first_rollout = checks.whole("first_rollout", first_rollout, 0, MAX_STEPS)
    method = checks.choice("method", method, METHODS)
    if method == "leap" and search != "none":
        raise InputError("method: leap cannot run the search wrapper (a rollout under it depends on "
                         "every state it entered, not on its state alone); use --method step")
    if search == "none":
        exact_mean = exact.expected_hitting_time(policy, target)
        expected_steps = exact_mean
        if max_steps is None and not math.isfinite(exact_mean):
            raise InputError("max_steps: the target is not hit surely, so give max_steps >= 1")
        default_max_steps = (min(MAX_STEPS, max(1000, 50 * math.ceil(exact_mean)))
                             if math.isfinite(exact_mean) else 0)
    else:
        # The wrapper enters each state at most once and leaves it by a pop at most once.
        exact_mean = math.nan
        expected_steps = default_max_steps = 2 * policy.graph.n_states
    max_steps = checks.whole("max_steps", default_max_steps if max_steps is None else max_steps,
                             1, MAX_STEPS)
    if bins is not None:
        bins = checks.whole("bins", bins, 1)
    lumped = None if search != "none" else lumping.lump(policy, target)
    small = lumped is not None and lumped.n_transient <= AUTO_LEAP_BLOCKS
    tables = None
    if lumped is not None and (method == "leap" or (method == "auto" and small)):
        tables = _leap_tables(lumped, max_steps, method)
    if edges is not None:
        if bins is not None:
            raise InputError("bins and edges: give one of them")
        edges = leap.check_edges(edges, max_steps)
    elif tables is not None and bins is None:
        edges = leap.suggest_edges(tables, max_steps)
    else:
        asked = DEFAULT_BINS if bins is None else bins
        bins = min(max_steps + 1, asked)
        width = -(-(max_steps + 1) // bins)
        bins = -(-(max_steps + 1) // width)
        memory.require(8.0 * (threads + 5) * bins, f"bins = {asked:,} ({bins:,} bins of whole width {width:,} over "
                       f"[0, max_steps = {max_steps:,}]) on {threads} threads", "bins")
        edges = regular_edges(bins, width)
    if search != "none":
        n = policy.graph.n_states
        memory.require(threads * (n / 8 + 4 * (n + 1)), f"the search wrapper's scratch for {n:,} states")
    elif tables is None:
        memory.require(kernels.per_thread_bytes(policy.graph.n_transitions, threads),
                       f"the alias tables of {policy.graph.n_transitions:,} transitions on {threads} threads")
    if tables is not None:
        seconds = leap.estimated_seconds(tables.lumped.n_transient, max_steps, rollouts, threads, exact_mean)
    else:
        seconds = rollouts * min(expected_steps, max_steps) / (PLANNING_STEPS_PER_SECOND * threads)
    # the exact law at the bin edges, from the lumped chain's powers where it is small
    law = tables if tables is not None else lumped if small else None
    mass_below = None if law is None else np.concatenate(([0.0], leap.cdf(law, np.minimum(edges[1:] - 1, max_steps))))
    run = RunPlan(policy, target, policy.graph.node_names[target], rollouts, first_rollout, seed,
                  max_steps, edges, backend, threads, search, exact_mean, expected_steps,
                  "leap" if tables is not None else "step", tables, mass_below, seconds)
    _refuse_if_too_slow(run.estimated_steps, run.estimated_seconds, threads, exact_mean, force)
    return run


def _leap_tables(lumped: lumping.LumpedChain, max_steps: int, method: str) -> leap.LeapTables | None:
    """The leap tables of a run, or None where "auto" prefers the step method because the
    tables would not fit in memory."""
    try:
        return leap.build_tables(lumped, max_steps)
    except SizeError:
        if method == "auto":
            return None
        raise


def _refuse_if_too_slow(steps: float, seconds: float, threads: int, exact_mean: float,
                        force: bool) -> None:
    if seconds > MAX_PLANNED_SECONDS and not force:
        raise CostError(
            f"this run needs about {steps:.3g} steps (~{seconds / 3600:.3g} hours on {threads} "
            f"threads, estimated at a deliberately low speed); the exact expected hitting time is "
            f"{exact_mean:.6g} (edgewalk.exact.expected_hitting_time, or `edgewalk exact`). Fewer "
            "rollouts, a smaller graph or the leap method (--method leap) will do, or force it "
            "(force=True, --force)."
        )


def simulate(policy: Policy, target: int | str | None = None, *, progress: Progress | None = None,
             **options) -> HittingTimes:
    """Plan a run (see :func:`plan` for the options and defaults) and execute it: ``rollouts``
    independent rollouts from the start state until ``target`` is entered or ``max_steps``
    transitions are made. ``search`` = "mask" or "reject" wraps the policy in the no-revisit
    search wrapper (docs/model.md section 6); the result then counts policy draws apart from
    steps. The result depends only on the parameters and ``seed``, not on backend, thread count
    or progress reporting; ``progress(done, steps)`` is called after each chunk."""
    return engine.execute(plan(policy, target, **options), progress)


def plan_gradient(
    policy: Policy,
    targets: Sequence[int | str] | None = None,
    *,
    rollouts: int = 100_000,
    seed: int = 0,
    max_steps: int | None = None,
    backend: str = "numba",
    threads: int | None = None,
    force: bool = False,
    expected_steps: float | None = None,
) -> GradientPlan:
    """Check a run of the policy-gradient statistics kernel. ``targets`` defaults to every leaf
    (the training distribution); rollout r aims at targets[r % len(targets)]. ``max_steps``
    defaults to the largest of the targets' defaults in :func:`plan`. ``expected_steps``, the
    mean hitting time over the targets, is solved for unless given (a training loop has it)."""
    targets = tuple(resolve_target(policy, t) for t in (policy.graph.leaves if targets is None else targets))
    if not targets:
        raise InputError("targets must name at least one node")
    rollouts = checks.whole("rollouts", rollouts, 1)
    seed = checks.seed("seed", seed)
    backend = checks.choice("backend", backend, kernels.BACKENDS)
    threads = kernels.check_threads(threads)
    if expected_steps is None or max_steps is None:
        means = [exact.expected_hitting_time(policy, t) for t in targets]
        if max_steps is None and not all(math.isfinite(m) for m in means):
            raise InputError("max_steps: a target is not hit surely, so give max_steps >= 1")
        if max_steps is None:
            max_steps = max(max(1000, 50 * math.ceil(m)) for m in means)
        if expected_steps is None:
            expected_steps = float(np.mean(means))
    max_steps = checks.whole("max_steps", max_steps, 1, MAX_STEPS)
    expected_steps = float(expected_steps)
    slots = 2 * policy.graph.n_transitions
    buffer = min(max_steps, engine.GRADIENT_BUFFER_STEPS)
    memory.require(threads * (44.0 * slots + 4.0 * kernels.GRADIENT_LANES * buffer) + 16.0 * slots
                   + kernels.per_thread_bytes(policy.graph.n_transitions, threads),
                   f"the gradient statistics of {policy.graph.n_transitions:,} transitions on {threads} threads")
    steps = rollouts * min(expected_steps, max_steps)
    _refuse_if_too_slow(steps, steps / (PLANNING_STEPS_PER_SECOND * threads), threads,
                        expected_steps, force)
    return GradientPlan(policy, targets, rollouts, seed, max_steps, backend, threads, expected_steps)


def gradient_statistics(policy: Policy, targets: Sequence[int | str] | None = None, *,
                        progress: Progress | None = None, **options) -> GradientStatistics:
    """Plan (see :func:`plan_gradient`) and run the policy-gradient statistics kernel."""
    return engine.execute_gradient(plan_gradient(policy, targets, **options), progress)


CENSORED_LAW_COST = 2e8  # most multiply-adds spent on the exact law of a censored step run


@dataclass(frozen=True)
class ExactComparison:
    """A run's Monte Carlo results against the exact law. Where censoring is negligible (fewer
    than one censored rollout expected) the mean is compared with the exact mean; otherwise the
    mean over hits estimates E[T | T <= max_steps], which the exact censored law gives. The
    histogram is compared with the exact law at its bin edges (``chi2_p``) where that is known.
    ``z`` and ``chi2_p`` are nan where there is nothing exact to compare with; ``note`` says why."""

    reference: str  # "exact_mean", "exact_mean_given_hit" or "" (none)
    exact: float  # the reference value, nan if none
    z: float
    chi2_p: float
    censored_fraction: float
    exact_censored_fraction: float  # P(T > max_steps), nan where not computed
    note: str


def censored_law(plan: RunPlan) -> tuple[float, float]:
    """(P(T > max_steps), E[T | T <= max_steps]) of the plan's run, exact: from the leap tables'
    powers where the plan has them, else by propagation where that is cheap, else (nan, nan)."""
    m = plan.max_steps
    if plan.leap_tables is not None:
        q = 1.0 - float(leap.cdf(plan.leap_tables, m))
        truncated = leap.truncated_mean(plan.leap_tables, m)
        hit_part = truncated - m * q  # E[T 1{T <= m}]
        if q >= 1 or hit_part <= 1e-6 * truncated:
            # the difference lost its digits (nearly every rollout censored at a huge max_steps)
            return q, math.nan
        return q, hit_part / (1.0 - q)
    if exact.propagation_cost(plan.policy, m) <= CENSORED_LAW_COST:
        return exact.censored_law(plan.policy, plan.target, m)
    return math.nan, math.nan


def compare_with_exact(plan: RunPlan, result: HittingTimes) -> ExactComparison:
    """Compare a run of ``plan`` with the exact law (see :class:`ExactComparison`)."""
    fraction = result.censored / result.rollouts if result.rollouts else math.nan
    chi2_p = (math.nan if plan.exact_mass_below is None else
              statistics.chi_square_p_value(result.counts, result.censored, plan.exact_mass_below))
    if plan.search != "none":
        return ExactComparison("", math.nan, math.nan, chi2_p, fraction, math.nan,
                               "no exact solver under the search wrapper")
    q, mean_given_hit = censored_law(plan)
    if result.hits == 0:
        return ExactComparison("", math.nan, math.nan, chi2_p, fraction, q,
                               f"every rollout was censored at max_steps = {plan.max_steps}")
    negligible = (q * result.rollouts < 1) if not math.isnan(q) else result.censored == 0
    if negligible and math.isfinite(plan.exact_mean):
        return ExactComparison("exact_mean", plan.exact_mean,
                               statistics.z_score(result.mean, plan.exact_mean, result.stderr),
                               chi2_p, fraction, q, "")
    if math.isnan(q):
        return ExactComparison("", math.nan, math.nan, chi2_p, fraction, q,
                               f"{result.censored} rollouts were censored and the exact law at "
                               f"max_steps = {plan.max_steps} is too costly, or too inexact, to compute here")
    return ExactComparison(
        "exact_mean_given_hit", mean_given_hit, statistics.z_score(result.mean, mean_given_hit, result.stderr),
        chi2_p, fraction, q,
        f"censoring is not negligible ({result.censored} of {result.rollouts} rollouts censored at "
        f"max_steps = {plan.max_steps}, {100 * q:.3g}% expected): the mean over hits is compared with "
        f"E[T | T <= max_steps] = {mean_given_hit:.6g}")
