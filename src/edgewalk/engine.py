"""The Monte Carlo engine: it executes a checked plan (see :mod:`edgewalk.planning`) on one of the
two compiled backends and returns a result. It never validates or estimates: a plan is already
both, and the same plan always gives the same result, bit for bit, on either backend and any
thread count.

Rollout r draws from its own SplitMix64 stream (``kernels.seed_key``), so a run of rollouts
``first .. first + count - 1`` added to the run of the rollouts before it gives the run of their
union exactly; all counts and moments are integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from . import kernels, leap
from .leap import LeapTables
from .policy import Policy
from .result import GradientStatistics, HittingTimes

# The speed plans assume, per thread: deliberately below the measured rate, so that estimates err
# on the slow side.
PLANNING_STEPS_PER_SECOND = 1e8
# Steps of a rollout the gradient kernel buffers per lane (kernels.GRADIENT_LANES lanes per
# thread, 4 bytes a step); longer rollouts are finished one buffer at a time at about half the
# speed.
GRADIENT_BUFFER_STEPS = 2**18

Progress = Callable[[int, int], None]  # progress(rollouts done, steps done)


@dataclass(frozen=True, eq=False)
class RunPlan:
    """Everything that determines a run, checked, with defaults filled in and its cost estimated
    (made by :func:`edgewalk.planning.plan`). ``edges`` are the histogram's integer bin edges
    over [0, max_steps]; ``exact_mean`` is nan where there is no exact solver (the search
    wrapper); ``expected_steps`` per rollout is the exact mean or, under the wrapper, its upper
    bound."""

    policy: Policy = field(repr=False)
    target: int
    target_name: str
    rollouts: int
    first_rollout: int
    seed: int
    max_steps: int
    edges: np.ndarray = field(repr=False)
    backend: str
    threads: int
    search: str
    exact_mean: float
    expected_steps: float
    method: str = "step"  # "step": walk every transition; "leap": draw T from its exact law
    leap_tables: LeapTables | None = field(default=None, repr=False)
    exact_mass_below: np.ndarray | None = field(default=None, repr=False)  # P(T < edge), if known
    estimated_seconds: float = 0.0

    @property
    def bins(self) -> int:
        return len(self.edges) - 1

    @property
    def bin_width(self) -> int:
        return int(self.edges[1] - self.edges[0])

    @property
    def estimated_steps(self) -> float:
        return self.rollouts * min(self.expected_steps, self.max_steps)

    @property
    def lumped_blocks(self) -> int:
        return 0 if self.leap_tables is None else self.leap_tables.lumped.n_blocks

    def part(self, first: int, count: int) -> "RunPlan":
        """The same run restricted to rollouts ``first_rollout + first`` ..
        ``first_rollout + first + count - 1``: parts of a plan add up to the plan's result."""
        return replace(self, first_rollout=self.first_rollout + first, rollouts=count,
                       estimated_seconds=self.estimated_seconds * count / self.rollouts)

    def on(self, backend: str, threads: int) -> "RunPlan":
        """The same run on another backend or thread count (the same result, bit for bit)."""
        return replace(self, backend=backend, threads=threads,
                       estimated_seconds=self.estimated_seconds * self.threads / threads)

    def describe(self) -> dict[str, object]:
        """The parameters of the run, as a result and its file record them."""
        return {
            "graph": self.policy.graph.describe(), "policy": self.policy.describe(),
            "target": self.target_name, "rollouts": self.rollouts,
            "first_rollout": self.first_rollout, "seed": self.seed, "max_steps": self.max_steps,
            "bins": self.bins, "backend": self.backend, "threads": self.threads,
            "search": self.search, "exact_mean": self.exact_mean, "method": self.method,
            "lumped_blocks": self.lumped_blocks,
        }


