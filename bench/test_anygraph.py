"""Beyond the path-star: the rollout kernel's steps/s per core on a balanced tree and a grid of
about 10^5 states beside the paper's path-star in the same run, and the exact solver's time on
graphs of 10^3 to 10^6 states of every family (docs/model.md section 7).

Run with ``pytest bench/test_anygraph.py -s``; figures go into ``benchmark.extra_info`` and the
end-of-run summary. Only ratios measured in the same run are asserted: the tree and the grid
against the paper's graph, and how the solve time grows with the states on trees and star
graphs (GTH-LU in reverse breadth-first order has no fill on a tree). Grids fill like n^1.5 and
random regular graphs (expanders) far worse, so their largest sizes are refused by the memory
check (held here at MEMORY_LIMIT) or take minutes: the bench records which.
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable

import numpy as np
from pytest_benchmark.fixture import BenchmarkFixture

from edgewalk import exact, graph as graphs, memory, planning
from edgewalk.errors import SizeError
from edgewalk.policy import Policy, pretrained
from measure import Round, rate, run_pedantic

# Goals: a random walk on a 10^5-state tree or grid touches memory all over tables far larger
# than the paper graph's (which fit in L2), so it may be slower per step, but not by more than
# these factors.
MIN_TREE_RATIO = 0.5
MIN_GRID_RATIO = 0.2
# Goal: on trees and star graphs the exact solve grows at most like states^1.5 from 10^4 to 10^6
# states (no fill: linear work; the rest is cache).
MAX_SOLVE_EXPONENT = 1.5
MEMORY_LIMIT = "4G"
STEPS_PER_ROUND = 2e8
ROUNDS = 3
Report = Callable[[str], None]

KERNEL_GRAPHS = {
    "path-star W=K=15, L=5": lambda: graphs.path_star(15, 15, 5),
    "tree b=2, h=15": lambda: graphs.tree(2, 15),
    "grid 160 x 160": lambda: graphs.grid(160, 160),
}
SOLVE_SIZES = {  # about 10^3, 10^4, 10^5 and 10^6 states
    "tree": [(2, 9), (2, 12), (2, 15), (2, 18)],
    "star": [(10, 50), (10, 500), (10, 5000), (10, 50000)],
    "grid": [(16, 16), (50, 50), (158, 158), (500, 500)],
    "regular": [(334, 3), (3334, 3), (33334, 3), (333334, 3)],
}
SLOW_SOLVE_SECONDS = 120.0  # a solve estimated (from the one 10x smaller) to take longer is skipped


def _round(policy: Policy, target: int, rollouts: int) -> Round:
    result = planning.simulate(policy, target, rollouts=rollouts, seed=1, threads=1, force=True,
                               method="step")
    return result.steps, result.seconds


def test_step_kernel_on_a_tree_and_a_grid(benchmark: BenchmarkFixture, report: Report) -> None:
    """Steps/s per core (numba, one thread, kernel time only) of the pretrained policy on each
    graph to its first default target. The tree's and the grid's rounds run between the timed
    path-star rounds, so all three see the same load; each graph's fastest round counts."""
    runs = {}
    for name, build in KERNEL_GRAPHS.items():
        g = build()
        policy = pretrained(g)
        target = g.leaves[0]
        mean = exact.expected_hitting_time(policy, target)
        runs[name] = (policy, target, max(8, int(STEPS_PER_ROUND / mean)), g.n_states, g.n_transitions, mean)
    paper_name, *others = KERNEL_GRAPHS
    rounds: dict[str, list[Round]] = {name: [] for name in others}

    def others_once() -> None:
        for name in others:
            policy, target, rollouts = runs[name][:3]
            rounds[name].append(_round(policy, target, rollouts))

    others_once()  # warm-up
    for name in others:
        rounds[name].clear()
    policy, target, rollouts = runs[paper_name][:3]
    rounds[paper_name] = run_pedantic(benchmark, lambda: _round(policy, target, rollouts), ROUNDS,
                                      between=others_once)
    rates = {name: rate(r) for name, r in rounds.items()}
    paper = rates[paper_name]
    ratios = {name: r / paper for name, r in rates.items()}
    benchmark.extra_info.update(steps_per_second=rates, ratio_to_path_star=ratios,
                                sizes={k: list(v[3:]) for k, v in runs.items()}, load_average=os.getloadavg())
    for name in KERNEL_GRAPHS:
        states, transitions, mean = runs[name][3:]
        report(f"rollout kernel, {name} ({states:,} states, {transitions:,} transitions, E[T] {mean:.3g}): "
               f"{rates[name]:.3g} steps/s per core, {ratios[name]:.2f}x the path-star "
               f"(load before {benchmark.extra_info['load_average_before']:.2f})")
    assert ratios["tree b=2, h=15"] >= MIN_TREE_RATIO
    assert ratios["grid 160 x 160"] >= MIN_GRID_RATIO


