"""Structure of the path-star multigraph and its edge-state chain (docs/model.md sections 1 and 2)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from edgewalk.errors import InputError
from edgewalk.graph import StateKind, heterogeneous, in_words, path_star

SYMMETRIC_CASES = [(1, 1, 1), (2, 1, 1), (3, 2, 2), (4, 3, 5), (15, 15, 5), (2, 5, 1), (5, 1, 4)]

_U = re.compile(r"^u\((\d+),(\d+),([lr])\)$")
_T = re.compile(r"^t(\d+)$")


def _reverse(state: int) -> int:
    """The same undirected edge traversed the other way (graph.py numbering: 1 + 2e, 2 + 2e)."""
    return state + 1 if state % 2 == 1 else state - 1


def _expected_edges(depths, lanes):
    """Directed edges (tail name, head name) of docs/model.md section 1, built independently."""
    edges = [("s0", "f")]
    for i, k in enumerate(depths, start=1):
        prev = "f"
        for j in range(1, k + 1):
            ul, ur = f"u({i},{j},l)", f"u({i},{j},r)"
            edges += [(prev, ul), (ul, prev)]
            edges += [(ul, ur), (ur, ul)] * lanes[i - 1][j - 1]
            prev = ur
        edges += [(prev, f"t{i}"), (f"t{i}", prev)]
    return Counter(edges)


def _expected_kind(tail: str, head: str):
    """(kind, 1-based branch, depth) from node names alone, per docs/model.md section 3."""
    if tail == "s0":
        return StateKind.START, -1, 0
    if head == "f":
        return StateKind.FORK_IN, int(_U.match(tail).group(1)) - 1, 0
    if _T.match(head):
        return StateKind.LEAF_IN, int(_T.match(head).group(1)) - 1, 0
    hu = _U.match(head)
    hi, hj, hs = int(hu.group(1)), int(hu.group(2)), hu.group(3)
    if tail == "f":
        return StateKind.L_PLUS, hi - 1, 1
    if _T.match(tail):
        return StateKind.R_MINUS, hi - 1, hj
    tu = _U.match(tail)
    tj, ts = int(tu.group(2)), tu.group(3)
    if tj == hj and ts == "l" and hs == "r":
        return StateKind.R_PLUS, hi - 1, hj
    if tj == hj and ts == "r" and hs == "l":
        return StateKind.L_MINUS, hi - 1, hj
    if tj + 1 == hj:  # u(j-1,r) -> u(j,l)
        return StateKind.L_PLUS, hi - 1, hj
    if tj == hj + 1:  # u(j+1,l) -> u(j,r)
        return StateKind.R_MINUS, hi - 1, hj
    raise AssertionError(f"unexpected edge {tail} -> {head}")


# --------------------------------------------------------------------------- state counts


@pytest.mark.parametrize("W,K,L", SYMMETRIC_CASES)
def test_symmetric_state_count_matches_edge_count(W, K, L):
    g = path_star(W, K, L)
    assert g.n_states == 1 + 2 * (W * (K * L + K + 1))
    assert g.branches == W
    assert g.depths == (K,) * W
    assert g.n_nodes == 2 + W * (2 * K + 1)


@pytest.mark.parametrize("W,K,L", SYMMETRIC_CASES[:5])
def test_symmetric_describe(W, K, L):
    g = path_star(W, K, L)
    assert g.is_symmetric
    assert g.describe() == {"W": W, "K": K, "L": L}


def test_heterogeneous_describe_round_trips():
    g = heterogeneous([3, 1], [[1, 2, 3], [4]])
    assert not g.is_symmetric
    assert g.describe() == {"depths": [3, 1], "lanes": [[1, 2, 3], [4]]}


@pytest.mark.parametrize("L", [1, 2, 5])
def test_heterogeneous_paper_depths_per_branch_counts(L):
    depths = [6, 5, 4, 3, 3]
    g = heterogeneous(depths, L)
    assert g.branches == 5
    assert g.depths == tuple(depths)
    assert g.n_states == 1 + 2 * sum(k * L + k + 1 for k in depths)
    for i, k in enumerate(depths):
        on_branch = g.state_branch == i
        assert on_branch.sum() == 2 * (k * L + k + 1)
        kinds = Counter(int(x) for x in g.state_kind[on_branch])
        assert kinds[StateKind.R_PLUS] == k * L
        assert kinds[StateKind.L_MINUS] == k * L
        assert kinds[StateKind.L_PLUS] == k
        assert kinds[StateKind.R_MINUS] == k  # k - 1 inner connectors + the leaf connector
        assert kinds[StateKind.FORK_IN] == 1
        assert kinds[StateKind.LEAF_IN] == 1
        # every diamond node of the branch exists, and nothing deeper
        for j in range(1, k + 1):
            g.node(f"u({i + 1},{j},l)")
            g.node(f"u({i + 1},{j},r)")
        with pytest.raises(ValueError):
            g.node(f"u({i + 1},{k + 1},l)")
    assert (g.state_branch == -1).sum() == 1


def test_heterogeneous_per_diamond_lanes():
    lanes = [[1, 3], [2], [4, 1, 2]]
    g = heterogeneous([2, 1, 3], lanes)
    for i, row in enumerate(lanes):
        for j, n in enumerate(row):
            ul, ur = g.node(f"u({i + 1},{j + 1},l)"), g.node(f"u({i + 1},{j + 1},r)")
            forward = (g.state_tail == ul) & (g.state_head == ur)
            backward = (g.state_tail == ur) & (g.state_head == ul)
            assert forward.sum() == n
            assert backward.sum() == n


# --------------------------------------------------------------------------- full structure


@pytest.mark.parametrize(
    "depths,lanes",
    [
        ([2, 2, 2], [[3, 3], [3, 3], [3, 3]]),
        ([6, 5, 4, 3, 3], [[2] * 6, [2] * 5, [2] * 4, [2] * 3, [2] * 3]),
        ([3, 1, 2], [[1, 2, 3], [4], [2, 1]]),
        ([1], [[1]]),
    ],
)
def test_states_are_exactly_the_directed_edges(depths, lanes):
    g = heterogeneous(depths, lanes)
    names = g.node_names
    got = Counter((names[t], names[h]) for t, h in zip(g.state_tail, g.state_head))
    assert got == _expected_edges(depths, lanes)
    # state 0 is the start state s0 -> f
    assert names[g.state_tail[0]] == "s0" and names[g.state_head[0]] == "f"
    assert g.state_kind[0] == StateKind.START


@pytest.mark.parametrize(
    "depths,lanes",
    [([2, 2, 2], 3), ([6, 5, 4, 3, 3], 2), ([3, 1, 2], [[1, 2, 3], [4], [2, 1]])],
)
def test_state_kind_branch_and_depth(depths, lanes):
    g = heterogeneous(depths, lanes)
    names = g.node_names
    for s in range(g.n_states):
        kind, branch, depth = _expected_kind(names[g.state_tail[s]], names[g.state_head[s]])
        assert g.state_kind[s] == kind, (s, names[g.state_tail[s]], names[g.state_head[s]])
        assert g.state_branch[s] == branch, s
        assert g.state_depth[s] == depth, s


def test_f_to_s0_is_not_a_state():
    g = path_star(3, 2, 2)
    s0, f = g.node("s0"), g.node("f")
    assert not np.any((g.state_tail == f) & (g.state_head == s0))
    assert not np.any(g.state_head == s0)
    assert np.flatnonzero(g.state_tail == s0).tolist() == [0]
    # nothing may ever transition into the start state
    assert 0 not in set(g.next_state.tolist())


@pytest.mark.parametrize("W,K,L", [(1, 1, 1), (3, 2, 2), (4, 3, 5)])
def test_csr_layout(W, K, L):
    g = path_star(W, K, L)
    assert g.row_start.shape == (g.n_states + 1,)
    assert g.row_start[0] == 0
    assert g.row_start[-1] == g.n_transitions == len(g.next_state)
    assert np.all(np.diff(g.row_start) >= 1)
    assert g.next_state.min() >= 0 and g.next_state.max() < g.n_states


@pytest.mark.parametrize(
    "depths,lanes", [([1], 1), ([2, 2, 2], 3), ([6, 5, 4, 3, 3], 2), ([3, 1], [[1, 2, 3], [4]])]
)
def test_next_states_start_at_head_and_include_u_turn(depths, lanes):
    g = heterogeneous(depths, lanes)
    for s in range(g.n_states):
        nxt = g.next_states(s)
        assert np.array_equal(nxt, g.next_state[g.row_start[s] : g.row_start[s + 1]])
        # every next state of u -> v leaves v ...
        assert np.all(g.state_tail[nxt] == g.state_head[s]), s
        # ... each appears once, and every state leaving v (except s0 -> f) is offered
        assert len(set(nxt.tolist())) == len(nxt)
        leaving = set(np.flatnonzero(g.state_tail == g.state_head[s]).tolist()) - {0}
        assert set(nxt.tolist()) == leaving, s
        if s != 0:
            # the U-turn along the very same edge (not just any parallel edge) is allowed
            rev = _reverse(s)
            assert g.state_tail[rev] == g.state_head[s] and g.state_head[rev] == g.state_tail[s]
            assert rev in nxt, s


@pytest.mark.parametrize("W,K,L", [(1, 1, 1), (3, 2, 2), (5, 3, 4)])
def test_out_degrees_by_kind(W, K, L):
    g = path_star(W, K, L)
    deg = np.diff(g.row_start)
    kind = g.state_kind
    leaf_in = kind == StateKind.LEAF_IN
    fork = (kind == StateKind.FORK_IN) | (kind == StateKind.START)
    assert leaf_in.sum() == W and fork.sum() == W + 1
    # leaf-incoming: the U-turn only
    for s in np.flatnonzero(leaf_in):
        assert deg[s] == 1
        assert g.next_states(s).tolist() == [_reverse(s)]
    # fork-incoming and the start: the W connectors f -> u(i,1,l)
    assert np.all(deg[fork] == W)
    f = g.node("f")
    for s in np.flatnonzero(fork):
        nxt = g.next_states(s)
        assert np.all(g.state_kind[nxt] == StateKind.L_PLUS)
        assert np.all(g.state_depth[nxt] == 1)
        assert sorted(g.state_branch[nxt].tolist()) == list(range(W))
        assert np.all(g.state_tail[nxt] == f)
    # every other state enters a diamond node: L multiedges + one connector
    inner = ~(leaf_in | fork)
    assert np.all(deg[inner] == L + 1)


# --------------------------------------------------------------------------- node names


def test_node_name_parsing():
    g = path_star(3, 4, 2)
    names = g.node_names
    assert names[g.node("s0")] == "s0"
    assert names[g.node("f")] == "f"
    assert g.node("t1") == g.node("t_1") == g.leaf(1)
    assert names[g.node("t3")] == "t3"
    assert g.node("t_3") == g.leaf(3)
    assert names[g.node("u(2,3,l)")] == "u(2,3,l)"
    assert names[g.node("u(2,3,r)")] == "u(2,3,r)"
    assert g.node("u(2, 3, l)") == g.node("u(2,3,l)")
    assert g.node("u(2,3,l)") != g.node("u(2,3,r)")
    # all distinct
    assert len({g.node(n) for n in ["s0", "f", "t1", "t2", "t3", "u(1,1,l)", "u(3,4,r)"]}) == 7
    # leaves are where the branches end
    for i in (1, 2, 3):
        t = g.leaf(i)
        into = np.flatnonzero(g.state_head == t)
        assert len(into) == 1
        assert names[g.state_tail[into[0]]] == f"u({i},4,r)"


@pytest.mark.parametrize(
    "bad", ["t0", "t4", "t_4", "u(0,1,l)", "u(1,5,l)", "u(4,1,r)", "u(1,1,m)", "x", "", "T1", "s1"]
)
def test_bad_node_name_raises_naming_target(bad):
    g = path_star(3, 4, 2)
    with pytest.raises(ValueError, match="target"):
        g.node(bad)


def test_bad_leaf_raises():
    g = path_star(3, 4, 2)
    with pytest.raises(ValueError, match="target"):
        g.leaf(4)


def test_target_states_mask():
    g = path_star(3, 2, 2)
    t = g.leaf(2)
    mask = g.target_states(t)
    assert mask.dtype == bool and mask.shape == (g.n_states,)
    assert np.flatnonzero(mask).tolist() == np.flatnonzero(g.state_head == t).tolist()
    assert mask.sum() == 1
    # a diamond node is entered by L multiedges and one connector
    assert g.target_states(g.node("u(1,2,r)")).sum() == 2 + 1
    assert g.target_states(g.node("f")).sum() == 1 + 3  # s0 -> f and the W fork-incoming


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad", [0, -1, -3, 2.5, 0.5, True])
@pytest.mark.parametrize("position,label", [(0, "W"), (1, "K"), (2, "L")])
def test_invalid_parameters_raise_naming_parameter(bad, position, label):
    args = [2, 2, 2]
    args[position] = bad
    with pytest.raises(ValueError, match=label):
        path_star(*args)


def test_numpy_integer_parameters_accepted():
    g = path_star(np.int64(2), np.int64(3), np.int32(2))
    assert g.describe() == {"W": 2, "K": 3, "L": 2}
    assert g.n_states == path_star(2, 3, 2).n_states


@pytest.mark.parametrize("position,label", [(0, "W"), (1, "K"), (2, "L")])
def test_whole_float_parameters_are_refused_naming_the_parameter(position, label):
    # W, K and L must be ints: 3.0 is refused with a ValueError naming the parameter, never a
    # TypeError from deep inside the builder
    args = [2, 3, 2]
    args[position] = float(args[position])
    with pytest.raises(ValueError, match=re.escape(label)):
        path_star(*args)


@pytest.mark.parametrize(
    "depths,lanes,label",
    [
        ([3, 0], 2, "depths"),
        ([3, -1], 2, "depths"),
        ([3, 1.5], 2, "depths"),
        ([3, 2], 0, "L"),
        ([3, 2], [[1, 1, 1], [1, 0]], "lanes"),
        ([3, 2], [[1, 1, 1], [1, -2]], "lanes"),
        ([3, 2], [[1, 1, 1], [1]], "lanes"),
        ([3, 2], [[1, 1, 1]], "lanes"),
        ([], 1, "depths"),
    ],
)
def test_heterogeneous_invalid_raises(depths, lanes, label):
    with pytest.raises(ValueError, match=label):
        heterogeneous(depths, lanes)


@pytest.mark.parametrize("lanes", [[[2, 1.5], [1]], [[2, 2], [0.5]]])
def test_heterogeneous_non_integer_lane_counts_raise(lanes):
    # A lane count is a number of parallel edges: 1.5 must be refused, not truncated to 1.
    with pytest.raises(ValueError, match="lanes"):
        heterogeneous([2, 1], lanes)


def test_heterogeneous_non_integer_scalar_lanes_raise():
    with pytest.raises(ValueError, match="L"):
        heterogeneous([2, 1], 2.5)


def test_in_words_counts_edges_in_the_singular_and_the_plural():
    assert in_words({"edges": [["a", "b"]], "root": "a"}) == "a graph of 1 edge, root 'a'"
    assert in_words({"edges": [["a", "b"], ["b", "c"]], "root": "a"}) == "a graph of 2 edges, root 'a'"


def test_lanes_of_the_wrong_shape_are_refused_saying_what_was_given():
    with pytest.raises(InputError, match=r"len\(lanes\[i\]\) == depths\[i\]: depths \[2, 2\], "
                       r"got lanes of 2 branch\(es\) with \[2, 1\] counts"):
        heterogeneous([2, 2], [[2, 2], [3]])
