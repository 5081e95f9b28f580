"""Helpers that turn benchmark rounds into throughput figures."""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable

from pytest_benchmark.fixture import BenchmarkFixture

from edgewalk import engine
from edgewalk.policy import Policy

Round = tuple[int, float]  # (transitions, seconds spent on them)


def steal_seconds() -> float:
    """CPU time the hypervisor gave to other guests, summed over cores (0 where unknown)."""
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def rate(rounds: list[Round]) -> float:
    """Steps per second of the fastest round: other load on the machine only slows rounds down."""
    return max(steps / seconds for steps, seconds in rounds)


def median_rate(rounds: list[Round]) -> float:
    return statistics.median(steps / seconds for steps, seconds in rounds)


def run_pedantic(benchmark: BenchmarkFixture, fn: Callable[[], Round], rounds: int,
                 warmup_rounds: int = 1, between: Callable[[], None] | None = None
                 ) -> list[Round]:
    """Run ``fn`` through ``benchmark.pedantic`` and return the (steps, seconds) of each timed
    round (warm-up rounds excluded). ``between`` runs untimed before every round. To judge
    contention, extra_info also gets the 1-minute load average before the bench, the CPU seconds
    per wall second of the timed calls (about the thread count when the cores were ours) and the
    hypervisor's steal time during the bench."""
    timed: list[Round] = []
    cpu_per_wall: list[float] = []
    calls = 0

    def once() -> None:
        nonlocal calls
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        calls += 1
        if calls > warmup_rounds:
            timed.append(result)
            cpu_per_wall.append(cpu / wall)

    def setup() -> None:
        if between is not None:
            between()

    load, steal = os.getloadavg()[0], steal_seconds()
    benchmark.pedantic(once, setup=setup, rounds=rounds, iterations=1,
                       warmup_rounds=warmup_rounds)
    benchmark.extra_info.update(load_average_before=load,
                                cpu_per_wall=statistics.median(cpu_per_wall),
                                steal_seconds=steal_seconds() - steal)
    return timed


def simulate_round(pol: Policy, backend: str, threads: int, rollouts: int) -> Round:
    """One simulate() call; seconds is the kernel time only (compilation excluded)."""
    r = engine.simulate(pol, rollouts=rollouts, backend=backend, threads=threads)
    return r.steps, r.seconds


def timed_round(fn: Callable[[], int]) -> Round:
    """Wall time of ``fn`` (which returns its step count); call only on warmed-up code."""
    start = time.perf_counter()
    steps = fn()
    return steps, time.perf_counter() - start


class Rates(dict[str, float]):
    """Steps/s measured in this run, by name; ``get_or_measure`` fills in a missing figure."""

    def get_or_measure(self, name: str, measure: Callable[[], float]) -> float:
        if name not in self:
            self[name] = measure()
        return self[name]
