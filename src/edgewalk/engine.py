"""The Monte Carlo engine: N rollouts of a policy from ``s0 -> f`` on one of two backends."""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass, replace
from typing import Callable, Literal, Sequence

import numpy as np

from . import exact
from .policy import Policy
from .result import HittingTimes

Backend = Literal["numba", "cython"]
BACKENDS = ("numba", "cython")
SEARCH_MODES = {"none": 0, "mask": 1, "reject": 2}  # kernel codes of the search wrapper
# Per-thread counters, in the order of native/edgewalk_kernel.h.
HITS, SUM, SUMSQ, CENSORED, STEPS, DRAWS_SUM, DRAWS_SUMSQ, NSTATS = 0, 1, 2, 4, 5, 6, 7, 9

MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
DEFAULT_BINS = 4096
# Cost guard: a run whose estimate exceeds this many seconds is refused unless forced.
PLANNING_STEPS_PER_SECOND = 1e8  # per thread; deliberately below the measured rate
MAX_PLANNED_SECONDS = 3600.0
# Steps of a rollout the gradient kernel buffers per lane (4 lanes per thread, 4 bytes a step);
# longer rollouts are finished one buffer at a time at about half the speed.
GRADIENT_BUFFER_STEPS = 2**18


class CostError(ValueError):
    """A run that would take far too long: use the exact solver or force it."""


def mix64(z: int) -> int:
    """SplitMix64's finaliser, as in native/edgewalk_kernel.h."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def seed_key(seed: int) -> int:
    """The 64-bit key from which every rollout's random stream is derived."""
    return mix64((seed + GAMMA) & MASK64)


def available_cores() -> int:
    """Cores this process may run on (respects cpusets such as SLURM's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _check_whole(name: str, value: int, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (
        high is not None and value > high
    ):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be a whole number {allowed}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class RunPlan:
    """Everything that determines a run, checked and with defaults filled in."""

    target: int
    target_name: str
    rollouts: int
    seed: int
    max_steps: int
    bins: int
    bin_width: int
    backend: str
    threads: int
    search: str
    exact_mean: float  # nan under the search wrapper, which has no exact solver
    expected_steps: float  # per rollout: the exact mean, or the wrapper's upper bound

    @property
    def estimated_steps(self) -> float:
        return self.rollouts * min(self.expected_steps, self.max_steps)

    @property
    def estimated_seconds(self) -> float:
        return self.estimated_steps / (PLANNING_STEPS_PER_SECOND * self.threads)


def plan(
    policy: Policy,
    target: int | str | None = None,
    rollouts: int = 100_000,
    seed: int = 0,
    max_steps: int | None = None,
    backend: str = "numba",
    threads: int | None = None,
    bins: int | None = None,
    force: bool = False,
    search: str = "none",
    known_mean: float | None = None,
) -> RunPlan:
    """Validate a run's parameters before any work, fill in defaults and estimate its cost.

    ``max_steps`` defaults to 50 times the exact expected hitting time (at least 1000), so
    censoring is negligible, or under the search wrapper to 2 * n_states, which it never reaches; ``bins`` defaults to min(max_steps + 1, 4096) bins of equal integer
    width covering [0, max_steps]. Raises CostError for a run estimated to take over an hour,
    unless ``force``. ``known_mean``, if given, stands in for the exact solve (a caller that
    already knows the expected hitting time, such as a training loop)."""
    graph = policy.graph
    if target is None:
        target = graph.leaf(1)
    elif isinstance(target, str):
        target = graph.node(target)
    target = _check_whole("target", target, 0, graph.n_nodes - 1)
    if not graph.target_states(target).any():
        raise ValueError(f"target: node {graph.node_names[target]} can never be entered")
    rollouts = _check_whole("rollouts", rollouts, 1)
    seed = _check_whole("seed", seed, 0, MASK64)
    if backend not in BACKENDS:
        raise ValueError(f"backend: unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if search not in SEARCH_MODES:
        raise ValueError(f"search: unknown mode {search!r}; allowed: {', '.join(SEARCH_MODES)}")
    threads = available_cores() if threads is None else _check_whole("threads", threads, 1)
    if backend == "numba":
        import numba

        if threads > numba.config.NUMBA_NUM_THREADS:
            raise ValueError(
                f"threads must be in [1, {numba.config.NUMBA_NUM_THREADS}] for the numba backend "
                f"(NUMBA_NUM_THREADS), got {threads}"
            )
    if search == "none":
        exact_mean = exact.expected_hitting_time(policy, target) if known_mean is None else known_mean
        expected_steps = exact_mean
        if max_steps is None and not math.isfinite(exact_mean):
            raise ValueError("max_steps: the target is not hit surely, so give max_steps >= 1")
        default_max_steps = max(1000, 50 * math.ceil(exact_mean)) if math.isfinite(exact_mean) else 0
    else:
        # The wrapper enters each state at most once and leaves it by a pop at most once.
        exact_mean = math.nan
        expected_steps = default_max_steps = 2 * graph.n_states
    if max_steps is None:
        max_steps = default_max_steps
    max_steps = _check_whole("max_steps", max_steps, 1, 2**62)
    bins = min(max_steps + 1, DEFAULT_BINS) if bins is None else _check_whole("bins", bins, 1)
    bins = min(bins, max_steps + 1)
    bin_width = -(-(max_steps + 1) // bins)
    bins = -(-(max_steps + 1) // bin_width)
    run = RunPlan(target, graph.node_names[target], rollouts, seed, max_steps, bins, bin_width,
                  backend, threads, search, exact_mean, expected_steps)
    if run.estimated_seconds > MAX_PLANNED_SECONDS and not force:
        raise CostError(
            f"this run needs about {run.estimated_steps:.3g} steps (~{run.estimated_seconds / 3600:.3g} "
            f"hours on {threads} threads at {PLANNING_STEPS_PER_SECOND:.0e} steps/s each); the exact "
            f"expected hitting time is {exact_mean:.6g} (edgewalk.exact.expected_hitting_time, or "
            "`edgewalk exact`). Fewer rollouts or a smaller graph will do, or force it "
            "(force=True, --force)."
        )
    return run


def _parallel_call(run: RunPlan, kernel: str, leading: tuple, trailing: tuple) -> Callable[[int, int, int], None]:
    """``call(first, last, block_size)`` runs rollouts first..last-1 through ``kernel`` (a
    function of the same name in both backends) as ``kernel(*leading, first, last, block_size,
    *trailing)`` on the run's backend and threads."""
    if run.backend == "cython":
        from . import _native

        function = getattr(_native, kernel)

        def call(first: int, last: int, block_size: int) -> None:
            function(*leading, first, last, block_size, *trailing, run.threads)

        return call
    import numba

    from . import _numba_kernel

    function = getattr(_numba_kernel, kernel)

    def call(first: int, last: int, block_size: int) -> None:
        numba.set_num_threads(run.threads)
        with numba.parallel_chunksize(1):
            function(*leading, first, last, block_size, *trailing)

    return call