def execute(plan: RunPlan, progress: Progress | None = None) -> HittingTimes:
    """Run the plan's rollouts from the start state until the target is entered or max_steps
    transitions are made (the step method), or draw their hitting times from the exact law of
    the lumped chain (the leap method); ``progress(done, steps)`` is called after each chunk.
    Memory does not grow with the number of rollouts."""
    if plan.method == "leap":
        result = leap.run(plan.leap_tables, rollouts=plan.rollouts, seed=plan.seed,
                          first_rollout=plan.first_rollout, edges=plan.edges, backend=plan.backend,
                          threads=plan.threads, progress=progress)
        return replace(result, parameters=plan.describe(), exact_mass_below=plan.exact_mass_below)
    graph = plan.policy.graph
    tables = plan.policy.alias
    ends = graph.target_states(plan.target)
    hist = np.zeros((plan.threads, plan.bins), np.int64)
    stats = np.zeros((plan.threads, kernels.STATS_STRIDE), np.uint64)
    key = np.uint64(kernels.seed_key(plan.seed))
    searching = plan.search != "none"
    if searching:
        states, positive, columns, weight, start, max_degree = kernels.search_tables(tables, ends)
        lanes = (plan.threads, kernels.LANES)
        call = kernels.parallel_call(
            plan.backend, plan.threads, "search",
            (states, positive, columns, weight, start, kernels.SEARCH_MODES[plan.search],
             key, plan.max_steps, plan.bin_width, hist, stats,
             np.zeros((*lanes, (graph.n_states + 63) // 64 + 1), np.uint64),
             np.zeros((*lanes, graph.n_states + 1), np.uint64),
             np.zeros((*lanes, max_degree), np.uint64), np.zeros((*lanes, max_degree), np.uint64),
             np.zeros((plan.threads, kernels.SEARCH_LANE_WORDS, kernels.LANES), np.uint64)))
    else:
        rows = kernels.row_words(tables, ends)
        call = kernels.parallel_call(
            plan.backend, plan.threads, "plain",
            (kernels.per_thread(kernels.alias_columns(tables, rows), plan.threads), rows[0], key,
             plan.max_steps, plan.bin_width, hist, stats))
    seconds, compile_seconds = _drive(plan.threads, plan.expected_steps, plan.max_steps,
                                      plan.first_rollout, plan.rollouts, call, stats, progress)
    totals = [int(x) for x in stats.sum(axis=0, dtype=object)]
    # without the wrapper every step is one policy draw
    return HittingTimes(
        counts=hist.sum(axis=0),
        edges=plan.edges.copy(),
        hits=totals[kernels.HITS],
        censored=totals[kernels.CENSORED],
        total=totals[kernels.SUM],
        total_of_squares=_exact_sum(stats, kernels.SUMSQ),
        steps=totals[kernels.STEPS],
        draws_total=totals[kernels.DRAWS_SUM] if searching else totals[kernels.SUM],
        draws_total_of_squares=_exact_sum(stats, kernels.DRAWS_SUMSQ if searching else kernels.SUMSQ),
        seconds=seconds,
        compile_seconds=compile_seconds,
        parameters=plan.describe(),
        exact_mass_below=plan.exact_mass_below,
    )


def _drive(threads: int, expected_steps: float, max_steps: int, first_rollout: int, rollouts: int,
           call: Callable[[int, int], None], stats: np.ndarray, progress: Progress | None
           ) -> tuple[float, float]:
    """kernels.run_in_chunks for a step kernel: a rollout costs min(expected_steps, max_steps)
    steps at the planning rate; progress gets the steps made so far."""
    steps_per_rollout = max(1.0, min(expected_steps, max_steps))
    on_chunk = None if progress is None else \
        (lambda done: progress(done, int(stats[:, kernels.STEPS].sum())))
    return kernels.run_in_chunks(call, threads, first_rollout, rollouts,
                                 steps_per_rollout / PLANNING_STEPS_PER_SECOND, on_chunk)


def _exact_sum(stats: np.ndarray, low: int) -> int:
    """A 128-bit sum kept per thread as (low word, high word) in columns low, low + 1."""
    return sum(int(hi) << 64 | int(lo) for lo, hi in zip(stats[:, low], stats[:, low + 1]))


@dataclass(frozen=True, eq=False)
class GradientPlan:
    """A checked run of the policy-gradient statistics kernel (made by
    :func:`edgewalk.planning.plan_gradient`): rollout r aims at ``targets[r % len(targets)]``."""

    policy: Policy = field(repr=False)
    targets: tuple[int, ...]
    rollouts: int
    seed: int
    max_steps: int
    backend: str
    threads: int
    expected_steps: float


def execute_gradient(plan: GradientPlan, progress: Progress | None = None) -> GradientStatistics:
    """Run the plan's rollouts with the same random streams as :func:`execute` and accumulate the
    policy gradient's sufficient statistics without storing trajectories; memory is
    O(transitions), bit-identical across backends and thread counts."""
    graph = plan.policy.graph
    tables = plan.policy.alias
    n_slots = 2 * graph.n_transitions  # slot 2k: column k's primary, 2k + 1: its alias
    columns, target_rows, start_row, order = kernels.gradient_tables(
        tables, graph.state_head, plan.targets)
    stats = np.zeros((plan.threads, kernels.STATS_STRIDE), np.uint64)
    slot_sums = np.zeros((plan.threads, n_slots, 2), np.uint64)
    packed = np.zeros((plan.threads, n_slots), np.uint64)  # visits << 40 | steps remaining
    censored_visits = np.zeros((plan.threads, n_slots), np.uint64)
    rollout_count = np.zeros((plan.threads, n_slots), np.uint64)
    touched = np.empty((plan.threads, n_slots), np.int32)
    buffers = np.empty((plan.threads, kernels.GRADIENT_LANES,
                        max(1, min(plan.max_steps, GRADIENT_BUFFER_STEPS))), np.uint32)
    call = kernels.parallel_call(
        plan.backend, plan.threads, "gradient",
        (kernels.per_thread(columns, plan.threads), target_rows, start_row,
         np.uint64(kernels.seed_key(plan.seed)), plan.max_steps,
         stats, slot_sums, packed, censored_visits, rollout_count, touched, buffers))
    seconds, _ = _drive(plan.threads, plan.expected_steps, plan.max_steps, 0, plan.rollouts, call,
                        stats, progress)
    slot_sums[:, :, 0] += packed >> np.uint64(kernels.GRADIENT_PACKED_SHIFT)
    slot_sums[:, :, 1] += packed & np.uint64((1 << kernels.GRADIENT_PACKED_SHIFT) - 1)
    totals = [int(x) for x in stats.sum(axis=0, dtype=object)]

    def per_transition(per_slot: np.ndarray) -> np.ndarray:
        """Per-thread, per-slot sums (wrapping uint64, exact in total) added up per CSR entry."""
        total = per_slot.sum(axis=0, dtype=np.uint64)
        entries = np.zeros(graph.n_transitions, np.uint64)
        np.add.at(entries, tables.primary_entry[order], total[0::2])
        np.add.at(entries, tables.alias_entry[order], total[1::2])
        return entries

    visits = per_transition(slot_sums[:, :, 0])
    return GradientStatistics(plan.policy, plan.targets, plan.rollouts, totals[kernels.HITS],
                              totals[kernels.CENSORED], totals[kernels.STEPS], visits,
                              visits - per_transition(censored_visits),
                              per_transition(slot_sums[:, :, 1]), seconds)
