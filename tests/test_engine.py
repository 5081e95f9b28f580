"""The Monte Carlo engine: determinism across backends and threads, the documented random
stream, and agreement with the exact solver under criteria that can fail."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from edgewalk import exact
from conftest import P_LIMIT, Z_LIMIT, chi_square_p_value, same_result, z_score
from edgewalk.errors import CostError
from edgewalk.kernels import MASK64, mix64, seed_key
from edgewalk._numba_kernel import take_rollout
from edgewalk.planning import plan, simulate
from edgewalk.graph import heterogeneous, path_star
from edgewalk.policy import parametric, pretrained, rlvr, sft



@pytest.mark.parametrize(
    "policy",
    [pretrained(path_star(3, 2, 2)), sft(path_star(4, 3, 3)), rlvr(path_star(15, 15, 5))],
    ids=["pretrained", "sft", "rlvr-paper-graph"],
)
def test_backends_and_thread_counts_agree_bit_for_bit(policy):
    runs = [
        simulate(policy, rollouts=3000, seed=12345, backend=backend, threads=threads)
        for backend in ("numba", "cython")
        for threads in (1, 2)
    ]
    assert runs[0].hits > 0
    for other in runs[1:]:
        assert same_result(runs[0], other)


def test_threads_taking_rollouts_from_one_counter_get_each_exactly_once():
    """_numba_kernel.take_rollout (ew_take_rollout's mirror), three threads taking in turn and
    at uneven rates: every rollout of the range is handed out once, in runs that shrink."""
    first, last, threads = 5, 1005, 3
    shared = np.array([first, last, threads, 0, 0, 0, 0, 0], np.int64)
    mine = np.zeros((threads, 2), np.int64)
    taken, runs = [], []
    done = [False] * threads
    turn = 0
    while not all(done):
        thread = turn % threads
        for _ in range(thread + 1):  # thread i takes i + 1 rollouts a turn
            before = mine[thread].copy()
            r = take_rollout(shared, mine[thread])
            if r < 0:
                done[thread] = True
                break
            if before[0] == before[1]:
                runs.append(int(mine[thread][1] - mine[thread][0] + 1))
            taken.append(int(r))
        turn += 1
    assert sorted(taken) == list(range(first, last))
    assert runs[0] == (last - first) // (4 * threads)
    assert runs[-1] == 1


def test_different_seeds_give_different_histograms():
    policy = pretrained(path_star(3, 2, 2))
    a = simulate(policy, rollouts=2000, seed=1, threads=1)
    b = simulate(policy, rollouts=2000, seed=2, threads=1)
    assert not np.array_equal(a.counts, b.counts)


def reference_rollout(policy, target, seed, r, max_steps):
    """One rollout as native/edgewalk_kernel.h documents it, in plain Python integers."""
    tables = policy.alias
    is_target = policy.graph.target_states(target)
    x = mix64((seed_key(seed) + (r + 1) * 0x9E3779B97F4A7C15) & MASK64)
    s, t = 0, 0
    while t < max_steps:
        x = (x + 0x9E3779B97F4A7C15) & MASK64
        z = mix64(x)
        base = int(tables.row_start[s])
        degree = int(tables.row_start[s + 1]) - base
        k = base + (((z >> 32) * degree) >> 32)
        s = int(tables.primary[k]) if (z & 0xFFFFFFFF) <= int(tables.threshold[k]) else int(tables.alias[k])
        t += 1
        if is_target[s]:
            return t
    return None


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_rollouts_follow_the_documented_random_stream(backend):
    graph = path_star(3, 2, 2)
    policy = parametric(graph, a=0.7, b=0.4, c=0.9, d=0.2)
    target = graph.leaf(2)
    seed = 2**64 - 5
    expected = [reference_rollout(policy, target, seed, r, max_steps=400) for r in range(50)]
    result = simulate(policy, target, rollouts=50, seed=seed, max_steps=400, bins=401, method="step",
                      backend=backend, threads=2)
    hit_times = [t for t in expected if t is not None]
    assert result.censored == expected.count(None)
    assert result.total == sum(hit_times)
    assert result.total_of_squares == sum(t * t for t in hit_times)
    assert np.array_equal(result.counts, np.bincount(hit_times, minlength=401))


CASES = [
    ("pretrained", pretrained(path_star(3, 2, 2)), "t1"),
    ("sft", sft(path_star(4, 3, 3)), "t1"),
    ("rlvr", rlvr(path_star(6, 4, 3)), "t3"),
    ("parametric-per-depth", parametric(path_star(3, 3, 2), a=[0.9, 0.5, 0.3], b=0.6, c=[0.2, 0.8, 0.5], d=0.4), "t1"),
    ("heterogeneous", pretrained(heterogeneous([3, 2, 1], [[1, 2, 3], [2, 2], [4]])), "t1"),
    ("inner-node-target", pretrained(path_star(3, 3, 2)), "u(2,2,r)"),
]


@pytest.mark.parametrize("name,policy,target", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_monte_carlo_matches_exact(name, policy, target, backend):
    target_node = policy.graph.node(target)
    exact_mean = exact.expected_hitting_time(policy, target_node)
    max_steps = int(30 * exact_mean)
    result = simulate(policy, target, rollouts=40_000, seed=7, max_steps=max_steps, bins=max_steps + 1,
                      backend=backend, threads=2)
    assert abs(z_score(result.mean, exact_mean, result.stderr)) < Z_LIMIT
    pmf = exact.hitting_time_pmf(policy, target_node, max_steps + 1)
    assert chi_square_p_value(result, pmf) > P_LIMIT


def test_the_criteria_detect_a_slightly_wrong_policy():
    """Power check: 40000 rollouts of a policy whose a differs by 0.05 fail both criteria."""
    graph = path_star(3, 3, 2)
    simulated = parametric(graph, a=0.55, b=0.5, c=0.5, d=0.5)
    claimed = parametric(graph, a=0.60, b=0.5, c=0.5, d=0.5)
    target = graph.leaf(1)
    exact_mean = exact.expected_hitting_time(claimed, target)
    max_steps = int(30 * exact_mean)
    result = simulate(simulated, target, rollouts=40_000, seed=7, max_steps=max_steps,
                      bins=max_steps + 1, threads=2)
    assert abs(z_score(result.mean, exact_mean, result.stderr)) > Z_LIMIT
    assert chi_square_p_value(result, exact.hitting_time_pmf(claimed, target, max_steps + 1)) < P_LIMIT


def test_censored_rollouts_are_counted_apart_and_match_the_tail_probability():
    policy = pretrained(path_star(3, 2, 2))
    target = policy.graph.leaf(1)
    max_steps = 60
    result = simulate(policy, rollouts=50_000, seed=3, max_steps=max_steps, threads=2)
    assert result.hits + result.censored == 50_000
    assert result.steps == result.total + result.censored * max_steps
    assert result.to_hist().view(flow=True)[-1] == result.censored
    tail = 1.0 - exact.hitting_time_cdf(policy, target, max_steps)[-1]
    expected, sd = 50_000 * tail, np.sqrt(50_000 * tail * (1 - tail))
    assert abs(result.censored - expected) < Z_LIMIT * sd
    assert result.counts[max_steps // result.bin_width :].sum() <= result.hits


def test_target_at_the_fork_is_hit_at_time_zero():
    result = simulate(pretrained(path_star(2, 1, 1)), target="f", rollouts=100, threads=1)
    assert (result.hits, result.total, result.counts[0]) == (100, 0, 100)


@pytest.mark.slow
def test_paper_graph_rlvr_million_rollouts_is_an_ordinary_call():
    result = simulate(rlvr(path_star(15, 15, 5)), rollouts=1_000_000, seed=1, threads=2)
    assert result.censored == 0
    assert abs(z_score(result.mean, 899.0, result.stderr)) < Z_LIMIT
    assert result.steps == result.total


def test_memory_does_not_grow_with_rollouts():
    policy = rlvr(path_star(6, 4, 3))
    simulate(policy, rollouts=10, threads=2)  # compile and warm caches first

    def peak(rollouts):
        tracemalloc.start()
        simulate(policy, rollouts=rollouts, seed=1, threads=2)
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak_bytes

    small, large = peak(1_000), peak(500_000)
    assert large < small + 256 * 1024


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"rollouts": 0}, "rollouts"),
        ({"rollouts": 2.5}, "rollouts"),
        ({"max_steps": 0}, "max_steps"),
        ({"backend": "fortran"}, "backend"),
        ({"threads": 0}, "threads"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"target": "t9"}, "target"),
        ({"target": "s0"}, "target"),
        ({"bins": 0}, "bins"),
    ],
)
def test_bad_parameters_are_refused_by_name(kwargs, words):
    with pytest.raises(ValueError, match=words):
        plan(pretrained(path_star(3, 2, 2)), **kwargs)


def test_hopeless_runs_are_refused_with_the_exact_value_unless_forced():
    policy = sft(path_star(15, 15, 5))
    with pytest.raises(CostError, match="exact expected hitting time is 4.318"):
        plan(policy, rollouts=10, method="step")
    assert plan(policy, rollouts=10, force=True, method="step").exact_mean > 4e14
    leaped = plan(policy, rollouts=10)  # the leap method makes the same run cheap
    assert leaped.method == "leap" and leaped.estimated_seconds < 10


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_disjoint_rollout_ranges_add_up_to_the_whole_run(backend):
    policy = pretrained(path_star(3, 2, 2))
    whole = simulate(policy, rollouts=5000, seed=21, max_steps=500, backend=backend, threads=2)
    parts = [simulate(policy, rollouts=n, seed=21, max_steps=500, backend=backend, threads=t,
                      first_rollout=first)
             for first, n, t in ((0, 1234, 1), (1234, 3000, 2), (4234, 766, 1))]
    assert same_result(parts[0] + parts[1] + parts[2], whole)
    assert not same_result(parts[0] + parts[1], whole)
