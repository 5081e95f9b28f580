"""Throughput of the Monte Carlo policy-gradient kernel (edgewalk.engine.gradient_statistics)
beside the plain rollout kernel, one thread, on the paper's graph with the training targets
(every leaf in turn), at both ends of RLVR training: the pretrained policy (rollouts of about 5e4
steps) and the RLVR optimum (about 900). Both report steps/s per core, kernel time only."""

from __future__ import annotations

from typing import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from edgewalk import engine, policy
from edgewalk.policy import Policy
from measure import Rates, Round, median_rate, rate, run_pedantic, simulate_round

ROLLOUTS = {"pretrained": 4_000, "rlvr": 200_000}  # ~2e8 steps per round
ROUNDS = 3
# Goal (issue): "one iteration with 10^5 rollouts costs about as much as simulating them"; the
# gradient kernel does more per step (per-move counters), so "about" is read as at least half.
MIN_RATIO_TO_PLAIN = 0.5


def _gradient_round(pol: Policy, backend: str, rollouts: int) -> Round:
    stats = engine.gradient_statistics(pol, rollouts=rollouts, backend=backend, threads=1)
    return stats.steps, stats.seconds


@pytest.mark.parametrize("name", ("pretrained", "rlvr"))
@pytest.mark.parametrize("backend", ("numba", "cython"))
def test_gradient_throughput(benchmark: BenchmarkFixture, backend: str, name: str,
                             pretrained: Policy, rates: Rates,
                             report: Callable[[str], None]) -> None:
    pol = pretrained if name == "pretrained" else policy.rlvr(pretrained.graph)
    rollouts = ROLLOUTS[name]
    rounds = run_pedantic(benchmark, lambda: _gradient_round(pol, backend, rollouts), ROUNDS)
    plain = rates.get_or_measure(
        f"plain-{backend}-{name}",
        lambda: rate([simulate_round(pol, backend, 1, rollouts) for _ in range(ROUNDS)]))
    ratio = rate(rounds) / plain
    benchmark.extra_info.update(steps_per_second=rate(rounds),
                                steps_per_second_median=median_rate(rounds),
                                plain_steps_per_second=plain, ratio_to_plain=ratio)
    report(f"{backend} gradient kernel, {name}, 1 thread: {rate(rounds):.3g} steps/s per core, "
           f"{ratio:.2f}x the plain rollout kernel at {plain:.3g} (goal: >= {MIN_RATIO_TO_PLAIN:g}x)")
    assert ratio >= MIN_RATIO_TO_PLAIN