def _drive(run: RunPlan, call: Callable[[int, int, int], None], stats: np.ndarray,
           progress: Callable[[int, int], None] | None, first_rollout: int = 0) -> tuple[float, float]:
    """Compile (or load) the kernel, then run rollouts first_rollout .. first_rollout +
    run.rollouts - 1 in chunks. Returns the seconds spent simulating and the seconds spent
    compiling before that."""
    compile_start = time.perf_counter()
    call(0, 0, 1)  # compiles (or loads from cache) the Numba kernel; nothing is simulated
    compile_seconds = time.perf_counter() - compile_start

    # A chunk (about a second of work at the planning rate) is one parallel call, so it bounds the
    # progress interval; threads wait for each other only at its end, and 16 blocks per thread keep
    # that wait short, while blocks of hundreds of rollouts keep the interleaved lanes busy.
    # Neither affects the result.
    steps_per_rollout = max(1.0, min(run.expected_steps, run.max_steps))
    chunk = int(max(run.threads * 1024, 2 * PLANNING_STEPS_PER_SECOND * run.threads / steps_per_rollout))
    block_size = max(64, min(4096, chunk // (run.threads * 16)))
    seconds = 0.0
    end = first_rollout + run.rollouts
    for first in range(first_rollout, end, chunk):
        last = min(first + chunk, end)
        start = time.perf_counter()
        call(first, last, block_size)
        seconds += time.perf_counter() - start
        if progress is not None:
            progress(last - first_rollout, int(stats[:, STEPS].sum()))
    return seconds, compile_seconds


def _exact_sum(stats: np.ndarray, low: int) -> int:
    """A 128-bit sum kept per thread as (low word, high word) in columns low, low + 1."""
    return sum(int(hi) << 64 | int(lo) for lo, hi in zip(stats[:, low], stats[:, low + 1]))


def simulate(
    policy: Policy,
    target: int | str | None = None,
    rollouts: int = 100_000,
    seed: int = 0,
    max_steps: int | None = None,
    backend: str = "numba",
    threads: int | None = None,
    bins: int | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
    search: str = "none",
    first_rollout: int = 0,
    known_mean: float | None = None,
) -> HittingTimes:
    """Run ``rollouts`` independent rollouts from ``s0 -> f`` until ``target`` (a node index or
    name, default the leaf of branch 1) is entered or ``max_steps`` transitions are made.
    ``search`` wraps the policy in the no-revisit search wrapper: "mask" or "reject" (MODEL.md
    section 6); the result then also counts policy draws apart from steps.

    The result depends only on the parameters and ``seed``: not on backend, thread count or
    progress reporting. Memory does not grow with ``rollouts``. ``progress(done, steps)`` is
    called after each chunk with rollouts and steps done so far. See :func:`plan` for defaults.

    ``first_rollout`` runs rollouts first_rollout .. first_rollout + rollouts - 1 of the seed's
    sequence instead of 0 .. rollouts - 1: results of disjoint ranges with the same parameters
    add up (``+``) to the result of their union bit for bit, which is how shards and distributed
    workers split a run. ``known_mean`` passes on an exact mean the caller has already solved
    for (see :func:`plan`)."""
    run = plan(policy, target, rollouts, seed, max_steps, backend, threads, bins, force, search,
               known_mean)
    first_rollout = _check_whole("first_rollout", first_rollout, 0, 2**62)
    tables = policy.alias_tables()
    is_target = policy.graph.target_states(run.target).astype(np.uint8)
    hist = np.zeros((run.threads, run.bins), np.int64)
    stats = np.zeros((run.threads, NSTATS), np.uint64)
    key = np.uint64(seed_key(run.seed))
    searching = run.search != "none"
    if searching:
        n_states = len(is_target)
        visited = np.zeros((run.threads, (n_states + 63) // 64), np.uint64)
        stack = np.zeros((run.threads, n_states + 1), np.int32)
        call = _parallel_call(
            run, "run_search_blocks",
            (tables.row_start, tables.next_state, tables.weight, tables.threshold, tables.primary,
             tables.alias, is_target, SEARCH_MODES[run.search], key),
            (run.max_steps, run.bin_width, hist, stats, visited, stack))
    else:
        call = _parallel_call(
            run, "run_blocks",
            (tables.row_start, tables.threshold, tables.primary, tables.alias, is_target, key),
            (run.max_steps, run.bin_width, hist, stats))
    seconds, compile_seconds = _drive(run, call, stats, progress, first_rollout)

    totals = [int(x) for x in stats.sum(axis=0, dtype=object)]
    exact_sum = functools.partial(_exact_sum, stats)
    # without the wrapper every step is one policy draw
    return HittingTimes(
        counts=hist.sum(axis=0),
        bin_width=run.bin_width,
        hits=totals[HITS],
        censored=totals[CENSORED],
        total=totals[SUM],
        total_of_squares=exact_sum(SUMSQ),
        steps=totals[STEPS],
        draws_total=totals[DRAWS_SUM] if searching else totals[SUM],
        draws_total_of_squares=exact_sum(DRAWS_SUMSQ if searching else SUMSQ),
        seconds=seconds,
        compile_seconds=compile_seconds,
        parameters={
            "graph": policy.graph.describe(),
            "policy": policy.describe(),
            "target": run.target_name,
            "rollouts": run.rollouts,
            "first_rollout": first_rollout,
            "seed": run.seed,
            "max_steps": run.max_steps,
            "bins": run.bins,
            "backend": run.backend,
            "threads": run.threads,
            "search": run.search,
            "exact_mean": run.exact_mean,
        },
    )


@dataclass(frozen=True, eq=False)
class GradientStatistics:
    """Sufficient statistics of the REINFORCE policy gradient of the softmax-tabular policy, from
    rollouts whose targets cycle through ``targets`` (rollout r aims at targets[r % len]).
    Per transition k (a CSR entry: a state and a move): ``visits[k]`` times the move was taken,
    ``hit_visits[k]`` of those in rollouts that hit, and ``remaining_sum[k]`` the steps left in
    the rollout at those times, the move itself included (T - t + 1 for a move taken at step t of
    a rollout of length T)."""

    policy: Policy
    targets: tuple[int, ...]
    rollouts: int
    hits: int
    censored: int
    steps: int
    visits: np.ndarray
    hit_visits: np.ndarray
    remaining_sum: np.ndarray
    seconds: float = 0.0

    def returns(self, beta: float = 1.0) -> np.ndarray:
        """Per transition, the return-to-go summed over its visits, with reward 1 for a hit and
        -beta per step (the step taken included)."""
        return self.hit_visits - beta * self.remaining_sum.astype(float)

    def gradient(self, beta: float = 1.0) -> np.ndarray:
        """Unbiased estimate of dJ/dTheta for J = P(hit) - beta E[T] (targets averaged as
        sampled), one value per CSR entry: (R(s,a) - pi(a|s) R(s)) / rollouts."""
        graph = self.policy.graph
        move_returns = self.returns(beta)
        state_returns = np.add.reduceat(move_returns, graph.row_start[:-1])
        rows = np.repeat(np.arange(graph.n_states), np.diff(graph.row_start))
        return (move_returns - self.policy.probabilities * state_returns[rows]) / self.rollouts

    @property
    def mean_hitting_time(self) -> float:
        return self.steps / self.rollouts


def gradient_statistics(
    policy: Policy,
    targets: Sequence[int | str] | None = None,
    rollouts: int = 100_000,
    seed: int = 0,
    max_steps: int | None = None,
    backend: str = "numba",
    threads: int | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
    known_mean: float | None = None,
) -> GradientStatistics:
    """Run rollouts as :func:`simulate` does (same random streams) and accumulate the policy
    gradient's sufficient statistics without storing trajectories; memory is O(transitions).
    ``targets`` defaults to every leaf (the training distribution of MODEL.md section 5).
    ``known_mean`` (the expected hitting time, if known) skips the exact solves of planning."""
    graph = policy.graph
    if targets is None:
        targets = [graph.leaf(i) for i in range(1, graph.branches + 1)]
    plans = [plan(policy, target, rollouts, seed, max_steps, backend, threads, None, force,
                  known_mean=known_mean) for target in targets]
    run = replace(plans[0], max_steps=max(p.max_steps for p in plans),
                  expected_steps=float(np.mean([p.expected_steps for p in plans])))
    tables = policy.alias_tables()
    is_target = np.stack([graph.target_states(p.target) for p in plans]).astype(np.uint8)
    n_slots = 2 * graph.n_transitions  # slot 2k: column k's primary, 2k + 1: its alias
    stats = np.zeros((run.threads, NSTATS), np.uint64)
    slot_sums = np.zeros((run.threads, n_slots, 2), np.uint64)
    censored_visits = np.zeros((run.threads, n_slots), np.uint64)
    rollout_count = np.zeros((run.threads, n_slots), np.uint64)
    touched = np.empty((run.threads, n_slots), np.int32)
    buffers = np.empty((run.threads, 4, max(1, min(run.max_steps, GRADIENT_BUFFER_STEPS))), np.uint32)
    call = _parallel_call(
        run, "run_gradient_blocks",
        (tables.row_start, tables.threshold, tables.primary, tables.alias, is_target,
         np.uint64(seed_key(run.seed))),
        (run.max_steps, stats, slot_sums, censored_visits, rollout_count, touched, buffers))
    seconds, _ = _drive(run, call, stats, progress)
    totals = [int(x) for x in stats.sum(axis=0, dtype=object)]

    def per_transition(per_slot: np.ndarray) -> np.ndarray:
        """Per-thread, per-slot sums (wrapping uint64, exact in total) added up per CSR entry."""
        total = per_slot.sum(axis=0, dtype=np.uint64)
        entries = np.zeros(graph.n_transitions, np.uint64)
        np.add.at(entries, tables.primary_entry, total[0::2])
        np.add.at(entries, tables.alias_entry, total[1::2])
        return entries

    visits = per_transition(slot_sums[:, :, 0])
    return GradientStatistics(policy, tuple(p.target for p in plans), run.rollouts, totals[HITS],
                              totals[CENSORED], totals[STEPS], visits,
                              visits - per_transition(censored_visits),
                              per_transition(slot_sums[:, :, 1]), seconds)
