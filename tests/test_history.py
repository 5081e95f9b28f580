"""The k-window chain (docs/model.md section 8): its structure against an independent
enumeration, lifted policies against the base chain, the engine and the exact solver on it, the
size refusal, and the reference values of history-aware search."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from conftest import Z_LIMIT, same_result, z_score
from edgewalk import exact, graph, planning, policy, training
from edgewalk.errors import InputError, SizeError
from edgewalk.graph import StateKind
from edgewalk.history import chain_size, from_description, reference_values, window_chain


def _enumerate(g, k):
    """Windows and transitions of the k-window chain by breadth-first search from (s0,)."""
    start = (0,)
    seen, frontier, moves = {start}, [start], {}
    while frontier:
        following = []
        for w in frontier:
            s = w[-1]
            row = []
            for nxt in g.next_states(s):
                v = (w + (int(nxt),))[-k:] if len(w) == k else w + (int(nxt),)
                row.append(v)
                if v not in seen:
                    seen.add(v)
                    following.append(v)
            moves[w] = row
        frontier = following
    return seen, moves


@pytest.mark.parametrize("W,K,L,k", [(2, 1, 1, 1), (2, 1, 1, 3), (2, 1, 2, 2), (3, 2, 1, 4), (1, 2, 2, 5)])
def test_chain_matches_breadth_first_enumeration(W, K, L, k):
    g = graph.path_star(W, K, L)
    c = window_chain(g, k)
    seen, moves = _enumerate(g, k)
    windows = [tuple(int(s) for s in row if s >= 0) for row in c.windows]
    assert set(windows) == seen and len(windows) == len(seen)
    assert windows == sorted(windows)  # lexicographic numbering, (s0,) first
    assert windows[0] == (0,)
    for index, w in enumerate(windows):
        row = c.next_state[c.row_start[index]:c.row_start[index + 1]]
        assert [windows[j] for j in row] == moves[w]
        assert np.all(np.diff(row) > 0)
        assert c.state_head[index] == g.state_head[w[-1]] and c.last_state[index] == w[-1]
        entries = c.base_entry[c.row_start[index]:c.row_start[index + 1]]
        assert np.array_equal(g.next_state[entries], [v[-1] for v in moves[w]])
    assert chain_size(g, k)[:2] == (c.n_states, c.n_transitions)


def test_one_window_chain_is_the_base_chain():
    g = graph.path_star(3, 2, 2)
    c = window_chain(g, 1)
    assert np.array_equal(c.row_start, g.row_start) and np.array_equal(c.next_state, g.next_state)
    assert np.array_equal(c.last_state, np.arange(g.n_states))


def test_counts_at_the_experiment_graph():
    # W = K = 6, L = 5: 445 states; windows of 2 are the 2640 transitions plus (s0,)
    g = graph.path_star(6, 6, 5)
    assert chain_size(g, 1)[:2] == (445, 2640)
    assert chain_size(g, 2)[0] == 2640 + 1
    assert chain_size(g, 4)[:2] == (93073, 552858)


@pytest.mark.parametrize("name", ["pretrained", "rlvr", "sft"])
@pytest.mark.parametrize("k", [2, 3])
def test_lifted_policy_has_the_base_exact_values(name, k):
    g = graph.path_star(3, 2, 2)
    base = policy.named(g, name)
    lifted = window_chain(g, k).lift(base)
    for leaf in g.leaves:
        assert math.isclose(exact.expected_hitting_time(lifted, leaf), exact.expected_hitting_time(base, leaf),
                            rel_tol=1e-11)


def test_lifted_policy_draws_the_base_rollouts_bit_for_bit():
    # a window's row is its last state's row, so the alias tables and every draw are the same
    g = graph.path_star(3, 2, 2)
    base = policy.from_logits(g, np.random.default_rng(3).normal(size=g.n_transitions))
    lifted = window_chain(g, 3).lift(base)
    a = planning.simulate(base, rollouts=3000, seed=11, method="step")
    b = planning.simulate(lifted, rollouts=3000, seed=11, method="step")
    assert same_result(a, b)


def _random_history_policy(c, seed):
    return policy.from_logits(c, np.random.default_rng(seed).normal(scale=1.5, size=c.n_transitions))


def test_engine_on_a_window_chain_matches_its_exact_mean_and_is_backend_independent():
    g = graph.path_star(3, 1, 2)
    c = window_chain(g, 3)
    p = _random_history_policy(c, 5)
    leaf = g.leaves[1]
    numba = planning.simulate(p, leaf, rollouts=20000, seed=2, threads=1)
    cython = planning.simulate(p, leaf, rollouts=20000, seed=2, backend="cython", threads=2)
    assert same_result(numba, cython)
    assert abs(z_score(numba.mean, exact.expected_hitting_time(p, leaf), numba.stderr)) < Z_LIMIT
    # power: the same criterion rejects the exact mean of a slightly different policy
    other = _random_history_policy(c, 6)
    assert abs(z_score(numba.mean, exact.expected_hitting_time(other, leaf), numba.stderr)) > Z_LIMIT


def test_gradient_statistics_run_on_a_window_chain():
    g = graph.path_star(2, 1, 2)
    c = window_chain(g, 2)
    p = _random_history_policy(c, 1)
    stats = planning.gradient_statistics(p, rollouts=20000, seed=4)
    exact_gradient, _ = exact.ExactSolver(c).rlvr_gradient(p.probabilities, beta=1.0)
    estimate = stats.gradient(1.0)
    big = np.abs(exact_gradient) > 0.05
    assert big.sum() > 5
    # the REINFORCE estimate is unbiased: its error is a few standard errors of 20000 rollouts
    assert np.abs(estimate[big] - exact_gradient[big]).max() < 0.2 * np.abs(exact_gradient[big]).max()


def test_too_large_a_chain_is_refused_with_its_size():
    g = graph.path_star(6, 6, 5)
    with pytest.raises(SizeError, match=r"window: the 8-window chain .* 1\.16e\+08 states .* GiB"):
        window_chain(g, 8)
    with pytest.raises(SizeError, match="max_bytes"):
        window_chain(g, 4, max_bytes=10**6)
    with pytest.raises(InputError, match="window must be a whole number >= 1"):
        window_chain(g, 0)


def test_description_rebuilds_the_chain():
    g = graph.path_star(2, 2, 1)
    c = window_chain(g, 3)
    again = from_description(c.describe())
    assert again.describe() == {"window": 3, "graph": {"W": 2, "K": 2, "L": 1}}
    assert np.array_equal(again.next_state, c.next_state)
    assert graph.from_description(c.describe()).n_states == c.n_states  # the graph module's reader too


def test_window_lookup():
    g = graph.path_star(2, 1, 1)
    c = window_chain(g, 2)
    w = c.window_of([0, 1])
    assert c.last_state[w] == 1 and c.length[w] == 2
    assert set(c.windows_ending_at(1)) == {int(i) for i in np.flatnonzero(c.last_state == 1)}
    with pytest.raises(InputError, match="no window"):
        c.window_of([0, 5])


# --------------------------------------------------------------------------- reference values


def _never_reenter(c, g, fork_slip=0.0):
    """On a window chain long enough to hold a whole trajectory: converged RLVR, except that at
    the fork the walker picks uniformly among the branches not entered yet (with ``fork_slip``
    its probability of re-entering an explored one instead, a slightly wrong policy)."""
    p = c.lift(policy.rlvr(g)).probabilities.copy()
    entering = (g.state_kind == StateKind.L_PLUS) & (g.state_depth == 1)
    for w in range(c.n_states):
        states = c.windows[w, :c.length[w]]
        s = states[-1]
        if states[0] != 0 or g.state_kind[s] not in (StateKind.START, StateKind.FORK_IN):
            continue
        explored = set(g.state_branch[states[entering[states]]].tolist())
        entries = np.arange(c.row_start[w], c.row_start[w + 1])
        branch = g.state_branch[c.last_state[c.next_state[entries]]]
        fresh = ~np.isin(branch, list(explored))
        if fresh.all() or not fresh.any():
            continue
        p[entries] = np.where(fresh, (1 - fork_slip) / fresh.sum(), fork_slip / (~fresh).sum())
    return policy.Policy(c, p)


@pytest.mark.parametrize("W,K,L", [(2, 1, 1), (2, 1, 2)])
def test_never_reentering_an_explored_branch_costs_2K_plus_1_times_W(W, K, L):
    g = graph.path_star(W, K, L)
    longest = (4 * K + 2) * (W - 1) + 2 * K + 1  # every wrong branch once, then the target
    c = window_chain(g, longest + 1)
    p = _never_reenter(c, g)
    means = [exact.expected_hitting_time(p, leaf) for leaf in g.leaves]
    references = reference_values(g)
    assert math.isclose(np.mean(means), references["history_aware"], rel_tol=1e-12)
    assert references["history_aware"] == (2 * K + 1) * W
    assert math.isclose(exact.expected_hitting_time(c.lift(policy.rlvr(g)), g.leaves[0]),
                        references["edge_conditioned"], rel_tol=1e-12)
    # Monte Carlo on the chain agrees, and rejects the slightly wrong policy
    run = planning.simulate(p, g.leaves[0], rollouts=20000, seed=1)
    assert abs(z_score(run.mean, means[0], run.stderr)) < Z_LIMIT
    slipped = planning.simulate(_never_reenter(c, g, 0.05), g.leaves[0], rollouts=20000, seed=1)
    assert abs(z_score(slipped.mean, means[0], slipped.stderr)) > Z_LIMIT


def _simulate_uniform_fork(W, K, rollouts, rng, u_turn=1.0):
    """Walks of the best history policy whose fork stays uniform (independent of the package):
    at the fork a uniform branch; an explored one is left at once (2 steps) with probability
    ``u_turn``, else run to its leaf and back (4K + 2); a new one is the target with probability
    1 / (unexplored branches), which ends the walk after 2K + 1 steps."""
    times = np.empty(rollouts)
    for r in range(rollouts):
        target = rng.integers(W)
        explored, t = set(), 0
        while True:
            b = rng.integers(W)
            if b in explored and rng.random() < u_turn:
                t += 2
            elif b == target:
                t += 2 * K + 1
                break
            else:
                explored.add(b)
                t += 4 * K + 2
        times[r] = t
    return times


def test_history_aware_reference_with_a_uniform_fork():
    W, K = 3, 1
    value = reference_values(graph.path_star(W, K, 1))["history_aware_uniform_fork"]
    assert value == (2 * K + 1) * W + W - 1
    rng = np.random.default_rng(7)
    times = _simulate_uniform_fork(W, K, 40000, rng)
    assert abs(z_score(times.mean(), value, times.std(ddof=1) / np.sqrt(len(times)))) < Z_LIMIT
    slipped = _simulate_uniform_fork(W, K, 40000, rng, u_turn=0.8)
    assert abs(z_score(slipped.mean(), value, slipped.std(ddof=1) / np.sqrt(len(slipped)))) > Z_LIMIT


def test_best_window_policies_by_exact_rlvr():
    """Exact RLVR on window chains finds the best k-window tables. With the fork rows uniform,
    window 1 is converged RLVR, (2K+1)(2W-1) = 25 at W = 3, K = 2; window 2 also U-turns (2 steps)
    on re-entering the branch just left: from the fork after a wrong branch the remaining time is
    X = 2 + (2K+1) + (4K+2)(W-2), so E[T] = ((2K+1) + (W-1)(4K+2+X)) / W = 59/3. With the fork rows
    free, window 1 already reaches (2K+1)W = 15 by touring the branches in a fixed cyclic order."""
    g = graph.path_star(3, 2, 2)
    one = window_chain(g, 1)
    assert math.isclose(training.train_rlvr(one, 1000, record_every=1000).hitting_time[-1], 25, rel_tol=1e-5)
    two = training.train_rlvr(window_chain(g, 2), 1000, record_every=1000).hitting_time[-1]
    assert math.isclose(two, 59 / 3, rel_tol=1e-5)
    free = dataclasses.replace(one, trainable=np.diff(one.row_start) > 1)
    assert math.isclose(training.train_rlvr(free, 1000, record_every=1000).hitting_time[-1], 15, rel_tol=1e-5)


def test_reference_values_need_the_symmetric_path_star():
    with pytest.raises(InputError, match="symmetric path-star"):
        reference_values(graph.heterogeneous([2, 1], 1))
    assert reference_values(graph.path_star(6, 6, 5)) == {
        "edge_conditioned": 143.0, "history_aware": 78.0, "history_aware_uniform_fork": 83.0}


def test_a_huge_window_is_counted_without_overflow_and_refused_at_once():
    import warnings

    g = graph.path_star(2, 1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        states, transitions, size = chain_size(g, 1000)  # counted in log space: no overflow
        assert states > 10**100 and transitions > states and size > 1000 * states
        with pytest.raises(SizeError, match=r"window: the 99,999,999,999-window chain .* or more .* at least"):
            window_chain(g, 99999999999)
