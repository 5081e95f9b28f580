"""Exact hitting times on the edge-state chain (docs/model.md section 4)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from edgewalk.exact import (
    expected_hitting_time,
    hitting_time_by_state,
    hitting_time_cdf,
    hitting_time_pmf,
)
from edgewalk.graph import StateKind, heterogeneous, path_star
from edgewalk.policy import parametric, pretrained, rlvr, sft


def _paper_pretrained(W, K, L):
    return (2 * W - 1) * (1 + K + K / L) * (1 + K * (L + 1))


def _reachable(P: np.ndarray, absorbing: np.ndarray) -> np.ndarray:
    """States reachable from the start with positive probability, not leaving absorbing ones."""
    seen = np.zeros(len(P), bool)
    seen[0] = True
    frontier = [0]
    while frontier:
        s = frontier.pop()
        if absorbing[s]:
            continue
        for t in np.flatnonzero(P[s] > 0):
            if not seen[t]:
                seen[t] = True
                frontier.append(t)
    return seen


def _dense_hitting_times(policy, target) -> np.ndarray:
    """Independent reference: solve (I - Q) h = 1 over all non-target states with dense algebra
    (valid when every state reaches the target with probability 1)."""
    g = policy.graph
    P = policy.transition_matrix().toarray()
    absorbing = g.state_head == target
    open_ = np.flatnonzero(~absorbing)
    Q = P[np.ix_(open_, open_)]
    h = np.zeros(g.n_states)
    h[open_] = np.linalg.solve(np.eye(len(open_)) - Q, np.ones(len(open_)))
    return h


# --------------------------------------------------------------------------- reference values


def test_pretrained_reference_value_W15_K15_L5():
    g = path_star(15, 15, 5)
    for i in (1, 8, 15):
        assert expected_hitting_time(pretrained(g), g.leaf(i)) == pytest.approx(50141, rel=1e-6)


@pytest.mark.parametrize("W,K,L", list(itertools.product([1, 2, 3, 5], [1, 2, 4], [1, 2, 5])))
def test_paper_pretrained_formula_holds_exactly(W, K, L):
    # (2W-1)(1+K+K/L)(1+K(L+1)): checked on a grid; it holds to rounding everywhere tried
    g = path_star(W, K, L)
    got = expected_hitting_time(pretrained(g), g.leaf(1))
    assert got == pytest.approx(_paper_pretrained(W, K, L), rel=1e-9)


@pytest.mark.parametrize("W,K,L", [(1, 1, 1), (2, 1, 3), (3, 2, 2), (5, 4, 1), (4, 3, 5), (15, 15, 5)])
def test_rlvr_reference_formula(W, K, L):
    g = path_star(W, K, L)
    got = expected_hitting_time(rlvr(g), g.leaf(W))
    assert got == pytest.approx((2 * K + 1) * (2 * W - 1), rel=1e-9)


def test_rlvr_899_at_W15_K15():
    g = path_star(15, 15, 5)
    assert expected_hitting_time(rlvr(g), g.leaf(3)) == pytest.approx(899, rel=1e-9)


def test_rlvr_heterogeneous_depths():
    # Under RLVR every wrong branch j costs one full excursion of 2(2K_j + 1) transitions on
    # average (each fork draw picks j or the target branch with equal chance), independent of L.
    depths = [6, 5, 4, 3, 3]
    g = heterogeneous(depths, [[2, 3, 1, 4, 2, 1], [1] * 5, [3] * 4, [2, 1, 2], [5, 5, 5]])
    for i, k in enumerate(depths):
        expected = (2 * k + 1) + sum(2 * (2 * kj + 1) for j, kj in enumerate(depths) if j != i)
        assert expected_hitting_time(rlvr(g), g.leaf(i + 1)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("W,K,L", [(1, 2, 2), (3, 2, 2), (4, 3, 1)])
def test_rlvr_interior_target(W, K, L):
    # target u(1,1,l) is one transition from the fork; each wrong branch costs 2(2K+1)
    g = path_star(W, K, L)
    got = expected_hitting_time(rlvr(g), g.node("u(1,1,l)"))
    assert got == pytest.approx(1 + (W - 1) * 2 * (2 * K + 1), rel=1e-9)


@pytest.mark.parametrize("K,expected", [(1, 145), (2, 1097), (3, 7942)])
def test_sft_reference_values(K, expected):
    g = path_star(6, K, 5)
    assert abs(expected_hitting_time(sft(g), g.leaf(1)) - expected) <= 0.5


def test_sft_growth_per_depth_tends_to_L_plus_1_squared_over_L():
    W, L = 6, 5
    times = {}
    for K in range(8, 13):
        g = path_star(W, K, L)
        times[K] = expected_hitting_time(sft(g), g.leaf(1))
    ratios = [times[K + 1] / times[K] for K in range(8, 12)]
    limit = (L + 1) ** 2 / L  # 7.2
    assert ratios[-1] == pytest.approx(limit, rel=0.02)
    for r in ratios:
        assert r == pytest.approx(limit, rel=0.03)
        assert abs(r - L) > 1.5  # clearly not the Theta(W L^K) growth factor L


def test_leaf_targets_symmetric():
    g = path_star(4, 3, 2)
    for policy in (pretrained(g), sft(g), rlvr(g)):
        values = [expected_hitting_time(policy, g.leaf(i)) for i in range(1, 5)]
        assert np.allclose(values, values[0], rtol=1e-9)


# --------------------------------------------------------------------------- by state, independent solve


@pytest.mark.parametrize("seed", range(3))
def test_hitting_time_by_state_matches_dense_solve(seed):
    g = heterogeneous([3, 1, 2], [[1, 2, 3], [4], [2, 1]])
    rng = np.random.default_rng(seed)
    W, Kmax = g.branches, max(g.depths)
    policy = parametric(g, *(rng.uniform(0.05, 0.95, size=(W, Kmax)) for _ in range(4)))
    for target in (g.leaf(1), g.leaf(2), g.node("u(3,1,r)"), g.node("u(1,2,l)")):
        ref = _dense_hitting_times(policy, target)
        got = hitting_time_by_state(policy, target)
        absorbing = g.state_head == target
        reachable = _reachable(policy.transition_matrix().toarray(), absorbing)
        assert np.all(got[absorbing] == 0.0)
        assert np.all(np.isnan(got[~reachable & ~absorbing]))
        check = reachable & ~absorbing
        assert np.allclose(got[check], ref[check], rtol=1e-9)
        assert expected_hitting_time(policy, target) == pytest.approx(ref[0], rel=1e-9)


def test_hitting_time_by_state_rlvr_values_and_unreachable():
    W, K, L = 3, 2, 2
    g = path_star(W, K, L)
    t = g.leaf(1)
    h = hitting_time_by_state(rlvr(g), t)
    assert h[0] == pytest.approx((2 * K + 1) * (2 * W - 1))
    # from f -> u(1,1,l) the walk goes straight down: 2K more transitions
    [s] = np.flatnonzero((g.state_tail == g.node("f")) & (g.state_head == g.node("u(1,1,l)")))
    assert h[s] == pytest.approx(2 * K)
    # t1 -> u(1,K,r) can only be entered after hitting t1: unreachable, so nan
    [s] = np.flatnonzero((g.state_tail == t) & (g.state_head == g.node(f"u(1,{K},r)")))
    assert np.isnan(h[s])
    assert h[np.flatnonzero(g.state_head == t)[0]] == 0.0


# --------------------------------------------------------------------------- trivial and infinite


@pytest.mark.parametrize("make", [pretrained, sft, rlvr])
def test_target_fork_is_zero(make):
    g = path_star(3, 2, 2)
    f = g.node("f")
    assert expected_hitting_time(make(g), f) == 0.0
    pmf = hitting_time_pmf(make(g), f, 10)
    assert pmf[0] == 1.0 and np.all(pmf[1:] == 0.0)
    assert np.all(hitting_time_cdf(make(g), f, 10) == 1.0)


def test_target_s0_is_never_hit():
    g = path_star(2, 1, 1)
    assert expected_hitting_time(pretrained(g), g.node("s0")) == np.inf
    assert np.all(hitting_time_pmf(pretrained(g), g.node("s0"), 50) == 0.0)


def test_unreachable_leaf_is_infinite():
    # a = 0: no walk ever crosses a forward connector out of a diamond, so no leaf is reachable
    g = path_star(3, 2, 2)
    p = parametric(g, a=0.0)
    assert expected_hitting_time(p, g.leaf(1)) == np.inf
    # ... while depth-1 nodes are still hit surely
    assert np.isfinite(expected_hitting_time(p, g.node("u(2,1,r)")))


def _no_warnings_call(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def test_reachable_trap_gives_inf_while_target_is_hittable():
    # a = d = 0: once in R+_1 of a branch the walk bounces R+_1 <-> L-_1 forever (a = 0 forbids
    # the forward connector, d = 0 the way back to the fork). Target u(1,1,r) is hit with positive
    # probability (first branch choice 1), but with positive probability the walk is trapped in
    # diamond 1 of another branch first, so E[T] = inf.
    g = path_star(3, 2, 2)
    p = parametric(g, a=0.0, d=0.0)
    target = g.node("u(1,1,r)")
    # the chain really can be trapped: P(T <= t) stays well below 1
    cdf = hitting_time_cdf(p, target, 2000)
    assert cdf[-1] < 0.9
    assert _no_warnings_call(expected_hitting_time, p, target) == np.inf


def test_trap_on_one_branch_gives_inf():
    # per-branch values: branch 2 has a trap in its first diamond, target t1 is on branch 1
    W, K, L = 3, 2, 2
    g = path_star(W, K, L)
    a = np.full((W, K), 0.5)
    d = np.full((W, K), 0.5)
    a[1, 0] = 0.0
    d[1, 0] = 0.0
    p = parametric(g, a=a, d=d)
    assert _no_warnings_call(expected_hitting_time, p, g.leaf(1)) == np.inf


def test_hitting_time_by_state_finite_where_target_is_sure():
    # The docstring: "inf where the target is not reached with probability 1". Branch 1 is
    # made deterministic towards t1 (a = b = c = 1, d = 0: nothing in it ever returns to the
    # fork), branch 2 holds a trap. From the start E[T] = inf, yet every state strictly inside
    # branch 1 reaches t1 surely, e.g. f -> u(1,1,l) in exactly 2K transitions.
    W, K, L = 3, 2, 2
    g = path_star(W, K, L)
    a, b, c, d = (np.full((W, K), 0.5) for _ in range(4))
    a[0], b[0], c[0], d[0] = 1.0, 1.0, 1.0, 0.0
    a[1, 0], d[1, 0] = 0.0, 0.0
    p = parametric(g, a=a, b=b, c=c, d=d)
    h = _no_warnings_call(hitting_time_by_state, p, g.leaf(1))
    assert h[0] == np.inf
    [s] = np.flatnonzero((g.state_tail == g.node("f")) & (g.state_head == g.node("u(1,1,l)")))
    assert h[s] == pytest.approx(2 * K)
    # and the trapped states of branch 2 are inf
    trapped = (g.state_branch == 1) & (g.state_depth == 1)
    trapped &= np.isin(g.state_kind, [StateKind.R_PLUS, StateKind.L_MINUS])
    assert np.all(h[trapped] == np.inf)


# --------------------------------------------------------------------------- pmf and cdf


@pytest.mark.parametrize(
    "W,K,L,make,t_max",
    [
        (3, 2, 2, pretrained, 6000),
        (2, 1, 1, pretrained, 1500),
        (3, 2, 2, sft, 8000),
        (4, 3, 2, rlvr, 3000),
        (2, 3, 3, parametric, 6000),
    ],
)
def test_pmf_sums_to_one_and_mean_matches(W, K, L, make, t_max):
    g = path_star(W, K, L)
    policy = parametric(g, a=0.6, b=0.7, c=0.8, d=0.3) if make is parametric else make(g)
    target = g.leaf(1)
    pmf = hitting_time_pmf(policy, target, t_max)
    assert pmf.shape == (t_max + 1,)
    assert np.all(pmf >= 0)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-9)
    mean = float(np.arange(t_max + 1) @ pmf)
    assert mean == pytest.approx(expected_hitting_time(policy, target), rel=1e-6)
    cdf = hitting_time_cdf(policy, target, t_max)
    assert np.allclose(cdf, np.cumsum(pmf))
    assert np.all(np.diff(cdf) >= -1e-15) and cdf[-1] <= 1 + 1e-12


@pytest.mark.parametrize("W,K,L", [(1, 1, 1), (3, 2, 2), (4, 3, 5)])
def test_pmf_shortest_path_and_parity(W, K, L):
    g = path_star(W, K, L)
    t = g.leaf(2 if W > 1 else 1)
    shortest = 2 * K + 1
    for policy, p_direct in (
        (pretrained(g), (1 / W) * (L / (L + 1) ** 2) ** K),
        (rlvr(g), 1 / W),
        (sft(g), 1 / W),
    ):
        pmf = hitting_time_pmf(policy, t, 200)
        assert np.all(pmf[:shortest] == 0.0)
        assert pmf[shortest] == pytest.approx(p_direct, rel=1e-12)
        # the graph is bipartite and the leaf is at odd distance from f: T is always odd
        assert np.all(pmf[0::2] == 0.0)


def test_pmf_rlvr_is_supported_on_excursion_lengths():
    # RLVR: T = (2K+1) + 2(2K+1) * (number of wrong branches tried), geometric with p = 1/W
    W, K, L = 3, 2, 2
    g = path_star(W, K, L)
    pmf = hitting_time_pmf(rlvr(g), g.leaf(1), 100)
    expected = np.zeros(101)
    n = 0
    while (t := (2 * K + 1) + 2 * (2 * K + 1) * n) <= 100:
        expected[t] = (1 - 1 / W) ** n / W
        n += 1
    assert np.allclose(pmf, expected, atol=1e-15)


def test_pmf_horizon_validation():
    g = path_star(2, 1, 1)
    with pytest.raises(ValueError, match="t_max"):
        hitting_time_pmf(pretrained(g), g.leaf(1), -1)
    assert hitting_time_pmf(pretrained(g), g.leaf(1), 0).tolist() == [0.0]


def test_deep_sft_values_keep_their_precision():
    """At W = 6, L = 5 the exact growth per depth of SFT is 7.2 from K = 7 on (checked in rational
    arithmetic); a solver that loses precision on these ~1e14 values drifts from it (a sparse LU
    solve reaches 7.213 at K = 15)."""
    values = [expected_hitting_time(sft(path_star(6, k, 5)), path_star(6, k, 5).leaf(1))
              for k in range(11, 16)]
    ratios = np.array(values[1:]) / np.array(values[:-1])
    assert np.allclose(ratios, 7.2, rtol=1e-6, atol=0)
    assert values[-1] == pytest.approx(1.54230e14, rel=1e-5)  # rational-arithmetic value
