"""The transformer's speed at the experiment's graph W = K = 6, L = 5 (paper Fig. 7), 4096
rollouts: seconds per PPO iteration with the native engine on the tabulated window chain and
with the JAX sampler (window 2, and the whole trajectory), and rollout throughput of the JAX
sampler beside the native engine on the same tabulated model. Run with
``pytest bench/test_transformer.py`` (needs the transformer extra)."""

from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

pytest.importorskip("jax")

from edgewalk import graph, planning, policy  # noqa: E402
from edgewalk.transformer import Config, TransformerPolicy, init_parameters, table_logits  # noqa: E402
from edgewalk.transformer.ppo import train_transformer  # noqa: E402
from measure import run_pedantic  # noqa: E402

GRAPH = (6, 6, 5)
ROLLOUTS = 4096
# Goals: the reason to tabulate a windowed model is speed, so on its tabulated window chain the
# native engine must out-run the JAX sampler, per rollout step and per PPO iteration.
MIN_NATIVE_OVER_JAX_THROUGHPUT = 10.0
MIN_JAX_OVER_NATIVE_ITERATION = 2.0


def _iteration_seconds(table, config: Config, sampler: str, iterations: int = 3) -> float:
    """Seconds of the last of ``iterations`` PPO iterations (rollouts and update; the first ones
    also compile)."""
    g = table.graph
    run = train_transformer(g, table, config, iterations=iterations, rollouts=ROLLOUTS, seed=1, sampler=sampler,
                            evaluation_rollouts=1024)
    return float(np.diff(run.metrics["seconds"])[-2])


@pytest.fixture(scope="module")
def rlvr():
    return policy.rlvr(graph.path_star(*GRAPH))


def test_ppo_iteration_native_against_jax(benchmark: BenchmarkFixture, rlvr, report: Callable[[str], None]):
    config = Config(window=2)
    load = os.getloadavg()[0]
    native = benchmark.pedantic(lambda: _iteration_seconds(rlvr, config, "native"), rounds=1, iterations=1)
    jax_seconds = _iteration_seconds(rlvr, config, "jax")
    whole = _iteration_seconds(rlvr, Config(window=None), "jax", iterations=2)
    ratio = jax_seconds / native
    benchmark.extra_info.update(native_seconds_per_iteration=native, jax_seconds_per_iteration=jax_seconds,
                                whole_trajectory_seconds_per_iteration=whole, jax_over_native=ratio,
                                load_average_before=load)
    report(f"PPO iteration at W=K=6, L=5 from converged RLVR, {ROLLOUTS} rollouts (load {load:.1f}): window 2 "
           f"{native:.3g} s with the native engine, {jax_seconds:.3g} s with the JAX sampler ({ratio:.3g}x; "
           f"goal >= {MIN_JAX_OVER_NATIVE_ITERATION:g}x); whole trajectory (JAX) {whole:.3g} s")
    assert ratio >= MIN_JAX_OVER_NATIVE_ITERATION


def test_rollout_throughput_jax_sampler_beside_native_engine(benchmark: BenchmarkFixture,
                                                            report: Callable[[str], None]):
    g = graph.path_star(*GRAPH)
    config = Config(window=2)
    params = init_parameters(config, g.n_states, 3)
    params["out"] = (0.05 * np.random.default_rng(3).standard_normal(params["out"].shape)).astype(np.float32)
    model = TransformerPolicy(g, config, params, table_logits(policy.rlvr(g)))
    tabulated = model.tabulate()
    horizon = 2000
    model.sample(ROLLOUTS, seed=0, horizon=horizon)  # compile

    def jax_round() -> tuple[int, float]:
        began = time.perf_counter()
        times = model.sample(ROLLOUTS, seed=1, horizon=horizon).times
        return int(np.where(times >= 0, times, horizon).sum()), time.perf_counter() - began

    rounds = run_pedantic(benchmark, jax_round, 2, warmup_rounds=0)
    jax_rate = max(steps / seconds for steps, seconds in rounds)
    native_runs = [planning.gradient_statistics(tabulated, rollouts=100 * ROLLOUTS, seed=s, max_steps=horizon,
                                                expected_steps=150.0, threads=1) for s in range(3)]
    native_rate = max(r.steps / r.seconds for r in native_runs)
    ratio = native_rate / jax_rate
    benchmark.extra_info.update(jax_steps_per_second=jax_rate, native_steps_per_second_one_thread=native_rate,
                                native_over_jax=ratio)
    report(f"rollouts of a window-2 transformer at W=K=6, L=5: JAX sampler {jax_rate:.3g} steps/s "
           f"({ROLLOUTS} rollouts per batch, all cores), native engine on its tabulated chain {native_rate:.3g} "
           f"steps/s on one thread ({ratio:.3g}x; goal >= {MIN_NATIVE_OVER_JAX_THROUGHPUT:g}x)")
    assert ratio >= MIN_NATIVE_OVER_JAX_THROUGHPUT
