"""Throughput of the no-revisit search wrapper (both modes) against the plain rollout kernel, one
thread, on the paper's graph: the wrapper with the SFT policy (its case in the paper; about 900
steps per rollout under the wrapper), the plain kernel with the pretrained policy (SFT without
the wrapper takes ~4e14 steps a rollout). Steps/s per core, kernel time only; judged on the ratio
to the plain kernel measured in the same run, its rounds interleaved with the wrapper's."""

from __future__ import annotations

from typing import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from edgewalk import graph, policy
from measure import Round, rate, record_rate, run_pedantic, simulate_round

# Goal (issue): the wrapper at least half the plain kernel's steps/s, both modes and backends.
MIN_RATIO_TO_PLAIN = 0.5
ROLLOUTS = 100_000  # ~9e7 wrapper steps per round
PLAIN_ROLLOUTS = 4_000  # ~2e8 steps
ROUNDS = 3


@pytest.fixture(scope="module")
def sft() -> policy.Policy:
    return policy.sft(graph.path_star(15, 15, 5))


@pytest.mark.parametrize("search", ("mask", "reject"))
@pytest.mark.parametrize("backend", ("numba", "cython"))
def test_search_throughput(benchmark: BenchmarkFixture, backend: str, search: str,
                           sft: policy.Policy, pretrained: policy.Policy,
                           report: Callable[[str], None]) -> None:
    plain_rounds: list[Round] = []
    rounds = run_pedantic(
        benchmark, lambda: simulate_round(sft, backend, 1, ROLLOUTS, search=search), ROUNDS,
        between=lambda: plain_rounds.append(simulate_round(pretrained, backend, 1, PLAIN_ROLLOUTS)))
    plain = rate(plain_rounds)
    ratio = rate(rounds) / plain
    record_rate(benchmark, rounds, plain_steps_per_second=plain, ratio_to_plain=ratio)
    report(f"{backend} search={search}, 1 thread: {rate(rounds):.3g} steps/s, "
           f"{1e9 / rate(rounds):.2f} ns/step, {ratio:.2f}x the plain kernel at {plain:.3g} "
           f"(goal: >= {MIN_RATIO_TO_PLAIN:g}x)")
    assert ratio >= MIN_RATIO_TO_PLAIN, (
        f"{backend} search={search}: {ratio:.2f}x the plain kernel < {MIN_RATIO_TO_PLAIN:g}x")
