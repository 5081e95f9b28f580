"""Exact lumping (edgewalk.lumping): the law it lumps is the step kernel's, the partition is
lumpable and the coarsest such (against independent pure-Python references on exact integers),
the block counts of the named, parametric and perturbed tabular policies, and the lumped mean
against the unlumped exact solver."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from edgewalk import exact, leap
from edgewalk.graph import START_STATE, StateKind, heterogeneous, path_star
from edgewalk.lumping import UNREACHED, lump, sampled_probabilities, sampled_units
from edgewalk.policy import Policy, parametric, pretrained, rlvr, sft

UNITS = 1 << 64
GENERIC = dict(a=0.7, b=0.6, c=0.8, d=0.3)  # a per-depth policy with every move possible


def reference_units(policy) -> list[int]:
    """Per CSR entry, 2**64 times the probability that the step kernel takes it, from the alias
    tables as docs/model.md section 9 documents the draw, in Python integers."""
    tables = policy.alias
    units = [0] * policy.graph.n_transitions
    for s in range(policy.graph.n_states):
        lo, hi = int(tables.row_start[s]), int(tables.row_start[s + 1])
        d = hi - lo
        for c in range(d):
            span = -(-(c + 1) * 2**32 // d) - (-(-c * 2**32 // d))
            keep = int(tables.threshold[lo + c]) + 1
            units[int(tables.primary_entry[lo + c])] += span * keep
            units[int(tables.alias_entry[lo + c])] += span * (2**32 - keep)
    return units


def test_the_column_spans_are_those_of_the_kernels_column_pick():
    # column c of a row of degree d is drawn by the high halves h with ((h * d) >> 32) == c, and
    # those are ceil(c 2**32 / d) <= h < ceil((c + 1) 2**32 / d)
    for d in list(range(1, 40)) + [125, 1000, 1001, 2**20 + 7]:
        for c in {0, 1, d // 2, d - 1}:
            first = -(-c * 2**32 // d)
            assert (first * d) >> 32 == c
            assert first == 0 or ((first - 1) * d) >> 32 == c - 1


@pytest.mark.parametrize("policy", [
    sft(path_star(3, 2, 5)),
    parametric(path_star(15, 1, 5), **GENERIC),
    pretrained(heterogeneous([3, 1], [[1, 2, 7], [3]])),
], ids=["sft", "fork-of-15", "heterogeneous"])
def test_sampled_units_are_the_step_kernels_law_exactly(policy):
    units, positive = sampled_units(policy.alias)
    expected = reference_units(policy)
    assert [int(u) for u in units] == [u % UNITS for u in expected]
    assert list(positive) == [u > 0 for u in expected]
    g = policy.graph
    for s in range(g.n_states):  # every row is a probability distribution, exactly
        assert sum(expected[g.row_start[s]:g.row_start[s + 1]]) == UNITS
    # the law differs from the policy by the alias rounding only
    assert np.max(np.abs(sampled_probabilities(policy) - policy.probabilities)) < 2**-30


def reference_blocks(policy, target) -> list[frozenset]:
    """The coarsest lumpable partition by plain rounds of refinement on exact integers: start
    from {reachable transient states}, {target states} and split by the multiset of (block,
    units into it) until nothing changes."""
    g = policy.graph
    units = reference_units(policy)
    is_target = g.target_states(target)
    reached, frontier = {START_STATE}, [START_STATE]
    while frontier:
        s = frontier.pop()
        if is_target[s]:
            continue
        for k in range(g.row_start[s], g.row_start[s + 1]):
            nxt = int(g.next_state[k])
            if units[k] > 0 and nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    transient = sorted(s for s in reached if not is_target[s])
    block = {s: 0 for s in transient}
    while True:
        def into(s):
            sums = {}
            for k in range(g.row_start[s], g.row_start[s + 1]):
                if units[k] > 0:
                    nxt = int(g.next_state[k])
                    key = "target" if is_target[nxt] else block[nxt]
                    sums[key] = sums.get(key, 0) + units[k]
            return frozenset(sums.items())
        signatures = {s: (block[s], into(s)) for s in transient}
        numbering = {sig: i for i, sig in enumerate(dict.fromkeys(signatures.values()))}
        refined = {s: numbering[signatures[s]] for s in transient}
        if len(set(refined.values())) == len(set(block.values())):
            break
        block = refined
    groups = {}
    for s, b in block.items():
        groups.setdefault(b, set()).add(s)
    return sorted((frozenset(v) for v in groups.values()), key=min)


def tabular_perturbed(graph, base, state, delta):
    """``base`` with ``delta`` moved, in the row of ``state``, from its connector move to the
    U-turn over the lane it arrived by (one multiedge move perturbed)."""
    p = base.probabilities.copy()
    lo, hi = graph.row_start[state], graph.row_start[state + 1]
    moves = graph.next_state[lo:hi]
    forward = np.isin(graph.state_kind[moves], [StateKind.L_PLUS, StateKind.LEAF_IN])
    connector = lo + int(np.flatnonzero(forward)[0])
    u_turn = lo + int(np.flatnonzero(moves == state + 1)[0])  # state 1 + 2e reversed is 2 + 2e
    p[connector] -= delta
    p[u_turn] += delta
    return Policy(graph, p, "perturbed")


def _lane_state(graph, branch, depth, lane):
    """The R+ state over lane ``lane`` of diamond ``depth`` of ``branch`` (all 0-based)."""
    states = np.flatnonzero((graph.state_kind == StateKind.R_PLUS) & (graph.state_branch == branch)
                            & (graph.state_depth == depth + 1))
    return int(states[lane])


PERTURBED_GRAPH = path_star(4, 3, 3)
PERTURBED = tabular_perturbed(PERTURBED_GRAPH, sft(PERTURBED_GRAPH), _lane_state(PERTURBED_GRAPH, 1, 1, 0), 0.05)
PARTITION_CASES = [
    ("pretrained", pretrained(path_star(3, 2, 2)), "t1"),
    ("sft", sft(path_star(4, 3, 3)), "t2"),
    ("generic", parametric(path_star(3, 3, 2), **GENERIC), "t1"),
    ("per-depth", parametric(path_star(3, 3, 2), a=[0.9, 0.5, 0.3], b=0.6, c=[0.2, 0.8, 0.5], d=0.4), "t3"),
    ("heterogeneous", parametric(heterogeneous([3, 2, 2, 1], [[1, 2, 3], [2, 2], [2, 2], [4]]), **GENERIC),
     "t1"),
    ("inner-node", pretrained(path_star(3, 3, 2)), "u(2,2,r)"),
    ("perturbed-lane", PERTURBED, "t1"),
]


@pytest.mark.parametrize("name,policy,target", PARTITION_CASES, ids=[c[0] for c in PARTITION_CASES])
def test_the_partition_is_the_coarsest_lumpable_one(name, policy, target):
    target = policy.graph.node(target)
    lumped = lump(policy, target)
    found = sorted((frozenset(np.flatnonzero(lumped.block == b).tolist())
                    for b in range(lumped.n_transient)), key=min)
    assert found == reference_blocks(policy, target)
    assert set(np.flatnonzero(lumped.block == lumped.target_block)) == set(
        np.flatnonzero(policy.graph.target_states(target)))
    assert lumped.start == 0 and lumped.block[START_STATE] == 0


@pytest.mark.parametrize("name,policy,target", PARTITION_CASES, ids=[c[0] for c in PARTITION_CASES])
def test_the_lumped_rows_are_the_exact_sums_rounded_once(name, policy, target):
    g = policy.graph
    target = g.node(target)
    lumped = lump(policy, target)
    units = reference_units(policy)
    q = lumped.dense_q()
    for b in range(lumped.n_transient):
        for s in np.flatnonzero(lumped.block == b):  # every member, not only the first
            sums = [0] * lumped.n_blocks
            for k in range(g.row_start[s], g.row_start[s + 1]):
                if units[k]:
                    sums[lumped.block[g.next_state[k]]] += units[k]
            assert sum(sums) == UNITS
            row = [float(Fraction(u, UNITS)) for u in sums]
            assert row[:-1] == q[b].tolist() and row[-1] == lumped.absorb[b]


def _fork_block_and_branches(lumped, graph):
    """For each transient block, the set of branches of its states (-1 for the start)."""
    return [set(graph.state_branch[lumped.block == b].tolist()) for b in range(lumped.n_transient)]


@pytest.mark.parametrize("W,K,L", [(2, 1, 2), (3, 2, 2), (15, 15, 5), (6, 10, 5), (40, 3, 7)])
def test_block_counts_on_the_symmetric_graph_with_a_leaf_target(W, K, L):
    """Blocks: the fork (the start and every FORK_IN state), the target branch, the target, and
    the other W - 1 branches merged (4K + 1 kinds each: L+, R+, L-, R- per depth and LEAF_IN).
    With every move possible the target branch has 4K - 1 reachable kinds (R-_K is entered only
    from the target leaf): 8K + 2 in all. SFT and RLVR never turn back on the way to the target
    leaf, so only L+ and R+ are reachable in its branch: 6K + 3. The pretrained policy is uniform
    at every node, so R+_j merges with R-_j and L+_j with L-_j: 2K per branch, 4K + 3."""
    g = path_star(W, K, L)
    target = g.leaf(2)
    expected = {"generic": 8 * K + 2, "sft": 6 * K + 3, "rlvr": 6 * K + 3, "pretrained": 4 * K + 3}
    for name, policy in (("generic", parametric(g, **GENERIC)), ("sft", sft(g)), ("rlvr", rlvr(g)),
                         ("pretrained", pretrained(g))):
        lumped = lump(policy, target)
        assert lumped.n_blocks == expected[name], name
        branches = _fork_block_and_branches(lumped, g)
        assert branches[0] >= {-1, *range(W)} - {1}  # the fork (SFT and RLVR never return from t2's branch)
        others = [b for b in branches[1:] if b and 1 not in b]
        assert all(b == set(range(W)) - {1} for b in others), name  # the other branches merged


@pytest.mark.slow
def test_block_counts_on_big_graphs_do_not_depend_on_W_and_L():
    for W, K, L in ((100, 100, 10), (1000, 40, 5)):
        g = path_star(W, K, L)
        assert lump(parametric(g, **GENERIC), g.leaf(1)).n_blocks == 8 * K + 2
        assert lump(sft(g), g.leaf(1)).n_blocks == 6 * K + 3


@pytest.mark.parametrize("target_leaf,expected", [(1, 1 + 23 + 1 + (21 + 17 + 13)),
                                                  (5, 1 + 11 + 1 + (25 + 21 + 17 + 13))])
def test_block_counts_on_the_heterogeneous_graph(target_leaf, expected):
    """Depths 6, 5, 4, 3, 3 with 5 lanes: the fork, 4 K_x - 1 blocks in the target branch, the
    target, and 4 K_i + 1 for each other branch, except that the two branches of depth 3 merge
    when neither holds the target."""
    g = heterogeneous([6, 5, 4, 3, 3], 5)
    assert lump(parametric(g, **GENERIC), g.leaf(target_leaf)).n_blocks == expected


def test_a_perturbed_multiedge_move_is_not_merged_where_it_must_not_be():
    """SFT on W = 4, K = 3, L = 3 with target t1, and in branch 2 one R+ state (lane 1 of
    diamond 2) sending 0.05 back over its lane: that state gets a block of its own, branch 2
    no longer merges with branches 3 and 4 (its states reach the odd state), and nothing else
    changes: 6K + 3 blocks plus the 4K + 1 of branch 2 and the odd state."""
    g = PERTURBED_GRAPH
    odd = _lane_state(g, 1, 1, 0)
    lumped = lump(PERTURBED, g.leaf(1))
    assert lumped.n_blocks == 6 * 3 + 3 + (4 * 3 + 1) + 1
    assert np.sum(lumped.block == lumped.block[odd]) == 1
    for b in _fork_block_and_branches(lumped, g)[1:]:
        assert not (1 in b and b & {2, 3})
    assert lump(sft(g), g.leaf(1)).n_blocks == 6 * 3 + 3


def test_a_perturbation_below_the_alias_resolution_is_merged():
    # lumping compares the sampled law: a change the alias tables cannot express changes nothing
    # (but one that makes an impossible move possible does, however small)
    g = PERTURBED_GRAPH
    base = parametric(g, **GENERIC)
    odd = _lane_state(g, 1, 1, 0)
    policy = tabular_perturbed(g, base, odd, 1e-14)
    assert np.array_equal(sampled_units(policy.alias)[0], sampled_units(base.alias)[0])
    assert lump(policy, g.leaf(1)).n_blocks == lump(base, g.leaf(1)).n_blocks == 8 * 3 + 2
    assert lump(tabular_perturbed(g, sft(g), odd, 1e-14), g.leaf(1)).n_blocks > 6 * 3 + 3


MEAN_CASES = [
    ("sft-paper", sft(path_star(15, 15, 5)), "t1"),
    ("pretrained-paper", pretrained(path_star(15, 15, 5)), "t7"),
    ("rlvr-paper", rlvr(path_star(15, 15, 5)), "t1"),
    ("heterogeneous-sft", sft(heterogeneous([6, 5, 4, 3, 3], 5)), "t2"),
    ("per-branch", parametric(heterogeneous([4, 2, 3], [[2, 1, 3, 2], [4, 4], [1, 1, 1]]),
                              a=0.8, b=np.array([[0.3] * 4, [0.5] * 4, [0.9] * 4]), c=0.6, d=0.45), "t3"),
    ("inner-node", sft(path_star(6, 8, 3)), "u(3,5,l)"),
]


@pytest.mark.parametrize("name,policy,target", MEAN_CASES, ids=[c[0] for c in MEAN_CASES])
def test_the_lumped_mean_is_the_unlumped_exact_mean(name, policy, target):
    """Against the exact solver (GTH-LU on the full chain) applied to the law the kernel samples
    the agreement is to rounding; against the policy's own float table, to its alias rounding
    (about 2**-32 relative per move, compounded along the chain)."""
    target = policy.graph.node(target)
    lumped = lump(policy, target)
    mean = leap.mean(lumped)
    sampled = exact.expected_hitting_time(Policy(policy.graph, sampled_probabilities(policy)), target)
    assert mean == pytest.approx(sampled, rel=1e-12)
    assert mean == pytest.approx(exact.expected_hitting_time(policy, target), rel=1e-7)


def test_a_trap_gives_an_infinite_mean_and_unreached_states_are_dropped():
    g = path_star(3, 2, 2)
    # on branch 2, never turn back: entering it traps the walker
    d = np.full((3, 2), 0.3)
    d[1] = 0.0
    policy = parametric(g, a=0.7, b=0.6, c=1.0, d=d)
    lumped = lump(policy, g.leaf(1))
    assert leap.mean(lumped) == np.inf == exact.expected_hitting_time(policy, g.leaf(1))
    # SFT never turns back in the target's branch: its R-, L- and FORK_IN states are never entered
    lumped = lump(sft(g), g.leaf(1))
    dropped = np.flatnonzero(lumped.block == UNREACHED)
    kinds = {StateKind(k) for k in g.state_kind[dropped]}
    assert kinds == {StateKind.R_MINUS, StateKind.L_MINUS, StateKind.FORK_IN}
    assert set(g.state_branch[dropped]) == {0}


def test_the_start_on_the_target_is_one_block_and_bad_targets_are_refused():
    g = path_star(2, 1, 1)
    lumped = lump(pretrained(g), g.node("f"))
    assert (lumped.n_transient, lumped.start, lumped.block[START_STATE]) == (0, 0, 0)
    assert leap.mean(lumped) == 0.0
    with pytest.raises(ValueError, match="target"):
        lump(pretrained(g), g.n_nodes)