def _solve(g) -> tuple[float, int, float]:
    """(seconds, bytes the factorisation held, E[T]) of the pretrained policy's exact solve."""
    began = time.perf_counter()
    solution = exact.solve(pretrained(g), g.leaves[0])
    return time.perf_counter() - began, solution.memory_bytes, float(solution.values[0])


def test_exact_solver_from_a_thousand_to_a_million_states(benchmark: BenchmarkFixture, report: Report) -> None:
    """Seconds and bytes of one exact solve per family and size, under a 4 GiB memory limit;
    a size is skipped when the solve 10x smaller took long enough that this one would exceed
    SLOW_SOLVE_SECONDS at the growth seen so far."""
    memory.set_limit(MEMORY_LIMIT)
    found: dict[str, list] = {}
    try:
        graphs.tree(2, 3)  # compile the solver's kernels before timing
        _solve(graphs.tree(2, 3))
        for family, sizes in SOLVE_SIZES.items():
            rows = found.setdefault(family, [])
            for size in sizes:
                g = graphs.family(family, **dict(zip(graphs.FAMILY_PARAMETERS[family], size)))
                solved = [r for r in rows if r["seconds"] is not None]
                if len(solved) >= 2:
                    growth = math.log(solved[-1]["seconds"] / solved[-2]["seconds"]) / math.log(
                        solved[-1]["states"] / solved[-2]["states"])
                    guess = solved[-1]["seconds"] * (g.n_states / solved[-1]["states"]) ** max(growth, 1.0)
                    if guess > SLOW_SOLVE_SECONDS:
                        rows.append({"size": size, "states": g.n_states, "seconds": None,
                                     "note": f"skipped: about {guess:.3g} s at the growth so far"})
                        continue
                try:
                    seconds, held, mean = _solve(g)
                    rows.append({"size": size, "states": g.n_states, "seconds": seconds, "bytes": held, "mean": mean})
                except SizeError as error:
                    rows.append({"size": size, "states": g.n_states, "seconds": None, "note": f"refused: {error}"})
    finally:
        memory.set_limit(None)
    benchmark.extra_info.update(solves=found, load_average=os.getloadavg(), memory_limit=MEMORY_LIMIT)
    benchmark.pedantic(lambda: _solve(graphs.tree(2, 12)), rounds=1, iterations=1)
    exponents = {}
    for family, rows in found.items():
        for row in rows:
            shown = (f"{row['seconds']:.3g} s, {memory.format_bytes(row['bytes'])} held, E[T] {row['mean']:.6g}"
                     if row["seconds"] is not None else row["note"][:160])
            report(f"exact solve, {family} {row['size']} ({row['states']:,} states): {shown}")
        timed = [r for r in rows if r["seconds"] is not None and r["states"] >= 10_000]
        if len(timed) >= 2:
            exponents[family] = float(np.polyfit(np.log([r["states"] for r in timed]),
                                                 np.log([r["seconds"] for r in timed]), 1)[0])
            report(f"exact solve, {family}: time grows like states^{exponents[family]:.2f} from "
                   f"{timed[0]['states']:,} to {timed[-1]['states']:,} states")
    benchmark.extra_info["growth_exponents"] = exponents
    for family in ("tree", "star"):
        assert exponents[family] <= MAX_SOLVE_EXPONENT, (family, exponents[family])
