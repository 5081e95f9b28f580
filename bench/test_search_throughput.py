"""Throughput of the no-revisit search wrapper (both modes) beside the plain rollout kernel, one
thread, on the paper's graph with the SFT policy (the wrapper's case in the paper; about 900
steps per rollout under the wrapper). Steps/s per core, kernel time only."""

from __future__ import annotations

from typing import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from edgewalk import engine, graph, policy
from measure import Rates, Round, median_rate, rate, run_pedantic

ROLLOUTS = 100_000  # ~9e7 wrapper steps per round
ROUNDS = 3


def _round(pol: policy.Policy, backend: str, search: str) -> Round:
    result = engine.simulate(pol, rollouts=ROLLOUTS, backend=backend, threads=1, search=search)
    return result.steps, result.seconds


@pytest.fixture(scope="module")
def sft() -> policy.Policy:
    return policy.sft(graph.path_star(15, 15, 5))


@pytest.mark.parametrize("search", ("mask", "reject"))
@pytest.mark.parametrize("backend", ("numba", "cython"))
def test_search_throughput(benchmark: BenchmarkFixture, backend: str, search: str, sft: policy.Policy,
                           pretrained: policy.Policy, rates: Rates, report: Callable[[str], None]) -> None:
    """The wrapper scans a row for unvisited moves at every step, so it is slower per step than
    the plain kernel; this records by how much (no goal is set for it)."""
    rounds = run_pedantic(benchmark, lambda: _round(sft, backend, search), ROUNDS)
    plain = rates.get_or_measure(
        f"plain-{backend}", lambda: rate([_plain_round(pretrained, backend) for _ in range(ROUNDS)]))
    benchmark.extra_info.update(steps_per_second=rate(rounds), steps_per_second_median=median_rate(rounds),
                                plain_steps_per_second=plain, ratio_to_plain=rate(rounds) / plain)
    report(f"{backend} search={search}, 1 thread: {rate(rounds):.3g} steps/s per core, "
           f"{rate(rounds) / plain:.2f}x the plain kernel at {plain:.3g}")


def _plain_round(pol: policy.Policy, backend: str) -> Round:
    result = engine.simulate(pol, rollouts=4000, backend=backend, threads=1)
    return result.steps, result.seconds
