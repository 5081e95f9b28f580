"""GTH-LU (edgewalk._gth): accuracy against GTH state reduction, exact rational arithmetic and
dense solves; reuse of the symbolic pattern; self-loops, explicit zeros and zero pivots."""

from __future__ import annotations

import zlib
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

import reference_solvers as reference
from edgewalk import exact
from edgewalk._gth import Factors, Pattern, elimination_order, estimated_bytes, factorise
from edgewalk.graph import heterogeneous, path_star
from edgewalk.policy import Policy, parametric, pretrained, rlvr, sft

SFT_W6_K15_L5 = 1.54230e14  # tests/test_exact.py: the rational-arithmetic value


# --------------------------------------------------------------------------- helpers


def _csr(Q) -> sp.csr_matrix:
    Q = sp.csr_matrix(Q)
    Q.sort_indices()
    return Q


def _chain(policy: Policy, target: int):
    """The system exact.hitting_time_by_state hands to _state_reduction: Q and r over the
    states that reach the target surely, and the local index of the start (or None)."""
    Q, r, transient = reference.transient_system(policy, target)
    stuck = ~reference.reaches(Q, r > 0)
    sure = ~reference.reaches(Q, stuck)
    Qs = _csr(Q[sure][:, sure])
    first = np.flatnonzero(transient[sure] == exact.START_STATE)
    return Qs, r[sure], first, transient[sure]


def _gth_times(Q: sp.csr_matrix, r: np.ndarray, first, undirected: bool = True) -> np.ndarray:
    order = elimination_order(Q.indptr, Q.indices, int(first[0]) if len(first) else None,
                              undirected=undirected)
    return Pattern.build(Q.indptr, Q.indices, order).factorise(Q.data, r).solve(np.ones(len(r)))


def _random_table(graph, rng, zeros: float = 0.0) -> Policy:
    """Random probabilities per CSR row; with ``zeros`` each move is removed with that chance
    (at least one move per row is kept)."""
    p = rng.uniform(0.01, 1.0, graph.n_transitions)
    if zeros:
        p[rng.random(graph.n_transitions) < zeros] = 0.0
    starts = graph.row_start[:-1]
    empty = np.add.reduceat(p, starts) == 0
    p[starts[empty]] = 1.0
    return Policy(graph, p / np.repeat(np.add.reduceat(p, starts), np.diff(graph.row_start)))


def _random_parametric(graph, rng) -> Policy:
    W, K = graph.branches, max(graph.depths)
    return parametric(graph, *(rng.uniform(0.05, 0.95, size=(W, K)) for _ in range(4)))


def _fraction_solve(A: list[list[Fraction]], b: list[Fraction]) -> list[Fraction]:
    """Dense Gaussian elimination in exact rational arithmetic (first nonzero pivot)."""
    n = len(b)
    M = [row[:] + [b[i]] for i, row in enumerate(A)]
    for k in range(n):
        piv = next(i for i in range(k, n) if M[i][k] != 0)
        M[k], M[piv] = M[piv], M[k]
        for i in range(k + 1, n):
            if M[i][k] != 0:
                f = M[i][k] / M[k][k]
                M[i] = [a - f * c for a, c in zip(M[i], M[k])]
    x = [Fraction(0)] * n
    for k in range(n - 1, -1, -1):
        x[k] = (M[k][n] - sum(M[k][j] * x[j] for j in range(k + 1, n))) / M[k][k]
    return x


def _exact_system(Q: np.ndarray, absorb: np.ndarray) -> list[list[Fraction]]:
    """The matrix GTH-LU factorises, in rationals: off-diagonal -Q_ij, diagonal
    absorb_i + sum_{j != i} Q_ij (= 1 - Q_ii when the float rows sum to 1 exactly)."""
    n = len(absorb)
    A = [[-Fraction(float(Q[i, j])) if i != j else Fraction(0) for j in range(n)] for i in range(n)]
    for i in range(n):
        A[i][i] = Fraction(float(absorb[i])) + sum(Fraction(float(Q[i, j])) for j in range(n) if j != i)
    return A


