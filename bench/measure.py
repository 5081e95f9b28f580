"""Helpers that turn benchmark rounds into throughput figures, and record how busy the machine was
while they were measured."""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable

from pytest_benchmark.fixture import BenchmarkFixture

from edgewalk import _native, kernels
from edgewalk.planning import gradient_statistics, simulate
from edgewalk.policy import Policy

Round = tuple[int, float]  # (transitions, seconds spent on them)

# The cores count as free for a thread-scaling check when other processes used at most this many
# CPU seconds per wall second during the bench and its timed rounds got at least this share of
# the threads' CPU time per wall second.
FREE_OTHERS_CPU = 0.1
FREE_CPU_SHARE = 0.95


def steal_seconds() -> float:
    """CPU time the hypervisor gave to other guests, summed over cores (0 where unknown)."""
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (every process, all cores; 0 where
    unknown), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        idle = fields[3] + fields[4]  # idle, iowait
        return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def own_seconds() -> float:
    """CPU seconds this process has used, all threads."""
    times = os.times()
    return times.user + times.system


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
    per wall second of the timed calls (about the thread count when the cores were ours), the
    CPU seconds per wall second that other processes used during the bench (all of it, untimed
    rounds included), the hypervisor's steal time and how the extension was built."""
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
    busy, own, wall = busy_seconds(), own_seconds(), time.perf_counter()
    benchmark.pedantic(once, setup=setup, rounds=rounds, iterations=1,
                       warmup_rounds=warmup_rounds)
    wall = time.perf_counter() - wall
    others = max(0.0, (busy_seconds() - busy) - (own_seconds() - own)) / wall
    benchmark.extra_info.update(load_average_before=load,
                                cpu_per_wall=statistics.median(cpu_per_wall),
                                others_cpu_per_wall=others,
                                steal_seconds=steal_seconds() - steal, build=_native.BUILD)
    return timed


def record_rate(benchmark: BenchmarkFixture, rounds: list[Round], **figures: float) -> float:
    """Put a bench's throughput in extra_info (steps/s of the fastest and the median round, ns
    per step, steps per round, and ``figures``); returns the fastest round's steps/s."""
    best = rate(rounds)
    benchmark.extra_info.update(steps_per_second=best, steps_per_second_median=median_rate(rounds),
                                ns_per_step=1e9 / best, steps_per_round=rounds[0][0], **figures)
    return best


def cores_were_free(benchmark: BenchmarkFixture, threads: int) -> tuple[bool, str]:
    """Whether the machine's cores were ours during the bench (see FREE_OTHERS_CPU and
    FREE_CPU_SHARE), and what that judgement rests on, from its extra_info."""
    others = benchmark.extra_info["others_cpu_per_wall"]
    cpu = benchmark.extra_info["cpu_per_wall"]
    free = others <= FREE_OTHERS_CPU and cpu >= FREE_CPU_SHARE * threads
    return free, (f"other processes {others:.2f} cpu/wall (free: <= {FREE_OTHERS_CPU}), "
                  f"the bench's rounds {cpu:.2f} (free: >= {FREE_CPU_SHARE * threads:.2f})")


def simulate_round(pol: Policy, backend: str, threads: int, rollouts: int, **options) -> Round:
    """One simulate() call; seconds is the kernel time only (compilation excluded)."""
    r = simulate(pol, rollouts=rollouts, backend=backend, threads=threads, method="step", **options)
    return r.steps, r.seconds


def gradient_round(pol: Policy, backend: str, threads: int, rollouts: int) -> Round:
    """One gradient_statistics() call over every leaf; kernel time only."""
    stats = gradient_statistics(pol, rollouts=rollouts, backend=backend, threads=threads)
    return stats.steps, stats.seconds


def timed_round(fn: Callable[[], int]) -> Round:
    """Wall time of ``fn`` (which returns its step count); call only on warmed-up code."""
    start = time.perf_counter()
    steps = fn()
    return steps, time.perf_counter() - start


def available_cores() -> int:
    return kernels.available_cores()
