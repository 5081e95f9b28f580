"""Steady-state throughput on the paper's graph (W = K = 15, L = 5) with the pretrained policy,
target t1 (mean hitting time ~5e4 steps). Compilation is excluded everywhere: simulate() warms
its kernel up before timing and reports kernel time only; the baseline is compiled when it is
built and gets a warm-up round before the timed ones."""

from __future__ import annotations

from typing import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from baseline import Baseline
from edgewalk import engine
from edgewalk.policy import Policy
from measure import Rates, Round, median_rate, rate, run_pedantic, simulate_round, timed_round

# Goal (issue): each backend >= 7x a plain Numba loop with np.random, per core.
MIN_RATIO_TO_BASELINE = 7.0
# Goal (issue): >= 3e8 steps/s per core.
MIN_STEPS_PER_SECOND_PER_CORE = 3e8
# Goal (issue): two threads >= 1.8x one thread, for each backend.
MIN_THREAD_SPEEDUP = 1.8

BASELINE_ROLLOUTS = 1_000  # ~5e7 steps, ~2 s at ~3e7 steps/s
BACKEND_ROLLOUTS = 8_000  # ~4e8 steps, ~1-2 s per core at 2-3e8 steps/s
ROUNDS = 3
BACKENDS = ("numba", "cython")
Report = Callable[[str], None]


def _baseline_round(baseline: Baseline) -> Callable[[], Round]:
    return lambda: timed_round(lambda: baseline.run(BASELINE_ROLLOUTS))


def _baseline_rate(pol: Policy) -> float:
    """The baseline's rate measured outside the benchmark fixture (when its bench was skipped)."""
    run = _baseline_round(Baseline(pol, pol.graph.leaf(1)))
    run()  # warm-up
    return rate([run() for _ in range(ROUNDS)])


def test_baseline_throughput(benchmark: BenchmarkFixture, pretrained: Policy, rates: Rates,
                             report: Report) -> None:
    """Steps/s of the plain @njit loop (np.random.random + linear scan of the cumulative row),
    one thread: the denominator of every ratio_to_baseline."""
    baseline = Baseline(pretrained, pretrained.graph.leaf(1))
    rounds = run_pedantic(benchmark, _baseline_round(baseline), ROUNDS)
    rates["baseline"] = rate(rounds)
    benchmark.extra_info.update(steps_per_second=rate(rounds),
                                steps_per_second_median=median_rate(rounds),
                                steps_per_round=rounds[0][0])
    report(f"baseline (plain numba + np.random), 1 thread: {rate(rounds):.3g} steps/s")


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_throughput(benchmark: BenchmarkFixture, backend: str, pretrained: Policy,
                            rates: Rates, report: Report) -> None:
    """Steps/s of one backend on one thread (kernel time only) and its ratio to the baseline
    measured in the same run."""
    rounds = run_pedantic(
        benchmark, lambda: simulate_round(pretrained, backend, 1, BACKEND_ROLLOUTS), ROUNDS)
    per_core = rate(rounds)
    ratio = per_core / rates.get_or_measure("baseline", lambda: _baseline_rate(pretrained))
    benchmark.extra_info.update(steps_per_second=per_core,
                                steps_per_second_median=median_rate(rounds),
                                baseline_steps_per_second=rates["baseline"],
                                ratio_to_baseline=ratio, steps_per_round=rounds[0][0])
    report(f"{backend}, 1 thread: {per_core:.3g} steps/s per core, "
           f"{ratio:.2f}x baseline (goals: >= {MIN_STEPS_PER_SECOND_PER_CORE:.0e}, "
           f">= {MIN_RATIO_TO_BASELINE:g}x)")
    missed = []
    if ratio < MIN_RATIO_TO_BASELINE:
        missed.append(f"ratio {ratio:.2f}x < {MIN_RATIO_TO_BASELINE:g}x")
    if per_core < MIN_STEPS_PER_SECOND_PER_CORE:
        missed.append(f"{per_core:.3g} steps/s < {MIN_STEPS_PER_SECOND_PER_CORE:.0e}")
    assert not missed, f"{backend} missed its goals: {'; '.join(missed)}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_thread_scaling(benchmark: BenchmarkFixture, backend: str, pretrained: Policy,
                        report: Report) -> None:
    """Steps/s on two threads (timed) against one thread, measured in untimed one-thread rounds
    interleaved with the timed ones so both see the same load on the machine."""
    if engine.available_cores() < 2:
        pytest.skip("needs 2 cores")
    single: list[Round] = []
    rounds = run_pedantic(
        benchmark, lambda: simulate_round(pretrained, backend, 2, BACKEND_ROLLOUTS), ROUNDS,
        between=lambda: single.append(simulate_round(pretrained, backend, 1, BACKEND_ROLLOUTS)))
    speedup = rate(rounds) / rate(single)
    benchmark.extra_info.update(steps_per_second=rate(rounds),
                                steps_per_second_median=median_rate(rounds),
                                steps_per_second_per_core=rate(rounds) / 2,
                                single_thread_steps_per_second=rate(single), speedup=speedup)
    report(f"{backend}, 2 threads: {rate(rounds):.3g} steps/s ({rate(rounds) / 2:.3g} per core), "
           f"{speedup:.2f}x one thread at {rate(single):.3g} (goal: >= {MIN_THREAD_SPEEDUP:g}x; "
           f"cpu/wall {benchmark.extra_info['cpu_per_wall']:.2f}, "
           f"load before {benchmark.extra_info['load_average_before']:.2f}, "
           f"steal {benchmark.extra_info['steal_seconds']:.2f} s)")
    assert speedup >= MIN_THREAD_SPEEDUP, (
        f"{backend}: 2 threads {speedup:.2f}x one thread < {MIN_THREAD_SPEEDUP:g}x (a cpu/wall "
        "well below 2 or a load average above ~1 before the run means the cores were shared)")
