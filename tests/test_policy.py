"""Edge-conditioned policies and their integer alias tables (docs/model.md section 3)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from edgewalk.graph import StateKind, heterogeneous, path_star
from edgewalk.alias import AliasTables
from edgewalk.policy import (
    Policy,
    from_table,
    named,
    parametric,
    pretrained,
    rlvr,
    sft,
)

UNITS = 1 << 32


def _row(policy: Policy, state: int) -> dict[int, float]:
    g = policy.graph
    lo, hi = g.row_start[state], g.row_start[state + 1]
    return dict(zip(g.next_state[lo:hi].tolist(), policy.probabilities[lo:hi].tolist()))


def _state(g, tail: str, head: str) -> list[int]:
    return np.flatnonzero((g.state_tail == g.node(tail)) & (g.state_head == g.node(head))).tolist()


def _row_sums(policy: Policy) -> np.ndarray:
    return np.add.reduceat(policy.probabilities, policy.graph.row_start[:-1])


GRAPHS = [
    path_star(1, 1, 1),
    path_star(3, 2, 2),
    path_star(4, 3, 5),
    heterogeneous([6, 5, 4, 3, 3], 2),
    heterogeneous([3, 1, 2], [[1, 2, 3], [4], [2, 1]]),
]


# --------------------------------------------------------------------------- pretrained


@pytest.mark.parametrize("g", GRAPHS)
def test_pretrained_rows_uniform(g):
    p = pretrained(g)
    deg = np.diff(g.row_start)
    for s in range(g.n_states):
        row = p.probabilities[g.row_start[s] : g.row_start[s + 1]]
        assert np.allclose(row, 1.0 / deg[s], rtol=0, atol=1e-15)
    assert np.allclose(_row_sums(p), 1.0, atol=1e-12)


@pytest.mark.parametrize("g", GRAPHS)
def test_transition_matrix_is_row_stochastic_on_valid_moves(g):
    for p in (pretrained(g), sft(g), rlvr(g)):
        P = p.transition_matrix()
        assert P.shape == (g.n_states, g.n_states)
        assert np.allclose(np.asarray(P.sum(axis=1)).ravel(), 1.0, atol=1e-12)
        coo = P.tocoo()
        nz = coo.data != 0
        # every move with mass goes from u -> v to some v -> w
        assert np.all(g.state_tail[coo.col[nz]] == g.state_head[coo.row[nz]])
        # the matrix agrees with the per-row CSR view
        for s in (0, 1, g.n_states // 2, g.n_states - 1):
            for t, q in _row(p, s).items():
                assert P[s, t] == pytest.approx(q, abs=1e-15)


# --------------------------------------------------------------------------- parametric


def test_parametric_by_hand_one_state_of_each_kind():
    W, K, L = 3, 3, 2
    g = path_star(W, K, L)
    a, b, c, d = [0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9], [0.15, 0.25, 0.35]
    p = parametric(g, a=a, b=b, c=c, d=d)

    # R+_2 on branch 2: u(2,2,l) -> u(2,2,r) over a multiedge. Forward connector a_2; the L
    # multiedges back (U-turn included) share 1 - a_2.
    for s in _state(g, "u(2,2,l)", "u(2,2,r)"):
        assert g.state_kind[s] == StateKind.R_PLUS
        row = _row(p, s)
        assert len(row) == L + 1
        [fwd] = _state(g, "u(2,2,r)", "u(2,3,l)")
        assert row[fwd] == pytest.approx(0.2)
        for t in _state(g, "u(2,2,r)", "u(2,2,l)"):
            assert row[t] == pytest.approx((1 - 0.2) / L)

    # R-_1 on branch 3: u(3,2,l) -> u(3,1,r) over the connector. Multiedges back share b_1;
    # the U-turn on the connector gets 1 - b_1.
    [s] = _state(g, "u(3,2,l)", "u(3,1,r)")
    assert g.state_kind[s] == StateKind.R_MINUS
    row = _row(p, s)
    [uturn] = _state(g, "u(3,1,r)", "u(3,2,l)")
    assert row[uturn] == pytest.approx(1 - 0.4)
    for t in _state(g, "u(3,1,r)", "u(3,1,l)"):
        assert row[t] == pytest.approx(0.4 / L)

    # R-_K from the leaf: t1 -> u(1,3,r). b_3 back over the multiedges, 1 - b_3 U-turn to t1.
    [s] = _state(g, "t1", "u(1,3,r)")
    assert g.state_kind[s] == StateKind.R_MINUS
    row = _row(p, s)
    [uturn] = _state(g, "u(1,3,r)", "t1")
    assert row[uturn] == pytest.approx(1 - 0.6)
    for t in _state(g, "u(1,3,r)", "u(1,3,l)"):
        assert row[t] == pytest.approx(0.6 / L)

    # L+_3 on branch 1: u(1,2,r) -> u(1,3,l). Multiedges forward share c_3; U-turn 1 - c_3.
    [s] = _state(g, "u(1,2,r)", "u(1,3,l)")
    assert g.state_kind[s] == StateKind.L_PLUS
    row = _row(p, s)
    [uturn] = _state(g, "u(1,3,l)", "u(1,2,r)")
    assert row[uturn] == pytest.approx(1 - 0.9)
    for t in _state(g, "u(1,3,l)", "u(1,3,r)"):
        assert row[t] == pytest.approx(0.9 / L)

    # L+_1 from the fork: f -> u(2,1,l). c_1 forward, 1 - c_1 back to f.
    [s] = _state(g, "f", "u(2,1,l)")
    row = _row(p, s)
    [uturn] = _state(g, "u(2,1,l)", "f")
    assert row[uturn] == pytest.approx(1 - 0.7)
    for t in _state(g, "u(2,1,l)", "u(2,1,r)"):
        assert row[t] == pytest.approx(0.7 / L)

    # L-_2 on branch 3: u(3,2,r) -> u(3,2,l). Backward connector d_2; the L multiedges forward
    # (U-turn included) share 1 - d_2.
    for s in _state(g, "u(3,2,r)", "u(3,2,l)"):
        assert g.state_kind[s] == StateKind.L_MINUS
        row = _row(p, s)
        [back] = _state(g, "u(3,2,l)", "u(3,1,r)")
        assert row[back] == pytest.approx(0.25)
        for t in _state(g, "u(3,2,l)", "u(3,2,r)"):
            assert row[t] == pytest.approx((1 - 0.25) / L)

    # L-_1: the backward connector is the one into the fork.
    for s in _state(g, "u(1,1,r)", "u(1,1,l)"):
        row = _row(p, s)
        [back] = _state(g, "u(1,1,l)", "f")
        assert row[back] == pytest.approx(0.15)

    # fork-incoming, start and leaf-incoming rows are never trained
    uniform = pretrained(g)
    for kind in (StateKind.START, StateKind.FORK_IN, StateKind.LEAF_IN):
        for s in np.flatnonzero(g.state_kind == kind):
            assert _row(p, s) == pytest.approx(_row(uniform, s))


@pytest.mark.parametrize("g", GRAPHS[1:])
def test_parametric_connector_probability_per_kind(g):
    rng = np.random.default_rng(7)
    W, Kmax = g.branches, max(g.depths)
    a, b, c, d = (rng.uniform(0.05, 0.95, size=(W, Kmax)) for _ in range(4))
    p = parametric(g, a=a, b=b, c=c, d=d)
    conn = p.connector_probability()
    expected = {
        StateKind.R_PLUS: a,
        StateKind.R_MINUS: 1 - b,
        StateKind.L_PLUS: 1 - c,
        StateKind.L_MINUS: d,
    }
    for s in range(g.n_states):
        kind = StateKind(int(g.state_kind[s]))
        if kind in expected:
            i, j = g.state_branch[s], g.state_depth[s]
            assert conn[s] == pytest.approx(expected[kind][i, j - 1], abs=1e-12), (s, kind)
    # the non-connector moves of a row share the rest equally
    for s in range(g.n_states):
        if g.state_kind[s] in expected:
            lo, hi = g.row_start[s], g.row_start[s + 1]
            nxt = g.next_state[lo:hi]
            multi = np.isin(g.state_kind[nxt], [StateKind.R_PLUS, StateKind.L_MINUS])
            assert multi.sum() == hi - lo - 1
            share = p.probabilities[lo:hi][multi]
            assert np.allclose(share, (1 - conn[s]) / multi.sum(), atol=1e-12)
    # fork and start rows cross a connector with certainty (every move out of f is one)
    forkish = np.isin(g.state_kind, [StateKind.START, StateKind.FORK_IN, StateKind.LEAF_IN])
    assert np.allclose(conn[forkish], 1.0)
    assert np.allclose(_row_sums(p), 1.0, atol=1e-12)


def test_parametric_scalar_and_per_depth_broadcast():
    g = path_star(3, 3, 2)
    per_depth = parametric(g, a=[0.1, 0.2, 0.3])
    conn = per_depth.connector_probability()
    rp = g.state_kind == StateKind.R_PLUS
    for j, value in enumerate([0.1, 0.2, 0.3], start=1):
        assert np.allclose(conn[rp & (g.state_depth == j)], value)
    scalar = parametric(g, b=0.3)
    rm = g.state_kind == StateKind.R_MINUS
    assert np.allclose(scalar.connector_probability()[rm], 0.7)
    # None keeps the pretrained value
    untouched = parametric(g)
    assert np.allclose(untouched.probabilities, pretrained(g).probabilities)


def test_parametric_per_branch_values_land_on_their_branch():
    g = heterogeneous([3, 1, 2], [[1, 2, 3], [4], [2, 1]])
    a = np.array([[0.11, 0.12, 0.13], [0.21, 0.0, 0.0], [0.31, 0.32, 0.0]])
    conn = parametric(g, a=a).connector_probability()
    for s in np.flatnonzero(g.state_kind == StateKind.R_PLUS):
        assert conn[s] == pytest.approx(a[g.state_branch[s], g.state_depth[s] - 1])


@pytest.mark.parametrize("bad", [-0.1, 1.5, np.nan])
def test_parametric_rejects_non_probabilities(bad):
    g = path_star(2, 2, 2)
    with pytest.raises(ValueError, match="c"):
        parametric(g, c=bad)


def test_parametric_rejects_wrong_length():
    g = path_star(2, 3, 2)
    with pytest.raises(ValueError, match="a"):
        parametric(g, a=[0.5, 0.5])


@pytest.mark.parametrize("W,K,L", [(1, 1, 1), (3, 2, 2), (6, 3, 5)])
def test_pretrained_values_of_abcd(W, K, L):
    g = path_star(W, K, L)
    conn = pretrained(g).connector_probability()
    kind = g.state_kind
    assert np.allclose(conn[kind == StateKind.R_PLUS], 1 / (L + 1))  # a
    assert np.allclose(conn[kind == StateKind.R_MINUS], 1 / (L + 1))  # 1 - b, b = L/(L+1)
    assert np.allclose(conn[kind == StateKind.L_PLUS], 1 / (L + 1))  # 1 - c, c = L/(L+1)
    assert np.allclose(conn[kind == StateKind.L_MINUS], 1 / (L + 1))  # d


@pytest.mark.parametrize("W,K,L", [(1, 1, 1), (3, 2, 2), (6, 3, 5), (2, 4, 7)])
def test_sft_values(W, K, L):
    g = path_star(W, K, L)
    p = sft(g)
    assert p.name == "sft"
    conn = p.connector_probability()
    kind = g.state_kind
    assert np.allclose(conn[kind == StateKind.R_PLUS], 1.0)  # a = 1
    assert np.allclose(conn[kind == StateKind.L_PLUS], 0.0)  # c = 1
    assert np.allclose(conn[kind == StateKind.R_MINUS], 1 - L / (L + 1))  # b = L/(L+1)
    assert np.allclose(conn[kind == StateKind.L_MINUS], 1 / (L + 1))  # d = 1/(L+1)
    assert np.allclose(_row_sums(p), 1.0, atol=1e-12)
    # frozen rows are exactly the pretrained ones
    frozen = np.isin(kind, [StateKind.R_MINUS, StateKind.L_MINUS, StateKind.FORK_IN])
    rows = np.repeat(np.arange(g.n_states), np.diff(g.row_start))
    mask = frozen[rows]
    assert np.allclose(p.probabilities[mask], pretrained(g).probabilities[mask])


@pytest.mark.parametrize("W,K,L", [(1, 1, 1), (3, 2, 2), (6, 3, 5)])
def test_rlvr_values(W, K, L):
    g = path_star(W, K, L)
    p = rlvr(g)
    assert p.name == "rlvr"
    conn = p.connector_probability()
    kind = g.state_kind
    assert np.all(conn[kind == StateKind.R_PLUS] == 1.0)  # a = 1
    assert np.all(conn[kind == StateKind.R_MINUS] == 0.0)  # b = 1
    assert np.all(conn[kind == StateKind.L_PLUS] == 0.0)  # c = 1
    assert np.all(conn[kind == StateKind.L_MINUS] == 1.0)  # d = 1
    assert np.all(p.probabilities >= 0)
    assert np.allclose(_row_sums(p), 1.0, atol=1e-12)


@pytest.mark.parametrize("name,factory", [("pretrained", pretrained), ("sft", sft), ("rlvr", rlvr)])
def test_named_policies(name, factory):
    g = path_star(3, 2, 2)
    p = named(g, name)
    assert p.name == name
    assert np.array_equal(p.probabilities, factory(g).probabilities)


@pytest.mark.parametrize("bad", ["ppo", "", "random"])
def test_named_unknown_raises_naming_policy(bad):
    with pytest.raises(ValueError, match="policy"):
        named(path_star(2, 2, 2), bad)


# --------------------------------------------------------------------------- from_table


@pytest.mark.parametrize("g", GRAPHS[:4])
def test_from_table_accepts_pretrained_dense_and_sparse(g):
    ref = pretrained(g)
    dense = ref.transition_matrix().toarray()
    for table in (dense, sp.csr_matrix(dense), sp.coo_matrix(dense)):
        p = from_table(g, table)
        assert np.allclose(p.probabilities, ref.probabilities, atol=1e-15)


def test_from_table_round_trips_random_policy():
    g = heterogeneous([3, 1, 2], [[1, 2, 3], [4], [2, 1]])
    rng = np.random.default_rng(3)
    deg = np.diff(g.row_start)
    probs = np.concatenate([rng.dirichlet(np.ones(n)) for n in deg])
    ref = Policy(g, probs)
    p = from_table(g, ref.transition_matrix().toarray())
    assert np.allclose(p.probabilities, probs, atol=1e-15)


def test_from_table_rejects_mass_on_invalid_transition():
    g = path_star(3, 2, 2)
    table = pretrained(g).transition_matrix().toarray()
    # move all of a row's mass from a valid move to an invalid one (u -> v to a state not leaving v);
    # the row still sums to 1, so only the invalid-transition check can catch it
    s = int(np.flatnonzero(g.state_kind == StateKind.R_PLUS)[0])
    valid = g.next_states(s)
    invalid = int(np.flatnonzero(g.state_tail != g.state_head[s])[1])
    table[s, invalid] = table[s, valid[0]]
    table[s, valid[0]] = 0.0
    assert table[s].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="invalid"):
        from_table(g, table)


def test_from_table_rejects_transition_into_start_state():
    g = path_star(2, 1, 1)
    table = pretrained(g).transition_matrix().toarray()
    fork_in = int(np.flatnonzero(g.state_kind == StateKind.FORK_IN)[0])
    table[fork_in] = 0.0
    table[fork_in, 0] = 1.0  # u(1,1,l) -> f followed by s0 -> f: f -> s0 does not exist
    with pytest.raises(ValueError, match="invalid"):
        from_table(g, table)


@pytest.mark.parametrize("scale", [0.5, 1.01, 0.0])
def test_from_table_rejects_row_not_summing_to_one(scale):
    g = path_star(3, 2, 2)
    table = pretrained(g).transition_matrix().toarray()
    s = 5
    table[s] *= scale
    with pytest.raises(ValueError, match=r"sum"):
        from_table(g, table)


def test_from_table_rejects_negative_entries():
    g = path_star(2, 2, 2)
    table = pretrained(g).transition_matrix().toarray()
    s = int(np.flatnonzero(g.state_kind == StateKind.L_PLUS)[0])
    valid = g.next_states(s)
    table[s, valid[0]] += 0.5
    table[s, valid[1]] -= 0.5
    with pytest.raises(ValueError, match="policy"):
        from_table(g, table)


def test_from_table_rejects_wrong_shape():
    g = path_star(2, 2, 2)
    with pytest.raises(ValueError, match="shape"):
        from_table(g, np.eye(g.n_states + 1))


def test_policy_rejects_wrong_length_probabilities():
    g = path_star(2, 2, 2)
    with pytest.raises(ValueError, match="policy"):
        Policy(g, np.ones(g.n_transitions - 1))


# --------------------------------------------------------------------------- alias tables


def _implied_units(tables: AliasTables, g, s: int) -> dict[int, int]:
    """Integer probability units (out of deg * 2**32) the tables give each next state of s."""
    lo, hi = int(tables.row_start[s]), int(tables.row_start[s + 1])
    units: dict[int, int] = {int(t): 0 for t in g.next_state[lo:hi]}
    for k in range(lo, hi):
        keep = int(tables.threshold[k]) + 1
        assert 1 <= keep <= UNITS
        units[int(tables.primary[k])] += keep
        units[int(tables.alias[k])] += UNITS - keep
    return units


def _check_alias(policy: Policy, tol: float = 1e-9):
    g = policy.graph
    tables = AliasTables.build(policy.graph.row_start, policy.graph.next_state, policy.probabilities)
    assert tables.threshold.dtype == np.uint32
    assert tables.threshold.shape == tables.primary.shape == tables.alias.shape == (g.n_transitions,)
    assert np.array_equal(tables.row_start, g.row_start)
    for s in range(g.n_states):
        lo, hi = int(g.row_start[s]), int(g.row_start[s + 1])
        deg = hi - lo
        units = _implied_units(tables, g, s)
        # primary and alias never leave the row's valid next states
        assert set(units) == set(g.next_state[lo:hi].tolist())
        assert sum(units.values()) == deg * UNITS
        for k in range(lo, hi):
            implied = units[int(g.next_state[k])] / (deg * UNITS)
            assert abs(implied - policy.probabilities[k]) <= tol, (s, k)
    return tables


def _random_parametric(g, seed):
    rng = np.random.default_rng(seed)
    W, Kmax = g.branches, max(g.depths)
    return parametric(g, *(rng.uniform(1e-6, 1 - 1e-6, size=(W, Kmax)) for _ in range(4)))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("g", GRAPHS[1:])
def test_alias_tables_match_random_parametric(g, seed):
    _check_alias(_random_parametric(g, seed))


@pytest.mark.parametrize("seed", range(3))
def test_alias_tables_match_random_scalar_parametric(seed):
    rng = np.random.default_rng(100 + seed)
    g = path_star(5, 3, 4)
    _check_alias(parametric(g, *rng.uniform(0, 1, size=4)))


@pytest.mark.parametrize("seed", range(4))
def test_alias_tables_match_random_dirichlet_table(seed):
    # fully general rows, including some tiny and some zero probabilities
    g = heterogeneous([3, 1, 2], [[1, 2, 7], [4], [2, 1]])
    rng = np.random.default_rng(seed)
    deg = np.diff(g.row_start)
    rows = []
    for n in deg:
        row = rng.dirichlet(np.full(n, 0.3))
        if n > 2:
            row[rng.integers(n)] = 0.0
            row /= row.sum()
        rows.append(row)
    _check_alias(Policy(g, np.concatenate(rows)))


@pytest.mark.parametrize("g", GRAPHS)
def test_alias_tables_pretrained_and_sft(g):
    _check_alias(pretrained(g))
    _check_alias(sft(g))


@pytest.mark.parametrize("g", GRAPHS)
def test_alias_tables_deterministic_rows_exact(g):
    p = rlvr(g)
    tables = _check_alias(p)
    deterministic = set()
    for s in range(g.n_states):
        lo, hi = int(g.row_start[s]), int(g.row_start[s + 1])
        row = p.probabilities[lo:hi]
        if np.max(row) == 1.0:
            deterministic.add(s)
            target = int(g.next_state[lo + int(np.argmax(row))])
            units = _implied_units(tables, g, s)
            assert units[target] == (hi - lo) * UNITS
            # whatever the random word, the sampler lands on the target
            for k in range(lo, hi):
                thr = int(tables.threshold[k])
                assert tables.primary[k] == target
                assert thr == UNITS - 1 or tables.alias[k] == target
    # R+ (a = 1), L- (d = 1) and leaf-incoming rows are deterministic under RLVR
    kinds = [StateKind.R_PLUS, StateKind.L_MINUS, StateKind.LEAF_IN]
    assert set(np.flatnonzero(np.isin(g.state_kind, kinds)).tolist()) <= deterministic


def test_alias_tables_deterministic_row_in_mixed_policy():
    g = path_star(4, 3, 3)
    a = np.full((4, 3), 0.5)
    a[2, 1] = 1.0
    d = np.full((4, 3), 0.3)
    d[0, 2] = 0.0
    p = parametric(g, a=a, d=d)
    tables = _check_alias(p)
    for s in range(g.n_states):
        lo, hi = int(g.row_start[s]), int(g.row_start[s + 1])
        units = _implied_units(tables, g, s)
        for k in range(lo, hi):
            if p.probabilities[k] == 1.0:
                assert units[int(g.next_state[k])] == (hi - lo) * UNITS
            if p.probabilities[k] == 0.0:
                assert units[int(g.next_state[k])] == 0


def test_policy_alias_tables_method():
    g = path_star(2, 2, 2)
    p = _random_parametric(g, 1)
    t1, t2 = p.alias, AliasTables.build(g.row_start, g.next_state, p.probabilities)
    for name in ("threshold", "primary", "alias", "row_start"):
        assert np.array_equal(getattr(t1, name), getattr(t2, name))


def test_alias_tables_wide_rows_skewed_probabilities():
    # W = 40 connectors out of the fork and 12 lanes per diamond; rows mixing near-1 and tiny mass
    g = heterogeneous([2] * 40, 12)
    rng = np.random.default_rng(11)
    rows = []
    for n in np.diff(g.row_start):
        row = rng.dirichlet(np.full(n, 0.05)) + 1e-13
        rows.append(row / row.sum())
    _check_alias(Policy(g, np.concatenate(rows)))


def test_softmax_of_logits_further_apart_than_the_largest_float_warns_nothing():
    import warnings

    from edgewalk.policy import softmax_rows

    graph = path_star(2, 1, 2)
    logits = np.zeros(graph.n_transitions)
    row = slice(graph.row_start[0], graph.row_start[1])
    logits[row] = -1e308
    logits[graph.row_start[0]] = 1e308  # the differences overflow a float
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probabilities = softmax_rows(graph, logits)
    assert probabilities[graph.row_start[0]] == 1.0 and np.all(probabilities[row][1:] == 0.0)
    assert np.allclose(np.add.reduceat(probabilities, graph.row_start[:-1]), 1.0)