def _small_chain(rng, n: int, density: float = 0.4, self_loops: bool = True):
    """A random substochastic chain on n states with every state absorbable: a dense Q with
    random zeros (self-loops allowed) and absorb = 1 - row sum, positive on a few states and
    reachable from all (a path i -> i+1 keeps everything connected to the last state)."""
    Q = rng.uniform(0.0, 1.0, (n, n)) * (rng.random((n, n)) < density)
    if not self_loops:
        np.fill_diagonal(Q, 0.0)
    for i in range(n - 1):
        Q[i, i + 1] = max(Q[i, i + 1], 0.3)
    absorb = np.zeros(n)
    absorb[rng.choice(n, size=max(1, n // 4), replace=False)] = rng.uniform(0.05, 0.5)
    absorb[n - 1] = max(absorb[n - 1], 0.2)
    scale = (1.0 - absorb) / Q.sum(axis=1)
    Q *= scale[:, None]
    absorb = 1.0 - Q.sum(axis=1)  # rows sum to 1 up to rounding
    return Q, np.maximum(absorb, 0.0)


def _factorise_dense(Q: np.ndarray, absorb: np.ndarray, first=None) -> Factors:
    Qs = _csr(Q)  # drops exact zeros, keeps the diagonal
    return factorise(Qs.indptr, Qs.indices, Qs.data, absorb, first)


# --------------------------------------------------------------------------- against _state_reduction

GRAPHS = {
    "ps-3-2-2": lambda: path_star(3, 2, 2),
    "ps-4-3-5": lambda: path_star(4, 3, 5),
    "ps-15-15-5": lambda: path_star(15, 15, 5),
    "het": lambda: heterogeneous([6, 5, 4, 3, 3], 5),
}
POLICIES = {
    "pretrained": lambda g, rng: pretrained(g),
    "sft": lambda g, rng: sft(g),
    "rlvr": lambda g, rng: rlvr(g),
    "parametric": _random_parametric,
    "table": lambda g, rng: _random_table(g, rng),
    "table-zeros": lambda g, rng: _random_table(g, rng, zeros=0.2),
}


def _targets(g):
    names = ["t1", f"t{g.branches}", "u(1,1,l)", "u(2,2,r)"]
    if min(g.depths[1:2] or [0]) >= 3:
        names.append("u(2,3,r)")
    return [g.node(n) for n in names]


@pytest.mark.parametrize("policy_name", list(POLICIES))
@pytest.mark.parametrize("graph_name", list(GRAPHS))
def test_hitting_times_agree_with_state_reduction(graph_name, policy_name):
    g = GRAPHS[graph_name]()
    rng = np.random.default_rng(zlib.crc32(f"{graph_name}/{policy_name}".encode()))
    policy = POLICIES[policy_name](g, rng)
    checked = 0
    for target in _targets(g):
        Q, r, first, _ = _chain(policy, target)
        if Q.shape[0] == 0:
            continue
        ref = reference.state_reduction(Q, r, first)
        for undirected in (True, False):
            got = _gth_times(Q, r, first, undirected)
            assert np.all(np.isfinite(got)) and np.all(got >= 1.0)
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
        checked += 1
    assert checked >= 3


def test_start_value_matches_exact_module_on_heterogeneous():
    g = heterogeneous([6, 5, 4, 3, 3], 5)
    for policy in (pretrained(g), sft(g), rlvr(g)):
        for target in _targets(g):
            Q, r, first, _ = _chain(policy, target)
            got = _gth_times(Q, r, first)[first[0]]
            assert got == pytest.approx(exact.expected_hitting_time(policy, target), rel=1e-12)


def test_paper_reference_values():
    g = path_star(15, 15, 5)
    for policy, expected in ((pretrained(g), 50141.0), (rlvr(g), 31.0 * 29.0)):
        Q, r, first, _ = _chain(policy, g.leaf(1))
        assert _gth_times(Q, r, first)[first[0]] == pytest.approx(expected, rel=1e-12)


def test_explicit_zeros_in_the_pattern_do_not_change_values():
    # The pattern of the pretrained policy (every valid move) filled with RLVR / SFT / sparse
    # table probabilities, zeros stored: the states reachable under the policy get the values
    # of the zero-free system.
    g = path_star(4, 3, 3)
    target = g.leaf(2)
    Qfull, _, transient = reference.transient_system(pretrained(g), target)
    Qfull = _csr(Qfull)
    local = np.full(g.n_states, -1)
    local[transient] = np.arange(len(transient))
    rows = np.repeat(np.arange(g.n_states), np.diff(g.row_start))
    for policy in (rlvr(g), sft(g), parametric(g, a=1.0, b=0.5, c=1.0, d=1.0)):
        P = policy.transition_matrix()
        data = np.asarray(P[transient[np.repeat(np.arange(len(transient)), np.diff(Qfull.indptr))],
                            transient[Qfull.indices]]).ravel()
        hit = (g.state_head[g.next_state] == target) & (local[rows] >= 0)
        absorb = np.bincount(local[rows[hit]], weights=policy.probabilities[hit],
                             minlength=len(transient))
        assert np.count_nonzero(data == 0) > 0
        Q, r, first, states = _chain(policy, target)
        assert len(states) < len(transient)  # the policy reaches fewer states
        ref = reference.state_reduction(Q, r, first)
        got = factorise(Qfull.indptr, Qfull.indices, data, absorb,
                        int(local[exact.START_STATE])).solve(np.ones(len(transient)))
        np.testing.assert_allclose(got[local[states]], ref, rtol=1e-12, atol=0)
    # d = 0: a walk that enters a wrong branch never returns to the fork. On the full pattern
    # those states cannot be absorbed, and the factorisation says so instead of returning inf.
    trap = parametric(g, a=1.0, b=0.5, c=1.0, d=0.0)
    data, absorb = _table_data(g, target, trap, Qfull, transient)
    with pytest.raises(ValueError, match="zero pivot at state"):
        factorise(Qfull.indptr, Qfull.indices, data, absorb, int(local[exact.START_STATE]))


# --------------------------------------------------------------------------- exact arithmetic


@pytest.mark.parametrize("seed", range(4))
def test_random_small_chains_match_rational_arithmetic(seed):
    rng = np.random.default_rng(seed)
    n = 9
    Q, absorb = _small_chain(rng, n)
    exact_h = _fraction_solve(_exact_system(Q, absorb), [Fraction(1)] * n)
    for first in (None, 0, n // 2):
        got = _factorise_dense(Q, absorb, first).solve(np.ones(n))
        np.testing.assert_allclose(got, [float(v) for v in exact_h], rtol=1e-14, atol=0)


def _drift_chain(m: int, eps: float):
    """Birth-death chain pushed away from its only exit: i -> i+1 with 1 - eps, i -> i-1 with
    eps, the last state holds with 1 - eps (a self-loop) and state 0 exits with eps. Dyadic eps:
    every row sums to 1 exactly in floating point. E[T] ~ eps^-m."""
    Q = np.zeros((m, m))
    for i in range(m):
        if i + 1 < m:
            Q[i, i + 1] = 1 - eps
        else:
            Q[i, i] = 1 - eps
        if i > 0:
            Q[i, i - 1] = eps
    absorb = np.zeros(m)
    absorb[0] = eps
    return Q, absorb


def test_badly_conditioned_chain_matches_rational_arithmetic():
    m, eps = 12, 2.0 ** -4
    Q, absorb = _drift_chain(m, eps)
    assert np.all(Q.sum(axis=1) + absorb == 1.0)
    A = _exact_system(Q, absorb)
    exact_h = np.array([float(v) for v in _fraction_solve(A, [Fraction(1)] * m)])
    assert exact_h.min() > 1e13  # ~ eps^-m
    assert np.linalg.cond(np.eye(m) - Q) > 1e13
    for first in (None, 0, m - 1):
        got = _factorise_dense(Q, absorb, first).solve(np.ones(m))
        np.testing.assert_allclose(got, exact_h, rtol=1e-14, atol=0)
    # visits from the far end, transposed solve, also exact
    e = [Fraction(0)] * m
    e[m - 1] = Fraction(1)
    At = [list(col) for col in zip(*A)]
    exact_v = np.array([float(v) for v in _fraction_solve(At, e)])
    got_v = _factorise_dense(Q, absorb, 0).solve_transposed(np.eye(m)[m - 1])
    np.testing.assert_allclose(got_v, exact_v, rtol=1e-14, atol=0)
    # witness: an ordinary LU loses digits on this chain
    lu = spla.spsolve(sp.csc_matrix(np.eye(m) - Q), np.ones(m))
    assert np.max(np.abs(lu / exact_h - 1)) > 1e-13


def test_sft_W6_K15_L5_keeps_its_precision():
    g = path_star(6, 15, 5)
    policy = sft(g)
    Q, r, first, _ = _chain(policy, g.leaf(1))
    got = _gth_times(Q, r, first)
    assert got[first[0]] == pytest.approx(SFT_W6_K15_L5, rel=1e-5)
    np.testing.assert_allclose(got, reference.state_reduction(Q, r, first), rtol=1e-12, atol=0)
    # the SuperLU solve of training.ExactSolver is visibly off here (about -0.76 %)
    h_lu, _ = reference.SuperLUSystem.build(g, g.leaf(1)).solve(policy.probabilities,
                                                               g.n_states, False)
    assert abs(h_lu[exact.START_STATE] / got[first[0]] - 1) > 1e-3


# --------------------------------------------------------------------------- visits


@pytest.mark.parametrize("seed", range(3))
def test_visit_counts_match_dense_solve_and_conserve_flow(seed):
    rng = np.random.default_rng(100 + seed)
    n = 12
    Q, absorb = _small_chain(rng, n, self_loops=False)
    F = _factorise_dense(Q, absorb, first=0)
    A = np.eye(n) - Q
    h = F.solve(np.ones(n))
    for s in (0, n // 2, n - 1):
        e = np.eye(n)[s]
        v = F.solve_transposed(e)
        np.testing.assert_allclose(v, np.linalg.solve(A.T, e), rtol=1e-12, atol=0)
        assert np.all(v >= 0) and v[s] >= 1.0
        np.testing.assert_allclose(v, e + Q.T @ v, rtol=1e-12, atol=1e-15)  # flow in = out
        assert v @ absorb == pytest.approx(1.0, rel=1e-12)  # absorbed surely
        assert v.sum() == pytest.approx(h[s], rel=1e-12)  # steps = visits
    np.testing.assert_allclose(h, np.linalg.solve(A, np.ones(n)), rtol=1e-12, atol=0)


def test_visit_counts_on_the_paper_graph_match_superlu():
    # Well conditioned here (pretrained): the SuperLU solver of training agrees to rounding.
    g = path_star(15, 15, 5)
    policy = pretrained(g)
    target = g.leaf(3)
    system = reference.SuperLUSystem.build(g, target)
    h_ref, d_ref = system.solve(policy.probabilities, g.n_states, True)
    Q, r, first, states = _chain(policy, target)
    F = factorise(Q.indptr, Q.indices, Q.data, r, int(first[0]))
    e = np.zeros(len(r))
    e[first[0]] = 1.0
    np.testing.assert_allclose(F.solve(np.ones(len(r))), h_ref[states], rtol=1e-9)
    np.testing.assert_allclose(F.solve_transposed(e), d_ref[states], rtol=1e-9, atol=1e-12)


def test_two_dimensional_right_hand_sides():
    rng = np.random.default_rng(7)
    Q, absorb = _small_chain(rng, 10)
    F = _factorise_dense(Q, absorb, first=3)
    B = rng.uniform(0, 1, (10, 3))
    X = F.solve(B)
    assert X.shape == (10, 3)
    for c in range(3):
        assert np.array_equal(X[:, c], F.solve(B[:, c]))
        assert np.array_equal(F.solve_transposed(B)[:, c], F.solve_transposed(B[:, c]))
    with pytest.raises(ValueError, match="b: expected"):
        F.solve(np.ones(9))


# --------------------------------------------------------------------------- reuse


def _table_data(g, target, policy, Q_pattern, transient):
    P = policy.transition_matrix()
    rows = transient[np.repeat(np.arange(len(transient)), np.diff(Q_pattern.indptr))]
    data = np.asarray(P[rows, transient[Q_pattern.indices]]).ravel()
    absorb = np.asarray(P[transient][:, g.target_states(target)].sum(axis=1)).ravel()
    return data, absorb


def test_refactorisation_equals_fresh_build_bit_for_bit():
    g = path_star(5, 4, 3)
    target = g.leaf(2)
    Q0, _, transient = reference.transient_system(pretrained(g), target)
    Q0 = _csr(Q0)
    first = int(np.flatnonzero(transient == exact.START_STATE)[0])
    order = elimination_order(Q0.indptr, Q0.indices, first)
    shared = Pattern.build(Q0.indptr, Q0.indices, order)
    rng = np.random.default_rng(11)
    policies = [pretrained(g), _random_table(g, rng), rlvr(g), _random_parametric(g, rng),
                sft(g), _random_table(g, rng)]
    inputs = [_table_data(g, target, p, Q0, transient) for p in policies]
    b = rng.uniform(0, 1, len(transient))
    kept = []
    for data, absorb in inputs + inputs[:2]:  # a second pass: nothing carried over
        reused = shared.factorise(data, absorb)
        fresh = Pattern.build(Q0.indptr, Q0.indices, order).factorise(data.copy(), absorb.copy())
        for name in ("l_val", "u_val", "pivots", "reduced_absorb"):
            assert np.array_equal(getattr(reused, name), getattr(fresh, name)), name
        assert np.array_equal(reused.solve(b), fresh.solve(b))
        assert np.array_equal(reused.solve_transposed(b), fresh.solve_transposed(b))
        kept.append((reused, fresh.solve(b)))
    # earlier factors are untouched by later factorisations
    for reused, x in kept:
        assert np.array_equal(reused.solve(b), x)
    assert not np.array_equal(kept[0][1], kept[1][1])  # the data vectors really differed
    assert np.array_equal(kept[0][1], kept[-2][1])


def test_pattern_memory_and_estimate():
    g = path_star(6, 5, 4)
    Q, r, transient = reference.transient_system(pretrained(g), g.leaf(1))
    Q = _csr(Q)
    order = elimination_order(Q.indptr, Q.indices, 0)
    P = Pattern.build(Q.indptr, Q.indices, order)
    F = P.factorise(Q.data, r)
    held = P.pattern_bytes() + sum(a.nbytes for a in (F.l_val, F.u_val, F.pivots,
                                                         F.reduced_absorb))
    assert P.memory_bytes() == held + 8 * P.n  # + the work vector while factorising
    assert estimated_bytes(Q.indptr, Q.indices, order) == P.memory_bytes()
    assert P.nnz_factors == len(P.l_idx) + len(P.u_idx) == len(F.l_val) + len(F.u_val)
    assert P.nnz_factors >= P.nnz_q - np.count_nonzero(Q.diagonal())


# --------------------------------------------------------------------------- self-loops, zero pivots


@pytest.mark.parametrize("seed", range(3))
def test_self_loops_agree_with_dense_solve(seed):
    rng = np.random.default_rng(200 + seed)
    n = 11
    Q, absorb = _small_chain(rng, n, density=0.5, self_loops=True)
    assert np.count_nonzero(np.diag(Q)) >= 3
    A = np.eye(n) - Q
    F = _factorise_dense(Q, absorb, first=0)
    np.testing.assert_allclose(F.solve(np.ones(n)), np.linalg.solve(A, np.ones(n)), rtol=1e-11)
    e = np.eye(n)[0]
    np.testing.assert_allclose(F.solve_transposed(e), np.linalg.solve(A.T, e), rtol=1e-11)


def test_diagonal_is_never_read():
    rng = np.random.default_rng(3)
    Q, absorb = _small_chain(rng, 8, density=0.6)
    Qs = _csr(Q + 0.1 * np.eye(8))  # every diagonal entry stored
    diagonal = Qs.indices == np.repeat(np.arange(8), np.diff(Qs.indptr))
    assert diagonal.sum() == 8
    P = Pattern.build(Qs.indptr, Qs.indices, elimination_order(Qs.indptr, Qs.indices, 0))
    base = P.factorise(Qs.data, absorb).solve(np.ones(8))
    garbage = Qs.data.copy()
    garbage[diagonal] = rng.uniform(0, 5, 8)
    assert np.array_equal(P.factorise(garbage, absorb).solve(np.ones(8)), base)


def test_duplicate_entries_are_summed():
    rng = np.random.default_rng(8)
    Q, absorb = _small_chain(rng, 7, density=0.5)
    Qs = _csr(Q)
    # split every stored entry in two halves stored one after the other
    indptr = 2 * Qs.indptr
    indices = np.repeat(Qs.indices, 2)
    data = np.repeat(Qs.data / 2, 2)
    twice = factorise(indptr, indices, data, absorb, 0).solve(np.ones(7))
    once = factorise(Qs.indptr, Qs.indices, Qs.data, absorb, 0).solve(np.ones(7))
    np.testing.assert_allclose(twice, once, rtol=1e-14)


def test_zero_pivot_raises_naming_the_state():
    # 0 -> 1 -> absorbed, 2 <-> 3 a closed pair that is never absorbed
    Q = np.array([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], float)
    absorb = np.array([0, 1, 0, 0], float)
    with pytest.raises(ValueError, match=r"zero pivot at state 3\b"):
        _factorise_dense(Q, absorb)  # natural order: 3 is the last of the closed pair
    with pytest.raises(ValueError, match=r"zero pivot at state [23]\b"):
        _factorise_dense(Q, absorb, first=0)
    # a lone self-loop
    with pytest.raises(ValueError, match=r"zero pivot at state 0\b"):
        _factorise_dense(np.array([[1.0]]), np.zeros(1))
    # the same pattern with absorbable data is fine
    Qs = _csr(Q)
    P = Pattern.build(Qs.indptr, Qs.indices)
    h = P.factorise(Qs.data * 0.5, np.array([0.5, 1, 0.5, 0.5])).solve(np.ones(4))
    assert np.all(np.isfinite(h))


def test_invalid_inputs_are_refused():
    Qs = _csr(np.array([[0, 0.5], [0.5, 0]]))
    P = Pattern.build(Qs.indptr, Qs.indices)
    with pytest.raises(ValueError, match="data"):
        P.factorise(-Qs.data, np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="absorb"):
        P.factorise(Qs.data, np.array([0.5, np.nan]))
    with pytest.raises(ValueError, match="data: expected"):
        P.factorise(np.ones(3), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="order"):
        Pattern.build(Qs.indptr, Qs.indices, np.array([0, 0]))
    with pytest.raises(ValueError, match="indices"):
        Pattern.build(Qs.indptr, np.array([0, 2]))


def test_empty_chain():
    P = Pattern.build(np.zeros(1, np.int64), np.zeros(0, np.int32))
    F = P.factorise(np.zeros(0), np.zeros(0))
    assert F.solve(np.zeros(0)).shape == (0,)
    assert F.solve_transposed(np.zeros(0)).shape == (0,)


# --------------------------------------------------------------------------- elimination order


def _scipy_state_reduction_order(Q: sp.csr_matrix, first: int) -> np.ndarray:
    near = csgraph.breadth_first_order(Q, first, return_predecessors=False)
    return np.concatenate([np.setdiff1d(np.arange(Q.shape[0]), near), near[::-1]])


@pytest.mark.parametrize("make", [pretrained, sft, rlvr])
def test_directed_order_is_the_state_reduction_order(make):
    g = heterogeneous([6, 5, 4, 3, 3], 5)
    for target in _targets(g):
        Q, r, first, _ = _chain(make(g), target)
        for f in (int(first[0]), Q.shape[0] // 2):
            got = elimination_order(Q.indptr, Q.indices, f, undirected=False)
            assert np.array_equal(got, _scipy_state_reduction_order(Q, f))


def test_orders_are_deterministic_permutations():
    g = path_star(5, 4, 3)
    Q, r, first, _ = _chain(sft(g), g.leaf(1))
    n = Q.shape[0]
    for undirected in (True, False):
        a = elimination_order(Q.indptr, Q.indices, int(first[0]), undirected)
        assert np.array_equal(np.sort(a), np.arange(n))
        assert a[-1] == first[0]
        assert np.array_equal(a, elimination_order(Q.indptr.copy(), Q.indices.copy(),
                                                   int(first[0]), undirected))
    assert np.array_equal(elimination_order(Q.indptr, Q.indices, None), np.arange(n))
    with pytest.raises(ValueError, match="first"):
        elimination_order(Q.indptr, Q.indices, n)


def test_undirected_order_has_less_fill_where_moves_are_removed():
    g = path_star(6, 20, 4)
    for make, most in ((sft, 0.2), (rlvr, 0.75)):  # measured: 0.12 and 0.55
        Q, r, first, _ = _chain(make(g), g.leaf(1))
        fill = {u: Pattern.build(Q.indptr, Q.indices,
                                 elimination_order(Q.indptr, Q.indices, int(first[0]), u)
                                 ).nnz_factors
                for u in (True, False)}
        assert fill[True] < most * fill[False]
    Q, r, first, _ = _chain(pretrained(g), g.leaf(1))
    fill = [Pattern.build(Q.indptr, Q.indices,
                          elimination_order(Q.indptr, Q.indices, int(first[0]), u)).nnz_factors
            for u in (True, False)]
    assert fill[0] <= fill[1] * 1.05


@pytest.mark.parametrize("W,K,L", [(3, 100, 2), (6, 40, 5)])
def test_deep_sft_values_of_1e66_agree_with_state_reduction(W, K, L):
    # E[T] grows by about (L+1)^2/L per depth: 1.8e66 at K = 100. Both GTH variants keep every
    # component to rounding; an LU with 1 - Q_kk pivots would have lost all digits long before.
    g = path_star(W, K, L)
    Q, r, first, _ = _chain(sft(g), g.leaf(1))
    ref = reference.state_reduction(Q, r, first)
    assert ref[first[0]] > 1e30
    for undirected in (True, False):
        np.testing.assert_allclose(_gth_times(Q, r, first, undirected), ref, rtol=1e-12, atol=0)
