"""Runs over a target distribution (edgewalk.targets): the shortcut for interchangeable targets
(one solve and one plan for every leaf of a symmetric path-star under a branch-symmetric
policy) gives what a solve and a plan per target give."""

import numpy as np
import pytest

from edgewalk import exact, targets
from edgewalk.graph import heterogeneous, path_star
from edgewalk.policy import from_table, named, parametric

from conftest import P_LIMIT, Z_LIMIT, same_result


def _perturbed(policy, state):
    """The policy with the first move of ``state``'s row made 20% more likely (renormalised)."""
    g, p = policy.graph, policy.probabilities.copy()
    lo, hi = g.row_start[state], g.row_start[state + 1]
    p[lo] *= 1.2
    p[lo:hi] /= p[lo:hi].sum()
    table = np.zeros((g.n_states, g.n_states))
    for s in range(g.n_states):
        table[s, g.next_state[g.row_start[s]:g.row_start[s + 1]]] = p[g.row_start[s]:g.row_start[s + 1]]
    return from_table(g, table, "perturbed")


@pytest.mark.parametrize("name", ["pretrained", "sft", "rlvr", "distilled"])
def test_named_policies_make_the_leaves_interchangeable_and_one_solve_gives_their_mean(name):
    g = path_star(4, 3, 2)
    policy = named(g, name)
    assert targets.interchangeable(policy, g.leaves)
    every = np.mean([exact.expected_hitting_time(policy, t) for t in g.leaves])
    assert targets.mean_hitting_time(policy, targets.resolve(g, "leaves")) == pytest.approx(every, rel=1e-12)


def test_a_policy_that_breaks_the_symmetry_keeps_one_solve_per_target():
    g = path_star(3, 2, 2)
    a = np.array([0.9, 0.7])
    assert targets.interchangeable(parametric(g, a, a, a, a), g.leaves)
    branch_two = 1 + (g.n_states - 1) // 3  # the first state of branch 2
    uniform = named(g, "pretrained")
    assert targets.interchangeable(uniform, g.leaves)
    assert not targets.interchangeable(_perturbed(uniform, branch_two + 2), g.leaves)
    assert not targets.interchangeable(_perturbed(uniform, 0), g.leaves)  # the start's row
    fork_in = int(np.flatnonzero(g.state_head == g.node("f"))[1])  # a state entering the fork
    assert not targets.interchangeable(_perturbed(uniform, fork_in), g.leaves)
    assert not targets.interchangeable(named(heterogeneous([3, 2], 2), "rlvr"), heterogeneous([3, 2], 2).leaves)
    assert not targets.interchangeable(named(g, "rlvr"), [g.leaf(1), g.node("f")])


def test_the_shared_step_plan_gives_the_runs_of_one_plan_per_target_bit_for_bit(monkeypatch):
    g = path_star(3, 2, 2)
    policy = named(g, "pretrained")
    shared = targets.plan(policy, "leaves", rollouts=3001, seed=4, method="step")
    got = targets.execute(shared)
    monkeypatch.setattr(targets, "interchangeable", lambda policy, nodes: False)
    separate = targets.plan(policy, "leaves", rollouts=3001, seed=4, method="step")
    assert [(p.target, p.rollouts, p.first_rollout) for p in shared.plans] == \
        [(p.target, p.rollouts, p.first_rollout) for p in separate.plans]
    for a, b in zip(shared.plans, separate.plans):  # one law: the same values to rounding
        assert a.exact_mean == pytest.approx(b.exact_mean, rel=1e-12) and np.array_equal(a.edges, b.edges)
    assert same_result(got, targets.execute(separate))


def test_the_shared_leap_plan_draws_from_every_targets_law():
    # the leap tables of t1's lumped chain serve t2 and t3 (their lumped chains are the same up to
    # the numbering of blocks, so a seed draws other samples of the same law than per-target tables)
    g = path_star(3, 2, 2)
    policy = named(g, "sft")
    run = targets.plan(policy, "leaves", rollouts=30000, seed=4, method="leap")
    comparison = targets.compare_with_exact(run, targets.execute(run))
    assert abs(comparison.z) < Z_LIMIT and comparison.chi2_p > P_LIMIT


def test_a_shared_leap_plan_counts_its_tables_once_in_the_cost():
    g = path_star(40, 6, 3)
    policy = named(g, "sft")
    over_leaves = targets.plan(policy, "leaves", rollouts=4000, method="leap")
    one_leaf = targets.plan(policy, "t1", rollouts=4000, method="leap")
    assert over_leaves.estimated_seconds == pytest.approx(one_leaf.estimated_seconds, rel=1e-9)


def test_a_node_called_leaves_is_reached_by_its_prefix_and_the_word_alone_is_refused():
    from edgewalk.errors import InputError
    from edgewalk.graph import from_edges
    g = from_edges([("r", "leaves"), ("r", "a"), ("a", "b"), ("b", "node:x")], "r")
    with pytest.raises(InputError, match="node:leaves"):
        targets.resolve(g, "leaves")
    node = targets.resolve(g, "node:leaves")
    assert node.nodes == (g.node("leaves"),) and node.label == "node:leaves"
    assert node.describe() == "node:leaves"
    assert targets.resolve(g, node.label) == node  # the label a run file records resolves back
    prefixed = targets.resolve(g, "node:node:x")
    assert prefixed.nodes == (g.node("node:x"),) and targets.resolve(g, prefixed.label) == prefixed
    default = targets.resolve(g)
    assert default.label == "leaves" and g.node("leaves") in default.nodes


def test_white_space_around_a_target_name_is_ignored_on_every_graph():
    """As on the path-star (" t1 " is t1), a graph file's node names, which hold no white space,
    are found with white space around them."""
    from edgewalk.errors import InputError
    from edgewalk.graph import from_edges, path_star
    g = from_edges([("r", "a"), ("a", "b")], "r")
    assert targets.resolve(g, " b\t").nodes == (g.node("b"),)
    star = path_star(2, 2, 2)
    assert targets.resolve(star, " t1 ").nodes == targets.resolve(star, "t1").nodes
    for graph_, twice in ((g, ["b", " b"]), (star, ["t1", "t_1"])):  # two spellings of one node
        with pytest.raises(InputError, match=f"must not repeat a value, got {twice[0]} twice"):
            targets.resolve(graph_, twice)
