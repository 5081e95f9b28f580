"""Monte Carlo policy-gradient statistics: the same random streams as simulate, bit identity, and
an unbiased gradient of J = P(hit) - beta E[T] checked against the exact solver."""

from __future__ import annotations

import numpy as np
import pytest

import edgewalk as ew
from conftest import Z_LIMIT, reference_statistics
from edgewalk import engine
from edgewalk.planning import gradient_statistics
from edgewalk.policy import Policy



def softmax_policy(graph, logits):
    rows = np.repeat(np.arange(graph.n_states), np.diff(graph.row_start))
    shifted = np.exp(logits - np.maximum.reduceat(logits, graph.row_start[:-1])[rows])
    return Policy(graph, shifted / np.add.reduceat(shifted, graph.row_start[:-1])[rows])


def exact_objective(graph, logits, beta):
    policy = softmax_policy(graph, logits)
    leaves = [graph.leaf(i) for i in range(1, graph.branches + 1)]
    return 1.0 - beta * np.mean([ew.expected_hitting_time(policy, x) for x in leaves])


def test_same_streams_as_simulate():
    graph = ew.path_star(4, 2, 3)
    policy = ew.sft(graph)
    plain = ew.simulate(policy, target="t1", rollouts=3000, seed=11, threads=2, method="step")
    stats = gradient_statistics(policy, ["t1"], rollouts=3000, seed=11, threads=2)
    assert (stats.steps, stats.hits, stats.censored) == (plain.steps, plain.hits, plain.censored)
    assert int(stats.visits.sum()) == plain.steps


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_packed_sums_are_emptied_before_they_overflow(backend):
    """About 5e7 steps on one thread: the kernel's packed per-slot sums (visits < 2**24 and steps
    remaining < 2**40 between emptyings) are emptied into the full sums a few times. Totals over
    every transition must equal what the hitting times give: sum of T visits and T (T + 1) / 2
    steps remaining per rollout (same streams as simulate)."""
    policy = ew.pretrained(ew.path_star(6, 6, 3))
    options = dict(rollouts=60_000, seed=3, threads=1, backend=backend)
    stats = gradient_statistics(policy, ["t1"], max_steps=10**6, **options)
    plain = ew.simulate(policy, target="t1", method="step", max_steps=10**6, **options)
    assert plain.hits == 60_000 and plain.steps > 3 * 2**24
    assert int(stats.visits.sum(dtype=object)) == plain.steps == plain.total
    assert (int(stats.remaining_sum.sum(dtype=object))
            == (plain.total_of_squares + plain.total) // 2)


def test_backends_and_threads_agree_bit_for_bit():
    policy = ew.pretrained(ew.path_star(15, 15, 5))
    runs = [gradient_statistics(policy, rollouts=400, seed=5, backend=backend, threads=threads)
            for backend in ("numba", "cython") for threads in (1, 2)]
    for other in runs[1:]:
        for field in ("visits", "hit_visits", "remaining_sum"):
            assert np.array_equal(getattr(other, field), getattr(runs[0], field))
        assert (other.steps, other.hits) == (runs[0].steps, runs[0].hits)


@pytest.mark.parametrize("buffer_steps", [engine.GRADIENT_BUFFER_STEPS, 7, 1])
@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("forward", [0.7, 1.0])
def test_statistics_follow_the_documented_random_stream(backend, buffer_steps, forward, monkeypatch):
    """Every rollout replayed in Python, with censored rollouts (max_steps 60) and two targets;
    a small buffer sends rollouts through the kernel's path for rollouts longer than its buffer.
    With forward = 1 some alias columns keep no mass of their own (primary_entry[k] != k)."""
    monkeypatch.setattr(engine, "GRADIENT_BUFFER_STEPS", buffer_steps)
    graph = ew.path_star(3, 2, 2)
    policy = ew.parametric(graph, a=forward, b=0.4, c=0.9, d=0.2)
    targets = [graph.leaf(1), graph.leaf(3)]
    stats = gradient_statistics(policy, targets, rollouts=300, seed=2**64 - 9, max_steps=60,
                                backend=backend, threads=2)
    visits, hit_visits, remaining = reference_statistics(policy, targets, 2**64 - 9, 300, 60)
    assert 0 < stats.censored < 300
    assert list(stats.visits) == list(visits)
    assert list(stats.hit_visits) == list(hit_visits)
    assert list(stats.remaining_sum) == list(remaining)
    assert stats.steps == sum(visits)


def test_the_gradient_estimate_is_unbiased():
    """Batches of the directional derivative along a random direction against central finite
    differences of the exact objective; a wrong sign or scale of any term fails the z-test."""
    graph = ew.path_star(2, 2, 2)
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 0.7, graph.n_transitions)
    direction = rng.normal(0.0, 1.0, graph.n_transitions)
    beta = 0.5
    epsilon = 1e-5
    exact = (exact_objective(graph, logits + epsilon * direction, beta)
             - exact_objective(graph, logits - epsilon * direction, beta)) / (2 * epsilon)
    policy = softmax_policy(graph, logits)
    estimates = [gradient_statistics(policy, rollouts=20_000, seed=seed, threads=2).gradient(beta) @ direction
                 for seed in range(20)]
    mean, stderr = np.mean(estimates), np.std(estimates, ddof=1) / np.sqrt(len(estimates))
    assert abs(exact) > 10 * stderr  # the check has power: the derivative is far from zero
    assert abs(mean - exact) < Z_LIMIT * stderr


def test_rows_never_taken_get_zero_gradient():
    graph = ew.path_star(3, 2, 2)
    stats = gradient_statistics(ew.rlvr(graph), rollouts=2000, seed=1, threads=1)
    gradient = stats.gradient()
    states_taken = np.add.reduceat(stats.visits, graph.row_start[:-1]) > 0
    rows = np.repeat(np.arange(graph.n_states), np.diff(graph.row_start))
    assert np.all(gradient[~states_taken[rows]] == 0)
    # each visited row's gradient sums to zero (softmax invariance to a common shift)
    assert np.allclose(np.add.reduceat(gradient, graph.row_start[:-1]), 0, atol=1e-9)


@pytest.mark.parametrize("bad,words", [({"rollouts": 0}, "rollouts"), ({"targets": ["t9"]}, "target")])
def test_bad_input_is_refused(bad, words):
    with pytest.raises(ValueError, match=words):
        gradient_statistics(ew.pretrained(ew.path_star(3, 2, 2)), **bad)
